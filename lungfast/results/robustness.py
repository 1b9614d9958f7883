"""The robustness sweep: a run's test tiles re-scored under each input shift (`data.shifts`) at each severity.

`score(rows) -> predictions table` is the run's own way to predict (the fine-tuned learner, or a probe's
cached embeddings and head), so every protocol is swept the same way. Severity 0 is the clean sample as
the run already scored it. The record keeps `robustness.csv` (shift, severity, setting, accuracy, ECE, n,
unchanged), the per-tile predictions under every shift (`robustness_predictions.csv`, for re-analysis)
and a figure; the leaderboard reads `shifted_accuracy` (mean over shifts at the middle severity) and
`worst_shift` (the shift with the lowest accuracy at the middle severity).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from lungfast import files
from lungfast.data import shifts
from lungfast.results import calibration
from lungfast.results.layout import RunDir

log = logging.getLogger("lungfast")


def _figures(preds: pd.DataFrame, vocab: list[str]) -> tuple[float, float]:
    y = preds.actual.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    return float((preds.actual == preds.predicted).mean()), calibration.ece(preds[vocab].to_numpy(), y)


def sweep(
    score: Callable[[pd.DataFrame], pd.DataFrame],
    clean: pd.DataFrame,
    rows: pd.DataFrame,
    vocab: list[str],
    stage: RunDir,
    title: str,
) -> dict:
    """Re-score `rows` (the sampled test rows: path, label, group_id) under every shift and severity; `clean`
    holds the run's test predictions of those rows. Writes the tables and figure; returns record fields."""
    table, kept = [], []
    clean = clean.set_index("path").loc[rows.path].reset_index()
    acc, ece = _figures(clean, vocab)
    table.append(
        {"shift": "none", "severity": 0, "setting": "", "accuracy": acc, "ece": ece, "n": len(clean), "unchanged": 0}
    )
    kept.append(clean.assign(shift="none", severity=0))
    for shift in shifts.SHIFTS:
        for severity in shifts.SEVERITIES:
            shifted, unchanged = shifts.shifted_set(rows, shift, severity)
            preds = score(shifted).assign(path=rows.path.to_numpy())  # name the tile, not its shifted copy
            acc, ece = _figures(preds, vocab)
            table.append(
                {
                    "shift": shift,
                    "severity": severity,
                    "setting": str(shifts.SETTINGS[shift][severity]),
                    "accuracy": acc,
                    "ece": ece,
                    "n": len(preds),
                    "unchanged": unchanged,
                }
            )
            kept.append(preds.assign(shift=shift, severity=severity))
    table = pd.DataFrame(table)
    files.write_csv(stage.robustness, table)
    files.write_csv(stage.robustness_predictions, pd.concat(kept, ignore_index=True))
    files.save_figure(figure(table, title), stage.figure("robustness.png"))
    middle = table[table.severity == shifts.MIDDLE].set_index("shift").accuracy
    log.info(
        "%s: accuracy under shifts at severity %d: %s",
        title,
        shifts.MIDDLE,
        ", ".join(f"{s} {a:.3f}" for s, a in middle.items()),
    )
    return {
        "robustness": {
            "n": len(rows),
            "clean_accuracy": float(table.accuracy.iloc[0]),
            "middle_severity": shifts.MIDDLE,
            "middle": {k: float(v) for k, v in middle.items()},
            "settings": {k: {str(s): v for s, v in d.items()} for k, d in shifts.SETTINGS.items()},
            "sample_seed": shifts.SAMPLE_SEED,
        },
        "shifted_accuracy": float(middle.mean()),
        "worst_shift": str(middle.idxmin()),
        "worst_shift_accuracy": float(middle.min()),
    }


def figure(table: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    clean = float(table.accuracy.iloc[0])
    for shift, g in table[table.severity > 0].groupby("shift", sort=False):
        ax.plot([0, *g.severity], [clean, *g.accuracy], marker="o", label=shift)
    ax.set_xticks([0, *shifts.SEVERITIES], ["none", *map(str, shifts.SEVERITIES)])
    ax.set_xlabel("severity")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(max(0.0, float(np.nanmin(table.accuracy)) - 0.05), 1.0)
    ax.set_title(f"{title}: accuracy under input shifts (n={int(table.n.iloc[0])})")
    ax.legend(fontsize=8)
    return fig
