"""Test-part evaluation of a trained learner: one pass of predictions, then sklearn metrics and figures.

The clinical pair (cancer sensitivity, benign specificity) treats the experiment's `benign_classes` (LC25000:
lung_n) as benign and every other class as cancer; with no benign class among the classes, or no other class,
there is no pair and its figures are None, never a number of the wrong question.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm

from lungfast import files
from lungfast.results import calibration, saliency, stats
from lungfast.results.layout import RunDir

BENIGN = ("lung_n",)  # LC25000's benign class, the default of `benign_classes`


def clinical_pair(vocab: list[str], benign) -> bool:
    """Whether the classes split into a benign side and a cancer side."""
    return 0 < len(set(benign) & set(vocab)) < len(vocab)


def predictions(learn, rows: pd.DataFrame) -> pd.DataFrame:
    """path (the original file), actual, predicted, loss, probability (of the prediction), one column per class:
    the rows' files through the learner's inference pipeline (what `predict` does), labels from `rows.label`
    (an external set's folders need not be named like the classes)."""
    from lungfast.data import loaders

    vocab = list(learn.dls.vocab)
    probs = learn.get_preds(dl=loaders.inference(learn.dls.test_dl(rows.path.tolist())))[0]
    targs = torch.tensor(rows.label.map({c: i for i, c in enumerate(vocab)}).to_numpy(dtype="int64"))
    losses = -torch.log(probs.gather(1, targs[:, None])[:, 0].clamp_min(1e-12))  # cross-entropy, per image
    return as_table(probs, targs, losses, vocab, rows.path.tolist())


def as_table(
    probs: torch.Tensor, targs: torch.Tensor, losses: torch.Tensor, vocab: list[str], paths: list[str]
) -> pd.DataFrame:
    pred = probs.argmax(dim=1)
    df = pd.DataFrame(
        {
            "path": list(paths),
            "actual": [vocab[t] for t in targs],
            "predicted": [vocab[p] for p in pred],
            "loss": losses.numpy(),
            "probability": probs.max(dim=1).values.numpy(),
        }
    )
    return pd.concat([df, pd.DataFrame(probs.numpy(), columns=vocab)], axis=1)


def test_metrics(preds: pd.DataFrame, vocab: list[str], benign=BENIGN) -> dict:
    y, yhat, probs = preds.actual, preds.predicted, preds[vocab].to_numpy()
    p, r, f, support = skm.precision_recall_fscore_support(y, yhat, labels=vocab, zero_division=0)
    out = {
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, c in enumerate(vocab)
        },
        "macro_f1": float(skm.f1_score(y, yhat, labels=vocab, average="macro", zero_division=0)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, yhat)),
        "confusion_matrix": skm.confusion_matrix(y, yhat, labels=vocab).tolist(),
        "roc_auc_ovr": None,
        "cancer_sensitivity": None,
        "benign_specificity": None,
    }
    if y.nunique() == len(vocab):  # AUC needs every class in the test part
        out["roc_auc_ovr"] = roc_auc(y, probs, vocab)
    if clinical_pair(vocab, benign):
        cancer, called = (~y.isin(list(benign))).to_numpy(), (~yhat.isin(list(benign))).to_numpy()
        out["cancer_sensitivity"] = float(skm.recall_score(cancer, called, zero_division=0))
        out["benign_specificity"] = float(skm.recall_score(~cancer, ~called, zero_division=0))
    return out


def roc_auc(y: pd.Series, probs: np.ndarray, vocab: list[str]) -> float:
    """One-vs-rest ROC-AUC; with two classes, scikit-learn wants the second class's score alone."""
    probs = probs / probs.sum(1, keepdims=True)
    if len(vocab) == 2:
        return float(skm.roc_auc_score((y == vocab[1]).to_numpy(), probs[:, 1]))
    return float(skm.roc_auc_score(y, probs, multi_class="ovr", labels=vocab))


