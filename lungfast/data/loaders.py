"""The one DataLoaders factory (train and valid parts): made fresh for every run, with that backbone's
normalization stats.

Training and validation batches are gathered by index from the uint8 tile store (`data.store`) and
augmented on the device as batches (fastai's batch transforms: flips, rotation, normalisation), so no PIL
decoding sits in the hot path. Without a GPU, the flips and rotation run on the uint8 tiles as they are
gathered (albumentations, `host_augment`), which costs a CPU a quarter of fastai's float grid_sample.
The result is still a fastai `DataLoaders`: the Learner,
callbacks, DDP sharding (`DistributedDL` shards the indices), `lr_find`, export and resume work unchanged.
Its `test_dl` and `new_empty` are those of the file pipeline below. Its items are paths that carry their label
(`Labelled`), as the data set scan found it (the class folder the user named, whatever links or sub-folders lie
below it); a bare path (`learn.predict(path)`, `predict`) is an image alone, so the exported learner works on
any image file, with the very pixels the store holds (same decode, same squish Resize). The same
DataBlock rebuilds the inference pipeline for weights-only (safetensors) models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastai.data.core import DataLoaders
from fastai.vision.all import (
    CategoryBlock,
    DataBlock,
    ImageBlock,
    IndexSplitter,
    Normalize,
    Resize,
    aug_transforms,
    parent_label,
)

from lungfast.data import store as tile_store
from lungfast.data.store_dl import StoreDataLoaders, StoreDL
from lungfast.data.tile_image import TileImage


class Labelled(str):
    """A file's path that knows its label (a str, so every image reader takes it; not a tuple, which fastai's
    transforms would map over element by element)."""

    def __new__(cls, path: str, label: str | None = None):  # fastai casts outputs to the input type: no label
        item = super().__new__(cls, path)
        item.label = label
        return item

    def __reduce__(self):
        return Labelled, (str(self), self.label)


def labelled(rows: pd.DataFrame) -> list[Labelled]:
    return [Labelled(p, c) for p, c in zip(rows.path, rows.label)]


def item_label(item):
    """The label a split gave the item; for a bare path, its folder (fastai's own rule: the setup items)."""
    return item.label if getattr(item, "label", None) is not None else parent_label(item)


def datablock(vocab: list[str], img_size: int, stats, valid_idx: list[int] = ()) -> DataBlock:
    return DataBlock(
        blocks=(ImageBlock(cls=TileImage), CategoryBlock(vocab=vocab)),
        get_y=item_label,
        splitter=IndexSplitter(list(valid_idx)),
        item_tfms=Resize(img_size, method="squish"),
        # tissue has no "up": flip both ways, rotate a little; no zoom/warp/lighting (stain colour is signal).
        # Random transforms run on training batches only.
        batch_tfms=[
            *aug_transforms(
                flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0, max_warp=0.0, p_lighting=0.0
            ),
            Normalize.from_stats(*stats),
        ],
    )


def host_augment(seed: int, n: int = 2) -> list:
    """The training augmentation for batches that stay on a CPU: fastai's (Dihedral p=0.5, Rotate +-10 deg
    p=0.75, reflection padding) as albumentations on uint8 tiles. Same distribution, ~4x cheaper on a CPU than
    fastai's float grid_sample over the batch; on CUDA the batch transforms run on the GPU instead."""
    import albumentations as A
    import cv2

    return [
        A.Compose([A.D4(p=0.5), A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=0.75)], seed=seed * n + i)
        for i in range(n)
    ]  # one per gather thread (see StoreDL)


def without_affine(pipeline, split_idx: int):
    """The batch transforms minus fastai's random affine (flips, rotation): for training batches augmented on
    the host, and for every inference batch. fastai keeps the affine on valid and test batches as an identity
    grid_sample, which changes nothing (<1e-5) and costs a CPU 5x the rest of the pipeline (measured 630 vs 130
    img/s at 224 px); without it, fine-tuning's validation, evaluation, embeddings and `predict` share one
    cheaper pipeline. (The exported learner keeps fastai's own, so its `tta` still augments.)"""
    from fastai.vision.augment import AffineCoordTfm
    from fasttransform import Pipeline

    return Pipeline([t for t in pipeline.fs if not isinstance(t, AffineCoordTfm)], split_idx=split_idx)


