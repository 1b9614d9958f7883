"""Temperature scaling and calibration figures, and the group bootstrap behind every record's intervals."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import log_loss

from lungfast.probe import heads
from lungfast.results import calibration, stats
from lungfast.train import backbones, learner


def overconfident(n=2000, t=2.5, seed=0):
    """Labels drawn from softmax(z / t): the logits z are t times too sharp."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g) * 3
    y = torch.multinomial(torch.softmax(z / t, 1), 1, generator=g).squeeze(1)
    return z, y


def test_the_fitted_temperature_undoes_overconfidence():
    z, y = overconfident()
    t = calibration.fit_temperature(z, y)
    assert t == pytest.approx(2.5, rel=0.15)
    before = calibration.scores(torch.softmax(z, 1).numpy(), y.numpy())
    after = calibration.scores(torch.softmax(z / t, 1).numpy(), y.numpy())
    assert after["ece"] < before["ece"] / 2 and after["nll"] < before["nll"] and after["brier"] < before["brier"]
    assert before["nll"] == pytest.approx(log_loss(y.numpy(), torch.softmax(z, 1).numpy()), rel=1e-5)
    assert 0 <= after["ece"] <= after["mce"] <= 1


def test_choose_keeps_a_temperature_that_helps_on_other_folds_and_refuses_one_that_does_not():
    z, y = overconfident()
    folds = np.arange(len(y)) % 5
    t, facts = calibration.choose(z, y, folds)
    assert facts["kept"] and facts["identified"] and t == facts["fitted_temperature"] == pytest.approx(2.5, rel=0.15)
    assert facts["evidence_ece_cross_fitted"] < facts["evidence_ece_uncalibrated"]
    worse = torch.cat([z[:1000] * 4, z[1000:] / 4])  # folds disagree: each fold's T is wrong for the other
    t, facts = calibration.choose(worse, y, (np.arange(len(y)) >= 1000).astype(int))
    assert facts["evidence_ece_cross_fitted"] > facts["evidence_ece_uncalibrated"]
    assert not facts["kept"] and t == 1.0 and facts["identified"]


def test_evidence_with_no_wrong_tile_sets_no_temperature():
    z = torch.randn(30, 3) * 2
    y = z.argmax(1)  # every tile right: the NLL only falls as T -> 0
    t, facts = calibration.choose(z, y, np.arange(30) % 2)
    assert facts["fitted_temperature"] < 0.5 and not facts["identified"]  # the fit sharpens, without limit
    assert t == 1.0 and not facts["kept"]  # ECE would fall (confidences -> 1), but nothing set that temperature
    y[0] = (y[0] + 1) % 3  # one wrong tile in the first fold: the second fold's fit still has none
    assert not calibration.choose(z, y, np.arange(30) % 2)[1]["identified"]
    y[1] = (y[1] + 1) % 3  # and one in the second: every fit now sees right and wrong tiles
    assert calibration.choose(z, y, np.arange(30) % 2)[1]["identified"]
    assert calibration.identifiable(z, y) and not calibration.identifiable(z, z.argmax(1))


def test_a_perfectly_calibrated_one_hot_has_zero_ece():
    y = np.array([0, 1, 2, 1])
    assert calibration.ece(np.eye(3)[y], y) == 0


def test_folding_divides_the_logits_of_a_fastai_model_and_of_a_probe_head():
    torch.manual_seed(0)
    model = learner.create_model(backbones.get("tiny"), 3).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        calibration.fold(model, 2.0)
        assert torch.allclose(model(x), before / 2.0, atol=1e-5)
    probe = torch.nn.Sequential(torch.nn.Identity(), heads.ProbeHead(heads.Embedding(), heads.Linear(5, 3)))
    v = torch.randn(4, 5)
    with torch.no_grad():
        before = probe(v)
        calibration.fold(probe, 4.0)
        assert torch.allclose(probe(v), before / 4.0, atol=1e-6) and float(probe[1].temperature) == 4.0


def test_group_bootstrap_resamples_groups_not_tiles():
    rng = np.random.default_rng(0)
    groups = pd.Series(np.repeat(np.arange(40), 20))  # 40 tiles, 20 copies each
    right = np.repeat(rng.random(40) < 0.8, 20)  # a group is all right or all wrong: copies are not new evidence
    ((low, high),) = stats.group_bootstrap(lambda ix: [right[ix].mean()], groups)
    ((tile_low, tile_high),) = stats.group_bootstrap(lambda ix: [right[ix].mean()], pd.Series(np.arange(800)))
    assert low < right.mean() < high and (high - low) > 3 * (tile_high - tile_low)  # honest: much wider
    assert stats.group_bootstrap(lambda ix: [right[ix].mean()], groups) == [(low, high)]  # seeded


def test_group_bootstrap_within_classes_keeps_a_per_class_figure_defined():
    """Two classes, three groups each: an unstratified resample often holds no cancer group at all (its
    sensitivity undefined, so the interval is nan); resampling within each class never loses a class."""
    groups = pd.Series(np.repeat(np.arange(6), 5))
    label = np.repeat(np.array(["lung_aca"] * 3 + ["lung_n"] * 3), 5)
    called = np.repeat(np.array([True, True, False, False, False, True]), 5)

    def sensitivity(ix):
        cancer = label[ix] == "lung_aca"
        return [called[ix][cancer].mean() if cancer.any() else np.nan]

    ((low, high),) = stats.group_bootstrap(sensitivity, groups, strata=pd.Series(label))
    assert 0 <= low <= 2 / 3 <= high <= 1
    ((bare_low, _),) = stats.group_bootstrap(sensitivity, groups)
    assert np.isnan(bare_low)
