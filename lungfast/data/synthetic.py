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


def _alveoli(img, rng, size, palette):  # open air spaces, few small nuclei (lung_n)
    stroma, nucleus, space = palette
    for _ in range(rng.integers(3, 6)):
        _disc(img, *rng.integers(0, size, 2), rng.integers(size // 10, size // 5), space)
    for _ in range(rng.integers(8, 15)):
        _disc(img, *rng.integers(0, size, 2), 2, nucleus)


def _glands(img, rng, size, palette):  # a lumen ringed by nuclei (lung_aca)
    stroma, nucleus, space = palette
    for _ in range(rng.integers(2, 4)):
        cy, cx, r = *rng.integers(size // 6, size - size // 6, 2), rng.integers(size // 10, size // 6)
        _disc(img, cy, cx, r, space)
        for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            _disc(img, int(cy + (r + 3) * np.sin(a)), int(cx + (r + 3) * np.cos(a)), 3, nucleus)


def _sheets(img, rng, size, palette):  # many large nuclei, no spaces (lung_scc)
    stroma, nucleus, space = palette
    for _ in range(rng.integers(35, 50)):
        _disc(img, *rng.integers(0, size, 2), rng.integers(3, 6), nucleus * rng.uniform(0.8, 1.1))


def _bands(img, rng, size, palette):  # fibrous bands of pale stroma with spindle nuclei
    stroma, nucleus, space = palette
    for _ in range(rng.integers(3, 5)):
        row = int(rng.integers(0, size))
        img[max(row - 3, 0) : row + 3] = space * 0.9 + stroma * 0.1
        for x in rng.integers(0, size, 6):
            _disc(img, row, int(x), 2, nucleus)


def _giants(img, rng, size, palette):  # a few very large nuclei on plain stroma
    stroma, nucleus, space = palette
    for _ in range(rng.integers(3, 6)):
        _disc(img, *rng.integers(0, size, 2), rng.integers(size // 12 + 4, size // 8 + 6), nucleus)


DRAW = {"lung_n": _alveoli, "lung_aca": _glands, "lung_scc": _sheets}  # LC25000's classes
OTHERS = (_bands, _giants, _alveoli, _glands, _sheets)  # for classes of other names, in order


def drawer(label: str, index: int):
    return DRAW.get(label) or OTHERS[index % len(OTHERS)]


def draw_tile(
    label: str,
    rng: np.random.Generator,
    size: int = 96,
    palette=(STROMA, NUCLEUS, SPACE),
    scale: float = 1.0,
    index: int = 0,
) -> np.ndarray:
    """One tile; `palette` (stroma, nucleus, air space) is the lab's stain, `scale` its magnification."""
    drawn = max(int(round(size / scale)), 8)
    img = np.ones((drawn, drawn, 3)) * (palette[0] + rng.normal(0, 8, 3))
    drawer(label, index)(img, rng, drawn, palette)
    img += rng.normal(0, 10, img.shape)  # stain and sensor noise
    tile = np.clip(img, 0, 255).astype(np.uint8)
    return tile if drawn == size else np.asarray(Image.fromarray(tile).resize((size, size), Image.BICUBIC))


def make_dataset(
    root: Path, originals_per_class: int = 12, copies: int = 6, seed: int = 0, classes: tuple[str, ...] = CLASSES
) -> Path:
    """Write <root>/lung_image_sets/<class>/*.jpeg and <root>/groups.csv; same seed, same bytes. Classes other
    than LC25000's are drawn with other textures (bands, giant nuclei...), for data sets of 2 to 5+ classes."""
    rng = np.random.default_rng(seed)
    rows = ["filename,label,group_id"]
    for index, label in enumerate(classes):
        folder = root / "lung_image_sets" / label
        folder.mkdir(parents=True, exist_ok=True)
        for o in range(originals_per_class):
            tile, group = draw_tile(label, rng, index=index), f"{label}-{o}"
            for c in range(copies):  # LC25000-style augmented copies: rotations and flips
                variant = np.rot90(tile, c % 4)
                variant = np.fliplr(variant) if c >= 4 else variant
                name = f"{label.replace('_', '')}{o * copies + c + 1}.jpeg"
                Image.fromarray(np.ascontiguousarray(variant)).save(folder / name, quality=90)
                rows.append(f"{name},{label},{group}")
    files.write_text(root / "groups.csv", "\n".join(rows) + "\n")
    return root / "lung_image_sets"


OTHER_LAB = (np.array([214, 140, 196]), np.array([70, 40, 150]), np.array([246, 244, 252]))  # bluer, darker stain
FOLDERS = {"aca_bd": "lung_aca", "aca_md": "lung_aca", "nor": "lung_n", "scc_md": "lung_scc"}  # LungHist700's style


def make_other_lab(root: Path, patients: int = 6, per_patient: int = 4, seed: int = 1) -> Path:
    """An "other lab" cohort in LungHist700's layout: <root>/images/<superclass[_subclass]>/<folder>_<res>_<id>.jpg
    and <root>/data.csv (superclass, subclass, resolution, image_id, patient_id). Another stain, and two
    magnifications (20x drawn 1.3x larger than the training tiles, 40x 2.6x); a patient holds normal tissue and one
    cancer, as a resection does. Synthetic: it proves the external-cohort machinery, not generalisation."""
    rng = np.random.default_rng(seed)
    rows, image_id = [], 0
    folders = list(FOLDERS)
    for patient in range(patients):
        cancer = folders[[0, 1, 3][patient % 3]]
        for k in range(per_patient):
            folder = "nor" if k % 2 else cancer
            for resolution, scale in (("20x", 1.3), ("40x", 2.6)):
                image_id += 1
                tile = draw_tile(FOLDERS[folder], rng, palette=OTHER_LAB, scale=scale)
                out = root / "images" / folder / f"{folder}_{resolution}_{image_id}.jpg"
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(tile).save(out, quality=90)
                superclass, _, subclass = folder.partition("_")
                rows.append(
                    {
                        "superclass": superclass,
                        "subclass": subclass or None,
                        "resolution": resolution,
                        "image_id": image_id,
                        "patient_id": f"patient{patient + 1}",
                    }
                )
    import pandas as pd

    files.write_csv(root / "data.csv", pd.DataFrame(rows))
    return root / "images"
