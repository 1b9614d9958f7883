"""Benchmarks of the data path: real tiles and copies of the 768 px tile, a naive fastai loader on the files,
lungfast's store loader and the store's gather rate per core."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch


def tiles(sample: Path, n: int) -> pd.DataFrame:
    """n real tiles of the LC25000 sample, a third per class."""
    groups = pd.read_csv(sample / "groups.csv")
    pick = groups.groupby("label").head(n // 3)
    return pd.DataFrame(
        {
            "path": [str(sample / "lung_image_sets" / r.label / r.filename) for r in pick.itertuples()],
            "label": pick.label.tolist(),
        }
    )


def copies_of_768(tile: Path, n: int, where: Path) -> pd.DataFrame:
    """n copies of the real 768 px LC25000 tile (exactly as the data set ships it), spread over 3 class folders."""
    import shutil

    out = []
    for i in range(n):
        label = ("lung_aca", "lung_n", "lung_scc")[i % 3]
        target = where / label / f"tile{i}.jpeg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tile, target)
        out.append((str(target), label))
    return pd.DataFrame(out, columns=["path", "label"])


def as_split(paths: list[str], bs: int) -> pd.DataFrame:
    """split.csv-shaped rows: all but one batch train, one batch valid; labels from the class folder."""
    return pd.DataFrame(
        {
            "path": paths,
            "label": [Path(p).parent.name for p in paths],
            "part": ["train"] * (len(paths) - bs) + ["valid"] * bs,
        }
    )


def img_per_s(dl, seconds: float = 4.0) -> float:
    """Images per second out of a training DataLoader, no model: whole passes until `seconds` have gone by
    (at least two), total images over total time, so short epochs' start-up counts as it would."""
    t0, n, passes = time.perf_counter(), 0, 0
    while passes < 2 or time.perf_counter() - t0 < seconds:
        for x, _y in dl:
            n += len(x)
        passes += 1
    return n / (time.perf_counter() - t0)


def naive_dls(paths: list[str], stats, size: int, bs: int):
    """A naive fastai ImageDataLoaders on the files: decode + Resize per item, the same batch augmentation."""
    from fastai.vision.all import ImageDataLoaders, Normalize, Resize, aug_transforms

    return ImageDataLoaders.from_lists(
        "/",
        paths,
        [Path(p).parent.name for p in paths],
        valid_pct=0.0,
        bs=bs,
        num_workers=0,
        item_tfms=Resize(size, method="squish"),
        device="cpu",
        batch_tfms=[
            *aug_transforms(
                flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0, max_warp=0.0, p_lighting=0.0
            ),
            Normalize.from_stats(*stats),
        ],
    )


def store_img_per_s_per_core(store, bs: int, seconds: float = 3.0) -> float:
    """Batches of uint8 tiles gathered from the store by random index and turned into float tensors, on one
    thread (so images per second per core)."""
    import numpy as np

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rng, n, t0 = np.random.default_rng(0), 0, time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            idx = rng.choice(len(store.images), bs, replace=len(store.images) < bs)
            x = torch.from_numpy(store.images[idx]).permute(0, 3, 1, 2).float().div_(255)
            n += len(x)
    finally:
        torch.set_num_threads(threads)
    return n / (time.perf_counter() - t0)
