"""Export the leaderboard's winner: the top backbone's best seed, as the learner pickle fastai loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from lungfast import leaderboard, record


def winner_run(exp_dir: Path) -> Path:
    """Run folder of the top-ranked backbone's seed with the best test accuracy."""
    top = leaderboard.build(exp_dir).iloc[0].backbone
    runs = pd.DataFrame(record.load_metrics(exp_dir))
    best = runs[runs.backbone == top].sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).iloc[0]
    return record.run_dir(exp_dir, top, int(best.seed))


def export(exp_dir: Path, out: Path) -> Path:
    source = winner_run(exp_dir) / "learner.pkl"
    with record.atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
    return source.parent
