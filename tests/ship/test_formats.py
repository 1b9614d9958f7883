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
    """Two tiny runs on real tiles: a linear probe (a timm-expressible winner) and a fine-tune (one that is not)."""
    work = tmp_path_factory.mktemp("formats")
    for name, protocol in (("lin", "linear"), ("ft", "fine_tune")):
        exp = write_experiment(
            work / f"{name}.toml",
            name=name,
            data_dir=str(lc_subset / "lung_image_sets"),
            backbones=["tiny"],
            protocols=[protocol],
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


def test_timm_folder_gives_the_pickles_probabilities_in_a_fresh_process(experiments, lc_subset, tmp_path):
    from fastai.learner import load_learner
    from huggingface_hub import ModelCard

    from lungfast.data.store import decode
    from lungfast.train import backbones

    out = tmp_path / "lung-timm"
    result = run_cli("export", experiments / "lin", "--format", "timm", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "lungfast.json", "model.safetensors"]
    test = pd.read_csv(experiments / "lin" / "split.csv").query("part == 'test'").path.tolist()[:16]
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in backbones.get("tiny").stats)
    pixels = torch.from_numpy(np.stack([decode(p, 32) for p in test]).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    x = ((pixels - mean) / std).numpy()
    np.save(tmp_path / "x.npy", x)
    with torch.no_grad():
        pickle = load_learner(experiments / "lin" / "runs" / "tiny" / "linear-seed0" / "learner.pkl").model.eval()
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
    rec = json.loads((experiments / "lin" / "runs" / "tiny" / "linear-seed0" / "metrics.json").read_text())
    assert f"{rec['test_accuracy']:.4f}" in card.text and "not a diagnostic device" in card.text
    for folder in (experiments, lc_subset):  # folder names only: a published card does not show the author's disk
        assert str(folder) not in card.text
    assert ":\n\n```python\nimport timm" in card.text  # code blocks start on their own line


def test_a_fine_tuned_winner_is_refused_as_timm_in_one_line(experiments, tmp_path):
    result = run_cli("export", experiments / "ft", "--format", "timm", "--out", tmp_path / "t")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "fastai's fine-tuning head" in result.stderr and "pickle, safetensors or onnx" in result.stderr
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".*partial"))


def test_onnx_predict_agrees_with_the_pickle_on_real_tiles(experiments, lc_subset, tmp_path):
    for fmt, name in (("onnx", "lung.onnx"), ("pickle", "lung.pkl")):
        result = run_cli("export", experiments / "ft", "--format", fmt, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
    tiles = lc_subset / "lung_image_sets"
    tables = {}
    for name in ("lung.onnx", "lung.pkl"):
        result = run_cli("predict", tmp_path / name, tiles, "--out", tmp_path / f"{name}.csv")
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
    card = ModelCard.load(tmp_path / "MODEL_CARD.md")
    assert card.data.pipeline_tag == "image-classification" and "lung_image_sets" in card.text
