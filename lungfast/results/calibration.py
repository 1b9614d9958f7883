"""Calibrated probabilities: does 0.9 mean right 9 times in 10? Per run, on the test part, before and after
temperature scaling (Guo et al., ICML 2017).

The temperature is fitted on the run's evidence (`run_end.Evidence`: out-of-fold predictions over the non-test
tile groups for frozen protocols, the calibration half of the valid part for fine-tuning), and kept only where
it lowers that evidence's ECE when each fold is calibrated by a temperature fitted on the other folds
(`choose`): a temperature that would make the shipped model worse calibrated is not folded in.

ECE and MCE (15 equal-width bins, top label) come from torchmetrics, NLL and Brier score from scikit-learn.
The temperature is folded into the model (the final Linear layer's weights, or a probe head's temperature),
so the exported learner gives calibrated probabilities and needs nothing new to load.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import brier_score_loss, log_loss
from torch import nn
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

BINS = 15


LOG_T_BOUND = 4.0  # temperatures are searched in [e^-4, e^4]


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) on these labelled logits."""
    logits, y = logits.float(), y.long()
    nll = lambda log_t: float(F.cross_entropy(logits / np.exp(log_t), y))  # noqa: E731
    return float(np.exp(minimize_scalar(nll, bounds=(-LOG_T_BOUND, LOG_T_BOUND), method="bounded").x))


def identifiable(logits: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether these tiles set a temperature at all: only if some are predicted right and some wrong. With every
    tile right the NLL keeps falling as T -> 0 (a fit makes the model arbitrarily overconfident, or stops
    wherever float32 saturates); with every tile wrong it keeps falling as T -> infinity."""
    right = int((logits.argmax(1) == y).sum())
    return 0 < right < len(y)


def choose(logits: torch.Tensor, y: torch.Tensor, folds: np.ndarray) -> tuple[float, dict]:
    """(temperature to fold in, what was measured): T fitted on all the evidence, kept only if cross-fitted
    temperatures (each fold's from the other folds) lower the evidence's ECE and every fit had tiles to set it
    (`identifiable`); else 1 (no scaling)."""
    logits, y = logits.float(), y.long()
    fits, identified = [fit_temperature(logits, y)], identifiable(logits, y)
    crossed = logits.clone()
    for f in np.unique(folds):
        mine = torch.as_tensor(folds == f)
        if (~mine).any():
            fits.append(fit_temperature(logits[~mine], y[~mine]))
            identified &= identifiable(logits[~mine], y[~mine])
            crossed[mine] = logits[mine] / fits[-1]
    yn = y.numpy()
    before = ece(torch.softmax(logits, 1).numpy(), yn)
    after = ece(torch.softmax(crossed, 1).numpy(), yn)
    kept = bool(identified and after < before)
    return (fits[0] if kept else 1.0), {
        "fitted_temperature": fits[0],
        "kept": kept,
        "identified": identified,
        "evidence_ece_uncalibrated": before,
        "evidence_ece_cross_fitted": after,
    }


def ece(probs: np.ndarray, y: np.ndarray, norm: str = "l1") -> float:
    """Expected (norm "l1") or maximum ("max") calibration error of the top label."""
    # copies: pandas 3 hands out read-only arrays, which torch refuses to wrap without a warning
    p, t = torch.tensor(np.asarray(probs, dtype=np.float32)), torch.tensor(np.asarray(y)).long()
    # validate_args=False: our own probabilities and labels; the checks cost 9 of 10 parts of a bootstrap resample
    return float(
        multiclass_calibration_error(p, t, num_classes=probs.shape[1], n_bins=BINS, norm=norm, validate_args=False)
    )


def scores(probs: np.ndarray, y: np.ndarray) -> dict:
    """ECE, MCE, NLL and Brier score of class probabilities (rows sum to 1) against integer labels."""
    labels = list(range(probs.shape[1]))
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(1, keepdims=True)  # float32 softmax rows can miss 1 by more than sklearn allows
    return {
        "ece": ece(probs, y),
        "mce": ece(probs, y, "max"),
        "nll": float(log_loss(y, probs, labels=labels)),
        "brier": float(brier_score_loss(y, probs, labels=labels)),
    }


def fold(model: nn.Module, temperature: float) -> None:
    """Divide the model's logits by `temperature`, inside the model: a probe head takes it as its own; a
    fastai head's final Linear layer gets its weights (and bias) divided."""
    head = model[1]
    if hasattr(head, "set_temperature"):
        head.set_temperature(temperature)
        return
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight /= temperature
        if last.bias is not None:
            last.bias /= temperature


def reliability_figure(before: np.ndarray, after: np.ndarray, y: np.ndarray, temperature: float, title: str):
    """Accuracy vs confidence per bin (top label), before and after temperature scaling."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    edges = np.linspace(0, 1, BINS + 1)
    for ax, probs, name in ((axes[0], before, "before"), (axes[1], after, f"after (T = {temperature:.2f})")):
        conf, right = probs.max(1), probs.argmax(1) == y
        which = np.clip(np.digitize(conf, edges[1:-1]), 0, BINS - 1)
        acc = [right[which == b].mean() if (which == b).any() else np.nan for b in range(BINS)]
        count = np.bincount(which, minlength=BINS)
        ax.bar(edges[:-1], acc, width=1 / BINS, align="edge", edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ax.set_title(f"{name}: ECE {ece(probs, y):.3f}")
        ax.set_xlabel("confidence (top label)")
        for b in range(BINS):
            if count[b]:
                ax.text(edges[b] + 0.5 / BINS, 0.02, str(count[b]), ha="center", fontsize=6, rotation=90)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left")
    fig.suptitle(f"{title}: reliability on the test part")
    return fig
