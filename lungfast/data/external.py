"""An external cohort's images: its class folders mapped onto the training classes, with its groups.

`cohorts.ExternalSet` describes one; `load` reads it once per `lungfast run` (before anything is written, so
a wrong folder or label map stops the run with one line) and every run scores it (`results.external`).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lungfast.cohorts import ExternalSet
from lungfast.data import groups, images
from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")
LEAVE_OUT = ""  # a label_map value that leaves a folder out


@dataclass(frozen=True)
class External:
    name: str
    frame: pd.DataFrame  # path, label (a training class), group_id, folder (its own class folder)
    skipped_files: tuple[str, ...]  # unreadable images
    left_out: int  # images of folders mapped to "" (e.g. a class the model was not trained on)
    groups: str | None  # where its groups came from; None: every image is its own group

    def facts(self) -> dict:
        return {
            "n": len(self.frame),
            "n_groups": int(self.frame.group_id.nunique()),
            "groups": self.groups,
            "skipped_images": len(self.skipped_files),
            "left_out": self.left_out,
        }


def label_of(folder: str, label_map: dict[str, str], classes: list[str]) -> str | None:
    """The training class a folder maps to: the first matching glob of label_map, else its own name when that
    is a training class; None when neither."""
    for pattern, target in label_map.items():
        if fnmatch.fnmatchcase(folder, pattern):
            return target
    return folder if folder in classes else None


def load(ext: ExternalSet, classes: list[str]) -> External:
    where = f"external set {ext.name}"
    try:
        df, skipped = images.scan(ext.data_dir, min_classes=1)
    except LungfastError as e:
        raise LungfastError(f"{where}: {e}") from None
    df = df[[fnmatch.fnmatchcase(Path(p).name, ext.include) for p in df.path]].reset_index(drop=True)
    if not len(df):
        raise LungfastError(f"{where}: no image in {ext.data_dir} matches include = {ext.include!r}")
    wrong = sorted({t for t in ext.label_map.values() if t != LEAVE_OUT and t not in classes})
    if wrong:
        raise LungfastError(
            f"{where}: label_map maps onto {', '.join(wrong)}, not a training class (the classes are "
            f"{', '.join(classes)})"
        )
    mapping = {f: label_of(f, ext.label_map, classes) for f in df.label.unique()}
    unmapped = sorted(f for f, t in mapping.items() if t is None)
    if unmapped:
        raise LungfastError(
            f"{where}: class folder(s) {', '.join(unmapped)} match no label_map entry and are not "
            f"training classes ({', '.join(classes)}); map each onto a class (an experiment's label_map = "
            f'{{ "{unmapped[0]}" = "{classes[0]}" }}, evaluate\'s --label-map '
            f"'{unmapped[0]}={classes[0]}'), or onto \"\" to leave it out"
        )
    try:
        df, source = groups.resolve(
            df, ext.data_dir, ext.groups_csv, ext.group_column, ext.group_pattern, one_class=False
        )
    except LungfastError as e:
        raise LungfastError(f"{where}: {e}") from None
    if source is None:  # no groups: every image is its own (the interval then resamples images)
        df = df.assign(group_id=df.path)
    df = df.assign(folder=df.label, label=df.label.map(mapping))
    kept = df[df.label != LEAVE_OUT].reset_index(drop=True)
    if not len(kept):
        raise LungfastError(f"{where}: label_map leaves every folder out; nothing to score")
    if skipped:
        log.warning("%s: skipped %d unreadable image(s)", where, len(skipped))
    log.info(
        "%s: %d images, %d groups, classes %s",
        where,
        len(kept),
        kept.group_id.nunique(),
        kept.label.value_counts().sort_index().to_dict(),
    )
    return External(
        ext.name,
        kept[["path", "label", "group_id", "folder"]],
        tuple(p for p, _ in skipped),
        len(df) - len(kept),
        source,
    )
