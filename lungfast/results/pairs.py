"""Which entries are really better: every pair tested on the same test tiles, Holm-corrected, and with enough
splits a Friedman test and a critical-difference diagram (Demšar 2006).

- Pairs: for every two entries on the ranked scheme, the paired permutation test of `stats.paired_comparison`
  on the same test tiles (pooled over splits: a tile of split 1 and one of split 2 are different observations),
  p-values adjusted for the number of pairs by Holm's step-down method (statsmodels). An entry is "tied with
  #1" when its Holm-adjusted p against #1 is 0.05 or more.
- Friedman: test accuracy per split (mean over training seeds), entries ranked within each split; SciPy's
  Friedman test and the Nemenyi critical difference from the studentized range. Needs at least MIN_SPLITS
  splits and MIN_ENTRIES entries; with fewer, `why_no_friedman` says so in one line.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from lungfast.results import stats

MIN_SPLITS, MIN_ENTRIES, ALPHA = 5, 3, 0.05


def all_pairs(ranked: pd.DataFrame, entries: list[str]) -> pd.DataFrame | None:
    """first, second (leaderboard order), n_images, difference, its 95% CI, p_value, p_holm, verdict."""
    if len(entries) < 2:
        return None
    rows = [stats.paired_comparison(a, b, ranked, key="entry") for a, b in itertools.combinations(entries, 2)]
    table = pd.DataFrame(rows)
    table["p_holm"] = multipletests(table.p_value.to_numpy(), alpha=ALPHA, method="holm")[1]
    table["verdict"] = [
        f"#{entries.index(a) + 1} better"
        if p < ALPHA and d > 0
        else f"#{entries.index(b) + 1} better"
        if p < ALPHA and d < 0
        else "tied"
        for a, b, d, p in zip(table["first"], table.second, table.difference, table.p_holm)
    ]
    return table[["first", "second", "n_images", "difference", "ci95_low", "ci95_high", "p_value", "p_holm", "verdict"]]


def versus_best(pairs: pd.DataFrame | None, entries: list[str]) -> list[str]:
    """Per entry (leaderboard order): "best", "tied (p=…)" or "worse (p=…)", Holm-adjusted p against #1."""
    if pairs is None:
        return ["best"][: len(entries)]
    out = ["best"]
    for entry in entries[1:]:
        row = pairs[(pairs["first"] == entries[0]) & (pairs.second == entry)].iloc[0]
        out.append(f"{'worse' if row.p_holm < ALPHA and row.difference > 0 else 'tied'} (p={row.p_holm:.3g})")
    return out


def per_split(ranked: pd.DataFrame, entries: list[str]) -> pd.DataFrame:
    """Test accuracy, splits x entries (mean over training seeds)."""
    return ranked.pivot_table(index="split_seed", columns="entry", values="test_accuracy", aggfunc="mean")[entries]


def why_no_friedman(ranked: pd.DataFrame, entries: list[str]) -> str | None:
    n_splits = ranked.split_seed.nunique()
    if n_splits >= MIN_SPLITS and len(entries) >= MIN_ENTRIES:
        return None
    fix = "more split_seeds" if n_splits < MIN_SPLITS else "more entries (backbones or protocols)"
    return (
        f"No Friedman test or critical-difference diagram: they compare entries over splits and need at least "
        f"{MIN_SPLITS} split seeds and {MIN_ENTRIES} entries; this experiment has {n_splits} split(s) and "
        f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({fix})."
    )


def friedman(ranked: pd.DataFrame, entries: list[str]) -> dict | None:
    """Friedman statistic and p over splits, mean ranks (1 = best) and the Nemenyi critical difference at 0.05."""
    if why_no_friedman(ranked, entries):
        return None
    acc = per_split(ranked, entries).dropna()
    k, n = acc.shape[1], acc.shape[0]
    result = sps.friedmanchisquare(*[acc[e].to_numpy() for e in entries])
    ranks = acc.rank(axis=1, ascending=False).mean()
    q = sps.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    return {
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "n_splits": n,
        "mean_rank": {e: float(ranks[e]) for e in entries},
        "critical_difference": float(q * math.sqrt(k * (k + 1) / (6 * n))),
    }


def cd_diagram(f: dict, title: str):
    """Entries on their mean rank; a bar joins entries whose ranks differ by less than the critical difference."""
    import matplotlib.pyplot as plt

    ranks = pd.Series(f["mean_rank"]).sort_values()
    cd, k = f["critical_difference"], len(ranks)
    fig, ax = plt.subplots(figsize=(7, 0.35 * k + 1.8))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(k + 1), 1.5)
    ax.axhline(0, color="black", linewidth=1)
    for i, (entry, r) in enumerate(ranks.items()):
        ax.plot([r, r], [0, -(i + 1)], color="grey", linewidth=0.8)
        ax.text(r + 0.05, -(i + 1), f"{entry} ({r:.2f})", va="center", fontsize=8)
    level = 0.4
    for i, r in enumerate(ranks):  # the widest group starting at each entry, drawn once
        tied = ranks[(ranks >= r) & (ranks - r < cd)]
        if len(tied) > 1 and not (ranks.iloc[:i] > tied.iloc[-1] - cd).any():  # not inside an earlier group
            ax.plot([r, tied.iloc[-1]], [level, level], linewidth=3, color="tab:red")
            level += 0.3
    ax.plot([1, 1 + cd], [1.2, 1.2], color="black", linewidth=2)
    ax.text(1 + cd / 2, 1.3, f"CD = {cd:.2f}", ha="center", fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("mean rank over splits (1 = best)")
    ax.set_title(f"{title}: Friedman p = {f['p_value']:.3g} over {f['n_splits']} splits")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
