"""The leaderboard, regenerated from run records only (never edited by hand).

Rows are backbones on the honest split (grouped when the experiment has it), averaged over seeds and
splits with spread and a 95% interval. With both split kinds, an inflation table puts the random-split
accuracy beside the grouped one. Below the table, a paired test says whether #1 really beats #2.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lungfast import record, stats
from lungfast.errors import LungfastError

COLUMNS = ["rank", "backbone", "test_accuracy", "test_accuracy_std", "ci95_low", "ci95_high", "n", "n_seeds",
           "n_splits", "valid_accuracy", "test_loss", "macro_f1", "balanced_accuracy", "roc_auc_ovr",
           "cancer_sensitivity", "benign_specificity", "params_m", "seconds_per_epoch", "train_img_per_s",
           "pretrained", "split", "img_size"]
MEANS = ["valid_accuracy", "test_loss", "macro_f1", "balanced_accuracy", "roc_auc_ovr", "cancer_sensitivity",
         "benign_specificity", "params_m", "seconds_per_epoch", "train_img_per_s"]


def load_runs(exp_dir: Path) -> pd.DataFrame:
    runs = record.load_metrics(exp_dir)
    if not runs:
        raise LungfastError(f"{exp_dir}: no complete run records under runs/; run an experiment first")
    return pd.DataFrame(runs).assign(params_m=lambda d: d.params / 1e6)


def primary_split(runs: pd.DataFrame) -> str:
    return "grouped" if (runs.split == "grouped").any() else str(runs.split.iloc[0])


def _row(backbone: str, g: pd.DataFrame) -> dict:
    acc = g.test_accuracy.astype(float)
    low, high = (min(max(v, 0.0), 1.0) for v in stats.t_interval(acc))  # an accuracy lies in [0, 1]
    return {"backbone": backbone, "test_accuracy": acc.mean(), "test_accuracy_std": acc.std(ddof=1) if len(g) > 1
            else math.nan, "ci95_low": low, "ci95_high": high, "n": len(g), "n_seeds": g.seed.nunique(),
            "n_splits": g.split_seed.nunique(), **{c: pd.to_numeric(g[c]).mean() for c in MEANS},
            "pretrained": bool(g.pretrained.iloc[0]), "split": g.split.iloc[0], "img_size": int(g.img_size.iloc[0])}


def build(exp_dir: Path, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    runs = load_runs(exp_dir) if runs is None else runs
    main = runs[runs.split == primary_split(runs)]
    table = pd.DataFrame([_row(b, g) for b, g in main.groupby("backbone")])
    table = table.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table[COLUMNS]


def inflation(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Grouped vs random test accuracy per backbone, when both were run."""
    if set(runs.split) < {"grouped", "random"}:
        return None
    acc = runs.pivot_table(index="backbone", columns="split", values="test_accuracy", aggfunc="mean")
    acc = acc.dropna().rename(columns={"grouped": "grouped_test_accuracy", "random": "random_test_accuracy"})
    acc["inflation"] = acc.random_test_accuracy - acc.grouped_test_accuracy
    return acc.reset_index().sort_values("grouped_test_accuracy", ascending=False)


def comparison(table: pd.DataFrame, runs: pd.DataFrame) -> dict | None:
    if len(table) < 2:
        return None
    main = runs[runs.split == primary_split(runs)]
    return stats.paired_comparison(table.backbone[0], table.backbone[1], main)


def _fmt(table: pd.DataFrame) -> pd.DataFrame:
    shown = table[["rank", "backbone"]].copy()
    shown["test_accuracy"] = [f"{m:.4f} ± {s:.4f}" if s == s else f"{m:.4f}"
                              for m, s in zip(table.test_accuracy, table.test_accuracy_std)]
    shown["95% CI"] = [f"{lo:.4f}–{hi:.4f}" if lo == lo else "n=1" for lo, hi in zip(table.ci95_low, table.ci95_high)]
    for c in ["n", "valid_accuracy", "macro_f1", "cancer_sensitivity", "benign_specificity", "test_loss",
              "params_m", "seconds_per_epoch", "train_img_per_s", "pretrained", "split", "img_size"]:
        shown[c] = table[c]
    return shown


def to_markdown(table: pd.DataFrame, infl: pd.DataFrame | None = None, comp: dict | None = None) -> str:
    text = _fmt(table).to_markdown(index=False, floatfmt=".4f") + "\n"
    if infl is not None:
        text += "\nRandom-split inflation (same data, same settings):\n\n"
        text += infl.to_markdown(index=False, floatfmt=".4f") + "\n"
    if comp is not None:
        text += "\n" + stats.describe(comp) + "\n"
    return text


def write(exp_dir: Path) -> str:
    """Write leaderboard.csv/.md (+ inflation.csv, comparison.json) and return the markdown."""
    runs = load_runs(exp_dir)
    table, infl = build(exp_dir, runs), inflation(runs)
    comp = comparison(table, runs)
    record.write_csv(exp_dir / "leaderboard.csv", table)
    if infl is not None:
        record.write_csv(exp_dir / "inflation.csv", infl)
    if comp is not None:
        record.write_json(exp_dir / "comparison.json", comp)
    text = to_markdown(table, infl, comp)
    record.write_text(exp_dir / "leaderboard.md", text)
    return text


def update_readme(readme: Path, exp_dir: Path, note: str) -> None:
    """Replace the block between `<!-- leaderboard:NAME -->` and `<!-- /leaderboard:NAME -->` in a README."""
    start, end = f"<!-- leaderboard:{exp_dir.name} -->", f"<!-- /leaderboard:{exp_dir.name} -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise LungfastError(f"{readme}: no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    body = f"{start}\n{note}\n\n{write(exp_dir)}{end}"
    record.write_text(readme, head + body + rest.split(end, 1)[1])
