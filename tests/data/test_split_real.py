"""Splits on real LC25000 tiles and their real tile groups."""

import pandas as pd
import pytest

from lungfast.data import groups, images, split
from lungfast.errors import LungfastError


@pytest.fixture(scope="module")
def real(lc_subset):
    df, skipped = images.scan(lc_subset / "lung_image_sets")
    assert not skipped
    return groups.attach_groups(df, lc_subset / "groups.csv")


def test_grouped_split_keeps_every_group_on_one_side_and_balances_classes(real):
    s = split.make_split(real, "grouped", [0.7, 0.2, 0.1], seed=1)
    assert s.groupby("group_id").part.nunique().max() == 1
    for label, cls in s.groupby("label"):
        share = cls.part.value_counts(normalize=True)
        assert set(share.index) == {"train", "valid", "test"}, label
        assert abs(share["train"] - 0.7) < 0.2, (label, share.to_dict())


def test_grouped_split_is_deterministic_per_seed(real):
    a = split.make_split(real, "grouped", [0.7, 0.2, 0.1], seed=3)
    b = split.make_split(real, "grouped", [0.7, 0.2, 0.1], seed=3)
    c = split.make_split(real, "grouped", [0.7, 0.2, 0.1], seed=4)
    assert a.equals(b) and not a.part.equals(c.part)


def test_random_split_is_stratified_and_leaks_groups(real):
    s = split.make_split(real, "random", [0.7, 0.2, 0.1], seed=42)
    counts = s.groupby(["label", "part"]).size().unstack()
    assert ((counts["train"] / counts.sum(axis=1)).between(0.65, 0.75)).all()
    # the reason published numbers are inflated: copies of one tile on both sides
    assert (s.groupby("group_id").part.nunique() > 1).any()
    assert s.equals(split.make_split(real, "random", [0.7, 0.2, 0.1], seed=42))


def test_subsample_spreads_over_groups(real):
    sub = split.subsample(real, 24, seed=0)
    assert sub.groupby("label").size().eq(24).all()
    assert sub.groupby("label").group_id.nunique().eq(8).all()  # every group kept, 3 images each


def test_groups_csv_missing_images(real, lc_subset, tmp_path):
    g = pd.read_csv(lc_subset / "groups.csv").iloc[5:]
    g.to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(LungfastError, match="5 image\\(s\\) in data_dir have no row"):
        groups.attach_groups(real[["path", "label"]], tmp_path / "g.csv")


def test_groups_csv_disagrees_on_label(real, lc_subset, tmp_path):
    g = pd.read_csv(lc_subset / "groups.csv")
    g.loc[0, "label"] = "lung_n" if g.loc[0, "label"] != "lung_n" else "lung_aca"
    g.to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(LungfastError, match="label disagrees with the class folder for 1 image"):
        groups.attach_groups(real[["path", "label"]], tmp_path / "g.csv")


def test_groups_csv_without_group_column(real, tmp_path):
    (tmp_path / "g.csv").write_text("filename,label\na.jpeg,lung_n\n")
    with pytest.raises(LungfastError, match="needs columns filename and group_id.*group_column"):
        groups.attach_groups(real[["path", "label"]], tmp_path / "g.csv")
