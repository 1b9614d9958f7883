"""Shipping the winner the ways the ecosystem loads models: a timm folder (loaded in a fresh process where neither
fastai nor lungfast can be imported), ONNX through ONNX Runtime, and a model card from the records in every export."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiments(lc_subset, tmp_path_factory):
    """Three tiny runs on real tiles: a linear probe and a fine-tune with the default head (timm-expressible
    winners both), and a fine-tune with fastai's head (one that is not)."""
    work = tmp_path_factory.mktemp("formats")
    for name, protocol, head in (
        ("lin", "linear", "timm"),
        ("ft", "fine_tune", "timm"),
        ("ftf", "fine_tune", "fastai"),
    ):
        exp = write_experiment(
            work / f"{name}.toml",
            name=name,
            data_dir=str(lc_subset / "lung_image_sets"),
            backbones=["tiny"],
            protocols=[protocol],
            head=head,
            img_size=32,
            batch_size=16,
            epochs=1,
            pretrained=False,
            robustness_n=12,
            results_dir=str(work / "r"),
        )
        result = run_cli("run", exp, cwd=work)
        assert result.returncode == 0, result.stderr
    return work / "r"


@pytest.mark.parametrize("name, run", [("lin", "linear-seed0"), ("ft", "seed0")])
def test_timm_folder_gives_the_pickles_probabilities_in_a_fresh_process(experiments, lc_subset, tmp_path, name, run):
    from fastai.learner import load_learner
    from huggingface_hub import ModelCard

    from lungfast.data.store import decode
    from lungfast.train import backbones

    out = tmp_path / "lung-timm"
    result = run_cli("export", experiments / name, "--format", "timm", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "lungfast.json", "model.safetensors"]
    test = pd.read_csv(experiments / name / "split.csv").query("part == 'test'").path.tolist()[:16]
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in backbones.get("tiny").stats)
    pixels = torch.from_numpy(np.stack([decode(p, 32) for p in test]).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    x = ((pixels - mean) / std).numpy()
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        pickle = load_learner(experiments / name / "runs" / "tiny" / run / "learner.pkl").model.eval()
        expected = pickle(torch.from_numpy(x)).softmax(1).numpy()
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fastai"] = None; sys.modules["lungfast"] = None  # neither can be imported here
        import numpy as np, timm, torch
        model = timm.create_model("local-dir:{out}", pretrained=True).eval()
        with torch.no_grad():
            np.save("{tmp_path / "y.npy"}", model(torch.from_numpy(np.load("{tmp_path / "x.npy"}"))).softmax(1).numpy())
        print(model.pretrained_cfg["crop_mode"], ",".join(model.pretrained_cfg["label_names"]))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["squash", "lung_aca,lung_n,lung_scc"]
    assert np.abs(np.load(tmp_path / "y.npy") - expected).max() < 1e-5
    config = json.loads((out / "config.json").read_text())
    assert config["pretrained_cfg"]["mean"] == list(backbones.get("tiny").stats[0])
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "other" and "histopathology" in card.data.tags and card.data.datasets == ["LC25000"]
    assert "accuracy" in card.data.metrics and card.data.library_name == "timm"
    for section in (
        "## Intended use",
        "## Training data",
        "## Test results",
        "## Calibration and referral",
        "## Robustness",
        "## Limitations",
        "## How to load it",
        "## Reproduce",
    ):
        assert section in card.text, section
    rec = json.loads((experiments / name / "runs" / "tiny" / run / "metrics.json").read_text())
    assert f"{rec['test_accuracy']:.4f}" in card.text and "not a diagnostic device" in card.text
    for folder in (experiments, lc_subset):  # folder names only: a published card does not show the author's disk
        assert str(folder) not in card.text
    assert ":\n\n```python\nimport timm" in card.text  # code blocks start on their own line


def test_a_winner_with_fastais_head_is_refused_as_timm_in_one_line(experiments, tmp_path):
    result = run_cli("export", experiments / "ftf", "--format", "timm", "--out", tmp_path / "t")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "fastai's fine-tuning head" in result.stderr and "pickle, safetensors or onnx" in result.stderr
    assert 'head = "timm"' in result.stderr
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".*partial"))


def test_onnx_predict_agrees_with_the_pickle_on_real_tiles(experiments, lc_subset, tmp_path):
    """A copied export works: the ONNX file holds its weights (nothing else beside it)."""
    import shutil

    made = tmp_path / "made"
    for fmt, name in (("onnx", "lung.onnx"), ("pickle", "lung.pkl")):
        result = run_cli("export", experiments / "ft", "--format", fmt, "--out", made / name)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in made.iterdir()) == [
        f"lung.{s}{e}" for s in ("onnx", "pkl") for e in ("", ".json", ".md")
    ]
    copied = tmp_path / "copied"
    copied.mkdir()
    for f in made.iterdir():
        shutil.copy(f, copied / f.name)
    tiles = lc_subset / "lung_image_sets"
    tables = {}
    for name in ("lung.onnx", "lung.pkl"):
        result = run_cli("predict", copied / name, tiles, "--out", tmp_path / f"{name}.csv", "--trust")
        assert result.returncode == 0, result.stderr
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv")
    a, b = tables["lung.onnx"], tables["lung.pkl"]
    vocab = ["lung_aca", "lung_n", "lung_scc"]
    assert len(a) == len(b) > 400 and list(a.columns) == list(b.columns)
    assert (a.predicted == b.predicted).all() and (a.refer == b.refer).all()
    assert np.abs(a[vocab].to_numpy() - b[vocab].to_numpy()).max() < 1e-4


