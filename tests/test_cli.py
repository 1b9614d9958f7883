"""The real CLI in subprocesses: end to end on real tiles, and every bad input as one clear line."""

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from conftest import run_cli, write_experiment
from PIL import Image

pytestmark = pytest.mark.slow


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("lungfast: error: "), result.stderr
    for f in fragments:
        assert f in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def e2e(lc_subset, tmp_path_factory):
    """One real run: grouped split, two backbones, 48 px, 1 epoch, on real LC25000 tiles."""
    work = tmp_path_factory.mktemp("e2e")
    exp = write_experiment(
        work / "e.toml",
        name="e2e",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny", "xresnet18"],
        scheme="grouped",
        img_size=48,
        batch_size=16,
        epochs=1,
        pretrained=False,
        results_dir=str(work / "results"),
        max_per_class=60,
        robustness_n=300,  # the configured default, more than the test part holds: the sweep takes all of it
    )
    result = run_cli("run", exp, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, exp, work / "results" / "e2e", result


def test_split_csv_keeps_groups_on_one_side(e2e):
    _, _, out, _ = e2e
    s = pd.read_csv(out / "split.csv")
    assert list(s.columns) == ["path", "label", "group_id", "part"]
    assert set(s.part) == {"train", "valid", "test"}
    assert s.groupby("group_id").part.nunique().max() == 1
    assert s.groupby("label").size().eq(60).all()


def test_leaderboard_has_both_backbones_with_test_accuracy(e2e):
    _, _, out, result = e2e
    lb = pd.read_csv(out / "leaderboard.csv")
    assert sorted(lb.backbone) == ["tiny", "xresnet18"] and list(lb["rank"]) == [1, 2]
    assert lb.test_accuracy.between(0, 1).all() and lb.test_accuracy.is_monotonic_decreasing
    assert "| backbone" in result.stdout and "tiny" in (out / "leaderboard.md").read_text()


def test_run_record_is_complete(e2e):
    _, _, out, _ = e2e
    run = out / "runs" / "tiny" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    for key in (
        "backbone",
        "seed",
        "scheme",
        "split_seed",
        "protocol",
        "img_size",
        "epochs",
        "lr",
        "valid_loss",
        "valid_accuracy",
        "test_loss",
        "test_accuracy",
        "params",
        "train_seconds",
        "seconds_per_epoch",
        "device",
        "versions",
    ):
        assert key in m, key
    assert (
        m["scheme"] == "grouped"
        and m["protocol"] == "fine_tune"
        and m["pretrained"] is False
        and m["schedule"] == "one_cycle"
    )
    assert sum(map(sum, m["confusion_matrix"])) == m["n_test"] > 0
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns[:4]) == ["epoch", "train_loss", "valid_loss", "accuracy"] and len(history) == 1
    for png in ("confusion_matrix.png", "top_losses.png"):
        assert Image.open(run / png).size[0] > 300
    assert not list(out.glob("runs/*/.*partial"))


def test_rerun_skips_complete_runs_and_force_reruns(e2e):
    work, exp, out, _ = e2e
    metrics = out / "runs" / "tiny" / "seed0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    again = run_cli("run", exp, "--set", 'backbones=["tiny"]', cwd=work)
    assert again.returncode == 0, again.stderr
    assert "complete record found, skipped" in again.stderr and metrics.stat().st_mtime_ns == before
    changed = run_cli("run", exp, "--set", "split_seed=7", cwd=work)
    assert_one_line_error(changed, "made from other data or split settings", "--force")


def test_export_loads_in_a_fresh_process_and_predicts(e2e, lc_subset, tmp_path):
    work, _, out, _ = e2e
    result = run_cli("export", out, "--out", tmp_path / "lung.pkl", cwd=work)
    assert result.returncode == 0, result.stderr
    top = pd.read_csv(out / "leaderboard.csv").backbone[0]
    assert f"runs/{top}/seed0" in result.stdout
    tile = next((lc_subset / "lung_image_sets" / "lung_scc").iterdir())
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from fastai.learner import load_learner
        learn = load_learner({str(tmp_path / "lung.pkl")!r})
        label, idx, probs = learn.predict({str(tile)!r})
        print(label, list(learn.dls.vocab), round(float(probs.sum()), 4))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    label, rest = fresh.stdout.split(" ", 1)
    assert label in {"lung_aca", "lung_n", "lung_scc"} and "lung_scc" in rest and rest.strip().endswith("1.0")


