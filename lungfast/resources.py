"""What one run asks a scheduler for: the experiment file's `[slurm]` table, read into `Resources`.

    [slurm]
    partition = "cpu"
    time = 60            # minutes
    cpus = 4
    mem = 16             # GB
    max_running = 8
    [slurm.backbones.uni2-h]   # a ViT foundation model needs other resources than xresnet18
    gpus = 1
    mem = 64

Every key is checked as the experiment's own keys are (unknown or wrongly typed: one line). The table plays no
part in a run's identity: the same run on another cluster is the same run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lungfast import typecheck
from lungfast.errors import LungfastError


@dataclass(frozen=True)
class Resources:
    partition: str | None = None  # Slurm partition (queue); None: the cluster's default
    time: int = 120  # minutes one task may run; Slurm then stops it, and it is requeued and resumes its run
    cpus: int = 4  # CPU cores per task (on a workstation: the CPU share of one concurrent run)
    mem: int = 16  # GB of memory per task
    gpus: int = 0  # GPUs per task
    max_running: int = 8  # tasks of one array running at once (Slurm's `--array=...%N`; local: runs at once)
    account: str | None = None  # Slurm account to charge; None: the user's default
    max_requeues: int = 3  # times a timed-out or preempted task is requeued before it counts as failed


PER_BACKBONE = ("partition", "time", "cpus", "mem", "gpus", "account")  # what [slurm.backbones.NAME] may change


@dataclass(frozen=True)
class SlurmTable:
    default: Resources
    backbones: dict[str, Resources]

    def for_backbone(self, name: str) -> Resources:
        return self.backbones.get(name, self.default)


def parse(raw: dict, where: str) -> SlurmTable:
    """The `[slurm]` table (`where`: the file or --set it came from), checked, with per-backbone overrides resolved."""
    if not isinstance(raw, dict):
        raise LungfastError(f"{where}: slurm must be a table ([slurm] partition = ..., time = ...)")
    raw = dict(raw)
    overrides = raw.pop("backbones", {})
    typecheck.check_fields(Resources, raw, f"{where} [slurm]")
    default = _checked(Resources(**raw), f"{where} [slurm]")
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise LungfastError(f"{where}: [slurm.backbones.NAME] tables expected, e.g. [slurm.backbones.vit] gpus = 1")
    per = {}
    for name, table in overrides.items():
        place = f"{where} [slurm.backbones.{name}]"
        extra = sorted(set(table) - set(PER_BACKBONE))
        if extra:
            raise LungfastError(f"{place}: unknown key {extra[0]!r}; a backbone may set {', '.join(PER_BACKBONE)}")
        typecheck.check_fields(Resources, {**dataclasses.asdict(default), **table}, place)
        per[name] = _checked(dataclasses.replace(default, **table), place)
    return SlurmTable(default, per)


def _checked(r: Resources, where: str) -> Resources:
    for key, least in (("time", 1), ("cpus", 1), ("mem", 1), ("gpus", 0), ("max_running", 1), ("max_requeues", 0)):
        if getattr(r, key) < least:
            raise LungfastError(f"{where}: {key} must be at least {least}, got {getattr(r, key)}")
    return r
