"""The referral promise, simulated: on confidence/correctness data drawn with tile-group correlation, the
certified threshold keeps its promise on fresh groups in at least 1 - delta of repetitions; the old rule
(the lowest valid-part confidence whose kept tiles were >= 99% right) does not."""

import math

import numpy as np
import pytest
from scipy.stats import binom

from lungfast.results import certify, referral


def draw(rng, n_groups: int, size: int = 20):
    """Tiles of groups that share a latent difficulty (u) and a group-level miscalibration (v): copies of one
    tile are right or wrong together, as LC25000's augmented copies are."""
    u, v = rng.normal(0, 1.5, n_groups), rng.normal(0, 1.0, n_groups)
    g = np.repeat(np.arange(n_groups), size)
    x = 6.0 + u[g] + rng.normal(0, 0.7, len(g))
    conf = 1 / 3 + 2 / 3 / (1 + np.exp(-x))
    correct = rng.random(len(g)) < 1 / (1 + np.exp(-(x + v[g] - 0.5)))
    return conf, correct, g


@pytest.fixture(scope="module")
def population():
    """Kept accuracy on new groups as a function of the threshold, from 50,000 fresh groups."""
    conf, correct, _ = draw(np.random.default_rng(1), 50_000)
    order = np.argsort(-conf)
    sc, right = conf[order], np.cumsum(correct[order])

    def kept_accuracy(t):
        k = np.searchsorted(-sc, -t, side="right")
        return right[k - 1] / k if k else 1.0

    return kept_accuracy


def test_the_certified_threshold_keeps_its_promise_and_the_old_rule_does_not(population):
    rng = np.random.default_rng(7)
    reps, target, delta = 60, 0.99, 0.05
    new_held, new_made, old_held = 0, 0, 0
    for _ in range(reps):
        c = certify.certify(*draw(rng, 1000), target=target, delta=delta)  # cross-fitted evidence: many groups
        if c.threshold is not None:
            new_made += 1
            new_held += population(c.threshold) >= target
        else:
            new_held += 1  # refers every tile: the promise holds vacuously
        conf, correct, _ = draw(rng, 60)  # the old rule on one valid part of ~60 groups
        old_held += population(referral.threshold(conf, correct, target) or 1.0) >= target
    assert new_held / reps >= 1 - delta
    assert new_made >= reps // 3  # not vacuous: it certifies a threshold in many repetitions
    assert old_held / reps < 0.75  # the point estimate on tiles misses the target most of the time


def test_few_groups_cannot_be_certified_and_say_so_in_one_line():
    conf, correct, groups = np.full(600, 0.99), np.ones(600, bool), np.repeat(np.arange(60), 10)
    c = certify.certify(conf, correct, groups)  # 600 tiles all right, but only 60 tile groups
    assert c.threshold is None and c.kept_groups == 0 and c.evidence_kept == 0.0
    assert c.message.startswith("cannot certify 99% on 60 tile groups") and "\n" not in c.message
    assert "299 kept groups" in c.message  # log(0.05) / log(0.99)
    many = certify.certify(np.full(3000, 0.99), np.ones(3000, bool), np.repeat(np.arange(300), 10))
    assert many.threshold == pytest.approx(0.99) and many.kept_groups == 300 and many.message.startswith("certified")


def test_hoeffding_bentkus_p_value_on_hand_checked_numbers():
    assert certify.hb_p_value(np.zeros(299), 0.01) == pytest.approx(0.99**299)  # Hoeffding: exactly binomial at 0
    assert certify.hb_p_value(np.zeros(298), 0.01) > 0.05 > certify.hb_p_value(np.zeros(299), 0.01)
    assert certify.hb_p_value(np.full(50, 0.02), 0.01) == 1.0  # observed above alpha: no evidence at all
    losses = np.r_[np.zeros(990), np.ones(10) * 0.3]
    kl = 0.003 * math.log(0.3) + 0.997 * math.log(0.997 / 0.99)
    bentkus = math.e * binom.cdf(3, 1000, 0.01)  # ceil(1000 x 0.003) = 3
    assert certify.hb_p_value(losses, 0.01) == pytest.approx(min(math.exp(-1000 * kl), bentkus), rel=1e-9)


def test_a_group_counts_once_however_many_copies_it_holds():
    kept, wrong = np.array([1, 1, 1, 1, 0, 1], bool), np.array([0, 0, 1, 1, 0, 0], bool)
    codes = np.array([0, 0, 1, 1, 1, 2])
    assert certify.group_losses(kept, wrong, codes, 3).tolist() == [0.0, 1.0, 0.0]


def test_folds_keep_groups_whole():
    groups = np.repeat(np.arange(23), 4)
    f = certify.folds(groups, 5, seed=3)
    assert set(f) == set(range(5)) and all(len(set(f[groups == g])) == 1 for g in range(23))
    assert (f == certify.folds(groups, 5, seed=3)).all()
