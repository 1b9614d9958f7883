"""The leaderboard, regenerated from run records only (never edited by hand)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lungfast import record
from lungfast.errors import LungfastError

COLUMNS = ["rank", "backbone", "test_accuracy", "valid_accuracy", "test_loss", "params_m", "seconds_per_epoch",
           "train_img_per_s", "n_seeds", "pretrained", "split", "img_size"]


def build(exp_dir: Path) -> pd.DataFrame:
    runs = record.load_metrics(exp_dir)
    if not runs:
        raise LungfastError(f"{exp_dir}: no complete run records under runs/; run an experiment first")
    df = pd.DataFrame(runs).assign(params_m=lambda d: d.params / 1e6)
    numeric = ["test_accuracy", "valid_accuracy", "test_loss", "params_m", "seconds_per_epoch", "train_img_per_s"]
    table = df.groupby("backbone").agg(
        **{c: (c, "mean") for c in numeric}, n_seeds=("seed", "nunique"),
        pretrained=("pretrained", "first"), split=("split", "first"), img_size=("img_size", "first"))
    table = table.reset_index().sort_values(["test_accuracy", "test_loss"], ascending=[False, True])
    table.insert(0, "rank", range(1, len(table) + 1))
    return table[COLUMNS].reset_index(drop=True)


def to_markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4f") + "\n"


def write(exp_dir: Path) -> pd.DataFrame:
    table = build(exp_dir)
    record.write_csv(exp_dir / "leaderboard.csv", table)
    record.write_text(exp_dir / "leaderboard.md", to_markdown(table))
    return table


def update_readme(readme: Path, exp_dir: Path, note: str) -> None:
    """Replace the block between `<!-- leaderboard:NAME -->` and `<!-- /leaderboard:NAME -->` in a README."""
    start, end = f"<!-- leaderboard:{exp_dir.name} -->", f"<!-- /leaderboard:{exp_dir.name} -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise LungfastError(f"{readme}: no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    body = f"{start}\n{note}\n\n{to_markdown(write(exp_dir))}{end}"
    record.write_text(readme, head + body + rest.split(end, 1)[1])
