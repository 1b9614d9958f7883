"""The extra leaderboard tables protocols fill (`lungfast.protocols`, fields `tables` and `column`): which
protocol lands in which table is read from the protocol registry, never from its name."""

from __future__ import annotations

import pandas as pd

from lungfast import protocols


def _value(rec: pd.Series, path: str):
    """A record value by dotted path ("test_accuracy", "probe.knn1_test_accuracy")."""
    head, _, rest = path.partition(".")
    v = rec.get(head)
    return v.get(rest) if rest and isinstance(v, dict) else v


def _members(table: str) -> list[protocols.Protocol]:
    return [p for p in protocols.REGISTRY.values() if table in p.tables]


def frozen_features(runs: pd.DataFrame) -> pd.DataFrame | None:
    """Each frozen-features protocol's figure per backbone and scheme (1-NN, linear), as LC25000-clean publishes
    them: mean ± std over split seeds."""
    rows = {}
    for p in _members("frozen_features"):
        header, path = p.column
        mine = runs[runs.protocol == p.name]
        mine = mine.assign(value=[_value(r, path) for _, r in mine.iterrows()])
        for (backbone, scheme), g in mine.groupby(["backbone", "scheme"]):
            v = g.groupby("split_seed").value.mean()  # these do not depend on the training seed
            text = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
            rows.setdefault(backbone, {"backbone": backbone})[f"{header} {scheme}"] = f"{text} (n={len(v)})"
    return pd.DataFrame(list(rows.values())).fillna("–") if rows else None


def few_shot(runs: pd.DataFrame) -> pd.DataFrame | None:
    few = runs[runs.protocol.isin([p.name for p in _members("few_shot")])]
    if not len(few):
        return None
    rows = []
    for (backbone, scheme), g in few.groupby(["backbone", "scheme"]):
        row = {"backbone": backbone, "scheme": scheme, "n": g.split_seed.nunique()}
        for k in sorted({k for p in g.probe for k in p.get("shots", {})}, key=int):
            row[f"{k}-shot"] = f"{pd.Series([p['shots'][k]['mean'] for p in g.probe if k in p['shots']]).mean():.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


# name (as protocols name it in `tables`) -> (title, runs -> table or None)
TABLES = {
    "frozen_features": (
        "Frozen features, test accuracy mean ± std over split seeds (LC25000-clean's columns)",
        frozen_features,
    ),
    "few_shot": ("Few-shot (SimpleShot), test accuracy: mean over split seeds of the mean over 100 episodes", few_shot),
}


def markdown(runs: pd.DataFrame) -> str:
    """Every table the protocols that ran fill, as markdown sections."""
    text = ""
    for name in dict.fromkeys(t for p in runs.protocol.unique() for t in protocols.get(p).tables):
        title, make = TABLES[name]
        table = make(runs)
        if table is not None:
            text += f"\n{title}:\n\n" + table.to_markdown(index=False) + "\n"
    return text
