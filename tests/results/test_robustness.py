"""The robustness sweep's bookkeeping, with a stand-in scorer whose answers under each shift are known."""

import pandas as pd
import pytest

from lungfast.data import shifts
from lungfast.results import evaluate, robustness
from lungfast.results.layout import RunDir

VOCAB = ["lung_aca", "lung_n", "lung_scc"]


def table(rows: pd.DataFrame, right: bool) -> pd.DataFrame:
    """Predictions: every tile right (confident) or every tile wrong."""
    import torch

    y = torch.tensor([VOCAB.index(label) for label in rows.label])
    pred = y if right else (y + 1) % 3
    probs = torch.nn.functional.one_hot(pred, 3).float() * 0.9 + 0.1 / 3
    return evaluate.as_table(probs, y, torch.zeros(len(y)), VOCAB, rows.path.tolist())


def scorer(rows: pd.DataFrame) -> pd.DataFrame:
    """Right on JPEG-shifted tiles and at the lowest severity of every shift; wrong otherwise."""
    where = rows.path.iloc[0].split("/shifted/")[1].split("/")
    return table(rows, where[0] == "jpeg" or where[1] == "1")


@pytest.fixture(scope="module")
def swept(lc25000, tmp_path_factory):
    """One sweep for every test here (it makes 135 shifted tiles), into its own cache."""
    tmp_path = tmp_path_factory.mktemp("swept")
    mp = pytest.MonkeyPatch()
    mp.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    groups = pd.read_csv(lc25000 / "groups.csv").groupby("label").head(3)
    rows = pd.DataFrame(
        {
            "path": [str(lc25000 / "lung_image_sets" / r.label / r.filename) for r in groups.itertuples()],
            "label": groups.label.to_numpy(),
            "group_id": groups.group_id.to_numpy(),
        }
    )
    (tmp_path / "run").mkdir()
    run = RunDir(tmp_path / "run")
    yield robustness.sweep(scorer, table(rows, True), rows, VOCAB, run, "t"), run
    mp.undo()


def test_sweep_records_every_shift_and_severity_plus_none(swept):
    out, run = swept
    t = pd.read_csv(run.robustness)
    assert len(t) == 1 + len(shifts.SHIFTS) * len(shifts.SEVERITIES) and (t.n == 9).all()
    assert t.iloc[0].tolist()[:2] == ["none", 0] and t.accuracy.iloc[0] == 1.0
    assert (t[t.severity == 1].accuracy == 1.0).all() and (
        t[(t.severity > 1) & (t["shift"] != "jpeg")].accuracy == 0
    ).all()
    assert (t[t["shift"] == "jpeg"].setting.astype(int).tolist()) == [90, 60, 30]
    assert t.ece.between(0, 1).all()


def test_headline_figures_are_taken_at_the_middle_severity(swept):
    out, run = swept
    assert out["shifted_accuracy"] == pytest.approx(1 / len(shifts.SHIFTS))  # only jpeg survives severity 2
    assert out["worst_shift"] == "stain" and out["worst_shift_accuracy"] == 0.0
    assert out["robustness"]["middle"]["jpeg"] == 1.0 and out["robustness"]["n"] == 9


def test_per_tile_predictions_name_the_original_tile_under_every_shift(swept):
    out, run = swept
    p = pd.read_csv(run.robustness_predictions)
    assert len(p) == 9 * 16 and p.groupby("path").size().eq(16).all()
    assert not p.path.str.contains("/shifted/").any()
    assert (run.path / "robustness.png").stat().st_size > 10_000
