"""Turn a registry entry into a fastai Learner. One builder per source, chosen by table lookup.

Normalization is added by lungfast (from the entry's stats) before the learner is built, with
`normalize=False`: fastai only adds it for pretrained timm models, and a DataLoaders reused across
backbones would keep the first model's stats.
"""

from __future__ import annotations

import torch
from fastai.vision.all import Learner, accuracy, create_timm_model, create_vision_model, model_meta, vision_learner
from fastai.vision.models import xresnet
import torchvision

from lungfast.train.backbones import Backbone
from lungfast.errors import LungfastError


class TorchvisionFromFile:
    """A torchvision constructor that loads ImageNet weights from a local state dict, not the internet."""

    def __init__(self, fn, path: str):
        self.fn, self.path = fn, path
        model_meta[self] = model_meta.get(fn, {})  # keep fastai's cut and param groups for this arch

    def __call__(self, weights=None, pretrained=False):
        model = self.fn(weights=None)
        if weights is not None or pretrained:
            model.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
        return model

    def __hash__(self):
        return hash((self.fn, self.path))


def _timm(b: Backbone, weights_file: str | None):
    kwargs = {"pretrained_cfg_overlay": {"file": weights_file}} if weights_file else {}
    return b.arch, kwargs


def _torchvision(b: Backbone, weights_file: str | None):
    fn = getattr(torchvision.models, b.arch)
    return (TorchvisionFromFile(fn, weights_file) if weights_file else fn), {}


def _fastai(b: Backbone, weights_file: str | None):
    if weights_file:
        raise LungfastError(f"{b.name}: fastai's {b.arch} has no pretrained weights to load from a file")
    return getattr(xresnet, b.arch), {}


_ARCH_FROM_SOURCE = {"timm": _timm, "torchvision": _torchvision, "fastai": _fastai}


def resolve_weights(b: Backbone, pretrained: bool, weights: dict[str, str]) -> tuple[bool, str | None]:
    """Effective (pretrained, local weights file). Scratch-only entries are never pretrained."""
    if not (pretrained and b.has_weights):
        return False, None
    if b.name in weights:
        return True, weights[b.name]
    return True, (b.offline_weights() if b.offline_weights else None)


def create_model(b: Backbone, n_out: int, pretrained: bool = False, weights_file: str | None = None):
    arch, kwargs = _ARCH_FROM_SOURCE[b.source](b, weights_file)
    if isinstance(arch, str):
        return create_timm_model(arch, n_out, pretrained=pretrained, **kwargs)[0]
    return create_vision_model(arch, n_out, pretrained=pretrained)


def build(dls, b: Backbone, pretrained: bool, weights_file: str | None, path=".") -> Learner:
    arch, kwargs = _ARCH_FROM_SOURCE[b.source](b, weights_file)
    try:
        return vision_learner(dls, arch, normalize=False, pretrained=pretrained, metrics=accuracy,
                              path=path, **kwargs)
    except (RuntimeError, KeyError, ValueError) as e:
        if not weights_file:
            raise
        first = str(e).strip().splitlines()[0][:150] if str(e).strip() else type(e).__name__
        raise LungfastError(f"{b.name}: weights file {weights_file} does not fit {b.source} {b.arch} ({first}); "
                            f"name weights saved from that architecture") from None
    except OSError as e:  # no network and no file: urllib's URLError and the HF hub's errors are OSErrors
        where = f"local file {weights_file}" if weights_file else "the internet"
        raise LungfastError(
            f"{b.name}: pretrained weights could not be loaded from {where} ({type(e).__name__}). "
            f"Fix: name a weights file (--set weights.{b.name}=FILE, or weights.{b.name} in the experiment), "
            f"or set pretrained = false to train from random init") from None
