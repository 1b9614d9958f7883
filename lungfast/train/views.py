"""Test-time views inside the model (`tta` registry: `lungfast.tta`).

The views live inside the model (`ViewMean`), so whatever runs the model (the run's own evaluation, `predict`,
the app, the pickle, safetensors and ONNX exports) sees the same average. A probe averages its body's features
over the views (the embedding it was fitted on, cached per view by `probe.embeddings`); a fine-tuned network
averages its logits. `ViewMean` keeps the body/head layout (model[0], model[1]) and the state dict keys of the
network it wraps, so calibration, saliency and weights-only reloads read it as before.
"""

from __future__ import annotations

import torch
from torch import nn

from lungfast.tta import REGISTRY, get


def view(x: torch.Tensor, k: int) -> torch.Tensor:
    """View k of a batch (N, C, H, W): k % 4 quarter turns, then a left-right mirror when k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return x.flip(-1) if k >= 4 else x


class ViewMean(nn.Sequential):
    """body + head, run on every view of the input and averaged: of the body's output ("features", a probe:
    its pooling and classifier are linear in it or were fitted on that average) or of the logits ("logits")."""

    def __init__(self, body: nn.Module, head: nn.Module, views: tuple[int, ...], of: str):
        super().__init__(body, head)
        self.views, self.of = tuple(views), of

    def __getitem__(self, idx):  # a slice (fastai's splitter takes m[1:]) is a plain Sequential of those modules
        return nn.Sequential(*list(self._modules.values())[idx]) if isinstance(idx, slice) else super().__getitem__(idx)

    def forward(self, x):
        if self.of == "features":
            return self[1](torch.stack([self[0](view(x, k)) for k in self.views]).mean(0))
        return torch.stack([self[1](self[0](view(x, k))) for k in self.views]).mean(0)


def wrap(model: nn.Module, tta: str, frozen: bool) -> nn.Module:
    """The model with its test-time views (unchanged for "none")."""
    views = get(tta)
    if views == (0,):
        return model
    return ViewMean(model[0], model[1], views, "features" if frozen else "logits")


def of(model: nn.Module) -> str:
    """The `tta` name a model was wrapped with ("none" when it was not)."""
    views = getattr(model, "views", (0,))
    return next(name for name, v in REGISTRY.items() if v == views)


def plain(model: nn.Module) -> nn.Module:
    """One view: the same body and head (shared, not copied), e.g. for Grad-CAM, which hooks one forward pass."""
    return nn.Sequential(model[0], model[1]) if isinstance(model, ViewMean) else model
