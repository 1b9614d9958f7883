"""The CPU bf16 plan against fp32, on real LC25000 tiles: the same runs in both precisions give the same
answers within what the test part can tell apart (forced with `precision`, so this runs on any CPU)."""

import json

import pandas as pd
import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow
VOCAB = ["lung_aca", "lung_n", "lung_scc"]


def record(out, run):
    return json.loads((out / run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def fine_tuned(lc_subset, tmp_path_factory):
    """One fine-tune run per precision: same seed, same split."""
    work = tmp_path_factory.mktemp("parity-ft")
    recs = {}
    for precision in ("fp32", "bf16"):
        exp = write_experiment(
            work / f"{precision}.toml",
            name=precision,
            data_dir=str(lc_subset / "lung_image_sets"),
            backbones=["xresnet18"],
            img_size=32,
            batch_size=16,
            epochs=2,
            pretrained=False,
            ratios=[0.5, 0.2, 0.3],
            robustness_n=0,
            precision=precision,
            results_dir=str(work / "results"),
        )
        r = run_cli("run", exp, cwd=work)
        assert r.returncode == 0, r.stderr[-3000:]
        recs[precision] = record(work / "results" / precision, "runs/xresnet18/seed0")
    return work, recs


def test_bf16_fine_tuning_lands_inside_the_fp32_interval_and_back(fine_tuned):
    _, recs = fine_tuned
    a, b = recs["fp32"], recs["bf16"]
    for name, r in recs.items():
        print(
            f"fine-tune {name}: test accuracy {r['test_accuracy']:.4f} {r['test_ci95']['test_accuracy']}, "
            f"ECE calibrated {r['ece_calibrated']:.4f} {r['test_ci95']['ece_calibrated']}, n_test {r['n_test']}"
        )
    assert a["device"]["precision"] == "fp32" and b["device"]["precision"] == "bf16" and "bf16" in b["device"]["why"]
    for one, other in ((a, b), (b, a)):
        low, high = other["test_ci95"]["test_accuracy"]
        assert low <= one["test_accuracy"] <= high, (one["test_accuracy"], low, high)
    low, high = a["test_ci95"]["ece_calibrated"]
    assert low <= b["ece_calibrated"] <= high


def test_bf16_inference_agrees_with_fp32_on_at_least_99_percent_of_test_tiles(fine_tuned, tmp_path):
    work, _ = fine_tuned
    run = work / "results" / "fp32" / "runs" / "xresnet18" / "seed0"
    tiles = pd.read_csv(run / "test_predictions.csv").path.tolist()
    preds = {}
    for precision in ("fp32", "bf16"):
        r = run_cli(
            "predict", run / "learner.pkl", *tiles, "--precision", precision, "--out", tmp_path / f"{precision}.csv"
        )
        assert r.returncode == 0, r.stderr[-2000:]
        preds[precision] = pd.read_csv(tmp_path / f"{precision}.csv")
    agree = float((preds["fp32"].predicted == preds["bf16"].predicted).mean())
    gap = float((preds["fp32"][VOCAB] - preds["bf16"][VOCAB]).abs().max().max())
    print(f"inference: {len(tiles)} test tiles, agreement {agree:.4f}, largest probability gap {gap:.3f}")
    assert agree >= 0.99 and gap < 0.1


def test_bf16_probe_accuracy_is_within_0_005_of_fp32(lc25000, tmp_path):
    """A linear probe of ImageNet lite0 on 700 tiles per class of the shared sample, 40% of them tested: a test
    part of ~840 tiles, so 0.005 is four tiles (bf16 is emulated, so slow, on CPUs without bf16 units)."""
    accs = {}
    for precision in ("fp32", "bf16"):
        exp = write_experiment(
            tmp_path / f"{precision}.toml",
            name=precision,
            data_dir=str(lc25000 / "lung_image_sets"),
            backbones=["tf_efficientnet_lite0"],
            protocols=["linear"],
            img_size=32,
            batch_size=64,
            robustness_n=0,
            max_per_class=700,
            ratios=[0.5, 0.1, 0.4],
            precision=precision,
            results_dir=str(tmp_path / "results"),
        )
        r = run_cli("run", exp, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        rec = record(tmp_path / "results" / precision, "runs/tf_efficientnet_lite0/linear-seed0")
        accs[precision] = (rec["test_accuracy"], rec["n_test"])
    print(f"linear probe: fp32 {accs['fp32']}, bf16 {accs['bf16']}")
    assert accs["fp32"][1] > 800 and abs(accs["fp32"][0] - accs["bf16"][0]) <= 0.005
