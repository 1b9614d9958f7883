"""Any class-folder data set, groups from a column or a pattern, and external cohorts, end to end through the
real CLI: on the shared LC25000 sample with a synthetic "other lab" cohort (another stain, two magnifications,
LungHist700's layout, its groups made by the README's own recipe line), and on 2- and 5-class data sets."""

import json
import re
import shlex
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO, run_cli, write_experiment

from lungfast.data import synthetic

pytestmark = pytest.mark.slow
MAP = {"aca_*": "lung_aca", "nor": "lung_n", "scc_*": "lung_scc"}


def readme_recipe_line() -> str:
    """The python line of the guide's LungHist700 recipe (docs/guide.md), as a user pastes it."""
    text = (REPO / "docs" / "guide.md").read_text()
    block = text[text.index("### LungHist700 as an external cohort") :]
    return next(line for line in block.splitlines() if line.startswith("python -c "))


@pytest.fixture(scope="module")
def other_lab(tmp_path_factory):
    """LungHist700's layout drawn by the generator; groups.csv made by the README's recipe line."""
    root = tmp_path_factory.mktemp("other")
    synthetic.make_other_lab(root / "LungHist700")
    line = readme_recipe_line().replace("python -c ", "", 1)
    subprocess.run([sys.executable, "-c", shlex.split(line)[0]], cwd=root, check=True)
    return root / "LungHist700"


def test_the_readme_recipe_groups_by_patient(other_lab):
    groups = pd.read_csv(other_lab / "groups.csv")
    on_disk = sorted(p.name for p in (other_lab / "images").rglob("*.jpg"))
    assert sorted(groups.filename) == on_disk and groups.patient_id.nunique() == 6


@pytest.fixture(scope="module")
def run_with_external(lc_subset, other_lab, tmp_path_factory):
    work = tmp_path_factory.mktemp("ext")
    both = dict(data_dir=str(other_lab / "images"), label_map=MAP)
    exp = write_experiment(
        work / "e.toml",
        name="ext",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny"],
        protocols=["fine_tune", "linear"],
        scheme=["grouped", "random"],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        robustness_n=0,
        results_dir=str(work / "r"),
        external=[
            {
                "name": "other-20x",
                "include": "*_20x_*",
                "groups_csv": str(other_lab / "groups.csv"),
                "group_column": "patient_id",
                **both,
            },
            {"name": "other-40x", "include": "*_40x_*", "group_pattern": "_([0-9]+)$", **both},
        ],
    )
    result = run_cli("run", exp, cwd=work)
    assert result.returncode == 0, result.stderr
    return work / "r" / "ext", result.stdout


def test_every_run_scores_every_external_set(run_with_external):
    exp, _ = run_with_external
    records = [json.loads(p.read_text()) for p in exp.glob("*/runs/*/*/metrics.json")]
    assert len(records) == 4  # 2 schemes x 2 protocols
    for rec in records:
        x20, x40 = rec["external"]["other-20x"], rec["external"]["other-40x"]
        assert (x20["n"], x20["n_groups"], x40["n"], x40["n_groups"]) == (24, 6, 24, 24)  # patients; images
        assert x20["support"] == {"lung_aca": 8, "lung_n": 12, "lung_scc": 4}
        low, high = x20["ci95"]["accuracy"]
        assert low <= x20["accuracy"] <= high and 0 <= x20["ece_calibrated"] <= 1
        assert x20["cancer_sensitivity"] is not None and set(x20["referral"]) == {
            "threshold",
            "target",
            "kept",
            "accuracy_kept",
            "accuracy_kept_ci95",
            "met",
        }


def test_the_leaderboard_has_a_column_per_set_and_a_ladder(run_with_external):
    exp, stdout = run_with_external
    board = pd.read_csv(exp / "leaderboard.csv")
    runs = {
        (rec["backbone"], rec["protocol"]): rec["external"]["other-20x"]["accuracy"]
        for rec in (json.loads(p.read_text()) for p in exp.glob("grouped-split42/runs/*/*/metrics.json"))
    }
    for _, row in board.iterrows():
        assert row["external:other-20x"] == pytest.approx(runs[(row.backbone, row.protocol)])
    ladder = pd.read_csv(exp / "ladder.csv")
    assert list(dict.fromkeys(ladder.rung)) == ["random split", "grouped split", "other-20x", "other-40x"]
    assert "ext:other-20x" in stdout and "Generalisation ladder" in stdout
    md = (exp / "leaderboard.md").read_text()
    assert re.search(r"\| entry\s+\| random split\s+\| grouped split\s+\| other-20x\s+\| other-40x", md)
    assert 'id="ladder"' in (exp / "report.html").read_text() and "ladder-chart" in (exp / "report.html").read_text()
    assert "No Friedman test or critical-difference diagram" in md and "1 split(s) and 2 entries" in md