def test_unreadable_images_are_counted_in_the_record(tmp_path):
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=4, copies=4)
    (data / "lung_n" / "broken.jpeg").write_bytes(b"\xff\xd8\xff not really")
    (data / "lung_aca" / "empty.jpeg").write_bytes(b"")
    exp = write_experiment(
        tmp_path / "e.toml",
        name="bad",
        data_dir=str(data),
        backbones=["tiny"],
        scheme="random",
        img_size=32,
        batch_size=8,
        epochs=1,
        pretrained=False,
        results_dir=str(tmp_path / "r"),
    )
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warning = [s for s in result.stderr.splitlines() if "unreadable image" in s]
    assert len(warning) == 1 and "broken.jpeg" in warning[0] and "empty.jpeg" in warning[0]
    m = json.loads((tmp_path / "r" / "bad" / "runs" / "tiny" / "seed0" / "metrics.json").read_text())
    assert m["skipped_images"] == 2


@pytest.mark.parametrize(
    "case",
    [
        "missing_dir",
        "one_class",
        "empty_class",
        "unknown_backbone",
        "bad_key",
        "grouped_without_csv",
        "offline_weights",
        "ensemble_fine_tune",
        "bad_tta",
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, case):
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=3, copies=4)
    keys = dict(
        name="bad",
        data_dir=str(data),
        backbones=["tiny"],
        img_size=32,
        batch_size=8,
        epochs=1,
        pretrained=False,
        results_dir=str(tmp_path / "r"),
    )
    expect = {
        "missing_dir": ({"data_dir": str(tmp_path / "nope")}, ["not a folder"]),
        "one_class": ({"data_dir": str(data / "lung_n" / "..")}, []),
        "empty_class": ({}, ["lung_zzz hold no images"]),
        "unknown_backbone": ({"backbones": ["tiny", "resnet5O"]}, ["unknown backbone 'resnet5O'"]),
        "bad_key": ({"img_sise": 32}, ["unknown key(s) img_sise"]),
        "grouped_without_csv": ({"scheme": "grouped"}, ["needs tile groups", "groups_csv", "group_pattern"]),
        "offline_weights": (
            {"backbones": ["resnet50d"], "pretrained": True},
            ["resnet50d: pretrained weights could not be loaded", "pretrained = false", "weights.resnet50d"],
        ),
        "ensemble_fine_tune": (
            {"backbones": ["tiny+xresnet18"], "protocols": ["linear", "fine_tune"]},
            ["tiny+xresnet18 is a feature ensemble", "not fine_tune"],
        ),
        "bad_tta": ({"tta": "octagonal"}, ["tta must be one of none, flips, dihedral, got 'octagonal'"]),
    }
    overrides, fragments = expect[case]
    if case == "one_class":
        for d in ("lung_aca", "lung_scc"):
            for f in (data / d).iterdir():
                f.unlink()
            (data / d).rmdir()
        fragments = ["needs at least 2 class folder(s), found lung_n"]
    if case == "empty_class":
        (data / "lung_zzz").mkdir()
    if case == "grouped_without_csv":
        (tmp_path / "data" / "groups.csv").unlink()
    result = run_cli("run", write_experiment(tmp_path / "e.toml", **{**keys, **overrides}), cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not list((tmp_path / "r").glob("bad/runs/*/seed*"))
    assert not list((tmp_path / "r").glob("**/*.partial")) and not list((tmp_path / "r").glob("**/*.tmp"))


def test_backbones_command_lists_the_registry():
    result = run_cli("backbones")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()}
    assert rows["xresnet34"][2] == "scratch" and rows["xresnet34"][3] == "one_cycle"
    assert rows["tf_efficientnet_lite0"][2] == "offline" and float(rows["resnet50"][4]) > 20
    from lungfast import protocols  # the second table: every protocol row, with what it does to the body

    assert all(rows[p.name][1] == ("frozen" if p.frozen else "trained") for p in protocols.REGISTRY.values())


def test_calibration_and_group_bootstrap_intervals_are_recorded(e2e):
    from fastai.learner import load_learner

    _, _, out, _ = e2e
    run = out / "runs" / "xresnet18" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    cal = m["calibration"]
    assert cal["temperature"] > 0 and cal["bins"] == 15
    assert m["ece"] == cal["before"]["ece"] and m["ece_calibrated"] == cal["after"]["ece"]
    assert cal["after"]["nll"] <= cal["before"]["nll"] + 0.05  # fitted on valid, so not guaranteed on test
    low, high = m["test_ci95"]["test_accuracy"]
    assert 0 <= low <= m["test_accuracy"] <= high <= 1
    assert Image.open(run / "reliability.png").size[0] > 300
    # the exported learner gives the calibrated probabilities the record reports
    learn = load_learner(run / "learner.pkl")
    recorded = pd.read_csv(run / "test_predictions.csv")
    probs = learn.get_preds(dl=learn.dls.test_dl(recorded.path.tolist()))[0]  # the files, as predict reads them
    assert (probs.numpy() - recorded[list(learn.dls.vocab)].to_numpy()).__abs__().max() < 1e-4


