"""Scoring an external cohort with the model a run ships (calibrated), with the run's own figures.

The same numbers for `lungfast run` (every run, every `[[external]]` set) and for `lungfast evaluate MODEL
DATA_DIR`: accuracy and balanced accuracy with a group-bootstrap interval, recall per class, the clinical pair,
calibrated ECE, and what the run's referral threshold keeps (share of images, their accuracy).
"""

from __future__ import annotations

import math

import pandas as pd

from lungfast.results import calibration, evaluate, referral, stats


def figures(
    preds: pd.DataFrame,
    vocab: list[str],
    groups: pd.Series,
    benign,
    threshold: float | None,
    target: float = referral.TARGET,
    n_resamples: int = stats.RESAMPLES,
) -> dict:
    """preds: evaluate.as_table rows (calibrated); groups: each row's group (patient, tile group or the image);
    threshold: the model's certified referral threshold (None: it refers every tile), target: its promise."""
    metrics = evaluate.test_metrics(preds, vocab, benign)
    ci = evaluate.test_intervals(preds, vocab, groups.reset_index(drop=True), benign, n_resamples)["test_ci95"]
    correct = (preds.actual == preds.predicted).to_numpy()
    kept = referral.kept_figures(preds.probability.to_numpy(), correct, groups, threshold, target, n_resamples)
    yi = preds.actual.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    present = [c for c in vocab if (preds.actual == c).any()]
    return {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": metrics["balanced_accuracy"],
        "ci95": {"accuracy": ci["test_accuracy"], "balanced_accuracy": ci["balanced_accuracy"]},
        "recall": {c: metrics["per_class"][c]["recall"] for c in present},
        "support": {c: metrics["per_class"][c]["support"] for c in present},
        "cancer_sensitivity": metrics["cancer_sensitivity"],
        "benign_specificity": metrics["benign_specificity"],
        "ece_calibrated": float(calibration.ece(preds[vocab].to_numpy(dtype=float), yi)),
        "referral": {"threshold": threshold, "target": target, **kept},
    }


def score(ext, score_rows, vocab: list[str], benign, cert, out_csv, n_resamples: int = stats.RESAMPLES) -> dict:
    """An external set (data.external.External) through a run's `score` (cert: its certify.Certified); its
    predictions written to out_csv."""
    from lungfast import files

    preds = score_rows(ext.frame)
    files.write_csv(out_csv, preds.assign(folder=ext.frame.folder.to_numpy(), group_id=ext.frame.group_id.to_numpy()))
    return {
        **ext.facts(),
        **figures(preds, vocab, ext.frame.group_id, benign, cert.threshold, cert.target, n_resamples),
    }


def describe(name: str, f: dict) -> str:
    """One line for a terminal."""
    lo, hi = f["ci95"]["accuracy"]
    interval = f" (95% CI {lo:.3f}–{hi:.3f}, {f['n_groups']} groups)" if lo == lo else ""
    kept = f"; referral: {kept_text(f['referral'])}"
    return (
        f"{name}: accuracy {f['accuracy']:.3f}{interval}, balanced {f['balanced_accuracy']:.3f}, "
        f"ECE {f['ece_calibrated']:.3f}, n={f['n']}{kept}"
    )


def kept_text(r: dict) -> str:
    """What a referral threshold did on labelled tiles, in words (referral.kept_figures + threshold, target)."""
    target = r.get("target", referral.TARGET)
    if r.get("threshold") is None:
        return f"no threshold certified for {target:.0%}: every tile referred"
    if r.get("accuracy_kept") is None:
        return f"keeps no tile (threshold {r['threshold']:.4f})"
    lo, hi = r.get("accuracy_kept_ci95", (math.nan, math.nan))
    ci = f" (95% CI {lo:.3f}–{hi:.3f})" if lo == lo else ""
    return (
        f"keeps {r['kept']:.0%}, {r['accuracy_kept']:.3f} right{ci}: target {target:.0%} "
        f"{'met' if r['met'] else 'NOT met'}"
    )
