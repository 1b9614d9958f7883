"""The experiment's data: the readable images of data_dir with their tile groups and external sets, and each
(scheme, split seed)'s split, made once on disk and reused by every run and rerun."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lungfast import files
from lungfast.config import ExperimentConfig
from lungfast.data import external, groups, images, split
from lungfast.errors import LungfastError
from lungfast.results.layout import SplitDir

log = logging.getLogger("lungfast")


@dataclass(frozen=True)
class DataSet:
    """The readable images of data_dir with their tile groups, what was left out, and the external sets."""

    frame: pd.DataFrame  # path, label, group_id
    skipped_files: tuple[str, ...]
    groups_csv: str | None
    external: tuple = ()  # data.external.External, in the experiment's order


def load_data(cfg: ExperimentConfig) -> DataSet:
    df, skipped = images.scan(cfg.data_dir)
    if skipped:
        names = ", ".join(f"{Path(p).name} ({r.split(':')[0]})" for p, r in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("skipped %d unreadable image(s): %s%s", len(skipped), names, more)
    df, source = groups.resolve(df, cfg.data_dir, cfg.groups_csv, cfg.group_column, cfg.group_pattern)
    if source is None and "grouped" in cfg.schemes:
        raise groups.grouped_without_groups(f"data_dir {cfg.data_dir} (no groups.csv in it or its parent)")
    if source is None:  # no groups known: every image is its own group
        df = df.assign(group_id=df.path.map(lambda p: Path(p).stem))
    classes = sorted(df.label.unique())
    outside = tuple(external.load(e, classes) for e in cfg.external_sets)
    return DataSet(df, tuple(p for p, _ in skipped), source, outside)


def _split_key(cfg: ExperimentConfig, scheme: str, split_seed: int, df: pd.DataFrame) -> dict:
    """What a split depends on; a stored split is reused only if all of it matches."""
    return {
        "scheme": scheme,
        "ratios": cfg.ratios,
        "split_seed": split_seed,
        "max_per_class": cfg.max_per_class,
        "images": sorted(df.path),
    }


def _stored_key(path: Path) -> dict:
    key = json.loads(path.read_text())
    if "split" in key:  # lungfast 0.1 called the scheme "split"
        key["scheme"] = key.pop("split")
    return key


def _enough_to_train(frame: pd.DataFrame, cfg: ExperimentConfig, where: SplitDir) -> pd.DataFrame:
    """fastai drops a training batch that is not full: with fewer train images than one batch, nothing trains."""
    n = int((frame.part == "train").sum())
    if n < cfg.batch_size:
        raise LungfastError(
            f"{where.split_csv.name} of {where.path}: the train part holds {n} images, fewer than "
            f"batch_size {cfg.batch_size}, so no step would train; set batch_size to at most {n}"
        )
    return frame


def make_or_reuse_split(
    cfg: ExperimentConfig, data: DataSet, scheme: str, split_seed: int, where: SplitDir, force: bool
) -> split.Split:
    """The split of one (scheme, split seed), made once and reused by every run and rerun."""
    df = split.subsample(data.frame, cfg.max_per_class, split_seed) if cfg.max_per_class else data.frame
    key = _split_key(cfg, scheme, split_seed, df)
    if where.split_csv.is_file() and where.split_key.is_file():
        if _stored_key(where.split_key) == key:
            log.info("reusing %s", where.split_csv)
            frame = _enough_to_train(split.read_csv(where.split_csv), cfg, where)
            return split.Split(frame, data.skipped_files, data.groups_csv, data.external)
        if not force:
            raise LungfastError(
                f"{where.split_csv} was made from other data or split settings; use a new "
                f"experiment name, or --force to remake the split and every run"
            )
    frame = _enough_to_train(split.make_split(df, scheme, cfg.ratios, split_seed), cfg, where)
    files.write_csv(where.split_csv, frame)
    files.write_json(where.split_key, key)
    log.info(
        "split (%s, seed %d): %s", scheme, split_seed, frame.part.value_counts().reindex(list(split.PARTS)).to_dict()
    )
    return split.Split(frame, data.skipped_files, data.groups_csv, data.external)
