"""The column registry: every leaderboard column, once. Summary, leaderboard.csv/.md, the terminal table, the
report and the model card read these rows, so a new metric is its computation (a key its run records carry)
plus one row here.

A row says where the column comes from (`mean`: averaged over an entry's runs; otherwise the summary computes
it per entry), its headers (the files keep `name`; a terminal shows `short`), how it prints, which tables
show it, and what it means (the leaderboard's legend and the generated docs read `doc`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

MD, TERMINAL, REPORT, CARD = "md", "terminal", "report", "card"  # the tables a column can appear in


def _range(low: str, high: str, empty: str) -> Callable[[pd.DataFrame, int], list[str]]:
    return lambda t, d: [f"{lo:.{d}f}–{hi:.{d}f}" if lo == lo else empty for lo, hi in zip(t[low], t[high])]


def _mean_std(t: pd.DataFrame, d: int) -> list[str]:
    return [f"{m:.{d}f} ± {s:.{d}f}" if s == s else f"{m:.{d}f}" for m, s in zip(t.test_accuracy, t.test_accuracy_std)]


def _with_augment(t: pd.DataFrame, d: int) -> pd.Series:
    return t.backbone.str.cat(t.augment.map(lambda a: f"+{a}" if a else ""))


def _worst(t: pd.DataFrame, d: int) -> list[str]:
    return [f"{n} {a:.{d}f}" if n else "–" for n, a in zip(t.worst_shift, t.worst_shift_accuracy)]


@dataclass(frozen=True)
class Column:
    name: str  # leaderboard.csv header and run-record key (for `mean` columns)
    shown: frozenset = frozenset()  # the tables that show it besides leaderboard.csv: MD, TERMINAL, REPORT, CARD
    mean: bool = False  # the mean over an entry's runs of the records' value (else the summary computes it)
    short: str = ""  # terminal header ("" = name)
    drop: int = 0  # a narrow terminal drops columns with drop > 0 first, 1 before 2 (0: never dropped)
    render: Callable[[pd.DataFrame, int], list[str]] | None = None  # its text in the md and terminal tables
    csv: bool = True  # a leaderboard.csv column (False: a display column rendered from others)
    doc: str = ""  # what it means: the leaderboard legend and docs/reference.md

    @property
    def header(self) -> str:
        return self.short or self.name

    def text(self, table: pd.DataFrame, digits: int) -> list | pd.Series:
        """As the md and terminal tables print it (numbers stay numbers: the table's float format applies)."""
        return self.render(table, digits) if self.render else table[self.name]


def col(name: str, *shown: str, **kw) -> Column:
    return Column(name, frozenset(shown), **kw)


REGISTRY: list[Column] = [
    col("rank", MD, TERMINAL, REPORT, doc="by mean test accuracy, then test loss"),
    col(
        "backbone", MD, TERMINAL, REPORT, render=_with_augment, doc="the registry entry (+ its training augmentations)"
    ),
    col("protocol", MD, TERMINAL, REPORT, drop=7, doc="how it was compared (lungfast.protocols)"),
    col("test_accuracy", MD, TERMINAL, REPORT, CARD, short="test acc", render=_mean_std, doc="mean ± std over runs"),
    col("test_accuracy_std"),
    col("ci95_low", REPORT),
    col("ci95_high", REPORT),
    col(
        "95% CI",
        MD,
        TERMINAL,
        drop=8,
        csv=False,
        render=_range("ci95_low", "ci95_high", "n=1"),
        doc="95% interval of the mean; ci_kind says what it covers",
    ),
    col("ci_kind", MD, doc="runs (t interval over them), test tiles (group bootstrap), or both combined"),
    col("vs_best", MD, TERMINAL, REPORT, doc="against #1, Holm-adjusted paired test (tied: no evidence #1 is better)"),
    col("pi95_low", REPORT),
    col("pi95_high", REPORT),
    col(
        "one model 95%",
        MD,
        csv=False,
        render=_range("pi95_low", "pi95_high", "–"),
        doc="where one model of the entry is expected to score on new tile groups (prediction interval)",
    ),
    col("pi_kind"),
    col("n", MD, TERMINAL, REPORT, drop=1, doc="runs (training seeds x split seeds)"),
    col("n_seeds"),
    col("n_splits"),
    col("valid_accuracy", MD, mean=True),
    col("test_loss", MD, mean=True),
    col("macro_f1", MD, mean=True),
    col("balanced_accuracy", CARD, mean=True),
    col("roc_auc_ovr", mean=True),
    col("cancer_sensitivity", MD, TERMINAL, CARD, mean=True, short="cancer sens", drop=2),
    col("benign_specificity", MD, CARD, mean=True),
    col("ece", MD, mean=True, doc="expected calibration error before temperature scaling"),
    col(
        "ece_calibrated",
        MD,
        TERMINAL,
        REPORT,
        CARD,
        mean=True,
        short="ece cal",
        drop=5,
        doc="after it (what export ships; the temperature is kept only where it lowered the evidence's "
        "cross-fitted ECE)",
    ),
    col(
        "refer_kept",
        MD,
        TERMINAL,
        REPORT,
        mean=True,
        short="kept",
        drop=3,
        doc="share of test tiles kept by the run's certified referral threshold (the rest go to a pathologist; "
        "0 where none could be certified)",
    ),
    col("refer_kept_accuracy", MD, TERMINAL, REPORT, mean=True, short="kept acc", drop=4, doc="their accuracy"),
    col("refer_met", MD, REPORT, doc="runs whose kept test tiles reached the referral target"),
    col(
        "shifted_accuracy",
        MD,
        TERMINAL,
        REPORT,
        mean=True,
        short="shifted",
        drop=6,
        doc="mean test accuracy under stain, stain re-targeting, blur, JPEG and magnification shifts at the "
        "middle severity",
    ),
    col("worst_shift", MD, REPORT, render=_worst, doc="the lowest of them"),
    col("worst_shift_accuracy"),
    col("params_m", MD, REPORT, CARD, mean=True, doc="parameters of the shipped network, millions"),
    col("gflops", MD, REPORT, CARD, mean=True, doc="GFLOPs per tile (torch's flop counter, 2 per multiply-add)"),
    col(
        "infer_img_per_s_b1",
        MD,
        REPORT,
        CARD,
        mean=True,
        short="img/s b1",
        doc="inference images per second at batch 1, run's precision, on the machine it ran on (device, threads)",
    ),
    col("infer_img_per_s_b64", MD, REPORT, CARD, mean=True, short="img/s b64", doc="the same at batch 64"),
    col("seconds_per_epoch", MD, mean=True),
    col("train_img_per_s", MD, mean=True),
    col("pretrained", MD),
    col("augment"),
    col("scheme", MD),
    col("img_size", MD),
    col("entry"),
]


def names(where: str | None = None) -> list[str]:
    """Column names in table order: all, or those a table shows."""
    return [c.name for c in REGISTRY if where is None or where in c.shown]


def csv_names() -> list[str]:
    """leaderboard.csv's columns (display columns are rendered from them)."""
    return [c.name for c in REGISTRY if c.csv]


def means() -> list[str]:
    return [c.name for c in REGISTRY if c.mean]


def shown(where: str) -> list[Column]:
    return [c for c in REGISTRY if where in c.shown]


def legend(where: str = MD) -> str:
    """One line per documented column a table shows."""
    return "; ".join(f"{c.name}: {c.doc}" for c in shown(where) if c.doc)
