"""What a launched task runs, pickled by submitit and called in the task's own process.

A task is `lungfast run EXP --only J` (runner.run with `only`): the same checks and locks as a run typed at a
terminal, its log lines in the task's log. Slurm's time limit or a preemption sends SIGUSR2 first; submitit then
calls `checkpoint`, which requeues the same call: the requeued task finds the run's checkpoint and resumes after
its last finished epoch.
"""

from __future__ import annotations

import submitit


def _log_lines() -> None:
    import logging
    import sys

    logging.basicConfig(format="%(message)s", level=logging.INFO, stream=sys.stderr)


class RunTask(submitit.helpers.Checkpointable):
    """`lungfast run EXPERIMENT [--set ...] --only J`, one planned run per call."""

    def __init__(self, experiment: str, overrides: list[str]):
        self.experiment, self.overrides = experiment, list(overrides)

    def __call__(self, index: int) -> str:
        from lungfast import config, runner

        _log_lines()
        text = runner.run(config.load(self.experiment, self.overrides), only=[index])
        print(text, flush=True)
        return text


def merge(experiment: str, overrides: list[str]) -> str:
    """The leaderboard and report of every record there is, as a plain `lungfast run` writes them at its end."""
    from lungfast import config, runner

    _log_lines()
    text = runner.merge(config.load(experiment, overrides))
    print(text, flush=True)
    return text
