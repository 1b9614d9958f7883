"""`lungfast prepare`: a data set's tile store built ahead of runs, the very one a run on all its images reads."""

import os

import pytest
from conftest import run_cli

from lungfast.data import images, store


@pytest.mark.slow
def test_prepare_builds_the_store_a_run_reads_and_reuses_it(tmp_path):
    from lungfast.data import synthetic as demo

    data = demo.make_dataset(tmp_path / "data", originals_per_class=2, copies=2)
    r = run_cli("prepare", data, "--size", "40", "24")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["prepared 12 images at 40 px", "prepared 12 images at 24 px"]
    df, _ = images.scan(data)
    built = store.ensure(df, 40)  # what a run on these images opens (this process shares LUNGFAST_CACHE)
    assert str(built.path) in lines[0] and built.images.shape == (12, 40, 40, 3)
    stamp = os.stat(built.path).st_mtime_ns
    again = run_cli("prepare", data, "--size", "40")
    assert again.returncode == 0 and os.stat(built.path).st_mtime_ns == stamp  # reused, not rebuilt
