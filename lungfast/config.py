"""Experiment files (`experiments/*.toml`) read into one typed dataclass, `ExperimentConfig`.

Unknown keys, wrong types and impossible values are errors with one clear line: a typo in an
experiment file must never silently fall back to a default and train the wrong thing. Renamed keys
still load, with a one-line note naming the new key.

Words: a *scheme* (grouped/random) says how the data set is split into *parts* (train/valid/test);
one split is one scheme with one split seed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lungfast import cohorts, fine_tune_heads, resources, tta, typecheck
from lungfast import protocols as protocol_registry
from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")
RENAMED = {"split": "scheme"}  # old key -> new key
SCHEMES = ("grouped", "random")
AUGMENTS = ("stain",)  # training-time augmentations beyond flips and rotation (see train.augment)
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the device has bf16 units (train.device)
MIN_IMG_SIZE = 32  # every registry backbone downsamples 32x: smaller tiles vanish before the head


@dataclass
class ExperimentConfig:
    name: str  # experiment name: records go to <results_dir>/<name>/
    data_dir: str  # folder with one sub-folder of images per class (LC25000's lung_image_sets/)
    backbones: list[str]  # registry names, see `lungfast backbones`
    groups_csv: str | None = None  # CSV with filename and group_column; default: groups.csv in data_dir or its parent
    group_column: str = "group_id"  # the groups CSV's column holding the tile group (e.g. "patient_id")
    group_pattern: str | None = None  # instead of a CSV: regex on each file's path below its class folder, no extension
    # ("tile_003", "patient01/tile_003"); its first group is the tile group ('^([^/]+)/': the sub-folder)
    benign_classes: list[str] = field(default_factory=lambda: ["lung_n"])  # the clinical pair's benign side
    scheme: str | list[str] = "grouped"  # "grouped" (no tile group in two parts), "random" (split-folders), or both
    ratios: list[float] = field(default_factory=lambda: [0.7, 0.2, 0.1])  # train/valid/test part fractions
    split_seed: int = 42  # seed of the one split every backbone and seed shares
    split_seeds: list[int] | None = None  # repeat the whole comparison over these splits (replaces split_seed)
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds: one run per backbone and seed
    img_size: int = 224  # images are squished to img_size x img_size
    batch_size: int = 64  # images per batch
    epochs: int = 2  # fine-tuning with weights: epochs after the frozen-body one; from scratch: total epochs
    epochs_by_backbone: dict[str, int] = field(default_factory=dict)  # per-backbone override of epochs
    lr: float | str = 2e-3  # base learning rate, or "find" to run lr_find and record its suggestion
    pretrained: bool = True  # false: every backbone trains from random init (recorded as such)
    weights: dict[str, str] = field(default_factory=dict)  # backbone -> local weights file (offline use)
    # `lungfast.protocols`: fine_tune, partial, linear, knn, mlp, fewshot
    protocols: list[str] = field(default_factory=lambda: [protocol_registry.DEFAULT])
    max_per_class: int | None = None  # subsample each class to this many images, spread over groups
    augment: list[str] = field(default_factory=list)  # ["stain"]: H&E stain augmentation of training batches
    tta: str = "none"  # test-time views inside the shipped model (`lungfast.tta`): "none", "flips", "dihedral"
    # labelled share of the non-test tile groups each run learns from (label efficiency)
    train_fractions: list[float] = field(default_factory=lambda: [1.0])
    robustness_n: int = 300  # test tiles re-scored under each input shift (one fixed draw, by class); 0: no sweep
    results_dir: str = "results"  # where experiment folders are written
    external: list[dict] = field(default_factory=list)  # [[external]] labelled sets from elsewhere (cohorts.py)
    refer_target: float = 0.99  # referral promise: accuracy of the tiles kept, on new tile groups (results.certify)
    refer_delta: float = 0.05  # ... kept with probability at least 1 - refer_delta over the evidence drawn
    bootstrap_resamples: int = 500  # resamples of the tile-group bootstrap behind a run's intervals (fewer: faster)
    throughput_seconds: float = 0.5  # time spent timing inference per batch size (1, 64) at a run's end (cost columns)
    head: str = fine_tune_heads.DEFAULT  # fine-tuning head (`lungfast.fine_tune_heads`): "timm" or "fastai"
    precision: str = "auto"  # "auto" (bf16 on CUDA and on CPUs with bf16 matrix units, else fp32), "fp32", "bf16"
    slurm: dict = field(default_factory=dict)  # [slurm] resources per run for `run --on` (lungfast.resources)

    external_sets = property(lambda self: cohorts.parse(self.external, "experiment"))
    schemes = property(lambda self: [self.scheme] if isinstance(self.scheme, str) else list(self.scheme))
    split_seed_list = property(lambda self: list(self.split_seeds) if self.split_seeds else [self.split_seed])
    slurm_table = property(lambda self: resources.parse(self.slurm, "experiment"))
    single_split = property(lambda self: len(self.schemes) == 1 and len(self.split_seed_list) == 1)

    def epochs_for(self, backbone: str) -> int:
        return self.epochs_by_backbone.get(backbone, self.epochs)

    def augment_for(self, protocol: str) -> tuple[str, ...]:
        """A run's training augmentations (part of its folder name): protocols that train on no pixels see none."""
        return tuple(self.augment) if protocol_registry.get(protocol).augmentable else ()