def test_every_export_carries_the_card_the_experiment_and_the_versions(experiments, tmp_path):
    from huggingface_hub import ModelCard

    for fmt, name in (("pickle", "lung.pkl"), ("safetensors", "lung.safetensors")):
        result = run_cli("export", experiments / "ft", "--format", fmt, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        bundle = json.loads((tmp_path / f"{name}.json").read_text())
        assert bundle["experiment"]["name"] == "ft" and bundle["experiment"]["img_size"] == 32
        assert {"torch", "fastai", "timm"} <= set(bundle["versions"])
    card = ModelCard.load(tmp_path / "lung.safetensors.md")
    assert "safetensors" in card.text.split("## ")[0] or "**safetensors**" in card.text
    assert (tmp_path / "lung.pkl.md").read_text() != card.text  # each model its own card
    assert card.data.pipeline_tag == "image-classification" and "lung_image_sets" in card.text


def write_gzip(run, rec, out, trusted, card_text):
    """A format added by a test: the run's pickle, gzipped (the writer of its registry row)."""
    import gzip

    with gzip.open(out, "wb") as f:
        f.write(run.learner.read_bytes())
    return {"format": "gzip-pickle"}


def read_gzip(path, trusted):
    import gzip
    import io

    from fastai.learner import load_learner

    with gzip.open(path) as f:
        return load_learner(io.BytesIO(f.read()))


def test_a_new_format_is_one_registry_row_that_every_reader_takes(experiments, lc_subset, tmp_path, monkeypatch):
    from lungfast import cli, notebook
    from lungfast.ship import app, cohort_eval, formats

    row = formats.ModelFormat(
        "gzip-pickle",
        "lung.pkl.gz",
        "fastai",
        "gunzip it, then `load_learner`",
        f"{__name__}:write_gzip",
        f"{__name__}:read_gzip",
        lambda p: p.name.endswith(".pkl.gz"),
    )
    monkeypatch.setitem(formats.REGISTRY, row.name, row)
    monkeypatch.setenv("COLUMNS", "200")
    gz, pkl = tmp_path / "lung.pkl.gz", tmp_path / "lung.pkl"
    assert cli.main(["export", str(experiments / "ft"), "--format", "gzip-pickle", "--out", str(gz)]) in (0, None)
    assert json.loads((tmp_path / "lung.pkl.gz.json").read_text())["format"] == "gzip-pickle"
    assert "**gzip-pickle** (`lungfast export --format gzip-pickle`)" in (tmp_path / "lung.pkl.gz.md").read_text()
    assert cli.main(["export", str(experiments / "ft"), "--out", str(pkl)]) in (0, None)
    tiles = sorted((lc_subset / "lung_image_sets").rglob("*.jpeg"))[:20]
    for model in (gz, pkl):  # predict
        assert cli.main(["predict", str(model), *map(str, tiles), "--out", str(tmp_path / f"{model.name}.csv")]) in (
            0,
            None,
        )
    a, b = (pd.read_csv(tmp_path / f"{m.name}.csv") for m in (gz, pkl))
    vocab = ["lung_aca", "lung_n", "lung_scc"]
    assert "refer" in a and (a.predicted == b.predicted).all() and np.allclose(a[vocab], b[vocab], atol=1e-6)
    nb = notebook.load(gz).predict(tiles[:4])  # the notebook API
    assert np.allclose(nb[vocab], b[vocab].iloc[:4], atol=1e-6)
    data = str(lc_subset / "lung_image_sets")
    scored = [cohort_eval.score(str(m), data, include="*0.jpeg").figures for m in (gz, pkl)]  # evaluate
    assert scored[0]["accuracy"] == scored[1]["accuracy"] and sum(scored[0]["support"].values()) > 20
    assert app.build(str(gz)) is not None  # the app builds on it
    with pytest.raises(SystemExit):  # the CLI's choices are the registry's rows: without the row, no such format
        monkeypatch.delitem(formats.REGISTRY, row.name)
        cli.parser().parse_args(["export", "d", "--format", "gzip-pickle"])


def test_every_exported_format_is_read_by_evaluate_and_the_notebook(experiments, lc_subset, tmp_path):
    from lungfast import notebook
    from lungfast.ship import cohort_eval

    names = {"pickle": "lung.pkl", "onnx": "lung.onnx", "timm": "lung-timm", "safetensors": "lung.safetensors"}
    for fmt, name in names.items():
        result = run_cli("export", experiments / "ft", "--format", fmt, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
    data, vocab = lc_subset / "lung_image_sets", ["lung_aca", "lung_n", "lung_scc"]
    tiles = sorted(data.rglob("*.jpeg"))[::40]
    figures = {n: cohort_eval.score(str(tmp_path / n), str(data), include="*0.jpeg").figures for n in names.values()}
    probs = {n: notebook.load(tmp_path / n, precision="fp32").predict(tiles)[vocab].to_numpy() for n in names.values()}
    for name in names.values():
        assert figures[name]["support"] == figures["lung.pkl"]["support"], name
        assert abs(figures[name]["accuracy"] - figures["lung.pkl"]["accuracy"]) < 0.02, name
        assert np.abs(probs[name] - probs["lung.pkl"]).max() < 1e-4, name