def inference(dl):
    """A test DataLoader (`dls.test_dl`) on lungfast's inference pipeline (`without_affine`)."""
    dl.after_batch = without_affine(dl.after_batch, 1)
    return dl


def file_dls(split_df: pd.DataFrame, stats, img_size: int, batch_size: int, seed: int, plan) -> DataLoaders:
    """The file pipeline on the train and valid parts (decoding per item): what exported learners keep, and
    the DataLoaders of frozen-embedding runs, which never iterate it."""
    fit = split_df[split_df.part.isin(["train", "valid"])].reset_index(drop=True)
    vocab = sorted(split_df.label.unique())
    return datablock(vocab, img_size, stats, fit.index[fit.part == "valid"].tolist()).dataloaders(
        labelled(fit), bs=batch_size, seed=seed, device=plan.device, num_workers=0
    )


def make_dls(split_df: pd.DataFrame, stats, img_size: int, batch_size: int, seed: int, plan) -> StoreDataLoaders:
    """Train/valid DataLoaders from split.csv rows, gathered from the tile store of these rows' sources.
    The test part is never seen here (its tiles are in the store, unread until evaluation reads files)."""
    fit = split_df[split_df.part.isin(["train", "valid"])].reset_index(drop=True)
    files = file_dls(split_df, stats, img_size, batch_size, seed, plan)
    store = tile_store.ensure(split_df, img_size)
    y = fit.label.map({c: i for i, c in enumerate(files.vocab)}).to_numpy(dtype=np.int64)
    rows = store.rows(fit.path)
    part, on_host = fit.part.to_numpy(), plan.device == "cpu"  # no GPU for batch transforms: augment while gathering
    train = StoreDL(
        store.images,
        rows[part == "train"],
        y[part == "train"],
        without_affine(files.train.after_batch, 0) if on_host else files.train.after_batch,
        0,
        host_augment(seed) if on_host else None,
        plan.channels_last,
        bs=batch_size,
        shuffle=True,
        drop_last=True,
        device=plan.device,
        pin_memory=plan.pin_memory,
    )  # shuffled by fastai's rng, seeded by the run
    valid = StoreDL(
        store.images,
        rows[part == "valid"],
        y[part == "valid"],
        without_affine(files.valid.after_batch, 1),
        1,
        None,
        plan.channels_last,
        bs=batch_size,
        device=plan.device,
        pin_memory=plan.pin_memory,
    )
    return StoreDataLoaders(train, valid, files=files, device=plan.device)


def store_batches(
    images: np.ndarray, rows: np.ndarray, vocab: list[str], img_size: int, stats, device: str, batch_size: int = 64
) -> StoreDL:
    """Unlabelled, unaugmented batches of these store rows, in order, through the validation pipeline of a
    fine-tune run (to float, normalise): the pixels frozen-embedding protocols see, the same as `predict`'s."""
    files = inference_dls(vocab, img_size, stats, batch_size)
    return StoreDL(
        images,
        np.asarray(rows),
        np.zeros(len(rows), dtype=np.int64),
        without_affine(files.valid.after_batch, 1),
        1,
        None,
        channels_last=device == "cuda",
        bs=batch_size,
        device=device,
    )


def inference_dls(vocab: list[str], img_size: int, stats, batch_size: int = 64):
    """Item-free DataLoaders with the training pipeline's transforms, for `dls.test_dl(paths)`.

    fastai sets a pipeline up from one real item, then `new_empty()` drops it, as `learn.export` does.
    """
    import tempfile
    from pathlib import Path

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        seed_item = Path(tmp, vocab[0], "setup.png")
        seed_item.parent.mkdir()
        Image.new("RGB", (img_size, img_size)).save(seed_item)
        dls = datablock(vocab, img_size, stats).dataloaders([seed_item], bs=batch_size, device="cpu", num_workers=0)
    return dls.new_empty()


def rows_dl(dls, rows: pd.DataFrame):
    """Labelled rows (the label as the rows give it), read from their files through the inference pipeline
    (what `predict` does, so a record's test figures are the exported learner's), in row order."""
    return inference(dls.test_dl(labelled(rows), with_labels=True))
