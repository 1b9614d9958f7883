"""Which pickles lungfast will load without `--trust`: the ones it wrote itself, unchanged, where it wrote them.

Loading a pickle runs whatever code it holds (fastai #4163). lungfast keeps, in the user's cache folder,
one small file per pickle it wrote (a run's learner.pkl, an export): its absolute path and sha256. A pickle
is vouched for only if both match, so a copy elsewhere, an edited file or a downloaded results folder is
refused. One file per entry: concurrent runs never rewrite a shared file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lungfast import files
from lungfast.cache import cache_dir


def _entry(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return cache_dir("trusted") / f"{key}.json"


def remember(path: str | Path, digest: str | None = None) -> str:
    """Record that lungfast wrote `path` (sha256 given if already computed). Returns the digest."""
    path = Path(path)
    digest = digest or files.sha256(path)
    files.write_json(_entry(path), {"path": str(path.resolve()), "sha256": digest})
    return digest


def vouched(path: str | Path) -> bool:
    path = Path(path)
    entry = _entry(path)
    if not (path.is_file() and entry.is_file()):
        return False
    known = json.loads(entry.read_text())
    return known["path"] == str(path.resolve()) and known["sha256"] == files.sha256(path)
