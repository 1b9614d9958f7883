"""Label efficiency: how test accuracy grows with the labelled tiles an entry learned from (`train_fractions`).

Each entry is repeated on nested, class-balanced shares of its split's labelled tile groups (`Split.
labelled_fraction`), the test part unchanged; per entry and share: the mean test accuracy over runs with the
leaderboard's 95% interval (`summary.interval`), and the labelled tiles and tile groups it learned from.
"""

from __future__ import annotations

import pandas as pd


def table(ranked_all: pd.DataFrame, interval) -> pd.DataFrame | None:
    """entry, train_fraction, labelled_tiles, labelled_groups, test_accuracy, ci95_low, ci95_high, n;
    None with one share."""
    if ranked_all.train_fraction.nunique() < 2:
        return None
    rows = []
    for (entry, fraction), g in ranked_all.groupby(["entry", "train_fraction"], sort=False):
        low, high, _ = interval(g)
        groups = pd.to_numeric(g.get("labelled_groups"), errors="coerce") if "labelled_groups" in g else None
        rows.append(
            {
                "entry": entry,
                "train_fraction": float(fraction),
                "labelled_tiles": float((g.n_train + g.n_valid).mean()),
                "labelled_groups": float(groups.mean()) if groups is not None else float("nan"),
                "test_accuracy": float(g.test_accuracy.mean()),
                "ci95_low": max(low, 0.0),
                "ci95_high": min(high, 1.0),
                "n": len(g),
            }
        )
    return pd.DataFrame(rows).sort_values(["entry", "train_fraction"]).reset_index(drop=True)


def as_text_table(t: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per entry (leaderboard order), one column per share: "0.952 (0.941–0.963), 120 tiles / 12 groups"."""
    cell = [
        f"{a:.3f} ({lo:.3f}–{hi:.3f}), {tiles:.0f} tiles / {groups:.0f} groups"
        if lo == lo
        else f"{a:.3f}, {tiles:.0f} tiles / {groups:.0f} groups"
        for a, lo, hi, tiles, groups in zip(
            t.test_accuracy, t.ci95_low, t.ci95_high, t.labelled_tiles, t.labelled_groups
        )
    ]
    wide = t.assign(cell=cell, share=[f"{f:g} of labels" for f in t.train_fraction]).pivot(
        index="entry", columns="share", values="cell"
    )
    shares = [f"{f:g} of labels" for f in sorted(t.train_fraction.unique())]
    wide = wide.reindex([e for e in order if e in wide.index] + [e for e in wide.index if e not in order])[shares]
    wide.columns.name = None
    return wide.fillna("–").reset_index()


def chart(t: pd.DataFrame, order: list[str], title: str):
    """Test accuracy against labelled tiles (log scale), one line per entry, 95% interval whiskers."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for entry in [e for e in order if e in set(t.entry)] + sorted(set(t.entry) - set(order)):
        mine = t[t.entry == entry].sort_values("labelled_tiles")
        err = [
            (mine.test_accuracy - mine.ci95_low).clip(lower=0).fillna(0),
            (mine.ci95_high - mine.test_accuracy).clip(lower=0).fillna(0),
        ]
        ax.errorbar(mine.labelled_tiles, mine.test_accuracy, yerr=err, marker="o", capsize=3, label=entry)
    ax.set_xscale("log")
    ax.set_xlabel("labelled tiles (train + valid parts; log scale)")
    ax.set_ylabel("test accuracy (95% interval)")
    ax.set_title(f"{title}: label efficiency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
