"""The run model: one frozen `RunSpec` says who a run is. The runner builds it once per run.

Everything that needs a run's identity derives it from here: the resume key (a killed run resumes only
into the same spec), the identity fields of the run record, the MLflow params and the run's folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from lungfast import fine_tune_heads, protocols


def schedule_for(pretrained: bool) -> str:
    """The training schedule's name (`train.loop.SCHEDULES`): training the new head on a frozen body first
    only makes sense with weights."""
    return "head_first" if pretrained else "one_cycle"


def entry_of(backbone: str, protocol: str, augment=(), tta: str = "none") -> str:
    """The leaderboard row: backbone, `+stain` when trained with stain augmentation, `@dihedral` when it sees
    test-time views, `/protocol` when the protocol is named (every one but fine-tuning)."""
    return protocols.get(protocol).entry(model_folder(backbone, augment, tta))


def model_folder(backbone: str, augment=(), tta: str = "none") -> str:
    """A model's name under `runs/`: the backbone with its augmentations and test-time views."""
    return "+".join([backbone, *augment]) + ("" if tta == "none" else f"@{tta}")


@dataclass(frozen=True)
class RunSpec:
    experiment: str  # the experiment's name
    backbone: str  # registry name
    seed: int  # training seed
    scheme: str  # "grouped" or "random": how the data set was split into parts
    split_seed: int  # seed of the split
    img_size: int  # squish-resize size in px
    batch_size: int  # images per batch
    epochs: int  # head_first: epochs after the frozen-body one; one_cycle: all epochs
    lr: float | str  # as configured: a number, or "find" (the record keeps the lr actually used)
    pretrained: bool  # effective: false for from-scratch entries whatever the experiment asked
    weights_file: str | None  # effective local weights file, None for the hub or from scratch
    n_images: int  # images in the split (train + valid + test), so a resume never crosses data sets
    protocol: str = protocols.DEFAULT  # a `lungfast.protocols` name
    augment: tuple[str, ...] = ()  # training-time augmentations beyond flips and rotation: ("stain",) or ()
    robustness_n: int = 0  # test tiles the robustness sweep re-scores (0: none): what a run measures is part of it
    precision: str = "auto"  # as asked (config.PRECISIONS); the record's `device` says what ran and why
    benign: tuple[str, ...] = ("lung_n",)  # the clinical pair's benign classes (config.benign_classes)
    train_fraction: float = 1.0  # share of the split's labelled tile groups it trains on (label efficiency)
    refer_target: float = 0.99  # the referral promise: kept tiles on new tile groups at least this accurate...
    refer_delta: float = 0.05  # ...with probability at least 1 - refer_delta (results.certify)
    bootstrap_resamples: int = 500  # of the tile-group bootstrap behind the record's intervals
    throughput_seconds: float = 0.5  # timing inference per batch size at the run's end (results.cost)
    tta: str = "none"  # test-time views inside the model (`lungfast.tta`)
    head: str = fine_tune_heads.LEGACY  # fine-tuning head (`fine_tune_heads`); frozen protocols keep the legacy name

    @property
    def entry(self) -> str:
        """The leaderboard row it belongs to: the backbone, plus the protocol unless it is fine-tuning."""
        return entry_of(self.backbone, self.protocol, self.augment, self.tta)

    @property
    def label(self) -> str:
        """How logs name the run."""
        return f"{self.entry}/seed{self.seed}" + (
            f"/{self.train_fraction:g} of labels" if self.train_fraction < 1 else ""
        )

    @property
    def schedule(self) -> str:
        return protocols.get(self.protocol).schedule or schedule_for(self.pretrained)

    def key(self) -> dict:
        """The identity as plain JSON data (tuples as lists), so a key read back from disk compares equal:
        resume key, record fields and tracking params."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for key in ("augment", "benign"):  # JSON has lists; the spec is frozen and hashable
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
