"""A small, deterministic, SYNTHETIC tissue-like data set: for `lungfast demo` and for tests.

Three classes drawn to look loosely like H&E tiles (pink stroma, purple nuclei): sparse nuclei around
round air spaces (lung_n), nuclei lining gland-like rings (lung_aca), dense sheets of large nuclei
(lung_scc). Each drawn "original" tile is saved with its rotations and flips under one group_id, as
LC25000 does, so the grouped scheme has real work to do. It proves the machinery, not medicine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lungfast import files

CLASSES = ("lung_aca", "lung_n", "lung_scc")
STROMA, NUCLEUS, SPACE = np.array([232, 170, 200]), np.array([95, 50, 140]), np.array([250, 240, 248])


def _disc(img, cy, cx, r, color):
    h, w, _ = img.shape
    yy, xx = np.ogrid[:h, :w]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = color


def draw_tile(label: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    img = np.ones((size, size, 3)) * (STROMA + rng.normal(0, 8, 3))
    if label == "lung_n":  # open alveoli, few small nuclei
        for _ in range(rng.integers(3, 6)):
            _disc(img, *rng.integers(0, size, 2), rng.integers(size // 10, size // 5), SPACE)
        for _ in range(rng.integers(8, 15)):
            _disc(img, *rng.integers(0, size, 2), 2, NUCLEUS)
    elif label == "lung_aca":  # glands: a lumen ringed by nuclei
        for _ in range(rng.integers(2, 4)):
            cy, cx, r = *rng.integers(size // 6, size - size // 6, 2), rng.integers(size // 10, size // 6)
            _disc(img, cy, cx, r, SPACE)
            for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
                _disc(img, int(cy + (r + 3) * np.sin(a)), int(cx + (r + 3) * np.cos(a)), 3, NUCLEUS)
    else:  # squamous sheets: many large nuclei, no spaces
        for _ in range(rng.integers(35, 50)):
            _disc(img, *rng.integers(0, size, 2), rng.integers(3, 6), NUCLEUS * rng.uniform(0.8, 1.1))
    img += rng.normal(0, 10, img.shape)  # stain and sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(root: Path, originals_per_class: int = 12, copies: int = 6, seed: int = 0) -> Path:
    """Write <root>/lung_image_sets/<class>/*.jpeg and <root>/groups.csv; same seed, same bytes."""
    rng = np.random.default_rng(seed)
    rows = ["filename,label,group_id"]
    for label in CLASSES:
        folder = root / "lung_image_sets" / label
        folder.mkdir(parents=True, exist_ok=True)
        for o in range(originals_per_class):
            tile, group = draw_tile(label, rng), f"{label}-{o}"
            for c in range(copies):  # LC25000-style augmented copies: rotations and flips
                variant = np.rot90(tile, c % 4)
                variant = np.fliplr(variant) if c >= 4 else variant
                name = f"{label.replace('_', '')}{o * copies + c + 1}.jpeg"
                Image.fromarray(np.ascontiguousarray(variant)).save(folder / name, quality=90)
                rows.append(f"{name},{label},{group}")
    files.write_text(root / "groups.csv", "\n".join(rows) + "\n")
    return root / "lung_image_sets"
