"""Test-time views (`tta`) and feature ensembles ("a+b"), through the real CLI on real LC25000 tiles: the record
describes the model that ships, in every format that can carry it, and every view of every part is embedded once."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli, write_experiment

from lungfast.train import views

VOCAB = ["lung_aca", "lung_n", "lung_scc"]


def test_views_are_the_eight_symmetries_and_their_mean_ignores_orientation():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    seen = [views.view(x, k) for k in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in seen}) == 8  # eight different images of one tile
    assert torch.equal(views.view(x, 1), x.rot90(1, (2, 3))) and torch.equal(views.view(x, 4), x.flip(3))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3)))
    net(x)
    for tta, of in (("dihedral", "logits"), ("dihedral", "features")):
        wrapped = views.wrap(net, tta, frozen=of == "features")
        assert list(wrapped.state_dict()) == list(net.state_dict()) and wrapped[0] is net[0]
        assert views.of(wrapped) == tta
        for k in range(8):  # the mean over the group is the same for every orientation of the input
            assert torch.allclose(wrapped(views.view(x, k)), wrapped(x), atol=1e-5), (tta, of, k)
    assert not torch.allclose(net(views.view(x, 1)), net(x))  # the network alone does care
    flips = views.wrap(net, "flips", frozen=False)
    assert torch.allclose(flips(x.flip(2)), flips(x), atol=1e-5) and views.wrap(net, "none", False) is net


@pytest.fixture(scope="module")
def viewed(lc_subset, tmp_path_factory):
    """Two registry backbones and their feature ensemble, linear probes with the four mirror views."""
    work = tmp_path_factory.mktemp("views")
    exp = write_experiment(
        work / "e.toml",
        name="v",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny", "xresnet18", "tiny+xresnet18"],
        protocols=["linear"],
        tta="flips",
        img_size=32,
        batch_size=16,
        pretrained=False,
        results_dir=str(work / "results"),
        max_per_class=30,
        robustness_n=0,
    )
    r = run_cli("run", exp, cwd=work, env=own_cache(work))  # its own cache: every view embedded here is counted
    assert r.returncode == 0, r.stderr[-3000:]
    return work, work / "results" / "v", r


def test_an_ensemble_is_its_parts_side_by_side_and_each_view_is_embedded_once(viewed):
    _, out, r = viewed
    lb = pd.read_csv(out / "leaderboard.csv")
    assert set(lb.entry) == {"tiny@flips/linear", "xresnet18@flips/linear", "tiny+xresnet18@flips/linear"}
    dims = {
        b: json.loads((out / "runs" / f"{b}@flips" / "linear-seed0" / "metrics.json").read_text())["probe"][
            "embedding_dim"
        ]
        for b in ("tiny", "xresnet18", "tiny+xresnet18")
    }
    assert dims["tiny+xresnet18"] == dims["tiny"] + dims["xresnet18"]
    tiles = pd.read_csv(out / "split.csv").path.nunique()
    embedded = [int(n) for n in re.findall(r"embedding (\d+) of \d+ images", r.stderr)]
    assert sum(embedded) == tiles * 4 * 2  # 4 views x 2 models, each tile once: the ensemble read its parts' cache


@pytest.mark.parametrize("fmt", ["learner.pkl", "safetensors"])
def test_an_ensemble_with_views_ships_what_its_record_says(viewed, tmp_path, fmt):
    """The run's own pickle, and the weights-only file rebuilt from the registry (parts, views, renormalisation)."""
    work, out, _ = viewed
    run = out / "runs" / "tiny+xresnet18@flips" / "linear-seed0"
    recorded = pd.read_csv(run / "test_predictions.csv")
    model = run / "learner.pkl"
    if fmt == "safetensors":
        model = tmp_path / "m.safetensors"
        entry = "tiny+xresnet18@flips/linear"
        r = run_cli("export", out, "--entry", entry, "--format", fmt, "--out", model, cwd=work, env=own_cache(work))
        assert r.returncode == 0, r.stderr[-2000:]
        assert json.loads(model.with_name(model.name + ".json").read_text())["tta"] == "flips"
    assert_ships(model, recorded, tmp_path, 1e-5, own_cache(work))


def own_cache(work) -> dict:
    """The fixture's cache (embeddings, and the pickles lungfast vouches for)."""
    return {"LUNGFAST_CACHE": str(work / "cache")}


def assert_ships(model, recorded: pd.DataFrame, tmp_path, tolerance: float, env=None) -> None:
    """`lungfast predict` of the model on the original test files gives the run's recorded probabilities."""
    r = run_cli("predict", model, *recorded.path, "--out", tmp_path / "p.csv", "--precision", "fp32", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    shipped = pd.read_csv(tmp_path / "p.csv").set_index("path").loc[recorded.path]
    gap = float(np.abs(shipped[VOCAB].to_numpy() - recorded[VOCAB].to_numpy()).max())
    assert gap < tolerance and (shipped.predicted.to_numpy() == recorded.predicted.to_numpy()).all(), gap


def test_a_fine_tuned_model_with_views_ships_them(lc_subset, tmp_path):
    """Logits averaged over the dihedral group, from evaluation to ONNX Runtime; a timm folder (one view) refused."""
    from fastai.learner import load_learner

    from lungfast.errors import LungfastError
    from lungfast.results import record
    from lungfast.results.layout import RunDir
    from lungfast.ship import timm_export

    exp = write_experiment(
        tmp_path / "e.toml",
        name="ft",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny"],
        tta="dihedral",
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        results_dir=str(tmp_path / "results"),
        max_per_class=30,
        robustness_n=0,
    )
    r = run_cli("run", exp, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "results" / "ft" / "runs" / "tiny@dihedral" / "seed0"
    assert json.loads((run / "metrics.json").read_text())["tta"] == "dihedral"
    r = run_cli("export", tmp_path / "results" / "ft", "--format", "onnx", "--out", tmp_path / "m.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert_ships(tmp_path / "m.onnx", pd.read_csv(run / "test_predictions.csv"), tmp_path, 1e-4)
    with pytest.raises(LungfastError, match="dihedral test-time views"):
        timm_export.to_timm(load_learner(run / "learner.pkl"), record.read(RunDir(run)))
