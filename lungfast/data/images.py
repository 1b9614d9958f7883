"""Find the images of a class-per-folder data set and keep only those that decode.

Every image is turned into the RGB a person sees in a viewer by one function, `to_rgb`, used by the tile
store, predict, the app, the embeddings and the input shifts (through `data.tile_image.TileImage`, the
learner's image type):
16-bit grayscale is scaled from its bit depth (PIL's own convert clips it to an all-white tile), transparency is
laid over white, EXIF orientation applied, CMYK and palettes converted; modes whose colours are not defined
without more (32-bit float, LAB, HSV) are refused with one line, never guessed.
Files that cannot be decoded (empty, truncated, not an image, a dangling or looping symlink) are skipped,
counted and named once, so one bad tile among 25,000 costs a warning line, not the run. Images in
sub-folders of a class folder belong to that class (as `predict` searches folders recursively too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from lungfast import files, progress
from lungfast.cache import cache_dir
from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


class UnsupportedImage(LungfastError):
    """An image PIL decodes but lungfast cannot turn faithfully into RGB."""


_PLAIN = {"1", "L", "P", "RGB", "CMYK", "YCbCr"}  # PIL's convert("RGB") shows these as a viewer does
_SIXTEEN = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # 16-bit grayscale (PIL opens 16-bit PNG/TIFF as these)


def to_rgb(im: Image.Image, source="image") -> Image.Image:
    """The 8-bit RGB image a person sees in a viewer, or UnsupportedImage naming what to do."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged EXIF block: keep the pixels as stored
            im = ImageOps.exif_transpose(im)  # cameras and some exporters store the orientation as a tag
    except (SyntaxError, ValueError, TypeError, KeyError, OSError):
        pass
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):  # transparency over a white page, as viewers print it
        rgba = im.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    if im.mode in _SIXTEEN:
        import numpy as np

        a = np.asarray(im, dtype=np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UnsupportedImage(
                f"{source}: 32-bit integer image with values outside 0-65535; save it as 8-bit RGB (JPEG, PNG or TIFF)"
            )
        gray = Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8))  # 16-bit range -> 8-bit
        return gray.convert("RGB")
    if im.mode in _PLAIN:
        return im.convert("RGB")
    kind = "a 32-bit float image" if im.mode == "F" else f"in the {im.mode} colour space"
    raise UnsupportedImage(
        f"{source}: {kind} (PIL mode {im.mode}), which lungfast cannot turn into the RGB a viewer "
        f"shows without guessing; save it as 8-bit RGB (JPEG, PNG or TIFF)"
    )


def load_rgb(path) -> Image.Image:
    """Decode a file into the RGB a person sees (see `to_rgb`)."""
    with Image.open(path) as im:
        im.load()
        return to_rgb(im, path)


def unreadable_reason(path: Path) -> str | None:
    """None if the image decodes to RGB, else a short reason."""
    try:
        if path.is_symlink() and not path.exists():
            return "broken symlink: its target is missing, or it points in a loop"
        if path.stat().st_size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB", (32, 32))  # JPEG: decode at 1/8 scale; still reads every byte, so truncation shows
                im.load()
                to_rgb(im, path.name)
        return None
    except UnsupportedImage as e:
        return str(e)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        return (
            f"over PIL's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,} pixels; crop tiles from it "
            f"first (lungfast reads tiles, not slides)"
        )
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError...) for broken files
        return _shorten(f"{type(e).__name__}: {e}")


def _shorten(text: str, most: int = 160) -> str:
    """At most `most` characters, cut at a word boundary with an ellipsis, never mid-word."""
    if len(text) <= most:
        return text
    return text[:most].rsplit(" ", 1)[0].rstrip(" ,;:") + " …"


def class_files(folder: Path) -> list[Path]:
    """Image files below a class folder, sub-folders included, hidden ones not; symlinks kept even when
    broken (they are reported as skipped, not silently lost)."""
    found = []
    for p in folder.rglob("*"):
        hidden = any(part.startswith(".") for part in p.relative_to(folder).parts)
        if not hidden and p.suffix.lower() in IMAGE_SUFFIXES and (p.is_symlink() or p.is_file()):
            found.append(p)
    return sorted(found)


def _stamp(path: Path) -> list[int] | None:
    """Size and mtime of the file's identity (`files.identity`); the memo is keyed by its real path."""
    try:
        return list(files.identity(path)[1:])
    except OSError:  # broken or looping symlink: checked every time (it is cheap)
        return None


def checked(paths: list[Path], root: Path) -> list[str | None]:
    """unreadable_reason of every path, decoding only files not seen before with this size and mtime: the
    verdicts are cached per data folder (`<cache>/scan/`), so an unchanged folder is checked in a second."""
    memo_file = cache_dir("scan") / (hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:20] + ".json")
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):  # none yet, or damaged: check everything again
        memo = {}
    names = [os.path.realpath(p) for p in paths]  # however the folder was spelled (./data, /abs/data, a link)
    stamps = [_stamp(p) for p in paths]
    todo = [i for i, (p, st) in enumerate(zip(names, stamps)) if st is None or memo.get(p, [None])[:2] != st]
    pending = set(todo)
    reasons = [None if i in pending else memo[p][2] for i, p in enumerate(names)]
    if todo:
        log.info(
            "checking %d image(s) for readability (%d known from an earlier scan)", len(todo), len(paths) - len(todo)
        )
        shown = progress.bar(len(todo), "checked")
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
            for n, (i, reason) in enumerate(zip(todo, pool.map(unreadable_reason, [paths[i] for i in todo])), 1):
                reasons[i] = reason
                shown(n)
        fresh = {p: [*st, r] for p, st, r in zip(names, stamps, reasons) if st is not None}
        files.write_json(memo_file, fresh)
    return reasons


def scan(data_dir: str | Path, min_classes: int = 2) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(images with columns path,label sorted by label then name; [(skipped path, reason)]). A training set needs
    two classes; an external set may hold one."""
    root = Path(data_dir)
    if not root.is_dir():
        raise LungfastError(
            f"data_dir {root}: not a folder. Point data_dir at the folder holding one sub-folder "
            f"per class (LC25000: lung_image_sets/), e.g. --set data_dir=PATH"
        )
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < min_classes:
        found = ", ".join(d.name for d in class_dirs) or "none"
        raise LungfastError(
            f"data_dir {root}: needs at least {min_classes} class folder(s), found {found}. "
            f"Each class is a sub-folder of images (lung_aca, lung_n, lung_scc)"
        )
    by_class = {d.name: class_files(d) for d in class_dirs}
    empty = [c for c, fs in by_class.items() if not fs]
    if empty:
        raise LungfastError(
            f"data_dir {root}: class folder(s) {', '.join(empty)} hold no images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder"
        )
    items = [(p, c) for c, fs in by_class.items() for p in fs]
    reasons = checked([p for p, _ in items], root)
    skipped = [(str(p), r) for (p, _), r in zip(items, reasons) if r]
    # the path as the user's folder names it (a link stays a link): its class is the folder it was found in
    good = [(os.path.abspath(p), c) for (p, c), r in zip(items, reasons) if not r]
    df = pd.DataFrame(good, columns=["path", "label"])
    left = df.label.value_counts()
    dead = [c for c in by_class if left.get(c, 0) == 0]
    if dead:
        raise LungfastError(f"data_dir {root}: no readable image in class folder(s) {', '.join(dead)}")
    return df, skipped
