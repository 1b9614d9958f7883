"""Atomic writes get the user's normal permissions; one process at a time holds a run's lock."""

import os
import subprocess
import sys
import textwrap
import time

from lungfast import files


def test_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_text(tmp_path / "report.html", "<html>")
        files.write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert oct((tmp_path / "report.html").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_second_process_waits_for_the_lock_and_names_the_holder(tmp_path):
    lock = tmp_path / ".seed0.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time
        from pathlib import Path
        from lungfast import files
        with files.exclusive(Path({str(lock)!r}), "run"):
            Path({str(tmp_path / "held")!r}).touch()
            time.sleep(1.5)
    """),
        ]
    )
    while not (tmp_path / "held").exists():
        time.sleep(0.02)
    seen = time.monotonic()
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("lungfast").addHandler(handler)
    logging.getLogger("lungfast").setLevel(logging.INFO)
    try:
        with files.exclusive(lock, "tiny/seed0"):
            waited = time.monotonic() - seen  # the holder keeps the lock 1.5 s after saying so
    finally:
        logging.getLogger("lungfast").removeHandler(handler)
    holder.wait()
    assert waited > 1.0
    assert any(f"pid {holder.pid}" in r.getMessage() and "waiting" in r.getMessage() for r in records)


def test_temporary_files_of_a_killed_writer_are_swept_and_a_live_ones_kept(tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = tmp_path / f".split.csv.{dead.stdout.strip()}@{host}.abc123.tmp"
    live = tmp_path / f".split.csv.{os.getpid()}@{host}.def456.tmp"
    elsewhere = tmp_path / f".split.csv.{dead.stdout.strip()}@another-machine.ghi789.tmp"
    for f in (stale, live, elsewhere):
        f.write_text("half")
    files.write_text(tmp_path / "split.csv", "path,label\n")
    assert not stale.exists() and live.exists() and elsewhere.exists()
    assert (tmp_path / "split.csv").read_text() == "path,label\n"