def test_robustness_sweep_and_referral_are_recorded(e2e):
    _, _, out, _ = e2e
    run = out / "runs" / "tiny" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    sweep = pd.read_csv(run / "robustness.csv")
    assert len(sweep) == 16 and set(sweep["shift"]) == {
        "none",
        "stain",
        "stain_retarget",
        "blur",
        "jpeg",
        "magnification",
    }
    assert (sweep.n == m["n_test"]).all()  # the test part is smaller than robustness_n: all of it
    clean = pd.read_csv(run / "test_predictions.csv")
    assert sweep.accuracy.iloc[0] == pytest.approx((clean.actual == clean.predicted).mean())
    middle = sweep[sweep.severity == 2].set_index("shift").accuracy
    assert m["shifted_accuracy"] == pytest.approx(middle.mean()) and m["worst_shift"] == middle.idxmin()
    ref = m["referral"]
    assert ref["target"] == 0.99 and ref["delta"] == 0.05 and m["refer_kept"] == ref["test"]["kept"]
    assert "valid part" in ref["evidence"] and ref["evidence_groups"] >= 1  # fine-tuning: its calibration half
    if ref["threshold"] is not None:  # the recorded share is the share of test tiles at or above it
        assert ref["test"]["kept"] == pytest.approx((clean.probability >= ref["threshold"]).mean())
    else:  # tiny data cannot be certified: said in one line, every tile referred
        assert ref["message"].startswith("cannot certify 99%") and m["refer_kept"] == 0.0
        assert m["refer_kept_accuracy"] is None and ref["test"]["met"] is None
    assert m["calibration"]["temperature"] == (
        m["calibration"]["fitted_temperature"] if m["calibration"]["kept"] else 1.0
    )
    board = pd.read_csv(out / "leaderboard.csv")
    assert {"refer_kept", "refer_kept_accuracy", "refer_met", "shifted_accuracy", "worst_shift"} <= set(board.columns)
    assert board.shifted_accuracy.between(0, 1).all()


def test_test_metrics_are_consistent_with_the_confusion_matrix(e2e):
    _, _, out, _ = e2e
    m = json.loads((out / "runs" / "xresnet18" / "seed0" / "metrics.json").read_text())
    cm, vocab = m["confusion_matrix"], m["vocab"]
    recall = [cm[i][i] / sum(cm[i]) for i in range(len(vocab))]
    assert m["balanced_accuracy"] == pytest.approx(sum(recall) / len(recall))
    assert m["test_accuracy"] == pytest.approx(sum(cm[i][i] for i in range(3)) / sum(map(sum, cm)))
    for i, c in enumerate(vocab):
        assert m["per_class"][c]["recall"] == pytest.approx(recall[i]) and m["per_class"][c]["support"] == sum(cm[i])
    n = vocab.index("lung_n")
    cancer = [i for i in range(3) if i != n]
    assert m["benign_specificity"] == pytest.approx(cm[n][n] / sum(cm[n]))
    assert m["cancer_sensitivity"] == pytest.approx(
        sum(cm[i][j] for i in cancer for j in cancer) / sum(sum(cm[i]) for i in cancer)
    )
    assert 0 <= m["roc_auc_ovr"] <= 1 and 0 <= m["macro_f1"] <= 1


def test_review_list_is_sorted_by_loss_and_covers_the_test_split(e2e):
    _, _, out, _ = e2e
    review = pd.read_csv(out / "runs" / "tiny" / "seed0" / "top_losses.csv")
    s = pd.read_csv(out / "split.csv")
    assert list(review.columns) == ["path", "actual", "predicted", "loss", "probability"]
    assert review.loss.is_monotonic_decreasing and set(review.path) == set(s.path[s.part == "test"])


def test_grad_cam_maps_vary_within_and_between_images(e2e):
    import numpy as np
    from fastai.learner import load_learner

    from lungfast.results import saliency

    _, _, out, _ = e2e
    s = pd.read_csv(out / "split.csv")
    paths = s.path[s.part == "test"].iloc[[0, -1]].tolist()  # two tiles of different classes
    for backbone in ("tiny", "xresnet18"):
        learn = load_learner(out / "runs" / backbone / "seed0" / "learner.pkl")
        maps, rgb = saliency.cam_maps(learn, paths, [0, 0])
        assert maps.shape[0] == 2 and rgb.shape[-1] == 3
        assert maps[0].std() > 1e-3 and maps[1].std() > 1e-3, backbone
        assert not np.allclose(maps[0], maps[1], atol=1e-3), backbone


