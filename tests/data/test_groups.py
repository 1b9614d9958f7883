"""Groups CSVs that would leak a tile across parts, or silently pick one of two answers, are refused."""

import pytest

from lungfast.data import groups, images, synthetic
from lungfast.errors import LungfastError


@pytest.fixture
def tiles(tmp_path):
    root = tmp_path / "d"
    data = synthetic.make_dataset(root, originals_per_class=3, copies=2)
    df, _ = images.scan(data)
    return df, (root / "groups.csv").read_text().splitlines()


def write(tmp_path, lines):
    (tmp_path / "g.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "g.csv"


def test_a_group_spanning_two_labels_is_refused(tiles, tmp_path):
    df, lines = tiles
    # put one lung_n tile into a lung_aca group: that group would hold two classes
    lines = [s.replace(",lung_n,lung_n-0", ",lung_n,lung_aca-0", 1) if s.startswith("lungn1.") else s for s in lines]
    with pytest.raises(LungfastError, match="tile group lung_aca-0 holds images of lung_aca and lung_n"):
        groups.attach_groups(df, write(tmp_path, lines))


def test_a_file_listed_twice_with_two_groups_is_refused(tiles, tmp_path):
    df, lines = tiles
    with pytest.raises(LungfastError, match="lungaca1.jpeg is listed with lung_aca-0, lung_aca-9 as group ids"):
        groups.attach_groups(df, write(tmp_path, [*lines, "lungaca1.jpeg,lung_aca,lung_aca-9"]))


def test_an_identical_repeated_row_is_harmless(tiles, tmp_path):
    df, lines = tiles
    out = groups.attach_groups(df, write(tmp_path, [*lines, lines[1]]))
    assert len(out) == len(df)


def test_a_row_without_group_id_names_its_line(tiles, tmp_path):
    df, lines = tiles
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    with pytest.raises(LungfastError, match="line 4 has no filename or no group_id"):
        groups.attach_groups(df, write(tmp_path, lines))
