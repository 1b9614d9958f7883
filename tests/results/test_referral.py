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


def test_record_reads_the_valid_threshold_on_the_test_part(tmp_path):
    from lungfast.results.layout import RunDir

    valid_conf, valid_right = np.array([0.99, 0.95, 0.9, 0.7]), np.array([True, True, True, False])
    test = pd.DataFrame({"probability": [0.97, 0.92, 0.8, 0.6], "actual": ["a", "a", "b", "b"],
                         "predicted": ["a", "b", "b", "a"]})
    out = referral.record(valid_conf, valid_right, test, RunDir(tmp_path), "t")
    assert out["referral"]["threshold"] == 0.9 and out["coverage_at_99"] == 0.5
    assert out["referral"]["test_accuracy_kept"] == 0.5 and out["referral"]["valid_coverage"] == 0.75
    assert (tmp_path / "risk_coverage.png").stat().st_size > 10_000


def test_the_threshold_travels_with_the_export_and_missing_is_not_never(tmp_path):
    import json

    from lungfast.ship import model_io

    model = tmp_path / "lung.pkl"
    for described, expected in (({"refer_below": 0.93}, 0.93), ({"refer_below": None}, float("inf")), ({}, None)):
        model_io.sidecar(model).write_text(json.dumps(described))
        assert model_io.refer_below(model) == expected
    model_io.sidecar(model).write_text("{damaged")
    assert model_io.refer_below(model) is None  # costs the advice, not the app
