"""Export the leaderboard's winner: the top backbone's best run on the honest split, as fastai's pickle."""

from __future__ import annotations

import shutil
from pathlib import Path

from lungfast import leaderboard, record


def winner_run(exp_dir: Path) -> Path:
    """Run folder of the top-ranked backbone's run with the best test accuracy."""
    runs = leaderboard.load_runs(exp_dir)
    top = leaderboard.build(exp_dir, runs).backbone[0]
    mine = runs[(runs.backbone == top) & (runs.split == leaderboard.primary_split(runs))]
    return Path(mine.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).run_dir.iloc[0])


def export(exp_dir: Path, out: Path) -> Path:
    source = winner_run(exp_dir) / "learner.pkl"
    with record.atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    return source.parent
