"""The one summary of an experiment folder: its readable run records -> the leaderboard table, the
inflation table, the paired comparison of #1 and #2, and the winning run.

The markdown leaderboard, the HTML report, the README block and `export` all read this one object.
Rows are entries, a backbone under one protocol (fine-tuning, or linear/knn/fewshot on frozen embeddings),
on the honest scheme (grouped when the experiment has it), averaged over runs (training seeds x split seeds)
with spread and a 95% interval; damaged records are named in a warning and left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lungfast.errors import LungfastError
from lungfast.results import columns, efficiency, pairs, record, stats
from lungfast.results import ladder as ladders
from lungfast.results.layout import ExperimentDir, RunDir
from lungfast.runspec import entry_of


@dataclass(frozen=True)
class Summary:
    exp: ExperimentDir
    runs: pd.DataFrame  # one row per run record (RunRecord.row), every scheme
    scheme: str  # the scheme the table ranks on
    table: pd.DataFrame  # the leaderboard: columns.csv_names(), best first
    inflation: pd.DataFrame | None  # grouped vs random test accuracy per backbone, when both ran
    comparison: dict | None  # stats.paired_comparison of #1 and #2, when there are two
    ladder: pd.DataFrame | None = None  # results.ladder: random -> grouped -> external sets, when any were scored
    pairs: pd.DataFrame | None = None  # results.pairs.all_pairs: every two entries, Holm-adjusted
    friedman: dict | None = None  # results.pairs.friedman over splits, when there are enough of them
    efficiency: pd.DataFrame | None = None  # results.efficiency: accuracy per share of the labels, when several ran
    top_fraction: float = 1.0  # the share of the labels the table ranks (the largest that ran)

    @property
    def ranked_runs(self) -> pd.DataFrame:
        return self.runs[(self.runs.scheme == self.scheme) & (self.runs.train_fraction == self.top_fraction)]

    def best_run(self, entry: str) -> RunDir:
        """The run of an entry that ships, chosen without looking at the test part (SHIPPED_RULE)."""
        return RunDir(shipped(self.ranked_runs[self.ranked_runs.entry == entry]).run_dir)

    @property
    def entries(self) -> list[str]:
        """The table's rows as entries, best first."""
        return self.table.entry.tolist()

    @property
    def winner(self) -> RunDir:
        return self.best_run(self.entries[0])


def load_runs(exp: ExperimentDir) -> pd.DataFrame:
    found = record.read_all(exp.run_dirs())
    if not found:
        raise LungfastError(f"{exp.path}: no complete run records under runs/; run an experiment first")
    runs = pd.DataFrame([rec.row(run_dir) for run_dir, rec in found]).assign(params_m=lambda d: d.params / 1e6)
    tta = runs["tta"].fillna("none") if "tta" in runs else ["none"] * len(runs)  # records older than `tta` had none
    runs = runs.assign(
        entry=[entry_of(b, p, tuple(a), t) for b, p, a, t in zip(runs.backbone, runs.protocol, runs.augment, tta)]
    )
    runs["augment"] = ["+".join(a) for a in runs.augment]
    return runs


def worst_shift(g: pd.DataFrame) -> tuple[str | None, float]:
    """The shift with the lowest mean accuracy at the middle severity over an entry's runs."""
    middle = pd.DataFrame([r.get("middle", {}) for r in g.get("robustness", []) if isinstance(r, dict)]).mean()
    return (str(middle.idxmin()), float(middle.min())) if len(middle.dropna()) else (None, math.nan)


def primary_scheme(runs: pd.DataFrame) -> str:
    return "grouped" if (runs.scheme == "grouped").any() else str(runs.scheme.iloc[0])


def interval(g: pd.DataFrame) -> tuple[float, float, str]:
    """95% interval of the mean test accuracy, and what it covers. Over several splits the runs' spread
    already holds test-sampling spread (each split has its own test part): a t interval over runs. On one
    split, the seed spread (t interval half-width) and the test-tile sampling spread (the runs' group-bootstrap
    half-width, mean) are combined in quadrature."""
    acc = g.test_accuracy.astype(float)
    low, high = stats.t_interval(acc)
    if g.split_seed.nunique() > 1:
        return low, high, "runs (t)"
    boot = [
        (ci["test_accuracy"][1] - ci["test_accuracy"][0]) / 2
        for ci in g.get("test_ci95", [])
        if isinstance(ci, dict) and ci.get("test_accuracy") and ci["test_accuracy"][0] == ci["test_accuracy"][0]
    ]
    if not boot:
        return low, high, "runs (t)"
    seeds = (high - low) / 2 if low == low else 0.0
    half = math.hypot(seeds, sum(boot) / len(boot))
    return acc.mean() - half, acc.mean() + half, "seeds + test tiles" if len(g) > 1 else "test tiles (group bootstrap)"


def single_model_interval(g: pd.DataFrame) -> tuple[float, float, str]:
    """95% interval for ONE model on new tile groups (what the shipped model will score), not for the mean: over
    several splits a t prediction interval, mean ± t(n-1) s sqrt(1 + 1/n) (each split's test part is new groups);
    on one split, the shipped run's own group bootstrap."""
    acc = g.test_accuracy.astype(float)
    if g.split_seed.nunique() > 1:
        half = stats.t_quantile(len(acc)) * acc.std(ddof=1) * math.sqrt(1 + 1 / len(acc))
        return acc.mean() - half, acc.mean() + half, "prediction (splits)"
    ci = shipped(g).get("test_ci95")
    low, high = (ci or {}).get("test_accuracy", (math.nan, math.nan))
    return low, high, "shipped run (group bootstrap)"


