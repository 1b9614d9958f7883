"""The run record (metrics.json, the run's manifest): typed round trip, records of lungfast 0.1, damage."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from lungfast.errors import LungfastError
from lungfast.results import record
from lungfast.results.layout import RUN_FILES, ExperimentDir, RunDir
from lungfast.runspec import RunSpec

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "record-0.1"  # written by lungfast 0.1.0, unchanged


def test_a_record_of_lungfast_0_1_loads_with_todays_names():
    rec = record.RunRecord.from_json(json.loads((OLD / "metrics.json").read_text()))
    assert rec.spec == RunSpec(
        experiment="old",
        backbone="tiny",
        seed=0,
        scheme="grouped",
        split_seed=42,
        img_size=32,
        batch_size=8,
        epochs=1,
        lr=0.002,
        pretrained=False,
        weights_file=None,
        n_images=36,
        protocol="fine_tune",
    )
    assert rec.lr_used == 0.002 and rec.schedule == "one_cycle" and rec.test_accuracy == pytest.approx(1 / 3)
    out = rec.to_json()
    assert out["scheme"] == "grouped" and "split" not in out and out["lr_used"] == 0.002


def test_round_trip_keeps_every_field_and_unknown_ones():
    d = json.loads((OLD / "metrics.json").read_text())
    rec = record.RunRecord.from_json({**d, "from_a_newer_version": 1})
    again = record.RunRecord.from_json(rec.to_json())
    assert again == rec and again.extra == {"from_a_newer_version": 1}


def test_lr_find_of_an_old_record_is_kept_as_find():
    d = {**json.loads((OLD / "metrics.json").read_text()), "lr": 0.0123, "lr_found": 0.0123}
    rec = record.RunRecord.from_json(d)
    assert rec.spec.lr == "find" and rec.lr_used == 0.0123


def old_run(tmp_path) -> RunDir:
    run = ExperimentDir(tmp_path / "old").split_dir("grouped", 42, True).run("tiny", 0)
    run.path.mkdir(parents=True)
    for name in RUN_FILES:
        (run.path / name).write_bytes(b"")
    shutil.copy(OLD / "metrics.json", run.manifest)
    shutil.copy(OLD / "test_predictions.csv", run.test_predictions)
    return run


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_a_dict", "missing_field"])
def test_a_damaged_record_is_named_and_not_complete(tmp_path, damage, caplog):
    run = old_run(tmp_path)
    assert record.is_complete(run)
    text = run.manifest.read_text()
    run.manifest.write_text(
        {
            "truncated": text[: len(text) // 2],
            "empty": "",
            "not_a_dict": "[1, 2]",
            "missing_field": text.replace('"test_accuracy"', '"test_acc"'),
        }[damage]
    )
    with pytest.raises(LungfastError, match="damaged run record") as e:
        record.read(run)
    assert str(run.manifest) in str(e.value) and "\n" not in str(e.value)
    with caplog.at_level("WARNING", logger="lungfast"):
        assert not record.is_complete(run)
        assert record.read_all([run]) == []
    assert any("damaged run record" in r.getMessage() for r in caplog.records)


def test_written_records_read_back_and_missing_files_mean_incomplete(tmp_path):
    run = old_run(tmp_path)
    rec = record.read(run)
    record.write(run, dataclasses.replace(rec, test_accuracy=0.5))
    assert record.read(run).test_accuracy == 0.5
    run.learner.unlink()
    assert not record.is_complete(run) and record.read_all([run]) == []
