"""The leaderboard files, rendered from the experiment's `Summary` (never edited by hand): leaderboard.csv
and .md, inflation.csv, comparison.json; and the README block `<!-- leaderboard:NAME -->`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lungfast.results import atomic, readme, stats
from lungfast.results.summary import Summary

SHOWN = ["n", "valid_accuracy", "macro_f1", "cancer_sensitivity", "benign_specificity", "test_loss", "params_m",
         "seconds_per_epoch", "train_img_per_s", "pretrained", "scheme", "img_size"]


def _fmt(table: pd.DataFrame) -> pd.DataFrame:
    shown = table[["rank", "backbone"]].copy()
    shown["test_accuracy"] = [f"{m:.4f} ± {s:.4f}" if s == s else f"{m:.4f}"
                              for m, s in zip(table.test_accuracy, table.test_accuracy_std)]
    shown["95% CI"] = [f"{lo:.4f}–{hi:.4f}" if lo == lo else "n=1" for lo, hi in zip(table.ci95_low, table.ci95_high)]
    for c in SHOWN:
        shown[c] = table[c]
    return shown


def to_markdown(s: Summary) -> str:
    text = _fmt(s.table).to_markdown(index=False, floatfmt=".4f") + "\n"
    if s.inflation is not None:
        text += "\nRandom-split inflation (same data, same settings):\n\n"
        text += s.inflation.to_markdown(index=False, floatfmt=".4f") + "\n"
    if s.comparison is not None:
        text += "\n" + stats.describe(s.comparison) + "\n"
    return text


def write(s: Summary) -> str:
    """Write leaderboard.csv/.md (+ inflation.csv, comparison.json) and return the markdown."""
    exp = s.exp
    atomic.write_csv(exp.leaderboard_csv, s.table)
    if s.inflation is not None:
        atomic.write_csv(exp.inflation_csv, s.inflation)
    if s.comparison is not None:
        atomic.write_json(exp.comparison_json, s.comparison)
    text = to_markdown(s)
    atomic.write_text(exp.leaderboard_md, text)
    return text


def update_readme(path: Path, s: Summary, note: str) -> None:
    """Refresh the README's `<!-- leaderboard:NAME -->` block from the records."""
    readme.replace_block(path, f"leaderboard:{s.exp.name}", f"{note}\n\n{to_markdown(s)}")
