"""Bad input on disk: every case is a clear error or a counted skip, never a crash."""

import pytest
from PIL import Image

from lungfast.data import images
from lungfast.errors import LungfastError


def make_class(root, name, n=3, size=40):
    d = root / name
    d.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (size, size), (200, 100 + i * 20, 150)).save(d / f"{name}{i}.jpeg")
    return d


def test_unreadable_images_are_skipped_and_odd_modes_kept(tmp_path):
    a = make_class(tmp_path, "lung_aca")
    make_class(tmp_path, "lung_n")
    (a / "empty.jpeg").write_bytes(b"")
    (a / "text.jpeg").write_text("this is not an image")
    good = (a / "lung_aca0.jpeg").read_bytes()
    (a / "truncated.jpeg").write_bytes(good[: len(good) // 2])
    Image.new("CMYK", (40, 40), (10, 200, 30, 0)).save(a / "cmyk.jpeg")
    Image.new("RGBA", (40, 40), (10, 200, 30, 128)).save(a / "rgba.png")
    Image.new("L", (40, 40), 128).save(a / "gray.png")
    (a / "notes.txt").write_text("ignored: not an image suffix")

    df, skipped = images.scan(tmp_path)
    names = {p.split("/")[-1] for p, _ in skipped}
    assert names == {"empty.jpeg", "text.jpeg", "truncated.jpeg"}
    kept = set(df.path.map(lambda p: p.split("/")[-1]))
    assert {"cmyk.jpeg", "rgba.png", "gray.png"} <= kept and len(df) == 6 + 3
    assert df.groupby("label").size().to_dict() == {"lung_aca": 6, "lung_n": 3}


def test_missing_data_dir(tmp_path):
    with pytest.raises(LungfastError, match="not a folder"):
        images.scan(tmp_path / "nope")


def test_fewer_than_two_classes(tmp_path):
    make_class(tmp_path, "lung_aca")
    with pytest.raises(LungfastError, match=r"at least 2 class folder\(s\), found lung_aca"):
        images.scan(tmp_path)


def test_empty_class_folder(tmp_path):
    make_class(tmp_path, "lung_aca")
    (tmp_path / "lung_n").mkdir()
    with pytest.raises(LungfastError, match="lung_n hold no images"):
        images.scan(tmp_path)


def test_class_with_only_broken_images(tmp_path):
    make_class(tmp_path, "lung_aca")
    (tmp_path / "lung_n").mkdir()
    (tmp_path / "lung_n" / "x.jpeg").write_bytes(b"")
    with pytest.raises(LungfastError, match="no readable image in class folder"):
        images.scan(tmp_path)


def test_broken_and_looping_symlinks_are_counted_and_nested_images_kept(tmp_path):
    a = make_class(tmp_path, "lung_aca")
    make_class(tmp_path, "lung_n")
    (a / "gone.jpeg").symlink_to(tmp_path / "nowhere.jpeg")
    (a / "loop1.jpeg").symlink_to(a / "loop2.jpeg")
    (a / "loop2.jpeg").symlink_to(a / "loop1.jpeg")
    (a / "good-link.jpeg").symlink_to(a / "lung_aca0.jpeg")
    make_class(a, "scanner2", n=2)  # a sub-folder of the class folder: still lung_aca
    make_class(a, ".thumbs", n=1)  # hidden: not data
    df, skipped = images.scan(tmp_path)
    reasons = {p.split("/")[-1]: r for p, r in skipped}
    assert set(reasons) == {"gone.jpeg", "loop1.jpeg", "loop2.jpeg"}
    assert all("broken symlink" in r for r in reasons.values())
    assert df.groupby("label").size().to_dict() == {"lung_aca": 3 + 1 + 2, "lung_n": 3}
    assert not df.path.str.contains(".thumbs").any()


def test_a_folder_spelled_another_way_is_not_checked_again(tmp_path, monkeypatch):
    """./data, /abs/data and a link to it are one folder: the cached verdicts are found under every spelling."""
    make_class(tmp_path / "data", "lung_aca")
    make_class(tmp_path / "data", "lung_n")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    decoded = []
    real = images.unreadable_reason
    monkeypatch.setattr(images, "unreadable_reason", lambda p: decoded.append(p) or real(p))
    monkeypatch.chdir(tmp_path)
    first, _ = images.scan("data")
    assert len(decoded) == 6
    for spelling in ("./data", str(tmp_path / "data"), "link", "data/../data"):
        again, _ = images.scan(spelling)
        assert len(decoded) == 6, spelling  # nothing decoded again
        assert again.label.tolist() == first.label.tolist()
