"""Export the leaderboard's winner: the top backbone's best run on the honest split.

`pickle` copies the run's fastai learner (what `load_learner` reads); `safetensors` writes its weights
only, plus a JSON description, for loading without pickle. Both get a `<out>.json` sidecar naming the
run they came from, and lungfast records the pickle's sha256 so it will load it without `--trust`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lungfast import leaderboard, model_io, record, trust


def winner_run(exp_dir: Path) -> Path:
    """Run folder of the top-ranked backbone's run with the best test accuracy."""
    runs = leaderboard.load_runs(exp_dir)
    top = leaderboard.build(exp_dir, runs).backbone[0]
    mine = runs[(runs.backbone == top) & (runs.split == leaderboard.primary_split(runs))]
    return Path(mine.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).run_dir.iloc[0])


def export(exp_dir: Path, out: Path, fmt: str = "pickle", trusted: bool = False) -> Path:
    run = winner_run(exp_dir)
    source = run / "learner.pkl"
    if fmt == "safetensors":
        model_io.export_safetensors(model_io.load_pickle(source, trusted), run, out)
        return run
    if not (trusted or trust.vouched(source)):
        raise model_io.refusal(source)
    with record.atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    digest = trust.remember(out)
    m = json.loads((run / "metrics.json").read_text())
    record.write_json(model_io.sidecar(out), {"format": "fastai-pickle", "backbone": m["backbone"],
                                              "source_run": str(run), "sha256": digest, "vocab": m["vocab"]})
    return run