def test_report_opens_in_headless_chromium_with_every_image(e2e, tmp_path):
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        import os

        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromedriver (make browser installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, _, out, _ = e2e
    regenerated = run_cli("report", out)
    assert regenerated.returncode == 0, regenerated.stderr
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        driver.get((out / "report.html").resolve().as_uri())
        rows = driver.execute_script(
            "return [...document.querySelectorAll('#leaderboard tbody tr')].map(r => r.cells[1].textContent)"
        )
        images = driver.execute_script("return [...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
        env = driver.execute_script("return document.querySelector('#environment').textContent")
        splits = driver.execute_script("return document.querySelectorAll('#splits tbody tr').length")
        chart, pareto = (
            driver.execute_script(
                f"const i = document.getElementById('{c}');return i && [i.naturalWidth, i.naturalHeight]"
            )
            for c in ("comparison-chart", "pareto-chart")
        )
        hidden = driver.execute_script(
            "const d = document.querySelector('details');return [d.querySelector('summary').textContent, d.open]"
        )
        key_columns = driver.execute_script(
            "return [...document.querySelectorAll('#leaderboard thead th')].map(h => h.textContent)"
        )
    finally:
        driver.quit()
    assert sorted(rows) == ["tiny", "xresnet18"]
    # per run 7 figures (confusion, loss, top losses, saliency, reliability, risk-coverage, robustness) x 2,
    # the comparison chart, accuracy against speed, one chart per shift
    assert len(images) == 7 * 2 + 2 + 5 and all(ok and width > 100 for _, ok, width in images), images
    for caption in ("Reliability", "Risk-coverage", "Accuracy under stain", "whiskers", "jpeg: accuracy vs severity"):
        assert sum(caption in alt for alt, _, _ in images) >= 1, caption
    assert chart and chart[0] > 300 and chart[1] > 100  # the comparison chart, drawn
    assert pareto and pareto[0] > 300 and pareto[1] > 100  # accuracy against img/s, the Pareto front marked
    assert (
        hidden == ["All columns", False] and key_columns[-1] == "infer_img_per_s_b64"
    )  # the wide table behind a toggle
    assert "torch" in env and "fastai" in env and splits == 3


def test_stain_augmented_runs_are_their_own_entry(lc_subset, tmp_path):
    exp = write_experiment(
        tmp_path / "e.toml",
        name="aug",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny"],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        results_dir=str(tmp_path / "results"),
        max_per_class=30,
        augment=["stain"],
        robustness_n=0,
    )
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "results" / "aug" / "runs" / "tiny+stain" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    assert m["augment"] == ["stain"] and m["robustness_n"] == 0 and m["shifted_accuracy"] is None
    assert not (run / "robustness.csv").exists()
    assert pd.read_csv(tmp_path / "results" / "aug" / "leaderboard.csv").entry.tolist() == ["tiny+stain"]
    assert "| tiny+stain " in (tmp_path / "results" / "aug" / "leaderboard.md").read_text()


def test_seeds_and_splits_side_by_side(tmp_path):
    """Seeds and repeated splits roll up into one row per backbone (the probe CLI test covers both schemes and
    the inflation table, on real tiles)."""
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=8, copies=4)
    exp = write_experiment(
        tmp_path / "e.toml",
        name="many",
        data_dir=str(data),
        backbones=["tiny", "xresnet18"],
        split_seeds=[1, 2],
        seeds=[0, 1],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        robustness_n=0,  # what this test checks is seeds and splits (the e2e run checks the sweep)
        results_dir=str(tmp_path / "r"),
    )
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "r" / "many"
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["grouped-split1", "grouped-split2"]
    assert len(list(out.glob("*/runs/*/seed*/metrics.json"))) == 8
    lb = pd.read_csv(out / "leaderboard.csv")
    assert (lb.scheme == "grouped").all() and (lb.n == 4).all() and (lb.n_seeds == 2).all() and (lb.n_splits == 2).all()
    assert (lb.ci95_low <= lb.test_accuracy).all() and (lb.test_accuracy <= lb.ci95_high).all()
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["first"] == lb.backbone[0] and comp["second"] == lb.backbone[1] and 0 <= comp["p_value"] <= 1
    md = (out / "leaderboard.md").read_text()
    assert "Paired test, #1" in md and "±" in md


def test_pretrained_backbone_fine_tunes_from_offline_weights(tmp_path):
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=4, copies=4)
    exp = write_experiment(
        tmp_path / "e.toml",
        name="ft",
        data_dir=str(data),
        backbones=["tf_efficientnet_lite0"],
        img_size=32,
        batch_size=8,
        epochs=1,
        results_dir=str(tmp_path / "r"),
    )
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r" / "ft" / "runs" / "tf_efficientnet_lite0" / "seed0"
    m = json.loads((run / "metrics.json").read_text())
    assert m["pretrained"] is True and m["schedule"] == "head_first" and m["weights_file"].endswith(".pth")
    history = pd.read_csv(run / "history.csv")  # one frozen epoch + one unfrozen, one header
    assert list(history.epoch) == [0, 1] and history.train_loss.dtype == float