def test_evaluate_gives_a_colleague_the_runs_own_figures(run_with_external, other_lab, tmp_path):
    exp, _ = run_with_external
    run = exp / "grouped-split42" / "runs" / "tiny" / "seed0"
    result = run_cli(
        "evaluate",
        run / "learner.pkl",
        other_lab / "images",
        "--include",
        "*_20x_*",
        *[a for k, v in MAP.items() for a in ("--label-map", f"{k}={v}")],
        "--groups-csv",
        other_lab / "groups.csv",
        "--group-column",
        "patient_id",
        "--out",
        tmp_path / "o",
    )
    assert result.returncode == 0, result.stderr
    mine = json.loads((tmp_path / "o" / "metrics.json").read_text())
    recorded = json.loads((run / "metrics.json").read_text())["external"]["other-20x"]
    for key in ("accuracy", "balanced_accuracy", "ece_calibrated", "n_groups"):
        assert mine[key] == pytest.approx(recorded[key], abs=1e-6), key
    assert mine["referral"]["kept"] == pytest.approx(recorded["referral"]["kept"])
    assert "accuracy" in result.stdout and "lung_aca" in result.stdout
    unmapped = run_cli("evaluate", run / "learner.pkl", other_lab / "images")
    assert unmapped.returncode == 2 and len(unmapped.stderr.strip().splitlines()) == 1
    assert "aca_bd" in unmapped.stderr and "--label-map" in unmapped.stderr


@pytest.mark.parametrize(
    "classes, benign", [(("lung_aca", "lung_n"), ["lung_n"]), (("adipose", "debris", "lymph", "mucosa", "stroma"), [])]
)
def test_two_and_five_class_data_sets(tmp_path, classes, benign):
    data = synthetic.make_dataset(tmp_path / "data", originals_per_class=4, copies=3, classes=classes)
    exp = write_experiment(
        tmp_path / "e.toml",
        name="n",
        data_dir=str(data),
        backbones=["tiny"],
        protocols=["fine_tune", "knn"],
        img_size=32,
        batch_size=8,
        epochs=1,
        pretrained=False,
        robustness_n=0,
        benign_classes=benign,
        results_dir=str(tmp_path / "r"),
    )
    result = run_cli("run", exp, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rec = json.loads((tmp_path / "r" / "n" / "runs" / "tiny" / "seed0" / "metrics.json").read_text())
    assert rec["vocab"] == sorted(classes) and len(rec["confusion_matrix"]) == len(classes)
    md = (tmp_path / "r" / "n" / "leaderboard.md").read_text()
    if benign:
        assert rec["cancer_sensitivity"] is not None and "cancer_sensitivity" in md
    else:
        assert rec["cancer_sensitivity"] is None and "benign_specificity" not in rec["test_ci95"]
        assert "not computed" in md and "benign_classes" in result.stdout


def test_groups_from_a_file_name_pattern_and_from_a_column(tmp_path):
    from lungfast import config, dataset

    data = synthetic.make_dataset(tmp_path / "data", originals_per_class=3, copies=2)
    (tmp_path / "data" / "groups.csv").unlink()
    base = dict(name="g", data_dir=str(data), backbones=["tiny"])
    # file names are lungaca1.jpeg, lungn1.jpeg...: the letters make one group per class
    cfg = config.from_dict({**base, "group_pattern": r"^([a-z]+)"})
    frame = dataset.load_data(cfg).frame
    assert frame.groupby("label").group_id.nunique().tolist() == [1, 1, 1]
    pd.DataFrame({"filename": frame.path.map(lambda p: p.rsplit("/", 1)[1]), "patient_id": "p" + frame.label}).to_csv(
        tmp_path / "patients.csv", index=False
    )
    cfg = config.from_dict({**base, "groups_csv": str(tmp_path / "patients.csv"), "group_column": "patient_id"})
    assert set(dataset.load_data(cfg).frame.group_id) == {"plung_aca", "plung_n", "plung_scc"}
    with pytest.raises(Exception, match="needs tile groups.*groups_csv.*group_pattern"):
        dataset.load_data(config.from_dict(base))
    with pytest.raises(Exception, match="matches no part of"):
        dataset.load_data(config.from_dict({**base, "group_pattern": r"^zzz"}))
