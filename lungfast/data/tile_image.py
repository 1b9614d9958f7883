"""`TileImage`: fastai's PILImage decoded by `images.to_rgb`, the image type of every lungfast learner.

Its own module because it imports fastai, which `images.scan` (a CLI's first step) does not need. Exported
pickles name it, so `learn.predict(path)`, `lungfast predict` and the app all see the pixels the tile store
holds, whatever mode or bit depth the file has.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from fastai.vision.core import PILImage
from PIL import Image

from lungfast.data.images import load_rgb, to_rgb


class TileImage(PILImage):
    @classmethod
    def create(
        cls, fn: Path | str | torch.Tensor | np.ndarray | bytes | Image.Image, **kwargs
    ):  # fastai dispatches on these
        if isinstance(fn, bytes):
            fn = io.BytesIO(fn)
        if isinstance(fn, (str, Path, io.IOBase)):
            return cls(load_rgb(fn))
        if isinstance(fn, Image.Image):
            return cls(to_rgb(fn))
        return super().create(fn, **kwargs)  # arrays and tensors: fastai's own
