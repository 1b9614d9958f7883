"""The fits of the frozen-embedding protocols (`lungfast.protocols`), fitted on the train part, chosen on the
valid part, scored on the test part.

Every fit takes `only`: the setting an earlier fit chose ("C=0.1"), to refit that classifier alone on other
parts (the out-of-fold predictions that calibrate a probe, `probe.run.out_of_fold`).

- linear: logistic regression (scikit-learn) on standardised embeddings, its inverse regularisation C chosen
  on the valid part from `C_GRID` (Patho-Bench sweeps the cost the same way).
- knn: cosine k-NN; the run predicts with k = 20 (probabilities are the neighbours' shares) and records the
  1-NN test accuracy too, LC25000-clean's protocol.
- mlp: eva's MLP probe, one hidden layer trained with AdamW on minibatches; its epochs chosen on the valid
  loss (every `MLP_EVERY` epochs up to `MLP_EPOCHS`), the setting a refit trains for ("epochs=40").
- fewshot: SimpleShot (centred, L2-normalised embeddings, class centroids). The run's classifier uses every
  training image; `SHOTS` x `EPISODES` episodes drawn from the train part give the few-shot accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch.nn import functional as F

from lungfast.probe import heads
from lungfast.results import stats

C_GRID = (0.01, 0.1, 1.0, 10.0)
ABSENT = -30.0  # the logit of a class the training tiles lacked
K_MAIN, K_ONE = 20, 1
MLP_HIDDEN, MLP_EPOCHS, MLP_EVERY, MLP_BATCH, MLP_LR, MLP_WD = 256, 100, 10, 256, 1e-3, 1e-2
SHOTS, EPISODES = (1, 4, 16), 100


@dataclass
class Fit:
    classifier: torch.nn.Module  # embeddings -> logits
    history: list[dict]  # one row per setting tried: setting, train_loss, valid_loss, accuracy
    chosen: str  # the setting the run uses
    extra: dict = field(default_factory=dict)  # protocol-specific results, kept in the record's `probe`


def logits(clf: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return clf(torch.as_tensor(x, dtype=torch.float32))


def scores(clf, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(cross-entropy loss, accuracy) of a classifier on embeddings."""
    z = logits(clf, x)
    target = torch.as_tensor(y)
    return float(F.cross_entropy(z, target)), float((z.argmax(1) == target).float().mean())


def _row(setting, clf, parts) -> dict:
    (xt, yt), (xv, yv) = parts["train"], parts["valid"]
    train_loss, _ = scores(clf, xt, yt)
    valid_loss, acc = scores(clf, xv, yv)
    return {"setting": setting, "train_loss": train_loss, "valid_loss": valid_loss, "accuracy": acc}


def _best(rows: list[dict]) -> int:
    return max(range(len(rows)), key=lambda i: (rows[i]["accuracy"], -rows[i]["valid_loss"]))


def linear(parts: dict, n_classes: int, seed: int, only: str | None = None) -> Fit:
    (xt, yt) = parts["train"]
    scaler = StandardScaler().fit(xt)
    fitted, rows = [], []
    grid = [c for c in C_GRID if only in (None, f"C={c:g}")]
    seen = np.unique(yt)  # a fold of a small data set may lack a class: it is then never predicted
    for c in grid:
        w, b = np.zeros((n_classes, xt.shape[1])), np.full(n_classes, ABSENT)
        if len(seen) == 1:
            b[seen[0]] = 0.0
        else:
            lr = LogisticRegression(C=c, max_iter=300, random_state=seed).fit(scaler.transform(xt), yt)
            lw, lb = lr.coef_ / scaler.scale_, lr.intercept_ - (lr.coef_ * scaler.mean_ / scaler.scale_).sum(1)
            if len(seen) == 2:  # scikit-learn keeps one row for two classes: logits [0, z]
                lw, lb = np.vstack([np.zeros_like(lw), lw]), np.concatenate([[0.0], lb])
            w[seen], b[seen] = lw, lb
        clf = heads.Linear(xt.shape[1], n_classes)
        with torch.no_grad():
            clf.weight.copy_(torch.as_tensor(w, dtype=torch.float32))
            clf.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        fitted.append(clf)
        rows.append(_row(f"C={c:g}", clf, parts))
    i = _best(rows)
    return Fit(fitted[i], rows, rows[i]["setting"], {"C": grid[i]})


