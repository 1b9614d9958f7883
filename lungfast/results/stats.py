"""Is #1 really better than #2? Seed spread, confidence intervals and a paired test on the same images.

SciPy does the statistics: a t interval over runs, and for the paired comparison a permutation test and a
bootstrap interval over test images (paired: both backbones are scored on the very same tiles).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from lungfast import files
from lungfast.results.layout import RunDir


def t_interval(values: pd.Series, level: float = 0.95) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    sem = values.std(ddof=1) / math.sqrt(n)
    if sem == 0:
        return float(values.mean()), float(values.mean())
    low, high = stats.t.interval(level, n - 1, loc=values.mean(), scale=sem)
    return float(low), float(high)


def t_quantile(n: int, level: float = 0.95) -> float:
    """The two-sided t quantile for n values (n - 1 degrees of freedom)."""
    return float(stats.t.ppf(0.5 + level / 2, n - 1)) if n > 1 else math.nan


def per_image_correct(runs: pd.DataFrame) -> pd.Series:
    """Share of a backbone's runs that got each (split_seed, test image) right, averaged over seeds."""
    frames = []
    for run in runs.itertuples():
        p = files.read_csv(RunDir(run.run_dir).test_predictions, usecols=["path", "actual", "predicted"])
        frames.append(p.assign(split_seed=run.split_seed, correct=(p.actual == p.predicted).astype(float)))
    return pd.concat(frames).groupby(["split_seed", "path"]).correct.mean()


def paired_comparison(first: str, second: str, runs: pd.DataFrame, seed: int = 0, key: str = "backbone") -> dict:
    """#1 vs #2 (values of runs[key]) on the same test images: accuracy difference, its 95% bootstrap CI,
    permutation p-value."""
    a = per_image_correct(runs[runs[key] == first])
    b = per_image_correct(runs[runs[key] == second])
    a, b = a.align(b, join="inner")
    diff = float(a.mean() - b.mean())
    out = {
        "first": first,
        "second": second,
        "n_images": int(len(a)),
        "difference": diff,
        "ci95_low": math.nan,
        "ci95_high": math.nan,
        "p_value": 1.0,
    }
    if len(a) >= 2 and (a != b).any():
        statistic = lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis)  # noqa: E731
        rng = np.random.default_rng(seed)
        perm = stats.permutation_test(
            (a.to_numpy(), b.to_numpy()), statistic, permutation_type="samples", n_resamples=9999, rng=rng
        )
        boot = stats.bootstrap((a.to_numpy(), b.to_numpy()), statistic, paired=True, n_resamples=9999, rng=rng)
        out.update(
            p_value=float(perm.pvalue),
            ci95_low=float(boot.confidence_interval.low),
            ci95_high=float(boot.confidence_interval.high),
        )
    out["verdict"] = (
        f"#1 {first} is better than #2 {second}"
        if out["p_value"] < 0.05 and diff > 0
        else f"no evidence that #1 {first} beats #2 {second}"
    )
    return out


def describe(c: dict) -> str:
    return (
        f"Paired test, #1 {c['first']} vs #2 {c['second']} on the same {c['n_images']} test images: "
        f"accuracy difference {c['difference']:+.4f} (95% bootstrap CI {c['ci95_low']:+.4f} to "
        f"{c['ci95_high']:+.4f}), paired permutation p = {c['p_value']:.4f}: {c['verdict']} (at 0.05)."
    )


def balanced_accuracy(t: np.ndarray, p: np.ndarray, n_classes: int) -> float:
    """sklearn's balanced accuracy (mean recall over the classes present in `t`) on integer codes, without its
    input checks: a bootstrap computes it once per resample."""
    support = np.bincount(t, minlength=n_classes)
    hits = np.bincount(t[t == p], minlength=n_classes)
    return float(np.mean(hits[support > 0] / support[support > 0]))


RESAMPLES = 500  # the tile-group bootstrap's default (experiment key bootstrap_resamples)


def group_bootstrap(
    statistic, groups: pd.Series, strata: pd.Series | None = None, n_resamples: int = RESAMPLES, seed: int = 0
) -> list[tuple[float, float]]:
    """95% percentile intervals of `statistic(row_mask_indices) -> list of figures` over test rows, resampling
    whole tile groups (SciPy's bootstrap over group ids): copies of one tile are not independent evidence.
    With `strata` (each row's class), groups are resampled within their class (SciPy resamples each sample
    on its own), so every resample holds every class and a per-class figure (sensitivity) is always defined."""
    codes, uniques = pd.factorize(groups)
    rows_of = [np.flatnonzero(codes == g) for g in range(len(uniques))]

    def on_groups(*picked):
        return np.asarray(statistic(np.concatenate([rows_of[int(g)] for p in picked for g in p])), dtype=float)

    if len(uniques) < 2:
        return [(math.nan, math.nan)] * len(on_groups(np.arange(len(uniques))))
    samples = (np.arange(len(uniques)),)
    if strata is not None:
        stratum = np.asarray(strata)[[rows[0] for rows in rows_of]]  # a group lies in one class
        by_class = tuple(np.flatnonzero(stratum == s) for s in pd.unique(stratum))
        if all(len(s) >= 2 for s in by_class):  # SciPy resamples a sample of two or more
            samples = by_class
    res = stats.bootstrap(
        samples,
        on_groups,
        vectorized=False,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high)
    return [(float(a), float(b)) for a, b in zip(low, high)]
