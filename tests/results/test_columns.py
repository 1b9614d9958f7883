"""The column registry's promise: a new metric is its computation (a key its run records carry) plus one row in
`results/columns.py`, and every table that names columns shows it: summary, leaderboard.csv/.md, the terminal
table, the report and the model card."""

import json
import re
import shutil
from pathlib import Path

import pytest
from test_summary import add_run

from lungfast.results import columns, leaderboard, record, report
from lungfast.results.layout import ExperimentDir
from lungfast.results.summary import summarize
from lungfast.ship import card

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "record-0.1"


def test_a_new_metric_is_one_row_and_every_table_shows_it(tmp_path, monkeypatch):
    exp = ExperimentDir(tmp_path / "e")
    for seed, (backbone, entropy) in enumerate([("a", 0.2), ("a", 0.4), ("b", 0.9)]):
        run = add_run(exp, "grouped", backbone, seed, [True] * 30 + [False] * (seed + 1))
        m = json.loads(run.manifest.read_text())  # the computation: the run's end wrote one more key
        run.manifest.write_text(json.dumps({**m, "tile_entropy": entropy}))
    shutil.copy(FIXTURE / "split.csv", run.split_dir.split_csv)
    row = columns.col(
        "tile_entropy",
        columns.MD,
        columns.TERMINAL,
        columns.REPORT,
        columns.CARD,
        mean=True,
        short="entropy",
        doc="mean entropy of the test tiles' probabilities",
    )
    monkeypatch.setattr(columns, "REGISTRY", [*columns.REGISTRY, row])
    s = summarize(exp)
    assert s.table.set_index("backbone").tile_entropy.to_dict() == pytest.approx({"a": 0.3, "b": 0.9})
    leaderboard.write(s)
    assert "tile_entropy" in exp.leaderboard_csv.read_text().splitlines()[0]
    md = exp.leaderboard_md.read_text()
    assert "tile_entropy" in md.splitlines()[0] and "tile_entropy: mean entropy of the test tiles'" in md
    terminal = leaderboard.to_terminal(s, width=400)
    assert "entropy" in terminal.splitlines()[0] and "0.300" in terminal.splitlines()[2]
    assert "tile_entropy" in report.key_table(s.table)
    text = card.build(record.read(run), run, {}, "", "fastai")
    assert re.search(r"\| tile_entropy +\| 0\.9000 +\|", text)


def test_a_narrow_terminal_drops_the_registrys_droppable_columns_first(tmp_path):
    exp = ExperimentDir(tmp_path / "e")
    for seed in (0, 1):
        add_run(exp, "grouped", "a", seed, [True] * 30 + [False] * (seed + 1))
        add_run(exp, "grouped", "b", seed, [True] * 20 + [False] * 10)
    s = summarize(exp)
    wide, narrow = leaderboard.to_terminal(s, width=400), leaderboard.to_terminal(s, width=60)
    column_n = re.compile(r"\|\s+n\s+\|")  # drop = 1: the first a narrow terminal gives up
    assert column_n.search(wide.splitlines()[0]) and not column_n.search(narrow.splitlines()[0])
    assert max(len(line) for line in narrow.splitlines()[:4]) <= 60
    kept = narrow.splitlines()[0]
    assert "test acc" in kept and "rank" in kept  # never dropped (drop = 0)
