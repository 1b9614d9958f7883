"""A disk that fills up, a folder that cannot be written: one line naming the file and the setting that moves
it, never a traceback or a Bus error, and no partial file left holding the space.

A full disk is reproduced the way the kernel reports it to a process, with a file-size limit (`ulimit -f`):
every write past it fails as a write to a full disk does, in the real CLI, wherever the write happens.
"""

import errno
import os
import resource
import subprocess
import sys
import tempfile

import pytest
from conftest import run_cli, write_experiment

from lungfast.files import os_error_line

pytestmark = pytest.mark.slow


def without_coverage(environ) -> dict:
    # coverage's subprocess patch writes its data file at exit: under the file-size limit that write fails too
    # (a coverage traceback, not lungfast's), and how big it gets depends on the machine's paths
    return {k: v for k, v in environ.items() if not k.startswith("COVERAGE_PROCESS_")}


def run_limited(*args, max_bytes: int, env: dict, cwd):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run(
        [sys.executable, "-m", "lungfast.cli", *map(str, args)],
        cwd=cwd,
        preexec_fn=limit,
        env={**without_coverage(os.environ), "PYTHONWARNINGS": "ignore", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line(result, *fragments):
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Bus error" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lungfast: error: "), result.stderr[-3000:]
    for f in fragments:
        assert f in last, last
    return last


def leftovers(root):
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".partial.pth"))]


def experiment(lc_subset, tmp_path, backbone):
    return write_experiment(
        tmp_path / "e.toml",
        name="full",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=[backbone],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        max_per_class=30,
        robustness_n=0,
        results_dir=str(tmp_path / "results"),
    )


def test_a_full_cache_disk_is_one_line_naming_lungfast_cache(lc_subset, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    exp = experiment(lc_subset, tmp_path, "tiny")
    # The readability scan is done first, without a limit: its size follows the length of the data folder's
    # real path (machine-dependent), the store's does not. 64 kB is then less than the 32 px tile store
    # (90 x 3 kB), so the first write that fails is the store's.
    monkeypatch.setenv("LUNGFAST_CACHE", str(cache))
    from lungfast.data.images import scan

    scan(lc_subset / "lung_image_sets")
    assert list((cache / "scan").glob("*.json"))
    r = run_limited("run", exp, max_bytes=64_000, env={"LUNGFAST_CACHE": str(cache)}, cwd=tmp_path)
    line = one_line(r, "File too large", "store", "LUNGFAST_CACHE")
    assert "free on that disk" in line
    assert not leftovers(cache) and not list(cache.rglob("*.npy"))


def test_a_full_results_disk_during_training_is_one_line_and_the_rerun_works(lc_subset, tmp_path):
    cache = {"LUNGFAST_CACHE": tempfile.mkdtemp(prefix="lungfast-disk-")}
    exp = experiment(lc_subset, tmp_path, "xresnet18")
    # 20 MB: data, store and logs fit; the checkpoint of xresnet18 with its optimizer (~140 MB) does not
    r = run_limited("run", exp, max_bytes=20_000_000, env=cache, cwd=tmp_path)
    one_line(r, "state.pth", "results_dir")
    assert not leftovers(tmp_path / "results")
    again = run_cli("run", exp, cwd=tmp_path, env=cache)  # space again: the same command finishes
    assert again.returncode == 0, again.stderr[-3000:]


def test_predict_out_that_cannot_be_written_fails_before_predicting(lc_subset, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    started = os.times().elapsed
    r = run_cli(
        "predict", tmp_path / "missing.pkl", lc_subset / "lung_image_sets", "--out", blocker / "p.csv", cwd=tmp_path
    )
    one_line(r, str(blocker), "a file where a folder is needed", "--out")
    assert os.times().elapsed - started < 60
    r = run_cli("predict", tmp_path / "missing.pkl", lc_subset, "--out", tmp_path, cwd=tmp_path)
    one_line(r, "is a folder", "name a file")


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_an_unwritable_cache_names_the_cache_setting_and_results_name_results(code, tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    in_cache = os_error_line(OSError(code, os.strerror(code), str(tmp_path / "cache" / "store" / "x.npy")))
    assert "LUNGFAST_CACHE" in in_cache and "results_dir" not in in_cache
    in_results = os_error_line(OSError(code, os.strerror(code), str(tmp_path / "results" / "e" / "split.csv")))
    assert "results_dir" in in_results and "LUNGFAST_CACHE" not in in_results
