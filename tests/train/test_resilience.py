"""Shards sharing one results folder, and runs killed with SIGKILL at several points, then rerun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli, write_experiment

from lungfast.results import record
from lungfast.results.layout import ExperimentDir, RunDir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lungfast.data import synthetic as demo

    work = tmp_path_factory.mktemp("resilience")
    data = demo.make_dataset(work / "data", originals_per_class=6, copies=4)

    def experiment(results, **over):
        keys = dict(
            name="r",
            data_dir=str(data),
            backbones=["tiny"],
            scheme=["grouped", "random"],
            seeds=[0, 1],
            img_size=32,
            batch_size=8,
            epochs=3,
            pretrained=False,
            results_dir=str(work / results),
        )
        return write_experiment(work / f"{results}.toml", **{**keys, **over})

    baseline = run_cli("run", experiment("baseline"), cwd=work)
    assert baseline.returncode == 0, baseline.stderr
    return work, experiment, runs_of(work / "baseline" / "r")


def runs_of(exp_dir):
    found = record.read_all(ExperimentDir(exp_dir).run_dirs())
    return sorted((r.spec.scheme, r.spec.backbone, r.spec.seed) for _, r in found)


def test_shards_in_one_folder_cover_exactly_the_unsharded_runs(setup):
    work, experiment, baseline = setup
    exp = experiment("sharded")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lungfast.cli", "run", str(exp), "--shard", f"{i}/2"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert "shard 1/2: 2 of 4 runs" in outs[0][0] and "shard 2/2: 2 of 4 runs" in outs[1][0]
    out = work / "sharded" / "r"
    assert not (out / "leaderboard.csv").exists()  # no shard rewrites the shared table
    merged = run_cli("leaderboard", out)
    assert merged.returncode == 0, merged.stderr
    assert runs_of(out) == baseline and "inflation" in (out / "leaderboard.md").read_text().lower()
    bad = run_cli("run", exp, "--shard", "3/2")
    assert bad.returncode == 2 and "--shard '3/2'" in bad.stderr


def kill_when(cmd, cwd, ready, timeout=300):
    """Start the real CLI, SIGKILL it the moment `ready()` holds; True if it was killed while running."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


@pytest.mark.parametrize("point", ["split_and_prepare", "mid_epoch", "writing_records"])
def test_killed_run_reruns_to_the_same_complete_runs(setup, point):
    work, experiment, baseline = setup
    results = f"killed_{point}"
    exp, out = experiment(results), work / results / "r"
    stage = out / "grouped-split42" / "runs" / "tiny" / ".seed0.partial"
    ready = {
        "split_and_prepare": lambda: (out / "experiment.json").exists(),
        "mid_epoch": lambda: (stage / "resume" / "progress.json").exists(),  # epoch 1 done, epoch 2 running
        "writing_records": lambda: (stage / "test_predictions.csv").exists(),
    }[point]
    assert kill_when([sys.executable, "-m", "lungfast.cli", "run", str(exp)], work, ready), "finished before the kill"
    assert not (out / "grouped-split42" / "runs" / "tiny" / "seed0" / "metrics.json").exists()
    rerun = run_cli("run", exp, cwd=work)
    assert rerun.returncode == 0, rerun.stderr
    if point == "mid_epoch":
        assert "resuming after epoch 1 of an earlier attempt that did not finish" in rerun.stderr
        history = (out / "grouped-split42" / "runs" / "tiny" / "seed0" / "history.csv").read_text().splitlines()
        assert len(history) == 1 + 3 and [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    assert runs_of(out) == baseline
    for m in out.glob("*/runs/*/seed*/metrics.json"):
        assert json.loads(m.read_text())["test_accuracy"] >= 0 and record.is_complete(RunDir(m.parent))
    assert not list(out.glob("*/runs/*/.*partial")) and not list(out.glob("**/*.tmp"))


def test_mlflow_logs_a_run_to_sqlite_and_reads_it_back(setup):
    import mlflow

    work, experiment, _ = setup
    uri = f"sqlite:///{work / 'mlflow.db'}"
    exp = experiment("tracked", scheme="grouped", seeds=[0], epochs=2)
    r = run_cli("run", exp, "--mlflow", uri, cwd=work)
    assert r.returncode == 0, r.stderr
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["lungfast-r"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    m = json.loads((work / "tracked" / "r" / "runs" / "tiny" / "seed0" / "metrics.json").read_text())
    assert run.data.params["backbone"] == "tiny" and run.data.params["schedule"] == "one_cycle"
    assert run.data.metrics["final_test_accuracy"] == pytest.approx(m["test_accuracy"])
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "valid_loss")
    assert [h.step for h in history] == [0, 1]
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "saliency.png", "top_losses.png"} <= artifacts


def test_two_process_data_parallel_run_on_cpu(setup, tmp_path):
    import re
    import textwrap

    work, experiment, _ = setup
    exp = experiment("ddp", scheme="grouped", seeds=[0], epochs=2)
    r = run_cli("-v", "run", exp, "--nproc", "2", cwd=work, fresh=True)  # the ranks' lines go to the real stderr
    assert r.returncode == 0, r.stderr[-3000:]
    items = {
        int(rank): set(map(int, ids.split(", ")))
        for rank, ids in re.findall(r"rank (\d)/2: epoch 0 items \[([\d, ]+)\]", r.stderr)
    }
    assert sorted(items) == [0, 1] and not items[0] & items[1]  # world size 2, disjoint shards
    n = int(re.search(r"rank 0/2: epoch 0 trained on \d+ of (\d+) items", r.stderr).group(1))
    assert items[0] | items[1] == set(range(n))
    digests = dict(re.findall(r"rank (\d)/2: final weights (\w+)", r.stderr))
    assert len(digests) == 2 and digests["0"] == digests["1"]  # the ranks ended with identical weights
    out = work / "ddp" / "r"
    records = list(out.glob("runs/*/*"))
    assert [p.name for p in records] == ["seed0"] and record.is_complete(RunDir(records[0]))
    assert json.loads((records[0] / "metrics.json").read_text())["world_size"] == 2
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from fastai.learner import load_learner
        learn = load_learner({str(records[0] / "learner.pkl")!r})
        tile = next(iter(__import__("pathlib").Path({str(work / "data" / "lung_image_sets" / "lung_n")!r}).iterdir()))
        print(learn.predict(tile)[0])
    """)
    fresh = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert fresh.returncode == 0 and fresh.stdout.strip() in {"lung_aca", "lung_n", "lung_scc"}, fresh.stderr
