"""Every verb at a real terminal (a pseudo-terminal), as a person runs it from wherever they stand.

CI has no terminal, so without these tests the bars (tqdm for lungfast's own steps, fastai's for epochs and
predict) never run in CI; a bar that crashes at a terminal once broke the README's first command while every
other test passed.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli, run_pty, screen_lines, write_experiment

pytestmark = pytest.mark.slow
TQDM_DONE = re.compile(r"100%\|█+\|")  # a finished tqdm bar
FASTAI_DONE = re.compile(r"100\.00% \[\d+/\d+ ")  # a finished fastai bar


def ok(rc, out):
    assert rc == 0 and "Traceback" not in out and "Error" not in out.replace("error column", ""), out[-4000:]


@pytest.fixture(scope="module")
def term(lc_subset, tmp_path_factory):
    """An experiment file with RELATIVE paths in its own folder, run from another folder, with an empty cache
    (so the readability scan and the tile store are built, with bars)."""
    work = tmp_path_factory.mktemp("term")
    shutil.copytree(lc_subset, work / "data", symlinks=True)
    (work / "experiments").mkdir()
    (work / "elsewhere").mkdir()
    exp = write_experiment(
        work / "experiments" / "t.toml",
        name="t",
        data_dir="../data/lung_image_sets",
        results_dir="../results",
        backbones=["tiny"],
        img_size=32,
        batch_size=16,
        epochs=2,
        pretrained=False,
        max_per_class=30,
        robustness_n=6,
    )
    env = {"LUNGFAST_CACHE": tempfile.mkdtemp(prefix="lungfast-term-cache-")}
    rc, out = run_pty("run", "../experiments/t.toml", cwd=work / "elsewhere", env=env)
    return work, exp, env, rc, out


def test_run_at_a_terminal_shows_bars_and_finds_paths_from_the_file(term):
    work, _, _, rc, out = term
    ok(rc, out)
    assert re.search(r"checked: " + TQDM_DONE.pattern, out), out[-3000:]  # the readability scan
    assert re.search(r"stored: " + TQDM_DONE.pattern, out), out[-3000:]  # the tile-store build
    assert FASTAI_DONE.search(out), out[-3000:]  # fastai's epoch bars
    assert (work / "results" / "t" / "leaderboard.csv").is_file()  # results_dir relative to the file
    assert not (work / "elsewhere" / "results").exists()
    table = [line for line in screen_lines(out) if line.startswith("|")]
    assert table and max(map(len, table)) <= 100 and "nan" not in "".join(table)


def test_the_same_run_without_a_terminal_logs_lines_instead(term, tmp_path):
    work, _, env, _, _ = term
    data = work / "data" / "lung_image_sets"
    exp = write_experiment(
        tmp_path / "e.toml",
        name="plain",
        data_dir=str(data),
        backbones=["tiny"],
        img_size=40,
        batch_size=16,
        epochs=1,
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(tmp_path / "results"),
    )
    r = run_cli("run", exp, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "stored 90/90" in r.stderr and "epoch 1:" in r.stderr
    assert "█" not in r.stderr + r.stdout and "100.00%" not in r.stdout
    lb = pd.read_csv(tmp_path / "results" / "plain" / "leaderboard.csv")
    assert lb.shifted_accuracy.isna().all() and "shifted_accuracy" not in r.stdout  # no sweep: no column


def test_export_predict_leaderboard_and_prepare_at_a_terminal(term, tmp_path):
    work, _, env, _, _ = term
    out_dir = work / "results" / "t"
    rc, out = run_pty("export", out_dir, "--out", tmp_path / "lung.pkl", cwd=tmp_path, env=env)
    ok(rc, out)
    assert "exported" in out
    rc, out = run_pty(
        "predict",
        tmp_path / "lung.pkl",
        work / "data" / "lung_image_sets",
        "--out",
        tmp_path / "p.csv",
        cwd=tmp_path,
        env=env,
    )
    ok(rc, out)
    assert FASTAI_DONE.search(out), out[-2000:]  # 90 files: more than one batch, so a bar
    n_files = sum(1 for p in (work / "data" / "lung_image_sets").rglob("*.jpeg"))
    assert len(pd.read_csv(tmp_path / "p.csv")) == n_files
    rc, out = run_pty("leaderboard", out_dir, cwd=tmp_path, env=env)
    ok(rc, out)
    assert max(map(len, screen_lines(out))) <= 100
    rc, out = run_pty("prepare", work / "data" / "lung_image_sets", "--size", "36", cwd=tmp_path, env=env)
    ok(rc, out)
    assert re.search(r"stored: " + TQDM_DONE.pattern, out) and f"prepared {n_files} images at 36 px" in out


def test_ctrl_c_during_training_says_what_stays_and_the_rerun_resumes(term, tmp_path):
    work, _, env, _, _ = term
    exp = write_experiment(
        tmp_path / "e.toml",
        name="cc",
        data_dir=str(work / "data" / "lung_image_sets"),
        backbones=["xresnet18"],
        img_size=32,
        batch_size=16,
        epochs=8,  # room to interrupt after the first on a busy machine
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(tmp_path / "results"),
    )
    stage = tmp_path / "results" / "cc" / "runs" / "xresnet18" / ".seed0.partial"
    sent = []

    def interrupt_after_first_epoch(text, proc):
        try:
            done = json.loads((stage / "resume" / "progress.json").read_text())["epochs_done"]
        except (OSError, ValueError):
            return
        if not sent and done < 8:  # epochs are left: Ctrl-C lands in training, not in the last moments
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            sent.append(done)

    for attempt in range(3):  # a busy machine may show the checkpoint only after the last epoch: try again
        rc, out = run_pty(
            "run", exp, *(["--force"] if attempt else []), cwd=tmp_path, env=env, on_output=interrupt_after_first_epoch
        )
        if sent:
            break
    assert sent and rc == 130, out[-3000:]
    assert "Traceback" not in out and "resumes" in out and "left nothing behind" not in out
    assert (stage / "resume" / "state.pth").is_file()  # what the message promises is there
    done = json.loads((stage / "resume" / "progress.json").read_text())["epochs_done"]
    rc, out = run_pty("run", exp, cwd=tmp_path, env=env)
    ok(rc, out)
    assert f"resuming after epoch {done}" in out and not stage.exists()
    finished = tmp_path / "results" / "cc" / "runs" / "xresnet18" / "seed0"
    assert json.loads((finished / "metrics.json").read_text())["resumed_after_epoch"] == done  # said, not hidden
    board = (tmp_path / "results" / "cc" / "leaderboard.md").read_text()
    assert f"resumed: xresnet18 (seed 0, grouped split 42, after epoch {done})" in board


def test_ctrl_c_during_predict_speaks_of_predict(term, tmp_path):
    work, _, env, _, _ = term
    model = work / "results" / "t" / "lung.pkl"
    if not model.is_file():
        assert run_cli("export", work / "results" / "t", "--out", model, env=env).returncode == 0
    sent = []

    def interrupt_once_loaded(text, proc):
        if not sent and "%" in text:
            proc.send_signal(signal.SIGINT)
            sent.append(True)

    many = [work / "data" / "lung_image_sets"] * 20  # 1,800 rows: still predicting when interrupted
    rc, out = run_pty(
        "predict", model, *many, "--out", tmp_path / "p.csv", cwd=tmp_path, env=env, on_output=interrupt_once_loaded
    )
    assert sent and rc == 130, out[-2000:]
    assert "no CSV was written" in out and "resumes" not in out and not (tmp_path / "p.csv").exists()


def test_output_piped_into_head_ends_quietly(term, tmp_path):
    """`lungfast predict MODEL DIR | head`: the reader leaves early; no BrokenPipeError traceback."""
    work, _, env, _, _ = term
    model = tmp_path / "lung.pkl"
    assert run_cli("export", work / "results" / "t", "--out", model, env=env).returncode == 0
    data = work / "data" / "lung_image_sets"
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("lungfast")), "predict", model, *[data] * 6],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert proc.stdout.readline().startswith(b"path,predicted")
    proc.stdout.close()  # what head does after its lines
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_demo_at_a_terminal(tmp_path):
    """The README's first command, as `make demo` runs it (relative workdir), at a terminal."""
    rc, out = run_pty("demo", "--workdir", "demo", cwd=tmp_path)
    ok(rc, out)
    assert "SYNTHETIC" in out and "exported the winner" in out
    assert TQDM_DONE.search(out) and FASTAI_DONE.search(out)
    lb = pd.read_csv(tmp_path / "demo" / "demo" / "leaderboard.csv")
    assert len(lb) == 2 and (tmp_path / "demo" / "demo" / "lung.pkl").stat().st_size > 100_000
    assert max(len(line) for line in screen_lines(out) if line.startswith("|")) <= 100
