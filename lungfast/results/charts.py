"""The report's comparison charts, drawn from an experiment's `Summary`: entries by test accuracy with
their 95% interval whiskers, one chart per input shift comparing entries over the severities, and accuracy
against inference speed with the Pareto front (the deploy choice: nothing both faster and more accurate)."""

from __future__ import annotations

import pandas as pd

from lungfast.results.layout import RunDir
from lungfast.results.summary import Summary


def comparison(s: Summary):
    """Test accuracy per entry (best on top) with the leaderboard's 95% interval as whiskers."""
    import matplotlib.pyplot as plt

    t = s.table.iloc[::-1]
    labels = [e.replace("/", " / ") for e in t.entry]
    low = (t.test_accuracy - t.ci95_low).clip(lower=0).fillna(0)
    high = (t.ci95_high - t.test_accuracy).clip(lower=0).fillna(0)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(t) + 1.4))
    ax.errorbar(t.test_accuracy, range(len(t)), xerr=[low, high], fmt="o", capsize=4)
    if "shifted_accuracy" in t and t.shifted_accuracy.notna().any():
        ax.plot(t.shifted_accuracy, range(len(t)), "x", color="tab:red", label="under shifts (middle severity)")
        ax.legend(fontsize=8, loc="lower left")
    ax.set_yticks(range(len(t)), labels)
    ax.set_xlabel(f"test accuracy, {s.scheme} scheme (95% interval: see ci_kind)")
    ax.set_title(f"{s.exp.name}: backbones compared")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def robustness_table(s: Summary) -> pd.DataFrame | None:
    """Mean accuracy per entry, shift and severity over the ranked runs that were swept."""
    frames = []
    for entry, run_dir in zip(s.ranked_runs.entry, s.ranked_runs.run_dir):
        f = RunDir(run_dir).robustness
        if f.is_file():
            frames.append(pd.read_csv(f).assign(entry=entry))
    if not frames:
        return None
    return pd.concat(frames).groupby(["entry", "shift", "severity"], sort=False).accuracy.mean().reset_index()


def per_shift(s: Summary) -> dict[str, object]:
    """shift -> figure: accuracy vs severity, one line per entry (severity 0: the same tiles unshifted)."""
    import matplotlib.pyplot as plt

    table = robustness_table(s)
    if table is None:
        return {}
    clean = table[table.severity == 0].set_index("entry").accuracy
    out = {}
    for shift, g in table[table.severity > 0].groupby("shift", sort=False):
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for entry in s.entries:
            mine = g[g.entry == entry]
            if len(mine):
                ax.plot([0, *mine.severity], [clean.get(entry), *mine.accuracy], marker="o", label=entry)
        ax.set_xticks(sorted({0, *g.severity}), ["none", *map(str, sorted(set(g.severity)))])
        ax.set_xlabel("severity")
        ax.set_ylabel("test accuracy")
        ax.set_title(shift)
        ax.legend(fontsize=7)
        fig.tight_layout()
        out[shift] = fig
    return out


def pareto_front(speed: pd.Series, accuracy: pd.Series) -> pd.Series:
    """True for the entries no other entry beats on both speed and accuracy (ties on one, better on the other)."""
    return pd.Series(
        [not ((speed >= s) & (accuracy >= a) & ((speed > s) | (accuracy > a))).any() for s, a in zip(speed, accuracy)],
        index=speed.index,
    )


def accuracy_vs_speed(s: Summary, column: str = "infer_img_per_s_b64"):
    """Test accuracy against inference images per second (log scale), the Pareto front joined and labelled;
    None when the runs carry no throughput (records written before it was measured)."""
    import matplotlib.pyplot as plt

    t = s.table
    if column not in t or t[column].isna().all():
        return None
    t = t[t[column].notna()]
    front = pareto_front(t[column], t.test_accuracy)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.scatter(t[column][~front], t.test_accuracy[~front], color="tab:gray", label="dominated")
    edge = t[front].sort_values(column)
    ax.plot(edge[column], edge.test_accuracy, "o-", color="tab:blue", label="Pareto front")
    for _, row in t.iterrows():
        ax.annotate(row.entry, (row[column], row.test_accuracy), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"inference images per second ({column.rsplit('_', 1)[-1]}, this machine, run's precision)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{s.exp.name}: accuracy against speed")
    ax.margins(x=0.15, y=0.2)  # room for the labels at the edges
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
