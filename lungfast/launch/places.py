"""Where launched tasks run (`run --on NAME`): a registry of places. A place starts tasks through submitit and
says which of them are still queued or running.

- slurm: one job array per resource set, at most `max_running` tasks at once (Slurm's `%N`), and a merge job
  that starts when every task has ended (`afterany`). State comes from `squeue`, which every cluster answers
  (`sacct`, submitit's own watcher, needs Slurm's accounting database, which small clusters lack).
- local: submitit's local executor on this machine, N runs at once: one per GPU where there are GPUs (each
  task sees only its own), else one per `cpus` cores. The launcher is the scheduler here, so it always waits.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lungfast.errors import LungfastError
from lungfast.resources import Resources


@dataclasses.dataclass(frozen=True)
class Place:
    name: str
    check: Callable  # () -> None, or a LungfastError: can tasks be started here at all (before any work)
    start: Callable  # (task, runs, table, folder) -> [(run, submitit job)]; local: returns when all have ended
    alive: Callable  # (jobs) -> ids of those still queued or running
    merge_job: Callable | None  # (function, args, after jobs, folder, resources) -> job, or None: merge here
    waits: bool  # the command returns only when every task has ended


def _threads(r: Resources) -> list[str]:
    """Torch's threads to the task's share of cores, unless the user set them."""
    return [f"export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-{r.cpus}}}"]


def slurm_check() -> None:
    """Slurm's client is here and its controller answers: said before anything is prepared."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise LungfastError(
            "--on slurm: sbatch not found; run on a machine with Slurm's client (a login node), or use --on local"
        )
    answer = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True)
    if answer.returncode != 0:
        said = answer.stderr.strip().splitlines()
        raise LungfastError(
            f"--on slurm: the Slurm controller does not answer ({said[-1] if said else 'sinfo failed'})"
        )


def _slurm(folder: Path, r: Resources, **extra):
    import submitit

    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=r.max_requeues)
    given = {"partition": r.partition, "account": r.account, "gpus_per_node": r.gpus or None}
    ex.update_parameters(
        time=r.time,
        cpus_per_task=r.cpus,
        mem=f"{r.mem}GB",
        job_name="lungfast",
        signal_delay_s=min(90, r.time * 30),  # SIGUSR2 before the limit: time to requeue
        setup=_threads(r),
        **{k: v for k, v in given.items() if v is not None},
        **extra,
    )
    return ex


def _submitted(fn):
    """submitit's sbatch errors, as one line: a controller that does not answer, a partition that does not exist."""
    try:
        return fn()
    except subprocess.CalledProcessError as e:
        said = (e.stderr or e.output or b"").decode(errors="replace").strip().splitlines()
        raise LungfastError(f"--on slurm: sbatch refused the jobs: {said[-1] if said else e}") from None
    except Exception as e:  # submitit wraps sbatch's failure in its own error types
        if "sbatch" not in str(e) and "slurm" not in str(e).lower():
            raise
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise LungfastError(f"--on slurm: sbatch refused the jobs: {lines[-1] if lines else e}") from None


def slurm_start(task, runs, table, folder: Path, on_end=lambda: None):
    groups: dict[Resources, list] = {}
    for run in runs:
        groups.setdefault(table.for_backbone(run.backbone), []).append(run)
    started = []
    for r, mine in groups.items():
        ex = _slurm(folder, r, array_parallelism=r.max_running)
        jobs = _submitted(lambda ex=ex, mine=mine: ex.map_array(task, [run.index for run in mine]))
        started += list(zip(mine, jobs))
    return started


def slurm_alive(jobs) -> set[str]:
    ids = sorted({j.job_id.split("_")[0] for j in jobs})
    if not ids:
        return set()
    done = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # all of them ended long enough ago that Slurm forgot them
            return set()
        raise LungfastError(f"squeue: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}")
    return set(done.stdout.split())


def slurm_merge_job(fn, args, after, folder: Path, r: Resources):
    arrays = sorted({j.job_id.split("_")[0] for j in after})
    ex = _slurm(folder, dataclasses.replace(r, gpus=0, cpus=1), dependency="afterany:" + ":".join(arrays))
    return _submitted(lambda: ex.submit(fn, *args))


def local_slots(r: Resources) -> list[list[int]]:
    """One slot per concurrent run: a GPU each where there are GPUs, else a `cpus`-core share of this machine."""
    import torch

    if torch.cuda.is_available():
        return [[g] for g in range(torch.cuda.device_count())][: r.max_running]
    return [[] for _ in range(max(1, min(r.max_running, (os.cpu_count() or 1) // r.cpus)))]


def local_start(task, runs, table, folder: Path, on_end=lambda: None):
    import submitit

    free, waiting, running, started = local_slots(table.default), list(runs), [], []
    while waiting or running:
        for job, run, slot in [x for x in running if x[0].done()]:
            running.remove((job, run, slot))
            free.append(slot)
            on_end()
        while waiting and free:
            run, slot = waiting.pop(0), free.pop(0)
            r = table.for_backbone(run.backbone)
            ex = submitit.LocalExecutor(folder=folder, max_num_timeout=r.max_requeues)
            ex.update_parameters(timeout_min=r.time, gpus_per_node=len(slot), visible_gpus=slot, setup=_threads(r))
            job = ex.submit(task, run.index)
            running.append((job, run, slot))
            started.append((run, job))
        time.sleep(0.5)
    return started


PLACES = {
    "slurm": Place("slurm", slurm_check, slurm_start, slurm_alive, slurm_merge_job, waits=False),
    "local": Place(
        "local", lambda: None, local_start, lambda jobs: {j.job_id for j in jobs if not j.done()}, None, waits=True
    ),
}
