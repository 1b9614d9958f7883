"""Launch an experiment's missing runs as tasks (`places`), watch them, list failures, merge.

A ledger (`<experiment>/launch/submitted.json`: run index -> task id and place) lets a second submission skip
runs an earlier one still has queued or running; a run that is not done and not queued is submitted again.
Two tasks on one run cannot both train it: a run takes the same file lock as any `lungfast run` (flock, which
holds across nodes on a shared file system), and the second finds the record complete and skips.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import pickle
import time
import types
from pathlib import Path

from lungfast import files, progress, runner
from lungfast.config import ExperimentConfig
from lungfast.dataset import load_data, make_or_reuse_split
from lungfast.errors import LungfastError
from lungfast.launch.places import PLACES
from lungfast.launch.tasks import RunTask, merge
from lungfast.results.layout import ExperimentDir

log = logging.getLogger("lungfast")
POLL_S = 2.0


def launch(
    cfg: ExperimentConfig, experiment: Path, overrides: list[str], on: str, wait: bool, only=None
) -> tuple[str, list[str]]:
    """The merged leaderboard (or what was submitted, when not waiting) and a line per failed run."""
    place, exp = PLACES[on], ExperimentDir.of(cfg)
    place.check()
    folder, ledger = exp.path / "launch", exp.path / "launch" / "submitted.json"
    everything = runner.plan(cfg)
    chosen = [everything[j] for j in only] if only is not None else everything
    queued = _still_queued(ledger, place)
    todo = [r for r in chosen if not runner.is_done(cfg, r) and r.index not in queued]
    if queued:
        log.info("%d run(s) already queued or running from an earlier submission: not submitted again", len(queued))
    if not todo:
        if queued:
            return f"nothing new to submit; {len(queued)} run(s) still queued or running (squeue)", []
        log.info("every run has a complete record: nothing to submit")
        return runner.merge(cfg), []
    prepare(cfg, todo)
    task = RunTask(str(experiment.resolve()), overrides)
    waiting = wait or place.waits  # a bar only where someone waits for it (none on a submit-and-return)
    bar = progress.bar(len(todo), "runs ended") if waiting else (lambda n: None)
    ended = itertools.count(1)
    started = place.start(task, todo, cfg.slurm_table, folder, on_end=lambda: bar(next(ended)))
    _remember(ledger, place, started)
    for run, job in started:
        log.info("run %d (%s): task %s, log %s", run.index, run.label, job.job_id, job.paths.stderr)
    if not waiting:
        ids = ", ".join(sorted({j.job_id.split("_")[0] for _, j in started}))
        merger = place.merge_job(
            merge, (task.experiment, overrides), [j for _, j in started], folder, cfg.slurm_table.default
        )
        return (
            f"submitted {len(todo)} run(s) to {on} (job {ids}); logs in {folder}. Watch: squeue -j {ids}. "
            f"Job {merger.job_id} then merges the leaderboard into {exp.path}/leaderboard.md "
            f"(log {merger.paths.stdout})"
        ), []
    jobs = [j for _, j in started]
    while alive := place.alive(jobs):  # waiting here: this command merges once all have ended
        bar(len(jobs) - len(alive))
        time.sleep(POLL_S)
    bar(len(jobs))
    failed = failures(cfg, started, experiment, overrides, on)
    try:
        return runner.merge(cfg), failed
    except LungfastError:  # no run has a record yet: the failures say why
        if not failed:
            raise
        return "no run has a complete record, so there is no leaderboard yet", failed


def prepare(cfg: ExperimentConfig, runs: list) -> None:
    """What every task reads, built once here: the split files, each split's tile store, the probes' embeddings."""
    from lungfast import protocols
    from lungfast.data import store as tile_store
    from lungfast.probe import run as probe

    data, exp = load_data(cfg), ExperimentDir.of(cfg)
    for scheme, split_seed in dict.fromkeys((r.scheme, r.split_seed) for r in runs):
        where = exp.split_dir(scheme, split_seed, cfg.single_split)
        one = make_or_reuse_split(cfg, data, scheme, split_seed, where, False)
        tile_store.ensure(one.frame, cfg.img_size)
        mine = [
            r for r in runs if (r.scheme, r.split_seed) == (scheme, split_seed) and protocols.get(r.protocol).frozen
        ]
        for r in {r.backbone: r for r in mine}.values():  # one embedding per backbone serves every probe
            probe.embed_split(
                runner.spec_for(cfg, r.backbone, r.protocol, r.seed, scheme, split_seed, len(one.frame)), one
            )
    files.write_json(exp.config_json, dataclasses.asdict(cfg))


def failures(cfg, started, experiment: Path, overrides: list[str], on: str) -> list[str]:
    """One line per run whose task ended without its record: the reason, its log, the command that resubmits it."""
    sets = "".join(f" --set {s}" for s in overrides)
    lines = []
    for run, job in started:
        if runner.is_done(cfg, run):
            continue
        lines.append(
            f"failed: run {run.index} ({run.label}): {_reason(job)}; log {job.paths.stderr}; resubmit: "
            f"lungfast run {experiment}{sets} --on {on} --only {run.index}"
        )
    return lines


def _reason(job) -> str:
    try:
        outcome, value = pickle.loads(job.paths.result_pickle.read_bytes())
    except (OSError, ValueError, pickle.UnpicklingError, EOFError):
        return "the task ended without a result (cancelled, out of memory or time?)"
    said = [line for line in str(value).strip().splitlines() if line.strip()]
    return said[-1] if outcome == "error" and said else f"it returned {outcome}"


def _still_queued(ledger: Path, place) -> set[int]:
    if not ledger.is_file():
        return set()
    entries = json.loads(ledger.read_text())
    mine = {int(k): v for k, v in entries.items() if v["place"] == place.name}
    if not mine or place.name != "slurm":  # local tasks die with the command that scheduled them
        return set()
    alive = place.alive([types.SimpleNamespace(job_id=v["task"]) for v in mine.values()])  # squeue needs ids alone
    return {k for k, v in mine.items() if v["task"] in alive}


def _remember(ledger: Path, place, started) -> None:
    entries = json.loads(ledger.read_text()) if ledger.is_file() else {}
    entries.update({str(run.index): {"task": job.job_id, "place": place.name} for run, job in started})
    files.write_json(ledger, entries)