def knn(parts: dict, n_classes: int, seed: int, only: str | None = None) -> Fit:
    (xt, yt) = parts["train"]
    bank, labels = torch.as_tensor(xt, dtype=torch.float32), torch.as_tensor(yt)
    fits = {k: heads.KNN(bank, labels, n_classes, min(k, len(xt))) for k in (K_ONE, K_MAIN)}
    rows = [_row(f"k={k}", clf, parts) for k, clf in fits.items()]
    xs, ys = parts["test"]
    return Fit(fits[K_MAIN], rows, f"k={K_MAIN}", {"knn1_test_accuracy": scores(fits[K_ONE], xs, ys)[1]})


def mlp(parts: dict, n_classes: int, seed: int, only: str | None = None) -> Fit:
    (xt, yt) = parts["train"]
    torch.manual_seed(seed)
    clf = heads.MLP(xt.shape[1], MLP_HIDDEN, n_classes)
    clf.mean.copy_(torch.as_tensor(xt.mean(0), dtype=torch.float32))
    clf.scale.copy_(torch.as_tensor(xt.std(0) + 1e-6, dtype=torch.float32))
    x, y = torch.as_tensor(xt, dtype=torch.float32), torch.as_tensor(yt)
    opt = torch.optim.AdamW(clf.parameters(), lr=MLP_LR, weight_decay=MLP_WD)
    order = torch.Generator().manual_seed(seed)
    last = int(only.split("=")[1]) if only else MLP_EPOCHS
    rows, states = [], []
    for epoch in range(1, last + 1):
        clf.train()
        for batch in torch.randperm(len(x), generator=order).split(MLP_BATCH):
            opt.zero_grad()
            F.cross_entropy(clf(x[batch]), y[batch]).backward()
            opt.step()
        clf.eval()
        if only is None and epoch % MLP_EVERY == 0:
            rows.append(_row(f"epochs={epoch}", clf, parts))
            states.append({k: v.clone() for k, v in clf.state_dict().items()})
    if only is not None:
        return Fit(clf, [_row(only, clf, parts)], only)
    i = min(range(len(rows)), key=lambda i: (rows[i]["valid_loss"], -rows[i]["accuracy"]))
    clf.load_state_dict(states[i])
    return Fit(clf, rows, rows[i]["setting"], {"epochs": (i + 1) * MLP_EVERY, "hidden": MLP_HIDDEN})


def _centroids(x: np.ndarray, y: np.ndarray, mean: np.ndarray, n_classes: int) -> heads.Centroids:
    z = F.normalize(torch.as_tensor(x - mean, dtype=torch.float32), dim=1)
    y = torch.as_tensor(y)  # a class absent from these tiles gets a zero centroid: never the nearest by much
    c = torch.stack(
        [F.normalize(z[y == k].mean(0), dim=0) if (y == k).any() else torch.zeros(z.shape[1]) for k in range(n_classes)]
    )
    return heads.Centroids(torch.as_tensor(mean), c)


def fewshot(parts: dict, n_classes: int, seed: int, only: str | None = None) -> Fit:
    (xt, yt), (xs, ys) = parts["train"], parts["test"]
    if only is not None:  # a refit of the chosen classifier (cross-fitting): no episodes
        clf = _centroids(xt, yt, xt.mean(0), n_classes)
        return Fit(clf, [_row("all shots", clf, parts)], "all shots")
    mean = xt.mean(0)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(yt == k) for k in range(n_classes)]
    episodes = {}
    for shots in SHOTS:
        if min(len(ix) for ix in by_class) < shots:
            continue  # too few training images of some class for this many shots
        accs = []
        for _ in range(EPISODES):
            pick = np.concatenate([rng.choice(ix, shots, replace=False) for ix in by_class])
            accs.append(scores(_centroids(xt[pick], yt[pick], mean, n_classes), xs, ys)[1])
        low, high = stats.t_interval(pd.Series(accs))
        episodes[str(shots)] = {
            "mean": float(np.mean(accs)),
            "std": float(np.std(accs, ddof=1)),
            "ci95_low": low,
            "ci95_high": high,
            "values": accs,
        }
    clf = _centroids(xt, yt, mean, n_classes)
    return Fit(clf, [_row("all shots", clf, parts)], "all shots", {"episodes": EPISODES, "shots": episodes})
