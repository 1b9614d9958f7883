"""Which entries are really better and how many labels they need, end to end through the real CLI: all pairs with
Holm, the tied-with-#1 column, Friedman and the critical-difference diagram over 5 splits, label-efficiency
curves, and an export chosen without looking at the test part, with an interval for the one model it ships."""

import json

import pandas as pd
import pytest
from conftest import run_cli, write_experiment
from statsmodels.stats.multitest import multipletests

from lungfast.data import split as splits
from lungfast.data import synthetic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    work = tmp_path_factory.mktemp("compare")
    data = synthetic.make_dataset(work / "data", originals_per_class=6, copies=3)
    exp = write_experiment(
        work / "e.toml",
        name="cmp",
        data_dir=str(data),
        backbones=["tiny"],
        protocols=["linear", "knn", "fewshot"],
        split_seeds=[0, 1, 2, 3, 4],
        img_size=32,
        batch_size=4,
        pretrained=False,
        robustness_n=0,
        results_dir=str(work / "r"),
    )
    result = run_cli("run", exp, cwd=work, timeout=1500)
    assert result.returncode == 0, result.stderr
    return work / "r" / "cmp", result.stdout


@pytest.fixture(scope="module")
def shares(tmp_path_factory):
    work = tmp_path_factory.mktemp("shares")
    data = synthetic.make_dataset(work / "data", originals_per_class=6, copies=3)
    exp = write_experiment(
        work / "e.toml",
        name="eff",
        data_dir=str(data),
        backbones=["tiny"],
        protocols=["linear", "knn"],
        train_fractions=[0.5, 1.0],
        img_size=32,
        batch_size=4,
        pretrained=False,
        robustness_n=0,
        results_dir=str(work / "r"),
    )
    result = run_cli("run", exp, cwd=work, timeout=900)
    assert result.returncode == 0, result.stderr
    return work / "r" / "eff"


def test_all_pairs_are_holm_adjusted_and_the_best_has_its_ties(compared):
    exp, stdout = compared
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 3 and board.vs_best.iloc[0] == "best"
    assert all(v.startswith(("tied (p=", "worse (p=")) for v in board.vs_best.iloc[1:])
    md = (exp / "leaderboard.md").read_text()
    table = md[md.index("All pairs") :]
    rows = [line for line in table.splitlines()[4:] if line.startswith("|")][:3]
    assert len(rows) == 3  # 3 entries: 3 pairs
    p = [float(r.split("|")[7]) for r in rows]
    holm = [float(r.split("|")[8]) for r in rows]
    assert holm == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-4)
    assert "Friedman test over 5 splits" in md and "vs_best" in stdout
    report = (exp / "report.html").read_text()
    assert 'id="pairs"' in report and 'id="cd-diagram"' in report


def test_label_efficiency_is_a_table_a_chart_and_nested_shares(shares):
    exp = shares
    eff = pd.read_csv(exp / "label_efficiency.csv")
    assert sorted(eff.train_fraction.unique()) == [0.5, 1.0] and eff.entry.nunique() == 2
    for _, g in eff.groupby("entry"):
        half, full = g.sort_values("train_fraction").itertuples()
        assert half.labelled_tiles < full.labelled_tiles and half.labelled_groups < full.labelled_groups
    assert "Label efficiency" in (exp / "leaderboard.md").read_text()
    assert 'id="efficiency-chart"' in (exp / "report.html").read_text()
    assert len(pd.read_csv(exp / "leaderboard.csv")) == 2  # the leaderboard ranks the runs on all the labels
    one = splits.Split(splits.read_csv(exp / "split.csv"))
    shares = [one.labelled_fraction(f, 0).frame for f in (0.2, 0.5, 1.0)]
    for small, big in zip(shares, shares[1:]):
        assert set(small.group_id) <= set(big.group_id)  # nested
    for frame in shares:
        assert frame[frame.part == "test"].equals(one.part("test"))  # the test part never changes
        assert frame[frame.part != "test"].groupby(["label", "part"]).group_id.nunique().min() >= 1


def test_export_chooses_on_the_valid_part_and_carries_a_one_model_interval(compared, tmp_path):
    exp, _ = compared
    result = run_cli("export", exp, "--out", tmp_path / "lung.pkl")
    assert result.returncode == 0, result.stderr
    bundle = json.loads((tmp_path / "lung.pkl.json").read_text())
    winner = pd.read_csv(exp / "leaderboard.csv").iloc[0]
    runs = [
        json.loads(p.read_text()) | {"dir": str(p.parent.resolve())}
        for p in exp.glob(f"grouped-split*/runs/{winner.backbone}/{winner.protocol}-seed0/metrics.json")
    ]
    assert len(runs) == 5
    assert all(r["selection_accuracy"] == r["valid_accuracy"] for r in runs)  # a probe selects on its valid part
    best = max(runs, key=lambda r: (r["selection_accuracy"], -r["valid_loss"], -r["split_seed"]))
    assert bundle["source_run"] == best["dir"] and "without the test part" in bundle["chosen_by"]
    low, high = bundle["one_model_95"]
    mean_low, mean_high = bundle["entry_mean_ci95"]
    assert high - low > mean_high - mean_low  # one model on new groups varies more than the mean of five
    assert bundle["one_model_kind"] == "prediction (splits)"


def test_export_ships_a_named_entry_or_says_which_there_are(compared, tmp_path):
    exp, _ = compared
    last = pd.read_csv(exp / "leaderboard.csv").iloc[-1]
    result = run_cli("export", exp, "--entry", last.entry, "--out", tmp_path / "lung.pkl")
    assert result.returncode == 0, result.stderr
    bundle = json.loads((tmp_path / "lung.pkl.json").read_text())
    assert (bundle["backbone"], bundle["protocol"]) == (last.backbone, last.protocol)
    assert f"/runs/{last.backbone}/{last.protocol}-seed0" in bundle["source_run"]
    wrong = run_cli("export", exp, "--entry", "nope", "--out", tmp_path / "x.pkl")
    assert wrong.returncode == 2 and "its entries: " in wrong.stderr and last.entry in wrong.stderr
    assert not (tmp_path / "x.pkl").exists()