def _renamed(raw: dict, source: str) -> dict:
    raw = dict(raw)
    for old, new in RENAMED.items():
        if old in raw:
            if new in raw:
                raise LungfastError(
                    f"{source}: both {old!r} and {new!r} given; {old!r} is the old name of {new!r}, keep only {new!r}"
                )
            log.warning("note: %s: key %r is now called %r (it still works)", source, old, new)
            raw[new] = raw.pop(old)
    return raw


def from_dict(raw: dict, source: str = "experiment", origins: dict[str, str] | None = None) -> ExperimentConfig:
    """`origins` names where a key's value came from when not from `source` (e.g. "--set img_size=x"), so an
    error blames the right place."""
    raw = _renamed(raw, source)
    origins = origins or {}
    where = lambda key: origins.get(key, source)  # noqa: E731
    typecheck.check_fields(ExperimentConfig, raw, source, where)
    exp = ExperimentConfig(**raw)
    exp.ratios = [float(r) for r in exp.ratios]
    for key in PATH_KEYS:  # `~` is the user's home wherever a path came from, never a folder named "~"
        if isinstance(getattr(exp, key), str):
            setattr(exp, key, os.path.expanduser(getattr(exp, key)))
    exp.weights = {k: os.path.expanduser(v) for k, v in exp.weights.items()}
    _validate(exp, where)
    return exp


def _validate(exp: ExperimentConfig, where) -> None:
    def bad(key, msg):
        raise LungfastError(f"{where(key)}: {msg}")

    schemes = exp.schemes
    if not schemes or any(k not in SCHEMES for k in schemes) or len(set(schemes)) != len(schemes):
        bad("scheme", f'scheme must be "grouped", "random" or a list of both, got {exp.scheme!r}')
    if exp.split_seeds is not None and (not exp.split_seeds or len(set(exp.split_seeds)) != len(exp.split_seeds)):
        bad("split_seeds", f"split_seeds must be a non-empty list of distinct integers, got {exp.split_seeds}")
    if (
        len(exp.ratios) != 3
        or not all(math.isfinite(r) and r > 0 for r in exp.ratios)
        or abs(sum(exp.ratios) - 1) > 1e-6
    ):
        bad("ratios", f"ratios must be three positive train/valid/test fractions summing to 1, got {exp.ratios}")
    if isinstance(exp.lr, str) and exp.lr != "find":
        bad("lr", f'lr must be a number or "find", got {exp.lr!r}')
    if not isinstance(exp.lr, str) and not (math.isfinite(exp.lr) and exp.lr > 0):
        bad("lr", f'lr must be a positive finite number or "find", got {exp.lr}')
    for key, least, most in (("img_size", MIN_IMG_SIZE, 4096), ("batch_size", 1, 65536), ("epochs", 1, 10000)):
        if not least <= getattr(exp, key) <= most:
            bad(key, f"{key} must be from {least} to {most}, got {getattr(exp, key)}")
    for backbone, n in exp.epochs_by_backbone.items():
        if n < 1:
            bad("epochs_by_backbone", f"epochs_by_backbone.{backbone} must be at least 1, got {n}")
    seeds = [*exp.seeds, *exp.split_seed_list]
    if any(not 0 <= s < 2**32 for s in seeds):
        bad(
            "seeds",
            f"seeds and split seeds must be from 0 to 2**32 - 1, got {[s for s in seeds if not 0 <= s < 2**32][0]}",
        )
    if exp.max_per_class is not None and exp.max_per_class < 3:
        bad("max_per_class", f"max_per_class must be at least 3 (one image per part), got {exp.max_per_class}")
    if any(a not in AUGMENTS for a in exp.augment) or len(set(exp.augment)) != len(exp.augment):
        bad("augment", f"augment must be distinct names from {', '.join(AUGMENTS)}, got {exp.augment}")
    if exp.tta not in tta.names():
        bad("tta", f"tta must be one of {', '.join(tta.names())}, got {exp.tta!r}")
    if exp.head not in fine_tune_heads.names():
        bad("head", f"head must be one of {', '.join(fine_tune_heads.names())}, got {exp.head!r}")
    if exp.precision not in PRECISIONS:
        bad("precision", f"precision must be one of {', '.join(PRECISIONS)}, got {exp.precision!r}")
    fr = exp.train_fractions
    if not fr or any(not (0 < f <= 1) for f in fr) or len(set(fr)) != len(fr):
        bad("train_fractions", f"train_fractions must be distinct fractions in (0, 1], e.g. [0.05, 0.2, 1.0], got {fr}")
    exp.train_fractions = sorted(float(f) for f in fr)
    for key in ("refer_target", "refer_delta"):
        if not 0 < getattr(exp, key) < 1:
            bad(key, f"{key} must lie strictly between 0 and 1, got {getattr(exp, key)}")
    if exp.bootstrap_resamples < 20:
        bad("bootstrap_resamples", f"bootstrap_resamples must be at least 20, got {exp.bootstrap_resamples}")
    if not 0 < exp.throughput_seconds <= 60:
        bad("throughput_seconds", f"throughput_seconds must be above 0 and at most 60, got {exp.throughput_seconds}")
    if exp.robustness_n < 0:
        bad("robustness_n", f"robustness_n must be 0 (no sweep) or a number of test tiles, got {exp.robustness_n}")
    known = protocol_registry.names()
    if not exp.protocols or any(p not in known for p in exp.protocols) or len(set(exp.protocols)) != len(exp.protocols):
        bad("protocols", f"protocols must be distinct names from {', '.join(known)}, got {exp.protocols}")
    cohorts.check_groups(exp.groups_csv, exp.group_pattern, where("group_pattern"))
    cohorts.parse(exp.external, where("external"))
    resources.parse(exp.slurm, where("slurm"))
    if not exp.backbones:
        bad("backbones", "backbones is empty: name at least one (see `lungfast backbones`)")
    if not exp.seeds or len(set(exp.seeds)) != len(exp.seeds):
        bad("seeds", f"seeds must be a non-empty list of distinct integers, got {exp.seeds}")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}", exp.name):
        bad("name", f"name must be a plain folder name (letters, digits, _ . + -), got {exp.name!r}")
    if any("\x00" in v for v in typecheck.strings(dataclasses.asdict(exp))):
        bad(None, "a value holds a NUL character; no path or name can")


