"""Tried as a hostile or careless user would, through the real CLI: concurrent runs, damaged records,
outputs that cannot be written, impossible numbers. Each ends in a correct result or one clear line."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lungfast: error: "), result.stderr
    for f in fragments:
        assert f in last, last


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lungfast.data import synthetic

    return synthetic.make_dataset(tmp_path_factory.mktemp("hostile") / "data", originals_per_class=5, copies=4)


def experiment(path, data, **over):
    keys = dict(
        name="h",
        data_dir=str(data),
        backbones=["tiny"],
        scheme="grouped",
        seeds=[0, 1],
        img_size=32,
        batch_size=8,
        epochs=2,
        pretrained=False,
        results_dir=str(path.parent / "r"),
    )
    return write_experiment(path, **{**keys, **over})


def test_two_plain_runs_at_once_leave_every_record_whole(data, tmp_path):
    exp = experiment(tmp_path / "e.toml", data)
    cmd = [sys.executable, "-m", "lungfast.cli", "run", str(exp)]
    logs = [(open(tmp_path / f"out{i}", "w"), open(tmp_path / f"err{i}", "w")) for i in range(2)]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=o, stderr=e) for o, e in logs]  # files: no pipe fills up
    for p in procs:
        p.wait(timeout=600)
    outs = [((tmp_path / f"out{i}").read_text(), (tmp_path / f"err{i}").read_text()) for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    out = tmp_path / "r" / "h"
    for seed in (0, 1):
        run = out / "runs" / "tiny" / f"seed{seed}"
        assert json.loads((run / "metrics.json").read_text())["seed"] == seed
        assert list(pd.read_csv(run / "history.csv").epoch) == [0, 1]  # one row per epoch, never two
        assert (run / "learner.pkl").is_file() and (run / "saliency.png").is_file()
    assert pd.read_csv(out / "leaderboard.csv").n.tolist() == [2]
    trained = sum(e.count("training (") for _, e in outs)
    assert trained == 2, "each run trained exactly once across both processes"
    assert any("waiting for it to finish" in e or "complete record found" in e for _, e in outs)
    assert not list(out.glob("runs/*/.*partial"))


def test_a_damaged_record_is_named_skipped_and_rerun(data, tmp_path):
    exp = experiment(tmp_path / "e.toml", data, epochs=1)
    assert run_cli("run", exp, cwd=tmp_path).returncode == 0
    out = tmp_path / "r" / "h"
    damaged = out / "runs" / "tiny" / "seed1" / "metrics.json"
    damaged.write_text(damaged.read_text()[:40])
    for args in (("leaderboard", out), ("report", out), ("export", out, "--out", tmp_path / "x.pkl")):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "damaged run record" in r.stderr and str(damaged) in r.stderr
    assert pd.read_csv(out / "leaderboard.csv").n.tolist() == [1]
    again = run_cli("run", exp, cwd=tmp_path)
    assert again.returncode == 0 and "tiny/seed1: training" in again.stderr, again.stderr
    assert json.loads(damaged.read_text())["seed"] == 1 and pd.read_csv(out / "leaderboard.csv").n.tolist() == [2]
    old = os.umask(0o022)
    try:  # files lungfast writes follow the umask, so a teammate or a web server can read them
        assert run_cli("export", out, "--out", tmp_path / "share" / "lung.pkl", cwd=tmp_path).returncode == 0
        assert run_cli("report", out, cwd=tmp_path).returncode == 0
    finally:
        os.umask(old)
    for f in (tmp_path / "share" / "lung.pkl", out / "report.html", out / "leaderboard.csv"):
        assert f.stat().st_mode & 0o777 == 0o644, f
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    assert_one_line_error(run_cli("export", out, "--out", blocked / "lung.pkl", cwd=tmp_path), "cannot write", "file")
    tile = next((data / "lung_n").iterdir())
    assert_one_line_error(
        run_cli("predict", tmp_path / "share" / "lung.pkl", tile, "--out", blocked / "p.csv"), "cannot write"
    )


def test_results_dir_that_is_a_file(data, tmp_path):
    (tmp_path / "r").write_text("not a folder")
    assert_one_line_error(run_cli("run", experiment(tmp_path / "e.toml", data), cwd=tmp_path), "cannot write")


@pytest.mark.parametrize(
    "sets,fragments",
    [
        (["lr=nan"], ["lr must be a positive finite number"]),
        (["lr=inf"], ["lr must be a positive finite number"]),
        (["img_size=1"], ["img_size must be from 32"]),
        (["batch_size=1000"], ["fewer than batch_size 1000", "set batch_size to at most"]),
        (["weights.xresnet18=w.pth", 'backbones=["xresnet18"]'], ["xresnet18 always trains from scratch"]),
    ],
)
def test_numbers_that_make_no_sense(data, tmp_path, sets, fragments):
    r = run_cli("run", experiment(tmp_path / "e.toml", data), *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert_one_line_error(r, *fragments)
    assert not list(tmp_path.glob("r/*/runs/*/seed*"))


@pytest.mark.parametrize("n", ["0", "-1"])
def test_nproc_must_be_positive(data, tmp_path, n):
    r = run_cli("run", experiment(tmp_path / "e.toml", data), "--nproc", n, cwd=tmp_path)
    assert_one_line_error(r, f"--nproc {n}", "positive")
