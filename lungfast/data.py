"""The one DataLoaders factory: made fresh for every run, with that backbone's normalization stats.

Labels come from the class folder (fastai's `parent_label`), so an exported learner holds only fastai
functions and `learn.predict(path)` works on any image file.
"""

from __future__ import annotations

import pandas as pd
from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, IndexSplitter, Normalize, Resize,
                               aug_transforms, parent_label)


def make_dls(split_df: pd.DataFrame, stats, img_size: int, batch_size: int, seed: int, plan):
    """Train/valid DataLoaders from split.csv rows. The test rows are never seen here."""
    fit = split_df[split_df.split.isin(["train", "valid"])].reset_index(drop=True)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=sorted(split_df.label.unique()))),
        get_y=parent_label,
        splitter=IndexSplitter(fit.index[fit.split == "valid"].tolist()),
        item_tfms=Resize(img_size, method="squish"),
        # tissue has no "up": flip both ways, rotate a little; no zoom/warp/lighting (stain colour is signal)
        batch_tfms=[*aug_transforms(flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0,
                                    max_warp=0.0, p_lighting=0.0),
                    Normalize.from_stats(*stats)],
    )
    return block.dataloaders(fit.path.tolist(), bs=batch_size, seed=seed, device=plan.device,
                             num_workers=plan.num_workers, pin_memory=plan.pin_memory)


def test_dl(dls, split_df: pd.DataFrame):
    """The held-out test split, labelled, through the same item and batch transforms (no augmentation)."""
    test = split_df[split_df.split == "test"]
    return dls.test_dl(test.path.tolist(), with_labels=True)
