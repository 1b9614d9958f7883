"""LoRA (protocol `lora`): low-rank adapters from peft beside the body's frozen weights; the adapters, the body's
normalisation layers and the new head train, for the experiment's `epochs` in one cycle (`loop.SCHEDULES`).

peft puts the adapters in (`LoraModel`, on a plain `nn.Module`: lungfast's body, not a transformers model) and,
after training, merges them into the weights they adapt (`merge_and_unload`). What ships is then the ordinary
fine-tuned learner (same architecture, same state dict keys), so evaluation, calibration, every export and
`predict` are fine-tuning's, and loading a model needs no peft. Its record says what was adapted (`adapters`).

Which layers get adapters is a registry by body layout (`TARGETS`): a vision transformer's attention projections
(where the LoRA paper puts them), a CNN's ungrouped convolutions (peft's Conv2d
LoRA; a depthwise convolution has too few weights per channel to be worth a low-rank update).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastai.torch_core import norm_types
from torch import nn

from lungfast.errors import LungfastError

RANK = 8  # of each update: a common setting for ViT-B-sized bodies
ALPHA = 16  # scale alpha / rank = 2
NAME = "lungfast"  # the adapter's name inside peft


def _attention(body: nn.Module) -> list[str]:
    return [n for n, m in body.named_modules() if isinstance(m, nn.Linear) and n.endswith(("attn.qkv", "attn.proj"))]


def _convolutions(body: nn.Module) -> list[str]:
    return [n for n, m in body.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]


TARGETS = [  # (layout, the names of the modules that get adapters), first that finds any wins
    ("vision transformer attention (qkv, proj)", _attention),
    ("ungrouped convolutions", _convolutions),
]


def targets(body: nn.Module, name: str) -> tuple[str, list[str]]:
    for layout, find in TARGETS:
        if found := find(body):
            return layout, found
    raise LungfastError(f"protocol lora: {name}'s body has no layer lungfast knows how to adapt; use fine_tune")


@dataclass
class Adapters:
    lora: nn.Module  # peft's LoraModel around the body
    facts: dict  # what the record says about them

    def merge(self, learn) -> dict:
        """Fold the trained adapters into the weights; the learner's body is the plain architecture again."""
        learn.model[0] = self.lora.merge_and_unload()
        learn.opt = None  # its parameters were the adapted model's
        return {"adapters": self.facts}


def inject(learn, name: str) -> Adapters:
    """Adapters into `learn`'s body; only they, the body's normalisation layers and the head train. (peft is an
    extra: `preflight.check_installed` has found it before any run.)"""
    from peft import LoraConfig
    from peft.tuners.lora import LoraModel

    body = learn.model[0]
    layout, names = targets(body, name)
    body_params = sum(p.numel() for p in body.parameters())
    lora = LoraModel(body, LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=names), NAME)  # freezes the rest
    for m in lora.modules():
        if isinstance(m, norm_types):  # as fastai trains a frozen body's batch norms (train_bn)
            m.requires_grad_(True)
    learn.model[0] = lora
    learn.model[1].requires_grad_(True)
    learn.opt = None  # rebuilt over the adapters at the first fit
    trainable = sum(p.numel() for p in learn.model.parameters() if p.requires_grad)
    facts = dict(
        method="lora",
        rank=RANK,
        alpha=ALPHA,
        layout=layout,
        modules=len(names),
        trainable_params=trainable,
        body_params=body_params,
    )
    return Adapters(lora, facts)
