"""`lungfast demo`: the whole pipeline (run, leaderboard, report, export) on synthetic tissue-like tiles,
two backbones from scratch at 64 px, both schemes, on a CPU in minutes. It proves the machinery, not medicine.
"""

from __future__ import annotations

from pathlib import Path

DEMO_EXPERIMENT = {
    "name": "demo",
    "scheme": ["grouped", "random"],
    "backbones": ["tiny", "xresnet18"],
    "seeds": [0],
    "img_size": 64,
    "batch_size": 16,
    "epochs": 4,
    "lr": 3e-3,
    "pretrained": False,
}


def run_demo(workdir: Path, force: bool = False) -> None:
    from lungfast import config, runner
    from lungfast.data import synthetic
    from lungfast.results.layout import ExperimentDir
    from lungfast.ship import export, formats

    print("lungfast demo: SYNTHETIC tissue-like images (not LC25000, not medical data); see README for real data.")
    data_dir = synthetic.make_dataset(workdir / "data")
    cfg = config.from_dict({**DEMO_EXPERIMENT, "data_dir": str(data_dir), "results_dir": str(workdir)}, "demo")
    print(runner.run(cfg, force=force))
    exp = ExperimentDir.of(cfg)
    out = exp.path / formats.get("pickle").default_name
    run = export.export(exp, out)
    print(f"exported the winner to {out} (from {run})")
    print("load it with: from fastai.learner import load_learner; load_learner(PATH).predict(IMAGE)")
