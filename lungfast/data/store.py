"""One uint8 store per (source set, size): every tile decoded and resized once, into a memory-mapped array.

Training and validation batches are gathered from it by index (`data.loaders`): no PIL, no per-item Python
in the hot path. Why: decoding a 768 px JPEG costs ~3 ms per core, so feeding a GPU by decoding takes 20+
cores; gathering 224 px uint8 tiles from a page-cached array costs microseconds (LC25000 lung at 224 px is
2.3 GB: a memory map, not a decoder problem).

- Pixels: the learner's own `TileImage.create` (`images.to_rgb`) + fastai's `Resize(size, method="squish")`,
  the inference pipeline's item transforms, so a tile is the same pixels in training and in `predict`.
- Key: the sorted (source path, byte size, mtime) of every tile, plus the size and `VERSION`; a changed
  source gives a new key, so a stale store is never read. Reused by every backbone, seed, split, protocol
  and experiment on the same tiles.
- Files: `<cache>/store/<size>/<key>.npy` (N x size x size x 3, uint8, `np.load(mmap_mode="r")`) and
  `<key>.csv` (path, bytes, mtime_ns, label: row i describes image i). Built in parallel threads under a
  lock (one builder per store), written to temp names and renamed: a store is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lungfast import files, progress
from lungfast.cache import cache_dir

log = logging.getLogger("lungfast")
VERSION = 2  # bump when the pixels stored for a tile would change
CHUNK = 256  # tiles per parallel job


def key_of(paths: list[str], size: int) -> str:
    sources = sorted(files.identity(p) for p in paths)
    return hashlib.sha1(json.dumps([VERSION, size, sources]).encode()).hexdigest()[:20]


def decode(path: str, size: int) -> np.ndarray:
    """The tile as the inference pipeline's item transforms give it: size x size x 3 uint8."""
    from fastai.vision.all import Resize

    from lungfast.data.tile_image import TileImage

    return np.asarray(Resize(size, method="squish")(TileImage.create(path), split_idx=1), dtype=np.uint8)


@dataclass(frozen=True)
class TileStore:
    images: np.ndarray  # N x size x size x 3 uint8, memory-mapped read-only
    index: pd.DataFrame  # path, bytes, mtime_ns, label; row i is image i
    path: Path

    def rows(self, paths) -> np.ndarray:
        """Store rows of these source paths, in their order."""
        where = pd.Series(np.arange(len(self.index)), index=self.index.path)
        return where.loc[[os.path.abspath(p) for p in paths]].to_numpy()


def ensure(frame: pd.DataFrame, size: int) -> TileStore:
    """The store of frame's tiles (`path`, `label`) at `size`, built once if missing."""

    root = cache_dir("store", str(size))
    key = key_of(frame.path.tolist(), size)
    array, table = root / f"{key}.npy", root / f"{key}.csv"
    if not (array.is_file() and table.is_file()):
        with files.exclusive(root / f".{key}.lock", f"tile store {key}"):
            if not (array.is_file() and table.is_file()):  # another process may have built it meanwhile
                _build(frame, size, array, table)
    return TileStore(np.load(array, mmap_mode="r"), files.read_csv(table), array)


def _reserve(path: Path) -> None:
    """Claim the whole file's blocks now: a memory map written onto a full disk dies of SIGBUS ("Bus error")
    mid-build, while a full disk here is an OSError (ENOSPC) before any work, and the temp file goes."""
    with open(path, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)


def _build(frame: pd.DataFrame, size: int, array: Path, table: Path) -> None:

    rows = pd.DataFrame([files.identity(p) for p in frame.path], columns=["path", "bytes", "mtime_ns"])
    rows["label"] = frame.label.to_numpy()
    rows = rows.sort_values("path").reset_index(drop=True)
    gb = len(rows) * size * size * 3 / 1e9
    log.info("building the tile store: %d tiles at %d px (%.2f GB) in %s", len(rows), size, gb, array.parent)
    done, shown = 0, progress.bar(len(rows), "stored")
    with files.atomic_path(array) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(rows), size, size, 3))
        _reserve(tmp)

        def fill(start: int) -> int:
            for i in range(start, min(start + CHUNK, len(rows))):
                out[i] = decode(rows.path[i], size)  # noqa: F821 (a closure over the memmap that is deleted below)
            return min(CHUNK, len(rows) - start)

        # threads: PIL decodes and resizes without the GIL
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for n in pool.map(fill, range(0, len(rows), CHUNK)):
                done += n
                shown(done)
        out.flush()
        del out  # the memmap is released before the rename
    files.write_csv(table, rows)
