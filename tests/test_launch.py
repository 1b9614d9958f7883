"""`lungfast run EXP --on slurm|local` against a real Slurm (`tools/slurm_one_node.sh up`, which CI runs) and
submitit's local executor: the merged leaderboard equals the same experiment run in one process, a task stopped
mid-run is requeued and resumes, a second submission trains nothing twice, and a bad [slurm] table or an
unreachable controller is one line."""

import csv
import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow
TIMED = ("seconds", "per_s")  # wall-clock columns: the only ones that may differ between two runs of one experiment


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def slurm():
    if not slurm_answers():
        if os.environ.get("LUNGFAST_REQUIRE_SLURM") == "1":  # CI started a cluster: its absence is a failure
            pytest.fail("LUNGFAST_REQUIRE_SLURM=1 but no Slurm controller answers (tools/slurm_one_node.sh up)")
        pytest.skip("no Slurm cluster answers here; `sudo tools/slurm_one_node.sh up` starts a one-node one")


@pytest.fixture(scope="module")
def comparison(lc_subset, tmp_path_factory):
    """A 2-backbone experiment (two tasks, merged), and the same run in this process (the reference)."""
    work = tmp_path_factory.mktemp("launch")
    exp = write_experiment(
        work / "e.toml",
        name="cmp",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny", "xresnet18"],
        split_seeds=[1],
        img_size=32,
        batch_size=16,
        epochs=2,
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(work / "results"),
        slurm={"time": 10, "cpus": 1, "mem": 2, "max_running": 2},
    )
    env = {"LUNGFAST_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "1"}  # one thread here and in every task
    here = run_cli("run", exp, "--set", f"results_dir={work / 'here'}", env=env)
    assert here.returncode == 0, here.stderr[-2000:]
    return work, exp, env


def table(path):
    rows = list(csv.DictReader(open(path)))
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMED)} for row in rows]


