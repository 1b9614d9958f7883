"""Atomic writes and run records. A reader never sees a half-written file or a half-made run.

A run is trained into a staging folder beside its final place and renamed into place when every file
is there; `metrics.json` is its completeness mark.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

RUN_FILES = ("metrics.json", "history.csv", "confusion_matrix.png", "top_losses.png", "top_losses.csv",
             "test_predictions.csv", "loss.png", "saliency.png", "learner.pkl")


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(target, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target, obj) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(target, df) -> None:
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=False)


def save_figure(fig, target) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def run_dir(split_dir: Path, backbone: str, seed: int) -> Path:
    return split_dir / "runs" / backbone / f"seed{seed}"


def is_complete(run: Path) -> bool:
    return all((run / f).is_file() for f in RUN_FILES)


def stage_dir(final: Path) -> Path:
    """Where a run is trained: a hidden sibling of its final folder, with a fixed name so a rerun finds
    what a killed run left (see resume.py)."""
    return final.with_name(f".{final.name}.partial")


@contextmanager
def staged_run(final: Path, fresh: bool = False):
    """The run's staging folder; on success it replaces `final` in one rename. Kept when the run is
    interrupted (resumable), removed when the run fails on bad input or settings."""
    from lungfast.errors import LungfastError

    stage = stage_dir(final)
    if fresh and stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except LungfastError:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if final.exists():  # --force: move the old record aside first, then drop it
        old = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(stage, final)


def load_metrics(exp_dir: Path) -> list[dict]:
    """Every complete run record of an experiment, one split or several; `run_dir` says where it lies."""
    found = sorted([*exp_dir.glob("runs/*/seed*/metrics.json"), *exp_dir.glob("*/runs/*/seed*/metrics.json")])
    return [{**json.loads(p.read_text()), "run_dir": str(p.parent)} for p in found if is_complete(p.parent)]
