"""Shared fixtures. Tests run offline: timm must not wait on the hub, weights come from files."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core (pytest-xdist): one thread each, no oversubscription
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# lungfast's cache (converted weights, trusted-pickle records) per test session, never the user's
os.environ["LUNGFAST_CACHE"] = tempfile.mkdtemp(prefix="lungfast-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LUNGFAST_SAMPLE", REPO.parent / "shared" / "lc25000-lung"))


@pytest.fixture(scope="session")
def lc25000():
    """The real LC25000 lung sample kept beside the repository (read-only)."""
    if not (SHARED / "groups.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the LC25000 sample at {SHARED}")
        pytest.skip("LC25000 sample not found beside the repository (set LUNGFAST_SAMPLE=DIR)")
    return SHARED


@pytest.fixture(scope="session")
def lc_subset(lc25000, tmp_path_factory):
    """8 tile groups per class of real tiles, symlinked into a temp dir in the official layout."""
    root = tmp_path_factory.mktemp("lc_subset")
    groups = pd.read_csv(lc25000 / "groups.csv")
    chosen = groups[
        groups.group_id.isin(groups.groupby("label").group_id.apply(lambda g: sorted(g.unique())[:8]).explode())
    ]
    for row in chosen.itertuples():
        dest = root / "lung_image_sets" / row.label / row.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(lc25000 / "lung_image_sets" / row.label / row.filename)
    chosen[["filename", "label", "group_id"]].to_csv(root / "groups.csv", index=False)
    return root


# LUNGFAST_TEST_SUBPROCESS=1: every run_cli call in its own Python process, as CI did before the suite shared them
SUBPROCESS = os.environ.get("LUNGFAST_TEST_SUBPROCESS") == "1"


def run_cli(*args, cwd=None, timeout=600, env=None, fresh=False):
    """The real `lungfast` command without a terminal (as in CI and logs): `cli.main` with the arguments, its
    stdout and stderr captured, its working folder and environment as given; an exception it lets through is a
    traceback on stderr and exit code 1, as Python would print it. In this process, so a call costs no second
    import of torch and fastai (~8 s each); `fresh=True` runs it in a subprocess instead, for what only a new
    process shows. Tests at a real terminal use `run_pty`, which is always a new process."""
    if fresh or SUBPROCESS:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "lungfast.cli", *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return _in_process([str(a) for a in args], cwd, env or {})


def _in_process(argv: list[str], cwd, env: dict) -> subprocess.CompletedProcess:
    import contextlib
    import io
    import logging
    import traceback
    import warnings

    from lungfast import cli

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level, saved_env, saved_cwd = root.handlers[:], root.level, dict(os.environ), os.getcwd()
    root.handlers = []  # cli.main's basicConfig then writes to the captured stderr, as a new process would
    os.environ.update({"PYTHONWARNINGS": "ignore", **{k: str(v) for k, v in env.items()}})
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            except Exception:  # what a new process would show: a traceback and exit code 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for h in root.handlers:
            h.close()
        root.handlers, root.level = handlers, level
    return subprocess.CompletedProcess(["lungfast", *argv], code, out.getvalue(), err.getvalue())


def run_pty(*args, cwd=None, timeout=900, env=None, columns=100, on_output=None):
    """The installed `lungfast` command at a real pseudo-terminal (stdin, stdout and stderr all a tty, 100
    columns), as a person runs it: (exit code, everything the terminal showed). `on_output(text so far, proc)`
    may act on the output as it arrives (send Ctrl-C, say)."""
    import fcntl
    import select
    import struct
    import termios
    import time

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    command = [str(Path(sys.executable).with_name("lungfast")), *map(str, args)]
    import signal

    # Ctrl-C works as at a terminal even when the test runner was started in the background, where shells
    # set SIGINT to "ignore" and every child inherits it
    proc = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        close_fds=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONWARNINGS": "ignore", "TERM": "xterm", "COLUMNS": str(columns), **(env or {})},
    )
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready and on_output and proc.poll() is None:  # a quiet moment: the watcher may act too
                on_output(out.decode(errors="replace"), proc)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the command closed the terminal (it exited)
                    break
                if not chunk:
                    break
                out += chunk
                if on_output:
                    on_output(out.decode(errors="replace"), proc)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(
                f"lungfast {' '.join(map(str, args))} ran past {timeout}s at a terminal:\n"
                f"{out.decode(errors='replace')[-3000:]}"
            )
    finally:
        os.close(master)
    return proc.wait(), out.decode(errors="replace")


def screen_lines(text: str) -> list[str]:
    """What a terminal leaves on screen: each line as its last carriage return left it (bars redraw in place)."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # cursor movement and colours
    return [line.split("\r")[-1] for line in text.replace("\r\n", "\n").split("\n")]


def write_experiment(path: Path, **keys) -> Path:
    """A TOML experiment file from keyword arguments (strings quoted, lists and numbers as TOML). Precision is
    fp32 unless given: tests compare probabilities tightly on any CI CPU, with or without bf16 units (the
    bf16 plan has its own parity tests). 40 bootstrap resamples, not 500: the tests check an interval's
    properties, not its last digit, and the bootstrap is most of a tiny run's evaluation. Inference is timed for
    0.05 s per batch size, not 0.5: the cost columns' properties, not their precision. No robustness sweep
    unless a test names its size: it costs a tiny run ~1.7 s (15 shifted sets) whatever the size, and the tests of
    its figures, its report charts and its cached embeddings name theirs."""
    keys = {"precision": "fp32", "bootstrap_resamples": 40, "throughput_seconds": 0.05, "robustness_n": 0, **keys}

    def toml(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {toml(x)}' for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return str(v)

    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in keys.items()))
    return path


def write_tiles(root: Path, classes, per_class: int, size=(40, 40), suffix: str = ".png") -> None:
    """Small solid-colour image files in class folders (the colour varies with the index)."""
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", size, (40 * i, 90, 200)).save(root / c / f"{c}{i}{suffix}")


def pytest_collection_modifyitems(config, items):
    """Files with the most end-to-end (slow) tests first, the quick files last: pytest-xdist hands whole files to
    workers (--dist loadfile), and starting the long ones first keeps one worker from finishing alone."""
    from collections import Counter

    weight = Counter(str(item.path) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -weight[str(item.path)])  # stable: each file keeps its own order
