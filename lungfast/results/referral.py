"""Knowing when to refer: a run's risk-coverage curve and what its referral threshold does.

Tiles are ordered by calibrated confidence (top-label probability); keeping the most confident share
`coverage` gives the accuracy of the kept tiles. The threshold is certified on the run's evidence
(`results.certify`: a stated promise over new tile groups), then read on the test part and on every external
set: the share of tiles it keeps, their accuracy with a tile-group bootstrap interval, and whether that meets
the target. Below it, `predict` and the app say "refer to a pathologist".

`threshold` is the rule lungfast used before #26 (the lowest confidence whose kept tiles are >= the target on
one part, tiles as the unit): kept for the simulation that shows it breaks its promise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lungfast import files
from lungfast.results import certify, stats
from lungfast.results.layout import RunDir

TARGET = certify.TARGET


def curve(confidence: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """threshold, coverage, accuracy of the tiles with confidence >= threshold, one row per distinct
    confidence (ties are kept or referred together), most confident first."""
    order = np.argsort(-confidence, kind="stable")
    conf, right = np.asarray(confidence)[order], np.asarray(correct, dtype=float)[order]
    n = len(conf)
    last = np.r_[conf[1:] != conf[:-1], True] if n else np.array([], bool)  # the end of each tie
    kept = np.arange(1, n + 1)[last]
    return pd.DataFrame(
        {"threshold": conf[last], "coverage": kept / max(n, 1), "accuracy": np.cumsum(right)[last] / kept}
    )


def threshold(confidence: np.ndarray, correct: np.ndarray, target: float = TARGET) -> float | None:
    """The lowest confidence that keeps accuracy >= target on these tiles; None if no share reaches it."""
    c = curve(confidence, correct)
    ok = c[c.accuracy >= target]
    return float(ok.threshold.iloc[-1]) if len(ok) else None


def at(confidence: np.ndarray, correct: np.ndarray, t: float | None) -> tuple[float, float | None]:
    """(coverage, accuracy of the kept tiles) at threshold t; None keeps nothing."""
    kept = np.zeros(len(confidence), bool) if t is None else np.asarray(confidence) >= t
    return float(kept.mean()) if len(kept) else 0.0, float(np.asarray(correct)[kept].mean()) if kept.any() else None


def kept_figures(
    confidence: np.ndarray,
    correct: np.ndarray,
    groups,
    t: float | None,
    target: float,
    n_resamples: int = stats.RESAMPLES,
) -> dict:
    """What threshold t does to labelled tiles: share kept, their accuracy with a 95% bootstrap interval over
    tile groups, and whether it meets the target (None where nothing is kept)."""
    share, accuracy = at(confidence, correct, t)
    kept = np.zeros(len(confidence), bool) if t is None else np.asarray(confidence) >= t
    ci = (math.nan, math.nan)
    if kept.any():
        right = np.asarray(correct, dtype=float)[kept]
        ci = stats.group_bootstrap(
            lambda ix: [right[ix].mean()], pd.Series(np.asarray(groups)[kept]), None, n_resamples
        )[0]
    return {
        "kept": share,
        "accuracy_kept": accuracy,
        "accuracy_kept_ci95": list(ci),
        "met": None if accuracy is None else bool(accuracy >= target),
    }


def record(
    cert: certify.Certified,
    evidence: str,
    ev_conf: np.ndarray,
    ev_correct: np.ndarray,
    test: pd.DataFrame,
    stage: RunDir,
    title: str,
    n_resamples: int = stats.RESAMPLES,
) -> dict:
    """The referral figures for the record: the certified threshold and its evidence, then what it does on the
    test part (test: the run's calibrated predictions with its tile groups), and the figure."""
    test_conf, test_correct = test.probability.to_numpy(), (test.actual == test.predicted).to_numpy()
    on_test = kept_figures(test_conf, test_correct, test.group_id, cert.threshold, cert.target, n_resamples)
    files.save_figure(
        figure(curve(test_conf, test_correct), curve(ev_conf, ev_correct), cert.threshold, title, cert.target),
        stage.figure("risk_coverage.png"),
    )
    return {
        "referral": {**cert.as_dict(), "evidence": evidence, "test": on_test},
        "refer_kept": on_test["kept"],
        "refer_kept_accuracy": on_test["accuracy_kept"],
    }


def figure(test: pd.DataFrame, evidence: pd.DataFrame, t: float | None, title: str, target: float = TARGET):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(evidence.coverage, evidence.accuracy, where="post", linestyle="--", label="evidence (certifies)")
    ax.step(test.coverage, test.accuracy, where="post", label="test part")
    ax.axhline(target, color="grey", linewidth=0.8)
    if t is not None:
        kept = test[test.threshold >= t]
        if len(kept):
            ax.plot(
                kept.coverage.iloc[-1],
                kept.accuracy.iloc[-1],
                "o",
                color="black",
                label=f"threshold {t:.3f}: keeps {kept.coverage.iloc[-1]:.0%}",
            )
    ax.set_xlabel("coverage (share of tiles kept, most confident first)")
    ax.set_ylabel("accuracy of the kept tiles")
    ax.set_title(f"{title}: risk-coverage")
    ax.legend(fontsize=8)
    return fig
