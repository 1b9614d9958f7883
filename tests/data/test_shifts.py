"""Input shifts of the robustness sweep, on real H&E tiles: drawn once per tile, graded by severity, cached."""

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungfast.data import shifts


@pytest.fixture
def tiles(lc25000):
    """Four real tiles per class (path, label, group_id), as a test part would list them."""
    groups = pd.read_csv(lc25000 / "groups.csv").groupby("label").head(4)
    return pd.DataFrame(
        {
            "path": [str(lc25000 / "lung_image_sets" / r.label / r.filename) for r in groups.itertuples()],
            "label": groups.label.to_numpy(),
            "group_id": groups.group_id.to_numpy(),
        }
    )


def test_every_shift_changes_a_real_tile_more_as_severity_grows(tiles):
    image = np.asarray(Image.open(tiles.path.iloc[0]).convert("RGB"))
    for shift in shifts.SHIFTS:
        change = [np.abs(shifts.apply(image, shift, s, "t.jpeg").astype(int) - image).mean() for s in shifts.SEVERITIES]
        assert change[0] > 0, shift
        if shift != "stain":  # a random stain draw: each severity widens the range, not every draw
            assert change[0] < change[1] < change[2], (shift, change)


def test_a_tile_gets_the_same_shifted_pixels_every_time_and_another_tile_another_draw(tiles):
    image = np.asarray(Image.open(tiles.path.iloc[0]).convert("RGB"))
    once = shifts.apply(image, "stain", 3, "a.jpeg")
    assert np.array_equal(once, shifts.apply(image, "stain", 3, "a.jpeg"))
    assert not np.array_equal(once, shifts.apply(image, "stain", 3, "b.jpeg"))


def test_shifted_sets_are_written_once_as_png_in_class_folders(tiles, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    out, unchanged = shifts.shifted_set(tiles, "jpeg", 3)
    assert unchanged == 0 and len(out) == len(tiles) and (out.label == tiles.label).all()
    assert all(
        p.endswith(".png") and os.path.basename(os.path.dirname(p)) == label for p, label in zip(out.path, out.label)
    )
    stamp = os.stat(out.path.iloc[0]).st_mtime_ns
    again, _ = shifts.shifted_set(tiles, "jpeg", 3)
    assert again.path.equals(out.path) and os.stat(out.path.iloc[0]).st_mtime_ns == stamp  # reused, not redrawn
    assert shifts.shifted_set(tiles, "jpeg", 0)[0] is tiles  # severity 0 is the tile itself


def test_a_tile_without_tissue_is_kept_unchanged_and_counted(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    (tmp_path / "lung_n").mkdir()
    Image.new("RGB", (64, 64), (250, 250, 250)).save(tmp_path / "lung_n" / "white.png")
    rows = pd.DataFrame({"path": [str(tmp_path / "lung_n" / "white.png")], "label": ["lung_n"], "group_id": ["g"]})
    for shift in ("stain", "stain_retarget"):
        out, unchanged = shifts.shifted_set(rows, shift, 2)
        assert unchanged == 1 and np.asarray(Image.open(out.path.iloc[0])).min() == 250
        assert shifts.shifted_set(rows, shift, 2)[1] == 1  # still counted when read from the cache


def test_the_sample_is_one_fixed_draw_in_proportion_to_class():
    rows = pd.DataFrame(
        {
            "path": [f"p{i}" for i in range(300)],
            "label": ["a"] * 200 + ["b"] * 100,
            "group_id": [f"g{i // 5}" for i in range(300)],
        }
    )
    picked = shifts.sample(rows, 30)
    assert picked.equals(shifts.sample(rows, 30)) and picked.label.value_counts().to_dict() == {"a": 20, "b": 10}
    assert shifts.sample(rows, 1000) is rows and shifts.sample(rows, 0) is rows


def test_every_shift_has_settings_and_a_library_call():
    assert set(shifts.APPLY) == set(shifts.SETTINGS) and all(
        set(v) == set(shifts.SEVERITIES) for v in shifts.SETTINGS.values()
    )


def test_what_a_shift_estimates_once_per_tile_gives_the_pixels_it_would_estimate_each_time(tiles):
    image = np.asarray(Image.open(tiles.path.iloc[0]).convert("RGB"))
    for shift in ("stain", "stain_retarget"):
        memo = {}
        shared = [shifts.apply(image, shift, s, "t.jpeg", memo) for s in shifts.SEVERITIES]
        assert memo  # the estimate was kept for the next severities
        assert all(
            np.array_equal(a, shifts.apply(image, shift, s, "t.jpeg")) for a, s in zip(shared, shifts.SEVERITIES)
        )
