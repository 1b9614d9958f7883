"""The one summary (leaderboard, inflation, paired comparison, winner) and what renders it, on records
written through the real record writer into the real layout."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from lungfast.errors import LungfastError
from lungfast.results import leaderboard, readme, record
from lungfast.results.layout import RUN_FILES, ExperimentDir
from lungfast.results.summary import summarize

TEMPLATE = record.RunRecord.from_json(
    json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "record-0.1" / "metrics.json").read_text())
)


def add_run(exp: ExperimentDir, scheme: str, backbone: str, seed: int, correct: list[bool], only_split=False):
    """A record whose test predictions get `correct` right, as the loop would write it."""
    run = exp.split_dir(scheme, 1, only_split).run(backbone, seed)
    run.path.mkdir(parents=True)
    for name in RUN_FILES:
        (run.path / name).write_bytes(b"")
    pd.DataFrame(
        {
            "path": [f"img{i}.jpeg" for i in range(len(correct))],
            "actual": "lung_n",
            "predicted": ["lung_n" if c else "lung_aca" for c in correct],
        }
    ).to_csv(run.test_predictions, index=False)
    acc = sum(correct) / len(correct)
    spec = dataclasses.replace(TEMPLATE.spec, scheme=scheme, backbone=backbone, seed=seed, split_seed=1)
    record.write(run, dataclasses.replace(TEMPLATE, spec=spec, test_accuracy=acc, test_loss=1 - acc))
    return run


@pytest.fixture
def exp(tmp_path):
    exp = ExperimentDir(tmp_path / "e")
    good, half = [True] * 40, [i % 2 == 0 for i in range(40)]
    for seed in (0, 1):
        add_run(exp, "grouped", "a", seed, good[: -seed - 1] + [False] * (seed + 1))
        add_run(exp, "grouped", "b", seed, half)
        add_run(exp, "random", "a", seed, good)
        add_run(exp, "random", "b", seed, [True] * 30 + [False] * 10)
    return exp


def test_summary_ranks_the_honest_scheme_and_keeps_the_rest(exp):
    s = summarize(exp)
    assert s.scheme == "grouped" and list(s.table.backbone) == ["a", "b"] and list(s.table["rank"]) == [1, 2]
    a = s.table.iloc[0]
    assert a.test_accuracy == pytest.approx((39 / 40 + 38 / 40) / 2) and a.n == 2 and a.n_seeds == 2
    assert a.ci95_low < a.test_accuracy < a.ci95_high and s.table.iloc[1].test_accuracy_std == 0
    infl = s.inflation.set_index("backbone")
    assert infl.inflation["a"] == pytest.approx(1 - a.test_accuracy) and infl.inflation["b"] == pytest.approx(0.25)
    assert s.comparison["first"] == "a" and s.comparison["p_value"] < 0.01
    assert s.winner == exp.split_dir("grouped", 1, False).run("a", 0)  # a's better seed, never a random run


def test_leaderboard_files_and_readme_block_come_from_the_summary(exp, tmp_path):
    s = summarize(exp)
    text = leaderboard.write(s)
    assert pd.read_csv(exp.leaderboard_csv).backbone.tolist() == ["a", "b"]
    assert "Random-split inflation" in text and "Paired test, #1 a vs #2 b" in text
    assert exp.leaderboard_md.read_text() == leaderboard.to_markdown(s)
    assert json.loads(exp.comparison_json.read_text())["first"] == "a"
    # what a terminal shows: key columns within 100 characters, no column of work that did not run
    assert max(map(len, text.splitlines())) <= 100, text
    assert "nan" not in text and "rank" in text.splitlines()[0] and "leaderboard.csv" in text
    page = tmp_path / "README.md"
    page.write_text("intro\n<!-- leaderboard:e -->\nold\n<!-- /leaderboard:e -->\nrest\n")
    leaderboard.update_readme(page, s, "Command: x")
    new = page.read_text()
    assert new.startswith("intro\n<!-- leaderboard:e -->\nCommand: x\n\n| ") and new.endswith(
        "<!-- /leaderboard:e -->\nrest\n"
    )
    assert "\nold\n" not in new


def test_readme_without_the_block_is_one_clear_error(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("no markers here\n")
    with pytest.raises(LungfastError, match="no <!-- bench --> ... <!-- /bench --> block"):
        readme.replace_block(page, "bench", "x")
    assert page.read_text() == "no markers here\n"


def test_a_damaged_record_is_left_out_by_name(exp, caplog):
    broken = exp.split_dir("grouped", 1, False).run("b", 1)
    broken.manifest.write_text("{")
    with caplog.at_level("WARNING", logger="lungfast"):
        s = summarize(exp)
    assert s.table.set_index("backbone").n.to_dict() == {"a": 2, "b": 1}
    assert any(str(broken.manifest) in r.getMessage() for r in caplog.records)


def test_one_scheme_one_backbone_has_no_comparison_or_inflation(tmp_path):
    exp = ExperimentDir(tmp_path / "one")
    add_run(exp, "random", "a", 0, [True, False], only_split=True)
    s = summarize(exp)
    assert s.scheme == "random" and s.comparison is None and s.inflation is None and len(s.table) == 1
    assert s.winner.path == exp.path / "runs" / "a" / "seed0"


def test_no_records_is_one_clear_error(tmp_path):
    with pytest.raises(LungfastError, match="no complete run records"):
        summarize(ExperimentDir(tmp_path))
