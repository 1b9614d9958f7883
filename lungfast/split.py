"""One train/valid/test split per experiment, shared by every backbone and seed.

- `random`: split-folders' seeded, class-stratified ratio split (what the capstone did). On LC25000 it
  puts augmented copies of one original tile on both sides and inflates accuracy.
- `grouped`: every image of one tile group (`group_id` in the groups CSV) lands on one side only; groups
  are dealt to test, valid and train per class so each side stays class-balanced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lungfast.errors import LungfastError

SPLITS = ("train", "valid", "test")


def find_groups_csv(data_dir: str, groups_csv: str | None) -> Path | None:
    if groups_csv:
        path = Path(groups_csv)
        if not path.is_file():
            raise LungfastError(f"groups_csv {path}: file not found; point groups_csv at filename,label,group_id")
        return path
    for candidate in (Path(data_dir) / "groups.csv", Path(data_dir).parent / "groups.csv"):
        if candidate.is_file():
            return candidate
    return None


def attach_groups(images: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """Add group_id to every image; the CSV must cover every image and agree on its label."""
    try:
        groups = pd.read_csv(csv, usecols=["filename", "label", "group_id"], dtype={"group_id": str})
    except (ValueError, pd.errors.ParserError) as e:
        raise LungfastError(f"groups_csv {csv}: needs columns filename,label,group_id ({e})") from None
    groups = groups.drop_duplicates(["filename", "label"])
    df = images.assign(filename=images.path.map(lambda p: Path(p).name))
    merged = df.merge(groups, on="filename", how="left", suffixes=("", "_csv"), indicator=True)
    missing = merged[merged._merge == "left_only"]
    if len(missing):
        raise LungfastError(f"groups_csv {csv}: {len(missing)} image(s) in data_dir have no row "
                            f"(e.g. {', '.join(missing.filename.head(3))}); regenerate the CSV or fix groups_csv")
    merged = merged[merged.label == merged.label_csv].drop_duplicates("path").reset_index(drop=True)
    if len(merged) != len(df):
        bad = df[~df.path.isin(merged.path)]
        raise LungfastError(f"groups_csv {csv}: label disagrees with the class folder for {len(bad)} image(s) "
                            f"(e.g. {', '.join(bad.filename.head(3))}); fix the CSV or move the files")
    return merged[["path", "label", "group_id"]]


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
        side = {}
        for folder, split in names.items():
            for f in Path(tmp, "out", folder).glob("*/*"):
                side[int(f.stem)] = split
    return pd.Series([side[i] for i in df.index], index=df.index)


def _grouped_split(df: pd.DataFrame, ratios: list[float], seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    side = pd.Series("train", index=df.index)
    for _, cls in df.groupby("label", sort=True):
        sizes = cls.groupby("group_id").size()
        order = sizes.index[rng.permutation(len(sizes))]
        targets = {"test": ratios[2] * len(cls), "valid": ratios[1] * len(cls)}
        filled = {"test": 0, "valid": 0}
        for gid in order:  # deal whole groups to test, then valid, until each holds its share
            split = next((s for s in ("test", "valid") if filled[s] < targets[s]), "train")
            if split != "train":
                filled[split] += sizes[gid]
            side[cls.index[cls.group_id == gid]] = split
        if min(filled.values()) == 0:
            raise LungfastError(f"class {cls.label.iloc[0]}: {len(sizes)} tile group(s) are too few for a grouped "
                                f"train/valid/test split; add images or use split = \"random\"")
    return side


def make_split(df: pd.DataFrame, kind: str, ratios: list[float], seed: int) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    side = _grouped_split(df, ratios, seed) if kind == "grouped" else _random_split(df, ratios, seed)
    out = df.assign(split=side)
    for split in SPLITS:
        if not (out.split == split).any():
            raise LungfastError(f"the {split} split is empty: {len(df)} images are too few for ratios {ratios}")
    return out[["path", "label", "group_id", "split"]]


def summary(split_df: pd.DataFrame) -> pd.DataFrame:
    """Images and groups per class per split (for logs and reports)."""
    agg = split_df.groupby(["split", "label"]).agg(images=("path", "size"), groups=("group_id", "nunique"))
    return agg.reset_index()
