"""What a launched task runs, pickled by submitit and called in the task's own process.

A task is the CLI itself (`lungfast run EXP --only J`): the same logging, checks and locks as a run typed at a
terminal. Slurm's time limit or a preemption sends SIGUSR2 first; submitit then calls `checkpoint`, which
requeues the same call: the requeued task finds the run's checkpoint and resumes after its last finished epoch.
"""

from __future__ import annotations

import submitit


class RunTask(submitit.helpers.Checkpointable):
    """`lungfast run EXPERIMENT [--set ...] --only J`, one planned run per call."""

    def __init__(self, experiment: str, overrides: list[str]):
        self.experiment, self.overrides = experiment, list(overrides)

    def argv(self, index: int) -> list[str]:
        return ["run", self.experiment, *(f"--set={s}" for s in self.overrides), "--only", str(index)]

    def __call__(self, index: int) -> str:
        from lungfast import cli

        rc = cli.main(self.argv(index))
        if rc != 0:  # the log above says why in one line; submitit marks the task failed
            raise SystemExit(f"lungfast {' '.join(self.argv(index))} exited with code {rc}")
        return f"run {index} done"


def merge(experiment: str, overrides: list[str]) -> str:
    """The leaderboard and report of every record there is, as a plain `lungfast run` writes them at its end."""
    import logging

    from lungfast import config, runner

    logging.basicConfig(format="%(message)s", level=logging.INFO)
    text = runner.merge(config.load(experiment, overrides))
    print(text, flush=True)
    return text
