import os

import pandas as pd
from PIL import Image

from lungfast.data import images, prepare

from conftest import run_cli, write_tiles


def test_prepared_copies_are_resized_keyed_by_source_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    write_tiles(tmp_path / "d", ("lung_aca", "lung_n"), 3, size=(300, 200), suffix=".jpeg")
    df, _ = images.scan(tmp_path / "d")
    first = prepare.prepare(df, 48)
    assert all(Image.open(p).size == (48, 48) for p in first)
    assert all(os.path.basename(os.path.dirname(p)) == label for p, label in zip(first, df.label))
    stamp = os.stat(first.iloc[0]).st_mtime_ns
    assert prepare.prepare(df, 48).equals(first) and os.stat(first.iloc[0]).st_mtime_ns == stamp  # reused
    assert not prepare.prepare(df, 32).isin(first).any()  # another size, other files
    src = df.path.iloc[0]
    Image.new("RGB", (300, 200), (0, 0, 0)).save(src)  # the source changes: a new key, a fresh copy
    os.utime(src, ns=(stamp + 10**9, stamp + 10**9))
    again = prepare.prepare(df, 48)
    assert again.iloc[0] != first.iloc[0] and again.iloc[1:].equals(first.iloc[1:])
    assert Image.open(again.iloc[0]).getpixel((5, 5)) == (0, 0, 0)


def test_prepare_command(tmp_path):
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=2, copies=2)
    env_cache = os.environ["LUNGFAST_CACHE"]
    r = run_cli("prepare", data, "--size", "40", "24")
    assert r.returncode == 0, r.stderr
    assert "prepared 12 images at 40 px" in r.stdout and "prepared 12 images at 24 px" in r.stdout
    assert len(list((prepare.cache_root() / "24").glob("*/*.jpeg"))) >= 12 and env_cache
