"""Splits on synthetic tile groups (no shared data needed): schemes, parts, determinism, subsampling."""

import pytest

from lungfast.data import groups, images, split, synthetic
from lungfast.errors import LungfastError


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    """12 original tiles per class, 6 rotated/flipped copies each, one group id per original."""
    root = tmp_path_factory.mktemp("synthetic")
    data = synthetic.make_dataset(root, originals_per_class=12, copies=6)
    df, skipped = images.scan(data)
    assert not skipped and len(df) == 3 * 12 * 6
    return groups.attach_groups(df, root / "groups.csv")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_scheme_keeps_each_group_in_one_part(tiles, seed):
    s = split.make_split(tiles, "grouped", [0.6, 0.2, 0.2], seed)
    assert list(s.columns) == split.COLUMNS
    assert s.groupby("group_id").part.nunique().max() == 1
    assert (s.groupby(["label", "part"]).size().unstack() > 0).all().all()  # every class in every part


def test_random_scheme_puts_copies_of_one_tile_in_several_parts(tiles):
    s = split.make_split(tiles, "random", [0.6, 0.2, 0.2], 42)
    assert (s.groupby("group_id").part.nunique() > 1).sum() > 10
    assert s.equals(split.make_split(tiles, "random", [0.6, 0.2, 0.2], 42))


def test_a_split_depends_only_on_its_seed(tiles):
    a, b = (split.make_split(tiles, "grouped", [0.6, 0.2, 0.2], 5) for _ in range(2))
    assert a.equals(b) and not a.part.equals(split.make_split(tiles, "grouped", [0.6, 0.2, 0.2], 6).part)


def test_too_few_groups_for_a_grouped_split(tiles):
    one_group = tiles[tiles.group_id.str.endswith("-0")]
    with pytest.raises(LungfastError, match="too few for a grouped train/valid/test split"):
        split.make_split(one_group, "grouped", [0.6, 0.2, 0.2], 0)


def test_subsample_takes_images_round_robin_over_groups(tiles):
    sub = split.subsample(tiles, 24, seed=0)
    assert sub.groupby("label").size().eq(24).all()
    assert sub.groupby(["label", "group_id"]).size().eq(2).all()  # 12 groups x 2 images, never 6 of one


def test_split_facts_and_old_part_column(tiles, tmp_path):
    frame = split.make_split(tiles, "grouped", [0.6, 0.2, 0.2], 0)
    one = split.Split(frame, ("bad.jpeg",), "groups.csv")
    facts = one.facts()
    assert facts["n_train"] + facts["n_valid"] + facts["n_test"] == len(tiles) and facts["skipped_images"] == 1
    assert len(one.part("test")) == facts["n_test"]
    frame.rename(columns={"part": "split"}).to_csv(tmp_path / "old.csv", index=False)  # lungfast 0.1's split.csv
    assert split.read_csv(tmp_path / "old.csv").equals(frame)


def test_summary_counts_images_and_groups_per_part(tiles):
    s = split.summary(split.make_split(tiles, "grouped", [0.6, 0.2, 0.2], 0))
    assert s.images.sum() == len(tiles) and s.groups.sum() == tiles.group_id.nunique()
    assert set(s.part) == set(split.PARTS)
