"""The one DataLoaders factory (train and valid parts): made fresh for every run, with that backbone's normalization stats.

Labels come from the class folder (fastai's `parent_label`), so an exported learner holds only fastai
functions and `learn.predict(path)` works on any image file. The same DataBlock rebuilds the inference
pipeline for weights-only (safetensors) models, so both formats see identical pixels.
"""

from __future__ import annotations

import pandas as pd
from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, IndexSplitter, Normalize, Resize,
                               aug_transforms, parent_label)


def datablock(vocab: list[str], img_size: int, stats, valid_idx: list[int] = ()) -> DataBlock:
    return DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=vocab)),
        get_y=parent_label,
        splitter=IndexSplitter(list(valid_idx)),
        item_tfms=Resize(img_size, method="squish"),
        # tissue has no "up": flip both ways, rotate a little; no zoom/warp/lighting (stain colour is signal).
        # Random transforms run on training batches only.
        batch_tfms=[*aug_transforms(flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0,
                                    max_warp=0.0, p_lighting=0.0),
                    Normalize.from_stats(*stats)],
    )


def make_dls(split_df: pd.DataFrame, stats, img_size: int, batch_size: int, seed: int, plan):
    """Train/valid DataLoaders from split.csv rows (read from `load_path`, the prepared copies, when given).
    The test part is never seen here."""
    fit = split_df[split_df.part.isin(["train", "valid"])].reset_index(drop=True)
    block = datablock(sorted(split_df.label.unique()), img_size, stats, fit.index[fit.part == "valid"].tolist())
    return block.dataloaders(_load_paths(fit), bs=batch_size, seed=seed, device=plan.device,
                             num_workers=plan.num_workers, pin_memory=plan.pin_memory)


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


def _load_paths(rows: pd.DataFrame) -> list[str]:
    return (rows.load_path if "load_path" in rows else rows.path).tolist()


def test_dl(dls, split_df: pd.DataFrame):
    """The held-out test part, labelled, through the same item and batch transforms (no augmentation).
    Its items keep the order of the test rows in split_df."""
    return rows_dl(dls, split_df[split_df.part == "test"])


def rows_dl(dls, rows: pd.DataFrame):
    """Labelled rows (read from `load_path` when prepared; the class is the file's folder), in row order."""
    return dls.test_dl(_load_paths(rows), with_labels=True)
