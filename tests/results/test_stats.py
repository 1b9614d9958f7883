import pandas as pd
import pytest

from lungfast.results import stats


def fake_runs(tmp_path, correct_by_backbone: dict[str, list[list[bool]]]) -> pd.DataFrame:
    """Run records with test_predictions.csv: one list of per-image correctness per seed."""
    rows = []
    for backbone, seeds in correct_by_backbone.items():
        for seed, correct in enumerate(seeds):
            d = tmp_path / backbone / str(seed)
            d.mkdir(parents=True)
            pd.DataFrame(
                {
                    "path": [f"img{i}.jpeg" for i in range(len(correct))],
                    "actual": "lung_n",
                    "predicted": ["lung_n" if c else "lung_aca" for c in correct],
                }
            ).to_csv(d / "test_predictions.csv", index=False)
            rows.append({"backbone": backbone, "seed": seed, "split_seed": 42, "run_dir": str(d)})
    return pd.DataFrame(rows)


def test_clearly_better_backbone_is_significant(tmp_path):
    runs = fake_runs(tmp_path, {"a": [[True] * 60] * 2, "b": [[i % 2 == 0 for i in range(60)]] * 2})
    c = stats.paired_comparison("a", "b", runs)
    assert c["n_images"] == 60 and c["difference"] == pytest.approx(0.5)
    assert c["p_value"] < 0.001 and c["ci95_low"] > 0.3 and "is better" in c["verdict"]


def test_near_identical_backbones_are_not_separated(tmp_path):
    a = [i % 10 != 0 for i in range(60)]
    b = [i % 10 != 5 for i in range(60)]
    c = stats.paired_comparison("a", "b", fake_runs(tmp_path, {"a": [a], "b": [b]}))
    assert c["difference"] == 0 and c["p_value"] > 0.5 and "no evidence" in c["verdict"]
    assert c["ci95_low"] < 0 < c["ci95_high"]


def test_t_interval():
    low, high = stats.t_interval(pd.Series([0.9, 0.92, 0.94]))
    assert low == pytest.approx(0.92 - 4.302653 * 0.02 / 3**0.5, rel=1e-5) and high > 0.94
    assert all(v != v for v in stats.t_interval(pd.Series([0.9])))  # n=1: no interval


@pytest.mark.filterwarnings("ignore")  # sklearn warns of classes predicted but absent: they are the point here
def test_balanced_accuracy_on_codes_is_sklearns_on_any_labels():
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 40):
        for _ in range(50):
            t, p = rng.integers(0, 4, n), rng.integers(0, 4, n)  # classes missing from t, from p, or from both
            assert stats.balanced_accuracy(t, p, 4) == pytest.approx(balanced_accuracy_score(t, p), abs=1e-12)
