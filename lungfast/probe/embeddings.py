"""Embeddings computed once and cached: per (backbone, weights, image size, source file), in
`<cache>/embeddings/<model key>/`, reused by every protocol, split, seed and experiment.

Pixels come from the tile store (`data.store`) through fine-tuning's validation pipeline, so a probe sees
the very pixels fine-tuning and `predict` see. A source file's key is its identity (`files.identity_key`:
path, byte size and mtime), so a changed file is embedded again; the model key holds the backbone, its
architecture, where its weights came from and the
image size, so other weights never mix in. Vectors are written in parts of at most `PART` images (atomic),
so memory stays bounded on the full data set and a killed computation keeps what it finished.

Test-time views (`tta`): each view of the dihedral group (`train.views`) is cached on its own, under the model
key plus the view (view 0 is the plain key), so "flips" and "dihedral" share their common views and the plain
embedding; a probe with views reads the mean over its views, which is what its shipped model computes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lungfast import files, progress
from lungfast.cache import cache_dir
from lungfast.data import loaders
from lungfast.data import store as tile_store
from lungfast.data.store import TileStore
from lungfast.train import device, views
from lungfast.train.device import DevicePlan

log = logging.getLogger("lungfast")
PART = 1024  # images per cache part file
VERSION = 2  # bump when the embedding of an image would change for the same model key (2: tile store pixels)


def model_key(backbone, pretrained: bool, weights_file: str | None, img_size: int, precision: str = "fp32") -> str:
    weights = "random(seed 0)" if not pretrained else weights_file or backbone.hub or "timm default"
    if weights_file:
        weights = files.identity_key(weights_file)
    parts = {
        "backbone": backbone.name,
        "arch": backbone.arch,
        "embedding": backbone.embedding,
        "weights": weights,
        "img_size": img_size,
        "version": VERSION,
    }
    if precision != "fp32":  # fp32 keys stay as they were; bf16 embeddings differ in the last digits
        parts["precision"] = precision
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


_PARTS: dict[Path, dict] = {}  # part files never change once written (unique names): read each once per process


def _read_part(part: Path) -> dict:
    if part not in _PARTS:
        with np.load(part) as z:
            _PARTS[part] = dict(zip(z["keys"].tolist(), z["vectors"]))
    return _PARTS[part]


class Store:
    """The cached vectors of one model key."""

    def __init__(self, key: str):
        self.root = cache_dir("embeddings", key)

    def load(self) -> dict[str, np.ndarray]:
        found = {}
        for part in sorted(self.root.glob("part-*.npz")):
            found.update(_read_part(part))
        return found

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        with files.atomic_path(self.root / f"part-{uuid.uuid4().hex}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=np.array(keys), vectors=vectors.astype(np.float32))

    def note_speed(self, img_per_s: float) -> None:
        files.write_json(self.root / "speed.json", {"embed_img_per_s": img_per_s})

    def speed(self) -> float | None:
        f = self.root / "speed.json"
        return json.loads(f.read_text())["embed_img_per_s"] if f.is_file() else None


def compute(
    model: torch.nn.Module,
    tiles: TileStore,
    rows: np.ndarray,
    vocab: list[str],
    img_size: int,
    stats,
    plan: DevicePlan,
    batch_size: int = 64,
    k: int = 0,
):
    """Yield (start index, vectors) per batch of these store rows: `model` maps view k of a normalised batch to
    embeddings, in the device plan's precision and memory format."""
    dl = loaders.store_batches(tiles.images, rows, vocab, img_size, stats, plan.device, batch_size)
    model = device.in_format(model.to(plan.device).eval(), plan)  # before inference mode (see in_format)
    start = 0
    with torch.inference_mode(), device.autocast(plan):
        for x, _ in dl:
            v = model(device.in_format(views.view(x.as_subclass(torch.Tensor), k), plan)).float().cpu().numpy()
            yield start, v
            start += len(v)


def embed(
    frame: pd.DataFrame,
    model: torch.nn.Module,
    key: str,
    vocab: list[str],
    img_size: int,
    stats,
    plan: DevicePlan | None = None,
    tta: str = "none",
) -> tuple[np.ndarray, float | None]:
    """Embeddings of frame's images (rows aligned), averaged over the `tta` views, computing only the missing ones
    from the tile store of the frame (a run's split: the store its fine-tuning reads); and the images per second
    of the computation (or of the one that filled the cache)."""
    plan = plan or device.plan_for(device.describe())
    found = [_embed_view(frame, model, key, vocab, img_size, stats, plan, k) for k in views.get(tta)]
    vectors = found[0][0] if len(found) == 1 else np.mean([v for v, _ in found], axis=0, dtype=np.float32)
    return vectors, found[0][1]


def _embed_view(frame, model, key, vocab, img_size, stats, plan, k: int) -> tuple[np.ndarray, float | None]:
    store = Store(key if k == 0 else f"{key}.view{k}")
    sources = frame.path.tolist()
    keys = [files.identity_key(p) for p in sources]
    have = store.load()
    todo = [i for i, k in enumerate(keys) if k not in have]
    if todo:
        log.info(
            "embedding %d of %d images (%d cached)%s into %s",
            len(todo),
            len(keys),
            len(keys) - len(todo),
            f", view {k}" if k else "",
            store.root,
        )
        tiles = tile_store.ensure(frame, img_size)
        rows = tiles.rows([sources[i] for i in todo])
        t0, done, pending = time.perf_counter(), 0, ([], [])
        bar = progress.bar(len(todo), "embedded")
        for start, v in compute(model, tiles, rows, vocab, img_size, stats, plan, k=k):
            batch = [keys[i] for i in todo[start : start + len(v)]]
            have.update(zip(batch, v))
            pending[0].extend(batch)
            pending[1].append(v)
            done += len(v)
            bar(done)
            if len(pending[0]) >= PART or done == len(todo):
                store.add(pending[0], np.concatenate(pending[1]))
                pending = ([], [])
        speed = len(todo) / (time.perf_counter() - t0)
        store.note_speed(speed)
    else:
        speed = store.speed()
    return np.stack([have[k] for k in keys]), speed