PATH_KEYS = ("data_dir", "groups_csv", "results_dir")  # and every value of `weights`


def _paths_from(raw: dict, base: Path) -> dict:
    """Relative paths written in an experiment file are taken from the file's folder, so a run does not
    depend on where it is started; `~` is the user's home. (--set values and defaults: the working directory.)"""

    def place(value):
        if not isinstance(value, str):
            return value
        joined = str(base / Path(value).expanduser())
        tidy = os.path.normpath(joined)  # experiments/../results -> results, unless a symlink makes them differ
        return tidy if os.path.realpath(tidy) == os.path.realpath(joined) else joined

    raw = {k: place(v) if k in PATH_KEYS else v for k, v in raw.items()}
    if isinstance(raw.get("weights"), dict):
        raw["weights"] = {k: place(v) for k, v in raw["weights"].items()}
    if isinstance(raw.get("external"), list):  # an external set's folders, as the experiment's own
        raw["external"] = [
            {k: place(v) if k in ("data_dir", "groups_csv") else v for k, v in e.items()} if isinstance(e, dict) else e
            for e in raw["external"]
        ]
    return raw


def load(path: str | Path, overrides: list[str] = (), values: dict | None = None) -> ExperimentConfig:
    """An experiment file, with `--set KEY=VALUE` texts (`overrides`) and then Python `values` (the notebook API's
    keyword overrides: the same keys) applied on top."""
    path = Path(path).expanduser()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise LungfastError(f"{path}: experiment file not found") from None
    except IsADirectoryError:
        raise LungfastError(f"{path}: is a folder; name an experiment file, e.g. experiments/cpu-quick.toml") from None
    except UnicodeDecodeError:
        raise LungfastError(f"{path}: not a text file; an experiment is a TOML file (experiments/*.toml)") from None
    except tomllib.TOMLDecodeError as e:
        raise LungfastError(f"{path}: not valid TOML ({e})") from None
    raw, origins = _paths_from(raw, path.parent), {}
    for text in overrides:
        key, value = typecheck.parse_override(text)
        if "." in key:  # --set weights.resnet50=FILE sets one entry of a table
            table, sub = key.split(".", 1)
            raw.setdefault(table, {})
            if not isinstance(raw[table], dict):
                raise LungfastError(f"--set {text!r}: {table!r} is not a table")
            raw[table][sub] = value
            key = table
        else:
            raw[key] = value
        origins[key] = f"--set {text}"
    for key, value in (values or {}).items():
        raw[key] = value
        origins[key] = f"override {key}={value!r}"
    return from_dict(raw, source=str(path), origins=origins)
