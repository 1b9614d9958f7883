"""The store's DataLoaders: train and valid batches gathered by index from the uint8 tile store
(`data.store`), host-augmented on a CPU, with the file pipeline's batch transforms (`data.loaders`)."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.torch_core import TensorCategory, TensorImage
from fastcore.basics import chunked


class StoreDL(DataLoader):
    """Batches of store rows: one gather per batch (uint8; NHWC memory seen as NCHW, channels-last, on CUDA),
    moved to the device (pinned, non-blocking on CUDA), then the file pipeline's batch transforms there.
    `augment` (augmenters: uint8 HWC tile -> tile) augments on the host instead, for batches that stay on a CPU."""

    def __init__(
        self,
        images: np.ndarray,
        rows: np.ndarray,
        targets: np.ndarray,
        after_batch,
        split_idx: int,
        augment=None,
        channels_last: bool = True,
        **kwargs,
    ):
        super().__init__(n=len(rows), indexed=True, after_batch=after_batch, **kwargs)
        self.images, self.rows, self.targets, self.split_idx = images, rows, targets, split_idx
        self.augment, self.channels_last = augment, channels_last

    def before_iter(self):
        super().before_iter()
        self.after_batch.split_idx = self.split_idx  # 0: random augmentation on; 1 (valid): off, as TfmdDL does

    def create_batches(self, samps):
        """Batches in order, the next ones gathered (and host-augmented) by background threads while this one
        hands the current batch on: the copy, cv2 and torch release the GIL, so gathering overlaps the model's
        step. Batch k is augmented by augmenter k % n, and at most n batches are in flight, so each augmenter
        draws its random numbers in batch order: same seed, same batches."""
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        n = len(self.augment) if self.augment else 1
        jobs = enumerate(chunked(samps, self.bs, drop_last=self.drop_last))
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="lungfast-gather") as pool:
            ahead = deque(pool.submit(self._gather, *job) for job in itertools.islice(jobs, n))
            while ahead:
                batch = ahead.popleft().result()
                ahead.extend(pool.submit(self._gather, *job) for job in itertools.islice(jobs, 1))
                yield batch

    def _gather(self, k: int, chunk):
        picked = np.asarray(chunk)
        x = self.images[self.rows[picked]]
        if self.augment:
            augment = self.augment[k % len(self.augment)]
            x = np.stack([augment(image=tile)["image"] for tile in x])
        x = torch.from_numpy(x).permute(0, 3, 1, 2)
        # channels-last feeds tensor cores; a CPU's elementwise ops (to float, normalise) run 1.7x faster on NCHW
        x = x if self.channels_last else x.contiguous()
        return TensorImage(x), TensorCategory(torch.from_numpy(self.targets[picked]))

    def new(self, dataset=None, **kwargs):
        keep = {k: getattr(self, k) for k in ("bs", "shuffle", "drop_last", "device", "pin_memory")}
        return type(self)(
            self.images,
            self.rows,
            self.targets,
            self.after_batch,
            self.split_idx,
            self.augment,
            self.channels_last,
            **{**keep, **kwargs},
        )


class StoreDataLoaders(DataLoaders):
    """train/valid from the store; test_dl and new_empty (what `learn.export` keeps) from the file pipeline."""

    def __init__(self, train, valid, files: DataLoaders, path=".", device=None):
        super().__init__(train, valid, path=path, device=device)
        self.files = files

    vocab = property(lambda self: self.files.vocab)
    c = property(lambda self: len(self.files.vocab))

    def test_dl(self, test_items, **kwargs):
        return self.files.test_dl(test_items, **kwargs)

    def new_empty(self):
        return self.files.new_empty()