def test_a_comparison_on_slurm_merges_to_the_leaderboard_of_one_process(slurm, comparison):
    work, exp, env = comparison
    done = run_cli("run", exp, "--on", "slurm", "--wait", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "task" in done.stderr and "launch" in done.stderr  # each run's task id and log are named
    merged, here = table(work / "results/cmp/leaderboard.csv"), table(work / "here/cmp/leaderboard.csv")
    assert len(merged) == 2 and merged == here  # every figure to the last digit; only wall-clock columns differ
    ledger = json.loads((work / "results/cmp/launch/submitted.json").read_text())
    assert sorted(ledger) == ["0", "1"] and all(v["place"] == "slurm" for v in ledger.values())
    again = run_cli("run", exp, "--on", "slurm", env=env)  # the same command again: nothing is missing
    assert again.returncode == 0 and "nothing to submit" in again.stderr, again.stderr[-2000:]
    assert json.loads((work / "results/cmp/launch/submitted.json").read_text()) == ledger


def test_local_tasks_run_side_by_side_give_the_same_figures_and_list_a_failure(comparison, lc_subset):
    work, _, env = comparison
    exp = write_experiment(
        work / "f.toml",
        name="f",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny"],
        split_seed=1,
        train_fractions=[0.05, 1.0],  # 5% of 63 train tiles is fewer than a batch: that run fails in its task
        img_size=32,
        batch_size=16,
        epochs=2,
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(work / "local"),
        slurm={"cpus": 1},  # two tasks at once on two cores
    )
    done = run_cli("run", exp, "--on", "local", env=env)
    assert done.returncode == 2 and "1 run(s) failed" in done.stderr, done.stderr[-2000:]
    assert "runs ended 2/2" in done.stderr  # the bar over ended tasks (a line per step without a terminal)
    failed = [line for line in done.stdout.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "0.05 of labels" in failed[0] and "fewer than batch_size 16" in failed[0]
    log = failed[0].split("; log ")[1].split("; resubmit: ")[0]
    assert "fewer than batch_size" in open(log).read()  # the log it names is the task's own
    assert failed[0].endswith(f"lungfast run {exp} --on local --only 1")  # run 0 is the full-label one
    assert "| tiny" in done.stdout  # the run that worked is merged all the same
    mine = json.loads((work / "local/f/runs/tiny/seed0/metrics.json").read_text())
    ref = json.loads((work / "here/cmp/runs/tiny/seed0/metrics.json").read_text())
    assert (mine["test_accuracy"], mine["test_loss"]) == (ref["test_accuracy"], ref["test_loss"])  # same run


def test_a_task_stopped_mid_run_is_requeued_and_resumes(slurm, lc_subset, tmp_path):
    exp = write_experiment(
        tmp_path / "r.toml",
        name="rq",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["xresnet18"],
        img_size=32,
        batch_size=16,
        epochs=6,
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(tmp_path / "results"),
        slurm={"time": 10, "cpus": 1, "mem": 2},
    )
    env = {"LUNGFAST_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    sent = run_cli("run", exp, "--on", "slurm", env=env)  # returns once submitted; a merge job follows
    assert sent.returncode == 0 and "merges the leaderboard" in sent.stdout, sent.stderr[-2000:]
    exp_dir = tmp_path / "results/rq"
    task = json.loads((exp_dir / "launch/submitted.json").read_text())["0"]["task"]
    twice = run_cli("run", exp, "--on", "slurm", env=env)  # a second submission while the first is queued
    assert twice.returncode == 0 and "nothing new to submit; 1 run(s) still queued" in twice.stdout, twice.stderr
    progress = exp_dir / "runs/xresnet18/.seed0.partial/resume/progress.json"
    deadline = time.monotonic() + 300
    while not progress.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert progress.is_file(), "the task never finished an epoch"
    # what Slurm sends at the time limit or on preemption (--signal=USR2@...): submitit requeues the task
    subprocess.run(["scancel", "--signal=USR2", task], check=True)
    while time.monotonic() < deadline:  # requeued: Slurm holds it back 2 minutes; start it now, as an admin may
        reason = subprocess.run(["squeue", "-h", "-j", task, "-o", "%r"], capture_output=True, text=True).stdout
        if "BeginTime" in reason:
            subprocess.run(["scontrol", "update", f"jobid={task}", "StartTime=now"], check=True)
            break
        time.sleep(0.2)
    while not (exp_dir / "leaderboard.md").is_file() and time.monotonic() < deadline:
        time.sleep(1)
    log = "".join(p.read_text() for p in (exp_dir / "launch").glob(f"{task}_*log.err"))
    assert "SIGUSR2" in log and "resuming after epoch" in log, log[-3000:]
    assert (exp_dir / "runs/xresnet18/seed0/metrics.json").is_file() and (exp_dir / "leaderboard.md").is_file()
    history = list(csv.DictReader(open(exp_dir / "runs/xresnet18/seed0/history.csv")))
    assert [int(r["epoch"]) for r in history] == list(range(6))  # every epoch once, across the requeue


@pytest.mark.parametrize(
    "table,says",
    [
        ({"partitoin": "cpu"}, "unknown key(s) partitoin"),
        ({"time": 0}, "time must be at least 1"),
        ({"backbones": {"tiny": {"max_running": 3}}}, "unknown key 'max_running'; a backbone may set"),
    ],
)
def test_a_bad_slurm_table_is_one_line(lc_subset, tmp_path, table, says):
    exp = write_experiment(
        tmp_path / "e.toml", name="b", data_dir=str(lc_subset / "lung_image_sets"), backbones=["tiny"], slurm=table
    )
    done = run_cli("run", exp, "--on", "slurm")
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_no_slurm_client_or_no_controller_is_one_line(lc_subset, tmp_path):
    exp = write_experiment(
        tmp_path / "e.toml", name="c", data_dir=str(lc_subset / "lung_image_sets"), backbones=["tiny"]
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run_cli("run", exp, "--on", "slurm", env={"PATH": str(empty)})
    assert done.returncode == 2 and "sbatch not found" in done.stderr and "--on local" in done.stderr
    if shutil.which("sbatch") is None:
        return  # the controller case needs Slurm's client; CI has it (tools/slurm_one_node.sh)
    conf = tmp_path / "slurm.conf"  # a cluster whose controller listens nowhere
    conf.write_text("ClusterName=gone\nSlurmctldHost=localhost\nSlurmctldPort=9\nNodeName=localhost\n")
    done = run_cli("run", exp, "--on", "slurm", env={"SLURM_CONF": str(conf)})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "controller does not answer" in done.stderr and not (tmp_path / "results").exists()
