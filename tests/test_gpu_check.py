"""The GPU check's dry path on a machine without CUDA, and the promise of its header: what it imports."""

import ast
import os
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_without_cuda_it_says_so_in_one_line_and_exits_0():
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines() == [
        "gpu_check: no CUDA device visible; nothing to check on this machine (exit 0)"
    ]


def test_it_imports_at_module_level_only_what_its_header_names():
    tree = ast.parse(SCRIPT.read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert top <= {"__future__", "argparse", "os", "sys", "time", "pathlib", "numpy", "torch"}
    lazy = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} - top
    lazy |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} - top
    header = ast.get_docstring(tree)
    assert all(name in header for name in lazy - {"bench"}), lazy  # timm, fastai, lungfast: each named, with why
    assert all(name in header for name in ("torch", "timm", "numpy"))
