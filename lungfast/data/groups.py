"""Tile groups: which images are augmented copies of one original tile (`groups.csv`: filename,label,group_id).

The grouped scheme keeps a group in one part. LC25000 ships no groups; the LC25000-clean annotations
(Batchkala et al., DEMI @ MICCAI 2024) give them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lungfast.errors import LungfastError

CLEAN_FILE = "final_clusters.csv"  # LC25000-clean: annotations/<class>/<model>/<variant>/final_clusters.csv


def find_groups_csv(data_dir: str, groups_csv: str | None) -> Path | None:
    """groups_csv as given (a CSV, or LC25000-clean's annotations/ folder), else groups.csv beside the data."""
    if groups_csv:
        path = Path(groups_csv)
        if not (path.is_file() or path.is_dir()):
            raise LungfastError(f"groups_csv {path}: not found; point groups_csv at a filename,label,group_id CSV "
                                f"or at LC25000-clean's annotations/ folder")
        return path
    for candidate in (Path(data_dir) / "groups.csv", Path(data_dir).parent / "groups.csv"):
        if candidate.is_file():
            return candidate
    return None


def attach_groups(images: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """Add group_id to every image; the CSV must cover every image and agree on its label."""
    csv = Path(csv)
    if csv.is_dir():
        groups = from_lc25000_clean(csv)
    else:
        try:
            groups = pd.read_csv(csv, usecols=["filename", "label", "group_id"], dtype={"group_id": str})
        except (ValueError, pd.errors.ParserError) as e:
            raise LungfastError(f"groups_csv {csv}: needs columns filename,label,group_id ({e})") from None
    groups = groups.drop_duplicates()
    if groups.group_id.isna().any() or groups.filename.isna().any():
        row = int(groups.index[groups.group_id.isna() | groups.filename.isna()][0]) + 2  # 1-based, after the header
        raise LungfastError(f"groups_csv {csv}: line {row} has no filename or no group_id; every row needs both")
    twice = groups[groups.duplicated(["filename", "label"], keep=False)]
    if len(twice):
        name = twice.filename.iloc[0]
        ids = ", ".join(sorted(twice.group_id[twice.filename == name].astype(str)))
        raise LungfastError(f"groups_csv {csv}: {name} is listed with {ids} as group ids "
                            f"({twice.filename.nunique()} file(s) listed twice); keep one row per file")
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
    labels = merged.groupby("group_id").label.unique()
    mixed = labels[labels.map(len) > 1]
    if len(mixed):  # such a group would land in two parts: the leak the grouped scheme exists to prevent
        gid = mixed.index[0]
        raise LungfastError(f"groups_csv {csv}: tile group {gid} holds images of {' and '.join(sorted(mixed[gid]))} "
                            f"({len(mixed)} such group(s)); a group is the copies of one tile, so one class: fix the CSV")
    return merged[["path", "label", "group_id"]]


def from_lc25000_clean(annotations: Path, model: str = "UNI", variant: str = "resize_only") -> pd.DataFrame:
    """filename,label,group_id from a clone of LC25000-clean's `annotations/` folder: per class,
    `<class>/<model>/<variant>/final_clusters.csv` (cluster_label,img_path). A cluster is the augmented copies
    of one original tile, so its group id is `<class>-<cluster_label>`."""
    annotations = Path(annotations)
    files = sorted(annotations.glob(f"*/{model}/{variant}/{CLEAN_FILE}"))
    if not files:
        found = sorted(str(p.relative_to(annotations)) for p in annotations.glob(f"*/*/*/{CLEAN_FILE}"))[:4]
        raise LungfastError(f"{annotations}: no <class>/{model}/{variant}/{CLEAN_FILE} (LC25000-clean's annotations/ "
                            f"folder); found {', '.join(found) or 'none'}: pick one with --model/--variant")
    frames = []
    for f in files:
        label = f.relative_to(annotations).parts[0]
        try:
            rows = pd.read_csv(f, usecols=["cluster_label", "img_path"], dtype={"cluster_label": str})
        except (ValueError, pd.errors.ParserError) as e:
            raise LungfastError(f"{f}: needs columns cluster_label,img_path ({e})") from None
        frames.append(pd.DataFrame({"filename": rows.img_path.map(lambda p: Path(str(p)).name), "label": label,
                                    "group_id": label + "-" + rows.cluster_label}))
    return pd.concat(frames).drop_duplicates().sort_values(["label", "filename"]).reset_index(drop=True)
