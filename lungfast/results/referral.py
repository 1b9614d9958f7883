"""Knowing when to refer: a run's risk-coverage curve and the confidence threshold for 99% accuracy.

Tiles are ordered by calibrated confidence (top-label probability); keeping the most confident share
`coverage` gives the accuracy of the kept tiles. The threshold is chosen on the valid part (the lowest
confidence whose kept valid tiles are still >= 99% right), then read on the test part: the share of test
tiles it keeps and their accuracy. Below it, `predict` and the app say "refer to a pathologist".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungfast import files
from lungfast.results.layout import RunDir

TARGET = 0.99


def curve(confidence: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """threshold, coverage, accuracy of the tiles with confidence >= threshold, one row per distinct
    confidence (ties are kept or referred together), most confident first."""
    order = np.argsort(-confidence, kind="stable")
    conf, right = np.asarray(confidence)[order], np.asarray(correct, dtype=float)[order]
    n = len(conf)
    last = np.r_[conf[1:] != conf[:-1], True] if n else np.array([], bool)  # the end of each tie
    kept = np.arange(1, n + 1)[last]
    return pd.DataFrame({"threshold": conf[last], "coverage": kept / max(n, 1),
                         "accuracy": np.cumsum(right)[last] / kept})


def threshold(confidence: np.ndarray, correct: np.ndarray, target: float = TARGET) -> float | None:
    """The lowest confidence that keeps accuracy >= target on these tiles; None if no share reaches it."""
    c = curve(confidence, correct)
    ok = c[c.accuracy >= target]
    return float(ok.threshold.iloc[-1]) if len(ok) else None


def at(confidence: np.ndarray, correct: np.ndarray, t: float | None) -> tuple[float, float | None]:
    """(coverage, accuracy of the kept tiles) at threshold t; None keeps nothing."""
    kept = np.zeros(len(confidence), bool) if t is None else np.asarray(confidence) >= t
    return float(kept.mean()) if len(kept) else 0.0, float(np.asarray(correct)[kept].mean()) if kept.any() else None


def record(valid_conf: np.ndarray, valid_correct: np.ndarray, test: pd.DataFrame, stage: RunDir, title: str) -> dict:
    """The referral figures for the record (test: the run's calibrated test predictions), and the figure."""
    t = threshold(valid_conf, valid_correct)
    test_conf, test_correct = test.probability.to_numpy(), (test.actual == test.predicted).to_numpy()
    coverage, accuracy = at(test_conf, test_correct, t)
    valid_coverage, _ = at(valid_conf, valid_correct, t)
    files.save_figure(figure(curve(test_conf, test_correct), curve(valid_conf, valid_correct), t, title),
                       stage.figure("risk_coverage.png"))
    return {"referral": {"target_accuracy": TARGET, "threshold": t, "valid_coverage": valid_coverage,
                         "valid_n": int(len(valid_conf)), "test_coverage": coverage, "test_accuracy_kept": accuracy},
            "coverage_at_99": coverage}


def figure(test: pd.DataFrame, valid: pd.DataFrame, t: float | None, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(valid.coverage, valid.accuracy, where="post", linestyle="--", label="valid part")
    ax.step(test.coverage, test.accuracy, where="post", label="test part")
    ax.axhline(TARGET, color="grey", linewidth=0.8)
    if t is not None:
        kept = test[test.threshold >= t]
        if len(kept):
            ax.plot(kept.coverage.iloc[-1], kept.accuracy.iloc[-1], "o", color="black",
                    label=f"threshold {t:.3f}: keeps {kept.coverage.iloc[-1]:.0%}")
    ax.set_xlabel("coverage (share of tiles kept, most confident first)")
    ax.set_ylabel("accuracy of the kept tiles")
    ax.set_title(f"{title}: risk-coverage")
    ax.legend(fontsize=8)
    return fig
