"""The one summary of an experiment folder: its readable run records -> the leaderboard table, the
inflation table, the paired comparison of #1 and #2, and the winning run.

The markdown leaderboard, the HTML report, the README block and `export` all read this one object.
Rows are backbones on the honest scheme (grouped when the experiment has it), averaged over seeds and
splits with spread and a 95% interval; damaged records are named in a warning and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lungfast.errors import LungfastError
from lungfast.results import record, stats
from lungfast.results.layout import ExperimentDir, RunDir

COLUMNS = ["rank", "backbone", "test_accuracy", "test_accuracy_std", "ci95_low", "ci95_high", "n", "n_seeds",
           "n_splits", "valid_accuracy", "test_loss", "macro_f1", "balanced_accuracy", "roc_auc_ovr",
           "cancer_sensitivity", "benign_specificity", "params_m", "seconds_per_epoch", "train_img_per_s",
           "pretrained", "scheme", "img_size"]
MEANS = ["valid_accuracy", "test_loss", "macro_f1", "balanced_accuracy", "roc_auc_ovr", "cancer_sensitivity",
         "benign_specificity", "params_m", "seconds_per_epoch", "train_img_per_s"]


@dataclass(frozen=True)
class Summary:
    exp: ExperimentDir
    runs: pd.DataFrame  # one row per run record (RunRecord.row), every scheme
    scheme: str  # the scheme the table ranks on
    table: pd.DataFrame  # the leaderboard: COLUMNS, best first
    inflation: pd.DataFrame | None  # grouped vs random test accuracy per backbone, when both ran
    comparison: dict | None  # stats.paired_comparison of #1 and #2, when there are two

    @property
    def ranked_runs(self) -> pd.DataFrame:
        return self.runs[self.runs.scheme == self.scheme]

    def best_run(self, backbone: str) -> RunDir:
        """The backbone's run with the best test accuracy (then lowest test loss) on the ranked scheme."""
        mine = self.ranked_runs[self.ranked_runs.backbone == backbone]
        return RunDir(mine.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).run_dir.iloc[0])

    @property
    def winner(self) -> RunDir:
        return self.best_run(self.table.backbone.iloc[0])


def load_runs(exp: ExperimentDir) -> pd.DataFrame:
    found = record.read_all(exp.run_dirs())
    if not found:
        raise LungfastError(f"{exp.path}: no complete run records under runs/; run an experiment first")
    return pd.DataFrame([rec.row(run_dir) for run_dir, rec in found]).assign(params_m=lambda d: d.params / 1e6)


def primary_scheme(runs: pd.DataFrame) -> str:
    return "grouped" if (runs.scheme == "grouped").any() else str(runs.scheme.iloc[0])


def _row(backbone: str, g: pd.DataFrame) -> dict:
    acc = g.test_accuracy.astype(float)
    low, high = (min(max(v, 0.0), 1.0) for v in stats.t_interval(acc))  # an accuracy lies in [0, 1]
    return {"backbone": backbone, "test_accuracy": acc.mean(), "test_accuracy_std": acc.std(ddof=1) if len(g) > 1
            else math.nan, "ci95_low": low, "ci95_high": high, "n": len(g), "n_seeds": g.seed.nunique(),
            "n_splits": g.split_seed.nunique(), **{c: pd.to_numeric(g[c]).mean() for c in MEANS},
            "pretrained": bool(g.pretrained.iloc[0]), "scheme": g.scheme.iloc[0], "img_size": int(g.img_size.iloc[0])}


def leaderboard(ranked: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame([_row(b, g) for b, g in ranked.groupby("backbone")])
    table = table.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table[COLUMNS]


def inflation(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Grouped vs random test accuracy per backbone, when both were run."""
    if set(runs.scheme) < {"grouped", "random"}:
        return None
    acc = runs.pivot_table(index="backbone", columns="scheme", values="test_accuracy", aggfunc="mean")
    acc = acc.dropna().rename(columns={"grouped": "grouped_test_accuracy", "random": "random_test_accuracy"})
    acc["inflation"] = acc.random_test_accuracy - acc.grouped_test_accuracy
    acc.columns.name = None
    return acc.reset_index().sort_values("grouped_test_accuracy", ascending=False)


def summarize(exp: ExperimentDir) -> Summary:
    runs = load_runs(exp)
    scheme = primary_scheme(runs)
    ranked = runs[runs.scheme == scheme]
    table = leaderboard(ranked)
    comparison = (stats.paired_comparison(table.backbone[0], table.backbone[1], ranked) if len(table) >= 2
                  else None)
    return Summary(exp, runs, scheme, table, inflation(runs), comparison)