def write_figures(learn, tdl, preds: pd.DataFrame, stage: RunDir, title: str) -> None:
    import matplotlib.pyplot as plt
    from fastai.interpret import ClassificationInterpretation

    vocab = list(learn.dls.vocab)
    cm = skm.ConfusionMatrixDisplay.from_predictions(
        preds.actual, preds.predicted, labels=vocab, cmap="Blues", colorbar=False
    )
    cm.ax_.set_title(f"{title}: test part")
    files.save_figure(cm.figure_, stage.figure("confusion_matrix.png"))

    interp = ClassificationInterpretation(learn, tdl, torch.tensor(preds.loss.to_numpy()))
    interp.plot_top_losses(min(9, len(preds)), figsize=(9, 9))  # 300 px a tile: a 224 px tile loses nothing
    files.save_figure(plt.gcf(), stage.figure("top_losses.png"))  # fastai's plots return None

    history = pd.read_csv(stage.history)
    ax = history[["train_loss", "valid_loss"]].astype(float).plot(marker="o", title=f"{title}: loss")
    if "setting" in history:  # a probe: one row per setting tried (C, k, shots), not per epoch
        ax.set_xticks(range(len(history)), history.setting.astype(str))
    ax.set_xlabel("setting" if "setting" in history else "epoch")
    files.save_figure(ax.figure, stage.figure("loss.png"))

    files.save_figure(saliency.figure(learn, preds), stage.figure("saliency.png"))


def calibration_record(preds: pd.DataFrame, vocab: list[str], temperature: float, stage: RunDir, title: str) -> dict:
    """Test-part calibration before and after the temperature (`preds` hold the calibrated probabilities),
    and the reliability diagram."""
    y = preds.actual.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    after = preds[vocab].to_numpy(dtype=float, copy=True)
    before = torch.softmax(torch.log(torch.as_tensor(after).clamp_min(1e-12)) * temperature, 1).numpy()
    files.save_figure(
        calibration.reliability_figure(before, after, y, temperature, title), stage.figure("reliability.png")
    )
    b, a = calibration.scores(before, y), calibration.scores(after, y)
    return {
        "calibration": {"temperature": temperature, "before": b, "after": a, "bins": calibration.BINS},
        "ece": b["ece"],
        "ece_calibrated": a["ece"],
    }


CI_FIGURES = ["test_accuracy", "balanced_accuracy", "cancer_sensitivity", "benign_specificity", "ece_calibrated"]


def test_intervals(
    preds: pd.DataFrame, vocab: list[str], groups: pd.Series, benign=BENIGN, n_resamples: int = stats.RESAMPLES
) -> dict:
    """95% intervals of the test figures from a bootstrap over the test part's tile groups, within each class
    (over all groups at once where a group holds several classes, e.g. a patient's normal and tumour tiles)."""
    y = preds.actual.to_numpy()
    yhat = preds.predicted.to_numpy()
    probs = preds[vocab].to_numpy(dtype=float)
    yi = pd.Series(y).map({c: i for i, c in enumerate(vocab)}).to_numpy()
    pi = pd.Series(yhat).map({c: i for i, c in enumerate(vocab)}).to_numpy()
    is_cancer, called_cancer = ~np.isin(y, list(benign)), ~np.isin(yhat, list(benign))

    def figures(ix):  # once per resample (500 by default): integer codes, no per-call validation
        t, p, cancer, called = yi[ix], pi[ix], is_cancer[ix], called_cancer[ix]
        return [
            float((t == p).mean()),
            stats.balanced_accuracy(t, p, len(vocab)),
            float(called[cancer].mean()) if cancer.any() else np.nan,
            float((~called)[~cancer].mean()) if (~cancer).any() else np.nan,
            calibration.ece(probs[ix], t),
        ]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample may hold one class: SciPy and torchmetrics warn once per resample
        one_class = (pd.DataFrame({"g": groups.to_numpy(), "y": y}).groupby("g").y.nunique() == 1).all()
        ci = dict(
            zip(CI_FIGURES, stats.group_bootstrap(figures, groups, preds.actual if one_class else None, n_resamples))
        )
    if not clinical_pair(vocab, benign):  # no benign class: no clinical pair, so no interval for one
        ci = {k: v for k, v in ci.items() if k not in ("cancer_sensitivity", "benign_specificity")}
    return {"test_ci95": ci}


def record_test(learn, tdl, preds: pd.DataFrame, stage: RunDir, title: str, benign=BENIGN) -> dict:
    """The test part's files and metrics from its predictions (`as_table`), however they were computed."""
    files.write_csv(stage.test_predictions, preds)
    review = preds.sort_values("loss", ascending=False)[["path", "actual", "predicted", "loss", "probability"]]
    files.write_csv(stage.top_losses, review)  # the review list for finding mislabelled tiles
    write_figures(learn, tdl, preds, stage, title)
    out = test_metrics(preds, list(learn.dls.vocab), benign)
    out["test_accuracy"] = float(np.mean(preds.actual == preds.predicted))
    out["test_loss"] = float(preds.loss.mean())
    return out
