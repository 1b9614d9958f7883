"""Tile groups: which images belong together (augmented copies of one original tile, or one patient's images).

Given by a CSV (`groups.csv`: filename, a group column, optionally label: LC25000's is filename,label,group_id;
a patient table works with `group_column = "patient_id"`), by a regex on file names (`group_pattern`), or by
LC25000-clean's annotations folder (Batchkala et al., DEMI @ MICCAI 2024). The grouped scheme keeps a group
in one part; intervals resample whole groups.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from lungfast.errors import LungfastError

CLEAN_FILE = "final_clusters.csv"  # LC25000-clean: annotations/<class>/<model>/<variant>/final_clusters.csv


def find_groups_csv(data_dir: str, groups_csv: str | None) -> Path | None:
    """groups_csv as given (a CSV, or LC25000-clean's annotations/ folder), else groups.csv beside the data."""
    if groups_csv:
        path = Path(groups_csv)
        if not (path.is_file() or path.is_dir()):
            raise LungfastError(
                f"groups_csv {path}: not found; point groups_csv at a filename,label,group_id CSV "
                f"or at LC25000-clean's annotations/ folder"
            )
        return path
    for candidate in (Path(data_dir) / "groups.csv", Path(data_dir).parent / "groups.csv"):
        if candidate.is_file():
            return candidate
    return None


def grouped_without_groups(where: str) -> LungfastError:
    return LungfastError(
        f'{where}: scheme = "grouped" needs tile groups, and none are given: set groups_csv (a CSV '
        f'with a filename column and a group column, named by group_column, e.g. "patient_id") or '
        f"group_pattern (a regex on file names whose first group is the tile group, e.g. "
        f"'^(.+)_\\d+$'); or use scheme = \"random\""
    )


def resolve(
    images: pd.DataFrame,
    data_dir: str,
    groups_csv: str | None,
    column: str = "group_id",
    pattern: str | None = None,
    one_class: bool = True,
) -> tuple[pd.DataFrame, str | None]:
    """(images with group_id, where the groups came from), or (images, None) when no groups are known."""
    if pattern is not None:
        out = from_pattern(images, pattern, data_dir)
        if one_class:
            check_one_class(out, f"group_pattern {pattern!r}", "change the pattern")
        return out, f"pattern {pattern}"
    csv = find_groups_csv(data_dir, groups_csv)
    if csv is None:
        return images, None
    return attach_groups(images, csv, column, one_class), str(csv)


def below_class(path: str, data_dir: str, label: str) -> str:
    """A file's place below its class folder, without extension: "tile_003", or "patient01/tile_003" in a
    sub-folder (what `group_pattern` reads, so a sub-folder can be the tile group: '^([^/]+)/')."""
    rel = Path(os.path.relpath(path, os.path.join(os.path.abspath(data_dir), label)))
    return rel.with_suffix("").as_posix() if not rel.as_posix().startswith("..") else Path(path).stem


def from_pattern(images: pd.DataFrame, pattern: str, data_dir: str) -> pd.DataFrame:
    """group_id from each file's place below its class folder (`below_class`): the pattern's first group, or its
    whole match."""
    rx = re.compile(pattern)
    found = [rx.search(below_class(p, data_dir, c)) for p, c in zip(images.path, images.label)]
    missed = [below_class(p, data_dir, c) for p, c, m in zip(images.path, images.label, found) if m is None]
    if missed:
        raise LungfastError(
            f"group_pattern {pattern!r} matches no part of {len(missed)} file name(s) below the class folders (e.g. "
            f"{', '.join(missed[:3])}); every image needs a group: change the pattern"
        )
    return images.assign(group_id=[m.group(1) if rx.groups else m.group(0) for m in found])


def attach_groups(images: pd.DataFrame, csv: Path, column: str = "group_id", one_class: bool = True) -> pd.DataFrame:
    """Add group_id to every image; the CSV must cover every image and, where it has a label column, agree on its
    label. With `one_class`, a group must hold one class (the grouped split deals groups class by class)."""
    csv = Path(csv)
    if csv.is_dir():
        groups = from_lc25000_clean(csv)
    else:
        try:
            head = pd.read_csv(csv, nrows=0).columns
            wanted = ["filename", column, *(["label"] if "label" in head and column != "label" else [])]
            groups = pd.read_csv(csv, usecols=wanted, dtype={column: str})
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise LungfastError(
                f"groups_csv {csv}: needs columns filename and {column} ({e}); group_column names the group column"
            ) from None
        groups = groups.rename(columns={column: "group_id"})
        if "label" not in groups:  # the class folder is the label
            groups = groups.drop_duplicates().merge(
                images.assign(filename=images.path.map(lambda p: Path(p).name))[
                    ["filename", "label"]
                ].drop_duplicates(),
                on="filename",
            )
    groups = groups.drop_duplicates()
    if groups.group_id.isna().any() or groups.filename.isna().any():
        row = int(groups.index[groups.group_id.isna() | groups.filename.isna()][0]) + 2  # 1-based, after the header
        raise LungfastError(f"groups_csv {csv}: line {row} has no filename or no group_id; every row needs both")
    twice = groups[groups.duplicated(["filename", "label"], keep=False)]
    if len(twice):
        name = twice.filename.iloc[0]
        ids = ", ".join(sorted(twice.group_id[twice.filename == name].astype(str)))
        # a quoted CSV field may hold a line break: shown escaped, so the message stays one line
        name, ids = (v.replace("\r", "\\r").replace("\n", "\\n") for v in (str(name), ids))
        raise LungfastError(
            f"groups_csv {csv}: {name} is listed with {ids} as group ids "
            f"({twice.filename.nunique()} file(s) listed twice); keep one row per file"
        )
    df = images.assign(filename=images.path.map(lambda p: Path(p).name))
    merged = df.merge(groups, on="filename", how="left", suffixes=("", "_csv"), indicator=True)
    missing = merged[merged._merge == "left_only"]
    if len(missing):
        raise LungfastError(
            f"groups_csv {csv}: {len(missing)} image(s) in data_dir have no row "
            f"(e.g. {', '.join(missing.filename.head(3))}); regenerate the CSV or fix groups_csv"
        )
    merged = merged[merged.label == merged.label_csv].drop_duplicates("path").reset_index(drop=True)
    if len(merged) != len(df):
        bad = df[~df.path.isin(merged.path)]
        raise LungfastError(
            f"groups_csv {csv}: label disagrees with the class folder for {len(bad)} image(s) "
            f"(e.g. {', '.join(bad.filename.head(3))}); fix the CSV or move the files"
        )
    if one_class:
        check_one_class(merged, f"groups_csv {csv}", "fix the CSV")
    return merged[["path", "label", "group_id"]]


def check_one_class(frame: pd.DataFrame, where: str, fix: str) -> None:
    """A group of two classes would land in two parts (the grouped split deals groups class by class): the leak
    the grouped scheme exists to prevent."""
    labels = frame.groupby("group_id").label.unique()
    mixed = labels[labels.map(len) > 1]
    if len(mixed):
        gid = mixed.index[0]
        raise LungfastError(
            f"{where}: tile group {gid} holds images of {' and '.join(sorted(mixed[gid]))} "
            f"({len(mixed)} such group(s)); a group is the copies of one tile, so one class: {fix}"
        )


def from_lc25000_clean(annotations: Path, model: str = "UNI", variant: str = "resize_only") -> pd.DataFrame:
    """filename,label,group_id from a clone of LC25000-clean's `annotations/` folder: per class,
    `<class>/<model>/<variant>/final_clusters.csv` (cluster_label,img_path). A cluster is the augmented copies
    of one original tile, so its group id is `<class>-<cluster_label>`."""
    annotations = Path(annotations)
    files = sorted(annotations.glob(f"*/{model}/{variant}/{CLEAN_FILE}"))
    if not files:
        found = sorted(str(p.relative_to(annotations)) for p in annotations.glob(f"*/*/*/{CLEAN_FILE}"))[:4]
        raise LungfastError(
            f"{annotations}: no <class>/{model}/{variant}/{CLEAN_FILE} (LC25000-clean's annotations/ "
            f"folder); found {', '.join(found) or 'none'}: pick one with --model/--variant"
        )
    frames = []
    for f in files:
        label = f.relative_to(annotations).parts[0]
        try:
            rows = pd.read_csv(f, usecols=["cluster_label", "img_path"], dtype={"cluster_label": str})
        except (ValueError, pd.errors.ParserError) as e:
            raise LungfastError(f"{f}: needs columns cluster_label,img_path ({e})") from None
        frames.append(
            pd.DataFrame(
                {
                    "filename": rows.img_path.map(lambda p: Path(str(p)).name),
                    "label": label,
                    "group_id": label + "-" + rows.cluster_label,
                }
            )
        )
    return pd.concat(frames).drop_duplicates().sort_values(["label", "filename"]).reset_index(drop=True)
