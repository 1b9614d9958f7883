"""Frozen-embedding protocols end to end through the real CLI, on real LC25000 tiles, with the tile groups
taken from an LC25000-clean-style annotations folder."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, write_experiment

from lungfast import protocols

pytestmark = pytest.mark.slow
PROTOCOLS = list(protocols.names())


@pytest.fixture(scope="module")
def annotations(lc_subset, tmp_path_factory):
    """LC25000-clean's layout: annotations/<class>/UNI/resize_only/final_clusters.csv (cluster_label,img_path)."""
    root = tmp_path_factory.mktemp("clean") / "annotations"
    groups = pd.read_csv(lc_subset / "groups.csv")
    for label, g in groups.groupby("label"):
        folder = root / label / "UNI" / "resize_only"
        folder.mkdir(parents=True)
        codes = {gid: i for i, gid in enumerate(sorted(g.group_id.unique()))}
        pd.DataFrame(
            {"cluster_label": g.group_id.map(codes), "img_path": "LC25000/" + label + "/" + g.filename}
        ).to_csv(folder / "final_clusters.csv", index=False)
    return root


def test_groups_command_writes_the_same_partition(annotations, lc_subset, tmp_path):
    r = run_cli("groups", annotations, "--out", tmp_path / "groups.csv")
    assert r.returncode == 0, r.stderr
    ours = pd.read_csv(tmp_path / "groups.csv")
    theirs = pd.read_csv(lc_subset / "groups.csv")
    assert list(ours.columns) == ["filename", "label", "group_id"] and len(ours) == len(theirs)
    merged = ours.merge(theirs, on=["filename", "label"], suffixes=("", "_ref"))
    assert len(merged) == len(theirs)
    assert (merged.groupby("group_id").group_id_ref.nunique() == 1).all()  # same groups, other names
    assert merged.group_id.nunique() == merged.group_id_ref.nunique()
    bad = run_cli("groups", tmp_path, "--out", tmp_path / "x.csv")
    assert bad.returncode == 2 and "final_clusters.csv" in bad.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def probed(lc_subset, annotations, tmp_path_factory):
    work = tmp_path_factory.mktemp("probe")
    exp = write_experiment(
        work / "e.toml",
        name="p",
        data_dir=str(lc_subset / "lung_image_sets"),
        groups_csv=str(annotations),
        backbones=["tiny"],
        protocols=PROTOCOLS,
        scheme=["grouped", "random"],
        split_seeds=[1],  # one split per scheme: repeated splits are test_cli's (fine-tuning) concern
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        results_dir=str(work / "results"),
        max_per_class=60,
        robustness_n=9,  # a sweep (3 tiles a class) shows embeddings of shifted tiles are cached too
    )
    r = run_cli("run", exp, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    return work, work / "results" / "p", r


def test_every_protocol_run_has_a_complete_record(probed):
    _, out, r = probed
    for protocol in PROTOCOLS:
        runs = sorted(out.glob(f"*/runs/tiny/{protocols.get(protocol).run_folder(0)}"))
        assert len(runs) == 2, protocol  # 2 schemes
        for run in runs:
            m = json.loads((run / "metrics.json").read_text())
            assert m["protocol"] == protocol and 0 <= m["test_accuracy"] <= 1
            for f in ("learner.pkl", "saliency.png", "confusion_matrix.png", "top_losses.png", "loss.png"):
                assert (run / f).stat().st_size > 0, (run, f)
    knn = json.loads(next(out.glob("grouped-split1/runs/tiny/knn-seed0/metrics.json")).read_text())
    assert 0 <= knn["probe"]["knn1_test_accuracy"] <= 1 and knn["embed_img_per_s"] > 0
    few = json.loads(next(out.glob("grouped-split1/runs/tiny/fewshot-seed0/metrics.json")).read_text())
    assert set(few["probe"]["shots"]) == {"1", "4", "16"} and len(few["probe"]["shots"]["4"]["values"]) == 100
    embedded = sum(int(n) for n in re.findall(r"embedding (\d+) of \d+ images", r.stderr))
    distinct = pd.concat([pd.read_csv(f) for f in out.glob("*/split.csv")]).path.nunique()
    swept = pd.concat([pd.read_csv(f) for f in out.glob("*/runs/tiny/*-seed0/robustness_predictions.csv")])
    assert set(swept["shift"]) == {"none", "stain", "stain_retarget", "blur", "jpeg", "magnification"}
    distinct += len(swept[swept.severity > 0][["shift", "severity", "path"]].drop_duplicates())  # shifted tiles
    assert 0 < embedded <= distinct  # every image embedded at most once, then read from the cache


def test_leaderboard_has_one_row_per_backbone_and_protocol(probed):
    _, out, _ = probed
    lb = pd.read_csv(out / "leaderboard.csv")
    assert sorted(lb.protocol) == sorted(PROTOCOLS) and (lb.n == 1).all() and (lb.scheme == "grouped").all()
    infl = pd.read_csv(out / "inflation.csv")
    assert sorted(infl.protocol) == sorted(PROTOCOLS)
    assert (infl.inflation == infl.random_test_accuracy - infl.grouped_test_accuracy).all()
    md = (out / "leaderboard.md").read_text()
    assert "1-NN grouped" in md and "linear random" in md and "Paired test, #1" in md


@pytest.mark.parametrize("protocol", protocols.names())
def test_the_record_describes_the_model_that_ships(probed, tmp_path, protocol):
    """One way to pixels: the run's recorded test predictions are what its learner gives through `lungfast
    predict` on the ORIGINAL test files, tile for tile (probes score cached embeddings of the tile store)."""
    work, out, _ = probed
    run = out / "grouped-split1" / "runs" / "tiny" / protocols.get(protocol).run_folder(0)
    recorded = pd.read_csv(run / "test_predictions.csv")
    assert len(recorded) >= 20 and all(Path(p).is_file() for p in recorded.path)
    r = run_cli(
        "predict", run / "learner.pkl", *recorded.path, "--out", tmp_path / "p.csv", "--precision", "fp32", cwd=work
    )
    assert r.returncode == 0, r.stderr[-2000:]
    shipped = pd.read_csv(tmp_path / "p.csv").set_index("path").loc[recorded.path]
    vocab = ["lung_aca", "lung_n", "lung_scc"]
    gap = float(np.abs(shipped[vocab].to_numpy() - recorded[vocab].to_numpy()).max())
    print(f"{protocol}: {len(recorded)} test tiles, largest probability gap {gap:.2e}")
    assert gap < 1e-5 and (shipped.predicted.to_numpy() == recorded.predicted.to_numpy()).all()


def test_a_probe_ships_in_both_formats(probed, tmp_path):
    work, out, _ = probed
    run = out / "grouped-split1" / "runs" / "tiny" / "linear-seed0"
    recorded = pd.read_csv(run / "test_predictions.csv")
    for args in (("--out", tmp_path / "lung.pkl"), ("--format", "safetensors", "--out", tmp_path / "lung.safetensors")):
        r = run_cli("export", out, *args, cwd=work)
        assert r.returncode == 0, r.stderr
    tiles = recorded.path.head(6).tolist()
    a = pd.read_csv(io.StringIO(run_cli("predict", tmp_path / "lung.pkl", *tiles).stdout))
    b = pd.read_csv(io.StringIO(run_cli("predict", tmp_path / "lung.safetensors", *tiles).stdout))
    vocab = ["lung_aca", "lung_n", "lung_scc"]
    assert (a.predicted == b.predicted).all() and (a[vocab] - b[vocab]).abs().max().max() < 1e-5
