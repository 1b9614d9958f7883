"""Scoring an external cohort with the model a run ships (calibrated), with the run's own figures.

The same numbers for `lungfast run` (every run, every `[[external]]` set) and for `lungfast evaluate MODEL
DATA_DIR`: accuracy and balanced accuracy with a group-bootstrap interval, recall per class, the clinical pair,
calibrated ECE, and what the run's referral threshold keeps (share of images, their accuracy).
"""

from __future__ import annotations

import pandas as pd

from lungfast.results import calibration, evaluate, referral


def figures(preds: pd.DataFrame, vocab: list[str], groups: pd.Series, benign, threshold: float | None) -> dict:
    """preds: evaluate.as_table rows (calibrated); groups: each row's group (patient, tile group or the image)."""
    metrics = evaluate.test_metrics(preds, vocab, benign)
    ci = evaluate.test_intervals(preds, vocab, groups.reset_index(drop=True), benign)["test_ci95"]
    correct = (preds.actual == preds.predicted).to_numpy()
    kept, kept_accuracy = referral.at(preds.probability.to_numpy(), correct, threshold)
    yi = preds.actual.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    present = [c for c in vocab if (preds.actual == c).any()]
    return {"accuracy": float(correct.mean()), "balanced_accuracy": metrics["balanced_accuracy"],
            "ci95": {"accuracy": ci["test_accuracy"], "balanced_accuracy": ci["balanced_accuracy"]},
            "recall": {c: metrics["per_class"][c]["recall"] for c in present},
            "support": {c: metrics["per_class"][c]["support"] for c in present},
            "cancer_sensitivity": metrics["cancer_sensitivity"], "benign_specificity": metrics["benign_specificity"],
            "ece_calibrated": float(calibration.ece(preds[vocab].to_numpy(dtype=float), yi)),
            "referral": {"threshold": threshold, "kept": kept, "accuracy_kept": kept_accuracy}}


def score(ext, score_rows, vocab: list[str], benign, threshold: float | None, out_csv) -> dict:
    """An external set (data.external.External) through a run's `score`; its predictions written to out_csv."""
    from lungfast import files

    preds = score_rows(ext.frame)
    files.write_csv(out_csv, preds.assign(folder=ext.frame.folder.to_numpy(), group_id=ext.frame.group_id.to_numpy()))
    return {**ext.facts(), **figures(preds, vocab, ext.frame.group_id, benign, threshold)}


def describe(name: str, f: dict) -> str:
    """One line for a terminal."""
    lo, hi = f["ci95"]["accuracy"]
    interval = f" (95% CI {lo:.3f}–{hi:.3f}, {f['n_groups']} groups)" if lo == lo else ""
    kept = (f"; referral keeps {f['referral']['kept']:.0%} at {f['referral']['accuracy_kept']:.3f}"
            if f["referral"]["accuracy_kept"] is not None else "")
    return (f"{name}: accuracy {f['accuracy']:.3f}{interval}, balanced {f['balanced_accuracy']:.3f}, "
            f"ECE {f['ece_calibrated']:.3f}, n={f['n']}{kept}")

