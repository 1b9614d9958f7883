"""The backbone registry: one line per backbone. `lungfast backbones` lists it.

A backbone names where its architecture comes from (timm, torchvision via fastai, or fastai itself),
whether ImageNet weights exist for it, and optionally a function that provides those weights offline.
Everything else (schedule, normalization stats, how the learner is built) follows from that: see
`RunSpec.schedule`, `Backbone.stats` and `train.learner`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from lungfast.train import weights as offline
from lungfast.errors import LungfastError

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Backbone:
    name: str  # the name used in experiment files
    source: str  # "timm", "torchvision" (as fastai wraps it) or "fastai"
    arch: str  # the architecture's name inside its source
    has_weights: bool  # ImageNet weights exist; false = always trained from scratch
    offline_weights: Callable[[], str] | None = None  # function giving a local weights file (offline install)
    test_only: bool = False  # tiny entry for tests and the demo, not for real comparisons

    @functools.cached_property
    def stats(self) -> tuple[list[float], list[float]]:
        """Normalization mean/std the weights were trained with (timm keeps them in its config)."""
        if self.source == "timm":
            import timm

            cfg = timm.get_pretrained_cfg(self.arch)
            if cfg is not None:
                return list(cfg.mean), list(cfg.std)
        return IMAGENET_STATS


REGISTRY: dict[str, Backbone] = {b.name: b for b in [
    Backbone("resnet50", "torchvision", "resnet50", True),
    Backbone("resnet50d", "timm", "resnet50d", True),
    Backbone("resnet18", "timm", "resnet18", True),
    Backbone("efficientnetv2_rw_t", "timm", "efficientnetv2_rw_t", True),
    Backbone("regnetz_b16", "timm", "regnetz_b16", True),
    Backbone("mobilenetv2_100", "timm", "mobilenetv2_100", True),
    Backbone("convnext_nano", "timm", "convnext_nano", True),
    Backbone("tf_efficientnet_lite0", "timm", "tf_efficientnet_lite0", True, offline.efficientnet_lite0_file),
    Backbone("xresnet34", "fastai", "xresnet34", False),
    Backbone("xresnet18", "fastai", "xresnet18", False),
    Backbone("tiny", "timm", "test_resnet", False, test_only=True),
]}


def get(name: str) -> Backbone:
    try:
        return REGISTRY[name]
    except KeyError:
        raise LungfastError(f"unknown backbone {name!r}; known: {', '.join(REGISTRY)}") from None


def check_names(names: list[str]) -> list[Backbone]:
    return [get(n) for n in names]


def param_count(backbone: Backbone, n_out: int = 3) -> int:
    """Parameters of the backbone with lungfast's head, built without weights (no download)."""
    from lungfast.train.learner import create_model

    model = create_model(backbone, n_out=n_out, pretrained=False)
    return sum(p.numel() for p in model.parameters())
