"""A split: each image of the data set assigned to one part (train, valid, test) by a scheme and a seed.
One split per (scheme, split seed), shared by every backbone and training seed.

- `random`: split-folders' seeded, class-stratified ratio split (what the capstone did). On LC25000 it
  puts augmented copies of one original tile in two parts and inflates accuracy.
- `grouped`: every image of one tile group (`group_id` in the groups CSV) lands in one part only; groups
  are dealt to test, valid and train per class so each part stays class-balanced.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lungfast import files
from lungfast.errors import LungfastError

PARTS = ("train", "valid", "test")
COLUMNS = ["path", "label", "group_id", "part"]


@dataclass(frozen=True)
class Split:
    """One split of the data set, plus what the data set looked like when it was made."""

    frame: pd.DataFrame  # COLUMNS
    skipped_files: tuple[str, ...] = ()  # unreadable images left out of the data set
    groups_csv: str | None = None  # where the tile groups came from
    external: tuple = ()  # data.external.External sets every run of this split also scores

    def part(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame.part == name]

    def facts(self) -> dict:
        """The data fields of a run record."""
        labelled = self.frame[self.frame.part != "test"]
        return {
            **{f"n_{p}": int((self.frame.part == p).sum()) for p in PARTS},
            "skipped_images": len(self.skipped_files),
            "skipped_files": list(self.skipped_files),
            "groups_csv": self.groups_csv,
            "labelled_groups": int(labelled.group_id.nunique()),
        }

    def labelled_fraction(self, fraction: float, seed: int) -> Split:
        """This split with `fraction` of its labelled (non-test) tile groups, class by class and part by part
        (at least one group each), the test part untouched. Nested: the groups of a smaller fraction are a prefix
        of a fixed seeded order, so they are among a larger fraction's."""
        if fraction >= 1:
            return self
        rng = np.random.default_rng(seed)
        keep = [self.frame[self.frame.part == "test"]]
        for _, rows in self.frame[self.frame.part != "test"].groupby(["label", "part"], sort=True):
            order = rows.group_id.drop_duplicates().sort_values().to_numpy()
            order = order[rng.permutation(len(order))]
            chosen = set(order[: max(1, math.ceil(fraction * len(order)))])
            keep.append(rows[rows.group_id.isin(chosen)])
        frame = pd.concat(keep).sort_index()
        return Split(frame, self.skipped_files, self.groups_csv, self.external)


def read_csv(path) -> pd.DataFrame:
    """A split.csv; those of lungfast 0.1 named the part column `split`."""
    df = files.read_csv(path, dtype={"group_id": str})
    return df.rename(columns={"split": "part"})


def subsample(df: pd.DataFrame, max_per_class: int, seed: int) -> pd.DataFrame:
    """At most max_per_class images per class, taken round-robin over shuffled groups (all groups kept)."""
    rng = np.random.default_rng(seed)
    keep = []
    for _, cls in df.groupby("label", sort=True):
        shuffled = cls.sample(frac=1, random_state=int(rng.integers(2**31)))
        rank = shuffled.groupby("group_id").cumcount()  # 0 for the first image of each group, 1 for the second...
        keep.append(shuffled.assign(_rank=rank).sort_values("_rank", kind="stable").head(max_per_class))
    return pd.concat(keep).drop(columns="_rank").sort_values(["label", "path"]).reset_index(drop=True)


def _random_split(df: pd.DataFrame, ratios: list[float], seed: int) -> pd.Series:
    """split-folders' ratio split, run on a folder of symlinks so nothing is copied."""
    import splitfolders
    import splitfolders.split

    splitfolders.split.use_tqdm = False  # its bar would print into every log
    names = {"train": "train", "val": "valid", "test": "test"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "in")
        for i, row in df.iterrows():
            (src / row.label).mkdir(parents=True, exist_ok=True)
            os.symlink(row.path, src / row.label / f"{i:08d}{Path(row.path).suffix}")
        splitfolders.ratio(str(src), output=str(Path(tmp, "out")), seed=seed, ratio=tuple(ratios), move="symlink")
        part = {}
        for folder, name in names.items():
            for f in Path(tmp, "out", folder).glob("*/*"):
                part[int(f.stem)] = name
    return pd.Series([part[i] for i in df.index], index=df.index)


def _grouped_split(df: pd.DataFrame, ratios: list[float], seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    part = pd.Series("train", index=df.index)
    for _, cls in df.groupby("label", sort=True):
        sizes = cls.groupby("group_id").size()
        order = sizes.index[rng.permutation(len(sizes))]
        targets = {"test": ratios[2] * len(cls), "valid": ratios[1] * len(cls)}
        filled = {"test": 0, "valid": 0}
        for gid in order:  # deal whole groups to test, then valid, until each holds its share
            to = next((p for p in ("test", "valid") if filled[p] < targets[p]), "train")
            if to != "train":
                filled[to] += sizes[gid]
            part[cls.index[cls.group_id == gid]] = to
        if min(filled.values()) == 0:
            raise LungfastError(
                f"class {cls.label.iloc[0]}: {len(sizes)} tile group(s) are too few for a grouped "
                f'train/valid/test split; add images or use scheme = "random"'
            )
    return part


SCHEMES = {"grouped": _grouped_split, "random": _random_split}


def make_split(df: pd.DataFrame, scheme: str, ratios: list[float], seed: int) -> pd.DataFrame:
    """path,label,group_id,part for every image of df."""
    df = df.reset_index(drop=True)
    out = df.assign(part=SCHEMES[scheme](df, ratios, seed))
    for name in PARTS:
        if not (out.part == name).any():
            raise LungfastError(f"the {name} part is empty: {len(df)} images are too few for ratios {ratios}")
    held = out.groupby("label").part.agg(set)
    for label, parts in held.items():  # a class missing from a part: its figures there would silently be absent
        if set(PARTS) - parts:
            missing = sorted(set(PARTS) - parts, key=PARTS.index)[0]
            raise LungfastError(
                f"class {label}: no image in the {missing} part ({int((out.label == label).sum())} images are too "
                f"few for ratios {ratios} with the {scheme} scheme); add images of {label} or change ratios"
            )
    return out[COLUMNS]


def summary(split_df: pd.DataFrame) -> pd.DataFrame:
    """Images and groups per class per part (for logs and reports)."""
    agg = split_df.groupby(["part", "label"]).agg(images=("path", "size"), groups=("group_id", "nunique"))
    return agg.reset_index()
