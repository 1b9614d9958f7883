"""config -> split -> runs -> leaderboard. Everything a `lungfast run` does, in that order.

Input is checked before anything is written: a bad data folder, groups CSV or backbone name stops the
run with one line and leaves no results folder behind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from lungfast import backbones, distributed, images, record, split, trust
from lungfast.config import Experiment
from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")


def load_images(exp: Experiment) -> tuple[pd.DataFrame, list, str | None]:
    """Readable images with group ids; the skipped files; the groups CSV used."""
    df, skipped = images.scan(exp.data_dir)
    if skipped:
        names = ", ".join(f"{Path(p).name} ({r.split(':')[0]})" for p, r in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        log.warning("skipped %d unreadable image(s): %s%s", len(skipped), names, more)
    csv = split.find_groups_csv(exp.data_dir, exp.groups_csv)
    if csv is not None:
        df = split.attach_groups(df, csv)
    elif "grouped" in exp.split_kinds:
        raise LungfastError(f"split = \"grouped\" needs a groups CSV (filename,label,group_id): none given and "
                            f"no groups.csv in {exp.data_dir} or its parent; set groups_csv or use split = \"random\"")
    else:  # no groups known: every image is its own group
        df = df.assign(group_id=df.path.map(lambda p: Path(p).stem))
    return df, skipped, (str(csv) if csv else None)


def _split_key(exp: Experiment, df: pd.DataFrame) -> dict:
    """What a split depends on; a stored split is reused only if all of it matches."""
    return {"split": exp.split, "ratios": exp.ratios, "split_seed": exp.split_seed,
            "max_per_class": exp.max_per_class, "images": sorted(df.path)}


def prepare_split(exp: Experiment, df: pd.DataFrame, out: Path, force: bool) -> pd.DataFrame:
    """The split of one (kind, split_seed), made once and reused; exp holds that single kind and seed."""
    if exp.max_per_class:
        df = split.subsample(df, exp.max_per_class, exp.split_seed)
    key = _split_key(exp, df)
    csv, key_file = out / "split.csv", out / "split.key.json"
    if csv.is_file() and key_file.is_file():
        if json.loads(key_file.read_text()) == key:
            log.info("reusing %s", csv)
            return pd.read_csv(csv, dtype={"group_id": str})
        if not force:
            raise LungfastError(f"{csv} was made from other data or split settings; use a new experiment name, "
                                f"or --force to remake the split and every run")
    split_df = split.make_split(df, exp.split, exp.ratios, exp.split_seed)
    record.write_csv(csv, split_df)
    record.write_json(key_file, key)
    log.info("split (%s, seed %d): %s", exp.split, exp.split_seed,
             split_df.split.value_counts().reindex(list(split.SPLITS)).to_dict())
    return split_df


def once(fn, *args):
    """fn(*args), computed by rank 0 first when distributed (fastai's rank0_first), so files it writes
    (split, prepared images) are made once and then only read by the other ranks."""
    if distributed.world()[1] == 1:
        return fn(*args)
    from fastai.distributed import rank0_first

    return rank0_first(fn, *args)


def splits(exp: Experiment):
    """(single-split experiment, its folder) for every split kind and split seed.

    One split keeps the plain layout (<out>/split.csv, <out>/runs/...); several get a folder each
    (<out>/<kind>-split<seed>/split.csv, .../runs/...), so every run record sits at <split folder>/runs/.
    """
    for kind in exp.split_kinds:
        for seed in exp.split_seed_list:
            one = dataclasses.replace(exp, split=kind, split_seed=seed, split_seeds=None)
            yield one, (exp.out_dir if exp.single_split else exp.out_dir / f"{kind}-split{seed}")


def run(exp: Experiment, force: bool = False, shard: tuple[int, int] = (1, 1), mlflow: str | None = None) -> str:
    """Run every missing record (of shard i/n: every n-th run of the fixed list backbone x seed x split),
    then write the leaderboard and the report; return the leaderboard text. A shard writes only its own
    run folders (and identical split files, atomically), so shards may share one results folder."""
    from lungfast import leaderboard, report  # fastai loads here, after the cheap checks
    from lungfast.tracking import Tracker

    chosen = backbones.check_names(exp.backbones)
    df, skipped, groups_csv = load_images(exp)
    main = distributed.is_main()
    tracker = Tracker(mlflow if main else None, exp.name)  # only rank 0 tracks
    if main:
        record.write_json(exp.out_dir / "experiment.json", dataclasses.asdict(exp))
    i, n = shard
    jobs = [(k, b, seed) for k, _ in enumerate(splits(exp)) for b in chosen for seed in exp.seeds]
    mine = jobs[i - 1::n]
    for k, (one, where) in enumerate(splits(exp)):
        pairs = [(b, seed) for kk, b, seed in mine if kk == k]
        if not pairs:
            continue
        split_df = once(prepare_split, one, df, where, force)
        extra = {"skipped_images": len(skipped), "skipped_files": [p for p, _ in skipped], "groups_csv": groups_csv,
                 "experiment": exp.name, **{f"n_{s}": int((split_df.split == s).sum()) for s in split.SPLITS}}
        run_split(one, pairs, split_df, where, extra, force, tracker)
    if not main:
        return ""
    if n > 1:  # the shared leaderboard is merged once all shards are done, by `lungfast leaderboard`
        return (f"shard {i}/{n}: {len(mine)} of {len(jobs)} runs done. When every shard has finished: "
                f"lungfast leaderboard {exp.out_dir}")
    text = leaderboard.write(exp.out_dir)
    log.info("report: %s", report.write(exp.out_dir))
    return text


def run_split(exp: Experiment, pairs: list, split_df: pd.DataFrame, where: Path, extra: dict, force: bool,
              tracker=None) -> None:
    """Train the (backbone, seed) pairs of one split that have no complete record (all of them with force)."""
    from lungfast import prepare, train

    todo = []
    for b, seed in pairs:
        if record.is_complete(record.run_dir(where, b.name, seed)) and not force:
            log.info("%s/seed%d: complete record found, skipped (--force reruns)", b.name, seed)
        else:
            todo.append((b, seed))
    if todo:  # decode + resize once for every backbone and seed of this split (and later experiments)
        split_df = split_df.assign(load_path=once(prepare.prepare, split_df, exp.img_size))
    for b, seed in todo:
        final = record.run_dir(where, b.name, seed)
        if not distributed.is_main():  # other ranks train alongside rank 0 and write nothing that lasts
            with tempfile.TemporaryDirectory() as scratch:
                train.train_one(exp, b, seed, split_df, Path(scratch), extra)
            continue
        log.info("%s/seed%d: training (%s, %d px, %s split %d)", b.name, seed, b.source, exp.img_size,
                 exp.split, exp.split_seed)
        with record.staged_run(final, fresh=force) as stage:
            m = train.train_one(exp, b, seed, split_df, stage, extra, tracker)
            # vouch before the rename: a kill between the two must not leave an untrusted complete record
            trust.remember(final / "learner.pkl", m["learner_sha256"])
        log.info("%s/seed%d: test_accuracy=%.4f valid_accuracy=%.4f (%.0fs)", b.name, seed,
                 m["test_accuracy"], m["valid_accuracy"], m["train_seconds"])
