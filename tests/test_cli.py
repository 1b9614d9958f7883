"""The real CLI in subprocesses: end to end on real tiles, and every bad input as one clear line."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import run_cli, write_experiment


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("lungfast: error: "), result.stderr
    for f in fragments:
        assert f in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def e2e(lc_subset, tmp_path_factory):
    """One real run: grouped split, two backbones, 48 px, 1 epoch, on real LC25000 tiles."""
    work = tmp_path_factory.mktemp("e2e")
    exp = write_experiment(work / "e.toml", name="e2e", data_dir=str(lc_subset / "lung_image_sets"),
                           backbones=["tiny", "xresnet18"], split="grouped", img_size=48, batch_size=16,
                           epochs=1, pretrained=False, results_dir=str(work / "results"), max_per_class=60)
    result = run_cli("run", exp, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, exp, work / "results" / "e2e", result


def test_split_csv_keeps_groups_on_one_side(e2e):
    _, _, out, _ = e2e
    s = pd.read_csv(out / "split.csv")
    assert list(s.columns) == ["path", "label", "group_id", "split"]
    assert set(s.split) == {"train", "valid", "test"}
    assert s.groupby("group_id").split.nunique().max() == 1
    assert s.groupby("label").size().eq(60).all()


def test_leaderboard_has_both_backbones_with_test_accuracy(e2e):
    _, _, out, result = e2e
    lb = pd.read_csv(out / "leaderboard.csv")
    assert sorted(lb.backbone) == ["tiny", "xresnet18"] and list(lb["rank"]) == [1, 2]
    assert lb.test_accuracy.between(0, 1).all() and lb.test_accuracy.is_monotonic_decreasing
    assert "| backbone" in result.stdout and "tiny" in (out / "leaderboard.md").read_text()


def test_run_record_is_complete(e2e):
    _, _, out, _ = e2e
    run = out / "runs" / "tiny" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    for key in ("backbone", "seed", "split", "img_size", "epochs", "lr", "valid_loss", "valid_accuracy",
                "test_loss", "test_accuracy", "params", "train_seconds", "seconds_per_epoch", "device", "versions"):
        assert key in m, key
    assert m["split"] == "grouped" and m["pretrained"] is False and m["schedule"] == "fit_one_cycle"
    assert sum(map(sum, m["confusion_matrix"])) == m["n_test"] > 0
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns[:4]) == ["epoch", "train_loss", "valid_loss", "accuracy"] and len(history) == 1
    for png in ("confusion_matrix.png", "top_losses.png"):
        assert Image.open(run / png).size[0] > 300
    assert not list(out.glob("runs/*/.*partial"))


def test_rerun_skips_complete_runs_and_force_reruns(e2e):
    work, exp, out, _ = e2e
    metrics = out / "runs" / "tiny" / "seed0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    again = run_cli("run", exp, "--set", "backbones=[\"tiny\"]", cwd=work)
    assert again.returncode == 0, again.stderr
    assert "complete record found, skipped" in again.stderr and metrics.stat().st_mtime_ns == before
    changed = run_cli("run", exp, "--set", "split_seed=7", cwd=work)
    assert_one_line_error(changed, "made from other data or split settings", "--force")


def test_export_loads_in_a_fresh_process_and_predicts(e2e, lc_subset, tmp_path):
    work, _, out, _ = e2e
    result = run_cli("export", out, "--out", tmp_path / "lung.pkl", cwd=work)
    assert result.returncode == 0, result.stderr
    top = pd.read_csv(out / "leaderboard.csv").backbone[0]
    assert f"runs/{top}/seed0" in result.stdout
    tile = next((lc_subset / "lung_image_sets" / "lung_scc").iterdir())
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from fastai.learner import load_learner
        learn = load_learner({str(tmp_path / 'lung.pkl')!r})
        label, idx, probs = learn.predict({str(tile)!r})
        print(label, list(learn.dls.vocab), round(float(probs.sum()), 4))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    label, rest = fresh.stdout.split(" ", 1)
    assert label in {"lung_aca", "lung_n", "lung_scc"} and "lung_scc" in rest and rest.strip().endswith("1.0")


def test_unreadable_images_are_counted_in_the_record(tmp_path):
    from lungfast import demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=4, copies=4)
    (data / "lung_n" / "broken.jpeg").write_bytes(b"\xff\xd8\xff not really")
    (data / "lung_aca" / "empty.jpeg").write_bytes(b"")
    exp = write_experiment(tmp_path / "e.toml", name="bad", data_dir=str(data), backbones=["tiny"],
                           split="random", img_size=32, batch_size=8, epochs=1, pretrained=False,
                           results_dir=str(tmp_path / "r"))
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warning = [l for l in result.stderr.splitlines() if "unreadable" in l]
    assert len(warning) == 1 and "broken.jpeg" in warning[0] and "empty.jpeg" in warning[0]
    m = json.loads((tmp_path / "r" / "bad" / "runs" / "tiny" / "seed0" / "metrics.json").read_text())
    assert m["skipped_images"] == 2


@pytest.mark.parametrize("case", ["missing_dir", "one_class", "empty_class", "unknown_backbone", "bad_key",
                                  "grouped_without_csv", "offline_weights"])
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, case):
    from lungfast import demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=3, copies=4)
    keys = dict(name="bad", data_dir=str(data), backbones=["tiny"], img_size=32, batch_size=8, epochs=1,
                pretrained=False, results_dir=str(tmp_path / "r"))
    expect = {
        "missing_dir": ({"data_dir": str(tmp_path / "nope")}, ["not a folder"]),
        "one_class": ({"data_dir": str(data / "lung_n" / "..")}, []),
        "empty_class": ({}, ["lung_zzz hold no images"]),
        "unknown_backbone": ({"backbones": ["tiny", "resnet5O"]}, ["unknown backbone 'resnet5O'"]),
        "bad_key": ({"img_sise": 32}, ["unknown key(s) img_sise"]),
        "grouped_without_csv": ({"split": "grouped"}, ["needs a groups CSV"]),
        "offline_weights": ({"backbones": ["resnet50d"], "pretrained": True},
                            ["resnet50d: pretrained weights could not be loaded", "pretrained = false",
                             "weights.resnet50d"]),
    }
    overrides, fragments = expect[case]
    if case == "one_class":
        for d in ("lung_aca", "lung_scc"):
            for f in (data / d).iterdir():
                f.unlink()
            (data / d).rmdir()
        fragments = ["needs at least 2 class folders, found lung_n"]
    if case == "empty_class":
        (data / "lung_zzz").mkdir()
    if case == "grouped_without_csv":
        (tmp_path / "data" / "groups.csv").unlink()
    result = run_cli("run", write_experiment(tmp_path / "e.toml", **{**keys, **overrides}), cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not list((tmp_path / "r").glob("bad/runs/*/seed*"))
    assert not list((tmp_path / "r").glob("**/*.partial")) and not list((tmp_path / "r").glob("**/*.tmp"))


def test_backbones_command_lists_the_registry():
    result = run_cli("backbones")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert rows["xresnet34"][2] == "scratch" and rows["xresnet34"][3] == "fit_one_cycle"
    assert rows["tf_efficientnet_lite0"][2] == "offline" and float(rows["resnet50"][4]) > 20


def test_demo_runs_end_to_end(tmp_path):
    result = run_cli("demo", "--workdir", tmp_path / "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" in result.stdout and "exported winner" in result.stdout
    lb = pd.read_csv(tmp_path / "demo" / "demo" / "leaderboard.csv")
    assert len(lb) == 2 and (tmp_path / "demo" / "demo" / "lung.pkl").stat().st_size > 100_000
