"""A referral threshold with a stated guarantee, chosen on evidence that did not pick the run.

The promise: with probability at least 1 - delta (over the evidence drawn), the tiles the threshold keeps on
new tile groups are at least `target` right. Tile groups, not tiles, are the unit of evidence: tiles of one
group are near copies (LC25000 augmented each original ~20 times), so 2,000 tiles of 100 groups are 100
pieces of evidence, not 2,000.

The rule is Learn-then-Test (Angelopoulos, Bates et al. 2021) for selective classification:
- a candidate threshold t keeps the tiles of confidence >= t; each group with a kept tile contributes its
  kept-tile error share r_g in [0, 1] (so a group counts once however many copies it holds);
- H_t: "the mean kept error share over new groups exceeds alpha = 1 - target" is tested with the
  Hoeffding-Bentkus p-value of the r_g (valid for any [0, 1] losses of independent groups, finite samples);
- candidates are tested in a fixed sequence from the most confident down (candidates are the evidence's
  confidence quantiles: confidences only, never correctness), starting at the first that keeps enough groups
  for any rejection (log delta / log(1 - alpha): 299 for 99% at delta 0.05, also a count of confidences
  only), and the search stops at the first one that cannot be rejected at level delta; the lowest rejected
  threshold is certified. The fixed sequence keeps the family-wise error at delta with no Bonferroni cost.
Where no candidate is certified, the model refers every tile and says so in one line.

The old rule (the lowest confidence whose kept tiles were >= target right on the valid part, tiles as the unit)
is `referral.threshold`; `tests/results/test_certify.py` simulates both on group-correlated data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

TARGET, DELTA = 0.99, 0.05  # experiment keys refer_target, refer_delta
CANDIDATES = 200  # confidence quantiles tested, most confident first


@dataclass(frozen=True)
class Certified:
    threshold: float | None  # keep tiles with calibrated confidence >= threshold; None: refer every tile
    target: float
    delta: float
    evidence_groups: int  # tile groups the evidence held
    evidence_tiles: int
    kept_groups: int  # groups with a kept tile at the threshold (0 when none certified)
    evidence_kept: float  # share of evidence tiles kept
    evidence_kept_accuracy: float | None  # their accuracy (the point estimate; the promise is the bound)
    p_value: float | None  # of the certified threshold's test
    message: str  # one line for a person: what is promised, or why nothing is

    def as_dict(self) -> dict:
        return asdict(self)


def hb_p_value(losses: np.ndarray, alpha: float) -> float:
    """Hoeffding-Bentkus p-value of H0: mean loss > alpha, for independent losses in [0, 1] (LTT, eq. 11)."""
    n = len(losses)
    if n == 0:
        return 1.0
    r = float(np.mean(losses))
    if r >= alpha:
        return 1.0

    def h1(a, b):  # the Bernoulli KL divergence kl(a || b), a <= b
        return (a * math.log(a / b) if a > 0 else 0.0) + (1 - a) * math.log((1 - a) / (1 - b))

    hoeffding = math.exp(-n * h1(r, alpha))
    bentkus = math.e * float(stats.binom.cdf(math.ceil(n * r), n, alpha))
    return min(1.0, hoeffding, bentkus)


def group_losses(kept: np.ndarray, wrong: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's kept-tile error share, over the groups with at least one kept tile."""
    k = np.bincount(codes, weights=kept.astype(float), minlength=n_groups)
    e = np.bincount(codes, weights=(kept & wrong).astype(float), minlength=n_groups)
    has = k > 0
    return e[has] / k[has]


def certify(
    confidence: np.ndarray, correct: np.ndarray, groups, target: float = TARGET, delta: float = DELTA
) -> Certified:
    """The lowest threshold the fixed-sequence test certifies on this evidence (calibrated confidences)."""
    conf, right = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups)))
    n_groups, alpha = len(uniques), 1 - target
    need = math.ceil(math.log(delta) / math.log(1 - alpha))  # kept groups that even error-free evidence needs
    candidates = np.unique(np.quantile(conf, np.linspace(1, 0, CANDIDATES)))[::-1] if len(conf) else []
    best, best_p = None, None
    for t in candidates:
        losses = group_losses(conf >= t, ~right, codes, n_groups)
        if len(losses) < need:  # too few groups to reject anything yet: the sequence starts below
            continue
        p = hb_p_value(losses, alpha)
        if p > delta:
            break
        best, best_p = float(t), p
    kept = conf >= best if best is not None else np.zeros(len(conf), bool)
    kept_groups = int(len(np.unique(codes[kept])))
    share, acc = float(kept.mean()) if len(kept) else 0.0, float(right[kept].mean()) if kept.any() else None
    if best is None:
        message = (
            f"cannot certify {target:.0%} on {n_groups} tile groups (at {1 - delta:.0%} confidence; even "
            f"error-free evidence needs {need} kept groups): refers every tile / name a lower refer_target "
            f"or bring more labelled groups"
        )
    else:
        message = (
            f"certified: tiles at calibrated confidence >= {best:.4f} are >= {target:.0%} right on new tile "
            f"groups with probability >= {1 - delta:.0%} (evidence: {n_groups} groups; keeps {share:.0%} "
            f"of its tiles)"
        )
    return Certified(best, target, delta, n_groups, int(len(conf)), kept_groups, share, acc, best_p, message)


def folds(groups, k: int = 5, seed: int = 0) -> np.ndarray:
    """A fold number per row, whole tile groups per fold (scikit-learn's GroupKFold, groups shuffled by `seed`);
    fewer folds where there are fewer groups, and one fold (all zeros) for a single group."""
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups)
    n = min(k, len(pd.unique(groups)))
    out = np.zeros(len(groups), dtype=int)
    if n >= 2:
        for f, (_, held) in enumerate(GroupKFold(n, shuffle=True, random_state=seed).split(groups, groups=groups)):
            out[held] = f
    return out
