"""Data sets people bring first: two classes (benign vs cancer), and classes without lung_n; and the promise
that the same seed, data and machine give the same numbers."""

import json

import pandas as pd
import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow


def classes_of(lc_subset, root, classes):
    """A data set of some of the real sample's class folders (symlinked), with their groups."""
    for c in classes:
        (root / c).symlink_to(lc_subset / "lung_image_sets" / c)
    groups = pd.read_csv(lc_subset / "groups.csv")
    groups[groups.label.isin(classes)].to_csv(root / "groups.csv", index=False)
    return root


def run(data, work, name, results="results"):
    exp = write_experiment(
        work / f"{name}.toml",
        name=name,
        data_dir=str(data),
        backbones=["tiny"],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        ratios=[0.4, 0.2, 0.4],
        robustness_n=8,
        results_dir=results,
    )
    r = run_cli("run", exp, cwd=work)
    assert r.returncode == 0, r.stderr[-3000:]
    return exp, r, work / results / name / "runs" / "tiny" / "seed0"


@pytest.fixture(scope="module")
def benign_vs_cancer(lc_subset, tmp_path_factory):
    work = tmp_path_factory.mktemp("two")
    (work / "data").mkdir()
    data = classes_of(lc_subset, work / "data", ["lung_aca", "lung_n"])
    return (data, work, *run(data, work, "two"))


def test_two_classes_train_and_record_auc_and_the_clinical_pair(benign_vs_cancer):
    _, _, _, _, record = benign_vs_cancer
    m = json.loads((record / "metrics.json").read_text())
    assert m["vocab"] == ["lung_aca", "lung_n"]
    assert 0 <= m["roc_auc_ovr"] <= 1 and 0 <= m["cancer_sensitivity"] <= 1
    low, high = m["test_ci95"]["cancer_sensitivity"]
    assert low <= m["cancer_sensitivity"] <= high
    assert len(pd.read_csv(record / "robustness.csv")) > 0


def test_a_rerun_of_a_finished_two_class_run_skips_it(benign_vs_cancer):
    _, work, exp, _, _ = benign_vs_cancer
    again = run_cli("run", exp, cwd=work)
    assert again.returncode == 0 and "complete record found" in again.stderr and "resuming" not in again.stderr


def test_same_seed_data_and_machine_give_the_same_numbers(benign_vs_cancer):
    data, work, _, _, first = benign_vs_cancer
    *_, second = run(data, work, "two", results="results-again")
    a, b = (pd.read_csv(r / "test_predictions.csv") for r in (first, second))
    pd.testing.assert_frame_equal(a, b)  # every probability, to the last bit
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (first, second))
    for key in ("test_accuracy", "valid_loss", "ece_calibrated", "test_ci95", "calibration", "referral"):
        assert ma[key] == mb[key], key


def test_classes_without_lung_n_have_no_clinical_pair_and_no_interval_for_it(lc_subset, tmp_path):
    (tmp_path / "data").mkdir()
    data = classes_of(lc_subset, tmp_path / "data", ["lung_aca", "lung_scc"])
    *_, record = run(data, tmp_path, "cancers")
    m = json.loads((record / "metrics.json").read_text())
    assert m["cancer_sensitivity"] is None and m["benign_specificity"] is None
    assert "cancer_sensitivity" not in m["test_ci95"] and "benign_specificity" not in m["test_ci95"]
    assert "test_accuracy" in m["test_ci95"]
