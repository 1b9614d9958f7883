"""Turn a registry entry into a fastai Learner. One builder per source, chosen by table lookup.

Normalization is added by lungfast (from the entry's stats) before the learner is built, with
`normalize=False`: fastai only adds it for pretrained timm models, and a DataLoaders reused across
backbones would keep the first model's stats.
"""

from __future__ import annotations

import contextlib

import torch
import torchvision
from fastai.vision.all import (
    CrossEntropyLossFlat,
    Learner,
    accuracy,
    create_timm_model,
    create_vision_model,
    model_meta,
    vision_learner,
)
from fastai.vision.models import xresnet

from lungfast import fine_tune_heads
from lungfast.errors import LungfastError
from lungfast.train.backbones import Backbone

LEGACY = fine_tune_heads.LEGACY


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


def _timm(b: Backbone, weights_file: str | None, pretrained: bool):
    if b.hub_weights and pretrained and not weights_file:  # a hub repo in another layout, converted to a file
        weights_file = b.hub_weights(b)
    kwargs = {"pretrained_cfg_overlay": {"file": weights_file}} if weights_file else {}
    # hub entries download from their model card's repo; a local file or random init uses the bare architecture
    name = b.hub if (b.hub and pretrained and not weights_file) else b.arch
    return name, {**b.kwargs(), **kwargs}


def _torchvision(b: Backbone, weights_file: str | None, pretrained: bool):
    fn = getattr(torchvision.models, b.arch)
    return (TorchvisionFromFile(fn, weights_file) if weights_file else fn), {}


def _fastai(b: Backbone, weights_file: str | None, pretrained: bool):
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


def create_model(
    b: Backbone, n_out: int, pretrained: bool = False, weights_file: str | None = None, head: str = LEGACY
):
    """The registry entry as fastai builds it for a learner: body (model[0]) + head (model[1], `fine_tune_heads`)."""
    with weights_errors(b, weights_file):
        arch, kwargs = _ARCH_FROM_SOURCE[b.source](b, weights_file, pretrained)
        if isinstance(arch, str):
            return create_timm_model(arch, n_out, pretrained=pretrained, **fine_tune_heads.kwargs(head), **kwargs)[0]
        return create_vision_model(arch, n_out, pretrained=pretrained, **fine_tune_heads.kwargs(head))


def build(dls, b: Backbone, pretrained: bool, weights_file: str | None, path=".", head: str = LEGACY) -> Learner:
    with weights_errors(b, weights_file):
        arch, kwargs = _ARCH_FROM_SOURCE[b.source](b, weights_file, pretrained)
        # the loss fastai would infer from a CategoryBlock, named: the store's loaders carry no dataset
        return vision_learner(
            dls,
            arch,
            normalize=False,
            pretrained=pretrained,
            metrics=accuracy,
            loss_func=CrossEntropyLossFlat(),
            path=path,
            **fine_tune_heads.kwargs(head),
            **kwargs,
        )


@contextlib.contextmanager
def weights_errors(b: Backbone, weights_file: str | None):
    """Weights that cannot be had, or do not fit, as one line saying what fixes it."""
    try:
        yield
    except (RuntimeError, KeyError, ValueError) as e:
        if not weights_file:
            raise
        first = str(e).strip().splitlines()[0][:150] if str(e).strip() else type(e).__name__
        raise LungfastError(
            f"{b.name}: weights file {weights_file} does not fit {b.source} {b.arch} ({first}); "
            f"name weights saved from that architecture"
        ) from None
    except OSError as e:  # no network and no file: urllib's URLError and the HF hub's errors are OSErrors
        where = f"local file {weights_file}" if weights_file else (b.hub or "the internet")
        hub = ""
        if b.hub and not weights_file:
            hub = "go online (unset HF_HUB_OFFLINE)" + (
                f", accept the terms on huggingface.co/{b.hub.split(':', 1)[1]} and set HF_TOKEN" if b.gated else ""
            )
            hub += "; or "
        raise LungfastError(
            f"{b.name}: pretrained weights could not be loaded from {where} ({type(e).__name__}). "
            f"Fix: {hub}name a weights file (--set weights.{b.name}=FILE, or weights.{b.name} in the experiment), "
            f"or set pretrained = false to train from random init"
        ) from None


def for_inference(model, vocab: list[str], img_size: int, stats):
    """A Learner around a model rebuilt from an export (any format): lungfast's inference pipeline (the same
    pixels as training), fastai's softmax on its outputs, no bar (callers add one where they want it)."""
    from fastai.callback.progress import ProgressCallback

    from lungfast.data import loaders

    learn = Learner(
        loaders.inference_dls(list(vocab), int(img_size), stats), model.eval(), loss_func=CrossEntropyLossFlat()
    )
    learn.remove_cb(ProgressCallback)
    return learn


def param_count(backbone: Backbone, n_out: int = 3) -> int:
    """Parameters of the backbone with lungfast's head, counted on the meta device: no weights, no download,
    no memory, even for a billion parameters."""
    with torch.device("meta"):
        model = create_model(backbone, n_out=n_out, pretrained=False)
    return sum(p.numel() for p in model.parameters())
