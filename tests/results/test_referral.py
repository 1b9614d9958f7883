"""When to refer: the risk-coverage curve and the 99%-accuracy threshold, on hand-checked numbers."""

import numpy as np
import pandas as pd

from lungfast.results import referral


def test_curve_orders_by_confidence_and_keeps_ties_together():
    conf = np.array([0.9, 0.6, 0.9, 0.99, 0.5])
    right = np.array([1, 0, 0, 1, 1])
    c = referral.curve(conf, right)
    assert c.threshold.tolist() == [0.99, 0.9, 0.6, 0.5]  # the two 0.9s are one step
    assert c.coverage.tolist() == [0.2, 0.6, 0.8, 1.0]
    assert np.allclose(c.accuracy, [1.0, 2 / 3, 2 / 4, 3 / 5])


def test_threshold_is_the_lowest_confidence_that_still_reaches_the_target():
    conf = np.linspace(1.0, 0.01, 100)
    right = np.ones(100, bool)
    right[[50, 60, 70]] = False  # kept down to index 49: all right; down to 98: 96/99 < 0.97
    assert referral.threshold(conf, right, 0.99) == conf[49]
    assert referral.threshold(conf, right, 0.97) == conf[-1]  # all 100 kept: 97/100
    assert referral.threshold(conf, np.zeros(100, bool), 0.99) is None  # never right: refer everything
    assert referral.at(conf, right, conf[49]) == (0.5, 1.0)
    assert referral.at(conf, right, None) == (0.0, None)


def test_record_reads_the_certified_threshold_on_the_test_part(tmp_path):
    from lungfast.results import certify
    from lungfast.results.layout import RunDir

    ev_conf = np.r_[np.full(3000, 0.97), np.full(300, 0.6)]  # 300 groups of 10 right tiles, 30 groups all wrong
    ev_right = np.r_[np.ones(3000, bool), np.zeros(300, bool)]
    cert = certify.certify(ev_conf, ev_right, np.repeat(np.arange(330), 10))
    assert cert.threshold == 0.97 and cert.kept_groups == 300
    test = pd.DataFrame(
        {
            "probability": [0.99, 0.98, 0.97, 0.8, 0.6],
            "actual": ["a", "a", "b", "b", "a"],
            "predicted": ["a", "a", "a", "b", "b"],
            "group_id": ["g1", "g1", "g2", "g3", "g4"],
        }
    )
    out = referral.record(cert, "out-of-fold", ev_conf, ev_right, test, RunDir(tmp_path), "t")
    t = out["referral"]["test"]
    assert out["refer_kept"] == t["kept"] == 0.6 and out["refer_kept_accuracy"] == t["accuracy_kept"] == 2 / 3
    assert t["met"] is False  # 2 of 3 kept test tiles right: below 99%, and the record says so
    assert t["accuracy_kept_ci95"][0] <= 2 / 3 <= t["accuracy_kept_ci95"][1]
    assert out["referral"]["evidence"] == "out-of-fold" and out["referral"]["threshold"] == 0.97
    assert (tmp_path / "risk_coverage.png").stat().st_size > 10_000
    nothing = referral.kept_figures(test.probability.to_numpy(), np.ones(5, bool), test.group_id, None, 0.99)
    assert nothing["kept"] == 0.0 and nothing["accuracy_kept"] is None and nothing["met"] is None


def test_the_threshold_travels_with_the_export_and_missing_is_not_never(tmp_path):
    import json

    from lungfast.ship import model_io

    model = tmp_path / "lung.pkl"
    for described, expected in (({"refer_below": 0.93}, 0.93), ({"refer_below": None}, float("inf")), ({}, None)):
        model_io.sidecar(model).write_text(json.dumps(described))
        assert model_io.refer_below(model) == expected
    model_io.sidecar(model).write_text("{damaged")
    assert model_io.refer_below(model) is None  # costs the advice, not the app