def _row(g: pd.DataFrame) -> dict:
    acc = g.test_accuracy.astype(float)
    low, high, kind = interval(g)
    pi_low, pi_high, pi_kind = single_model_interval(g)
    low, high = (min(max(v, 0.0), 1.0) for v in (low, high))  # an accuracy lies in [0, 1]
    return {
        "backbone": g.backbone.iloc[0],
        "protocol": g.protocol.iloc[0],
        "test_accuracy": acc.mean(),
        "test_accuracy_std": acc.std(ddof=1) if len(g) > 1 else math.nan,
        "ci95_low": low,
        "ci95_high": high,
        "ci_kind": kind,
        "pi95_low": max(pi_low, 0.0),
        "pi95_high": min(pi_high, 1.0),
        "pi_kind": pi_kind,
        "n": len(g),
        "n_seeds": g.seed.nunique(),
        "n_splits": g.split_seed.nunique(),
        **{c: pd.to_numeric(g[c]).mean() if c in g else math.nan for c in columns.means()},
        **dict(zip(("worst_shift", "worst_shift_accuracy"), worst_shift(g))),
        "refer_met": refer_met(g),
        "pretrained": bool(g.pretrained.iloc[0]),
        "augment": g.augment.iloc[0],
        "scheme": g.scheme.iloc[0],
        "img_size": int(g.img_size.iloc[0]),
        "entry": g.entry.iloc[0],
    }


def refer_met(g: pd.DataFrame) -> str:
    """How many of an entry's runs kept test tiles at least as accurate as their referral target: "2/3 met",
    or why none could ("not certified": every run refers every tile)."""
    found = [r["test"].get("met") for r in g.get("referral", []) if isinstance(r, dict) and "test" in r]
    judged = [m for m in found if m is not None]
    if not judged:
        return "not certified" if found else ""
    return f"{sum(judged)}/{len(judged)} met"


SHIPPED_RULE = (
    "the entry's run with the highest selection accuracy (the valid part; for fine-tuning its selection "
    "half, the other half calibrates), then lowest valid loss, lowest split seed and training seed: "
    "chosen without the test part or the evidence that calibrates it"
)


def shipped(g: pd.DataFrame) -> pd.Series:
    """The run of an entry's runs that ships (SHIPPED_RULE)."""
    chosen_on = g.selection_accuracy.fillna(g.valid_accuracy) if "selection_accuracy" in g else g.valid_accuracy
    return (
        g.assign(_chosen_on=chosen_on)
        .sort_values(["_chosen_on", "valid_loss", "split_seed", "seed"], ascending=[False, True, True, True])
        .iloc[0]
    )


EXTERNAL = "external:"  # leaderboard columns "external:<name>": mean accuracy on that external set


def _external_columns(g: pd.DataFrame, names: list[str]) -> dict:
    return {
        f"{EXTERNAL}{n}": (
            ladders.external_runs(g, n).test_accuracy.mean() if len(ladders.external_runs(g, n)) else math.nan
        )
        for n in names
    }


def leaderboard(ranked: pd.DataFrame) -> pd.DataFrame:
    names = ladders.external_names(ranked)
    table = pd.DataFrame([{**_row(g), **_external_columns(g, names)} for _, g in ranked.groupby("entry")])
    table = table.sort_values(["test_accuracy", "test_loss"], ascending=[False, True]).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    return table[[c for c in columns.csv_names() if c in table] + [f"{EXTERNAL}{n}" for n in names]]


def inflation(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Grouped vs random test accuracy per backbone, when both were run."""
    if set(runs.scheme) < {"grouped", "random"}:
        return None
    acc = runs.pivot_table(
        index=["backbone", "protocol", "augment"], columns="scheme", values="test_accuracy", aggfunc="mean"
    )
    acc = acc.dropna().rename(columns={"grouped": "grouped_test_accuracy", "random": "random_test_accuracy"})
    acc["inflation"] = acc.random_test_accuracy - acc.grouped_test_accuracy
    acc.columns.name = None
    return acc.reset_index().sort_values("grouped_test_accuracy", ascending=False)


def summarize(exp: ExperimentDir) -> Summary:
    runs = load_runs(exp)
    scheme = primary_scheme(runs)
    top = float(runs.train_fraction.max())
    full = runs[runs.train_fraction == top]  # the leaderboard, inflation and ladder compare entries on all labels
    ranked = full[full.scheme == scheme]
    table = leaderboard(ranked)
    first, second = (table.entry.tolist() + [None, None])[:2]
    comparison = stats.paired_comparison(first, second, ranked, key="entry") if second else None
    every = pairs.all_pairs(ranked, table.entry.tolist())
    at = [c for c in columns.csv_names() if c in table or c == "vs_best"].index("vs_best")
    table.insert(at, "vs_best", pairs.versus_best(every, table.entry.tolist()))
    return Summary(
        exp,
        runs,
        scheme,
        table,
        inflation(full),
        comparison,
        ladders.ladder(full, scheme, interval),
        every,
        pairs.friedman(ranked, table.entry.tolist()),
        efficiency.table(runs[runs.scheme == scheme], interval),
        top,
    )
