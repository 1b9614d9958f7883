"""The generalisation ladder of each entry: random split -> grouped split -> each external set.

Each rung is harder than the last: a random split shares copies of one tile between train and test, a grouped
split does not, and an external set comes from another source altogether. Accuracy per rung is the mean over
the entry's runs with a 95% interval computed as the leaderboard's (`summary.interval`): over runs when there
are several splits, else the runs' group bootstrap. External rungs use the runs of the ranked scheme (the
model that ships).
"""

from __future__ import annotations

import pandas as pd

RANDOM, GROUPED = "random split", "grouped split"


def external_names(runs: pd.DataFrame) -> list[str]:
    """Every external set some run scored, in first-seen order."""
    if "external" not in runs:
        return []
    return list(dict.fromkeys(n for e in runs.external if isinstance(e, dict) for n in e))


def external_runs(g: pd.DataFrame, name: str) -> pd.DataFrame:
    """The runs that scored `name`, with its accuracy and interval in the test columns (for `interval`)."""
    mine = g[[isinstance(e, dict) and name in e for e in g.external]]
    return mine.assign(
        test_accuracy=[e[name]["accuracy"] for e in mine.external],
        test_ci95=[{"test_accuracy": e[name]["ci95"]["accuracy"]} for e in mine.external],
    )


def ladder(runs: pd.DataFrame, scheme: str, interval) -> pd.DataFrame | None:
    """entry, rung, accuracy, ci95_low, ci95_high, n; None without external sets."""
    names = external_names(runs)
    if not names:
        return None
    rows = []
    for entry, g in runs.groupby("entry", sort=False):
        rungs = [
            (RANDOM, g[g.scheme == "random"]),
            (GROUPED, g[g.scheme == "grouped"]),
            *[(name, external_runs(g[g.scheme == scheme], name)) for name in names],
        ]
        for rung, mine in rungs:
            if len(mine):
                low, high, _ = interval(mine)
                rows.append(
                    {
                        "entry": entry,
                        "rung": rung,
                        "accuracy": float(mine.test_accuracy.mean()),
                        "ci95_low": max(low, 0.0),
                        "ci95_high": min(high, 1.0),
                        "n": len(mine),
                    }
                )
    return pd.DataFrame(rows)


def as_text_table(table: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per entry (leaderboard order), one column per rung: "0.952 (0.941–0.963)"."""
    cell = [
        f"{a:.3f} ({lo:.3f}–{hi:.3f})" if lo == lo else f"{a:.3f}"
        for a, lo, hi in zip(table.accuracy, table.ci95_low, table.ci95_high)
    ]
    wide = table.assign(cell=cell).pivot(index="entry", columns="rung", values="cell")
    rungs = [r for r in dict.fromkeys(table.rung) if r in wide]
    wide = wide.reindex([e for e in order if e in wide.index])[rungs].fillna("–")
    wide.columns.name = None
    return wide.reset_index()


def chart(table: pd.DataFrame, order: list[str], title: str):
    """Accuracy per rung, one line per entry, 95% interval whiskers."""
    import matplotlib.pyplot as plt

    rungs = list(dict.fromkeys(table.rung))
    fig, ax = plt.subplots(figsize=(1.6 * len(rungs) + 3, 4))
    for k, entry in enumerate(e for e in order if e in set(table.entry)):
        mine = table[table.entry == entry].set_index("rung").reindex(rungs)
        x = [i + (k - len(order) / 2) * 0.04 for i in range(len(rungs))]  # side by side, whiskers visible
        err = [
            (mine.accuracy - mine.ci95_low).clip(lower=0).fillna(0),
            (mine.ci95_high - mine.accuracy).clip(lower=0).fillna(0),
        ]
        ax.errorbar(x, mine.accuracy, yerr=err, marker="o", capsize=3, label=entry)
    ax.set_xticks(range(len(rungs)), rungs, rotation=15)
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: random split → grouped split → external sets")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
