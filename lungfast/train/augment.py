"""Training-time augmentations beyond flips and rotation, as fastai callbacks on training batches.

`stain`: H&E stain augmentation (albumentations `HEStain`: a random reference stain matrix, stain
intensities scaled by 0.8-1.2 and shifted by +-0.1), the lever Tellez et al. (2019) found carries a
tile classifier across labs. It runs on the batch as the loop hands it over (normalised, on the device):
un-normalise, augment each tile, normalise again. A callback, not a DataBlock transform, so it leaves with
the fit and the exported learner carries no trace of it (it loads without albumentations).
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.callback.core import Callback


class StainAugment(Callback):
    order = 5  # before the model sees the batch, after the DataLoader's own batch transforms
    P = 0.8  # share of training tiles restained

    def __init__(self, stats, seed: int):
        import albumentations as A

        self.mean, self.std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in stats)
        self.aug = A.Compose(
            [
                A.HEStain(
                    method="random_preset",
                    intensity_scale_range=(0.8, 1.2),
                    intensity_shift_range=(-0.1, 0.1),
                    p=self.P,
                )
            ],
            seed=seed,
        )

    def before_batch(self):
        if not self.training:
            return
        x = self.learn.xb[0]
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        rgb = (x.float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # NHWC in [0, 1]
        out = np.stack([self.aug(image=np.ascontiguousarray(im))["image"] for im in rgb]).clip(0, 1)
        y = (torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device) - mean) / std
        self.learn.xb = (y.to(x.dtype).as_subclass(type(x)), *self.learn.xb[1:])


CALLBACKS = {"stain": StainAugment}  # config.AUGMENTS name -> callback(stats, seed)
