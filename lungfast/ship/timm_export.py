"""`lungfast export --format timm OUT/`: the Hugging Face / timm folder (config.json, model.safetensors,
README.md model card) that `timm.create_model("local-dir:OUT", pretrained=True)` loads without fastai or lungfast.

A winner is a plain timm model when its body is a timm architecture and its head is linear on the body's own
pooled output: a linear probe (standardisation and logistic regression are already one Linear layer; the
calibration temperature is folded into it) or a fine-tuned model with `head = "timm"` (`fine_tune_heads`).
The exported model is checked against the run's learner on random
pixels before anything is written; a winner it cannot express (fastai's fine-tuning head, a k-NN or centroid
head, an xresnet, a cls+mean-token embedding) gets one line naming the formats that serve it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lungfast import files
from lungfast.errors import LungfastError
from lungfast.probe import heads
from lungfast.train import backbones, views

OTHER_FORMATS = "use --format pickle, safetensors or onnx"


def _refuse(rec, why: str) -> LungfastError:
    return LungfastError(f"{rec.spec.entry}: cannot be written as a timm model ({why}); {OTHER_FORMATS}")


PLAIN = (torch.nn.AdaptiveAvgPool2d, torch.nn.Flatten, torch.nn.Dropout, torch.nn.Identity, torch.nn.Linear)


def linear_head(head: torch.nn.Module, rec) -> tuple[torch.Tensor, torch.Tensor]:
    """The calibrated (weight, bias) of a head timm's classifier can hold: a linear probe's, or a fine-tuning head
    that is average pooling and one Linear layer (`head = "timm"`, its temperature already in the weights)."""
    from fastai.layers import Flatten

    if isinstance(head, heads.ProbeHead):
        if not isinstance(head[1], heads.Linear):
            raise _refuse(rec, f"its head is {type(head[1]).__name__}, which timm models do not have")
        return head[1].weight / head.temperature, head[1].bias / head.temperature
    leaves = [m for m in head.modules() if not list(m.children())]
    linear = [m for m in leaves if isinstance(m, torch.nn.Linear)]
    if len(linear) != 1 or not all(isinstance(m, (*PLAIN, Flatten)) for m in leaves):
        raise _refuse(
            rec,
            'its head is fastai\'s fine-tuning head (head = "fastai"), which timm models do not have; '
            'fine-tune with head = "timm" for one they do',
        )
    return linear[0].weight, linear[0].bias


def to_timm(learn, rec) -> torch.nn.Module:
    """The learner's model as a plain timm model with the same calibrated logits, or one-line refusal."""
    import timm

    b = backbones.get(rec.spec.backbone)
    model = learn.model.eval()
    if b.source != "timm":
        raise _refuse(rec, f"{b.name} is {b.source}'s {b.arch}, not a timm architecture")
    if views.of(model) != "none":
        raise _refuse(rec, f"it averages its {views.of(model)} test-time views (tta), which a timm model does not")
    weight, bias = linear_head(model[1], rec)
    if b.embedding != "pooled":
        raise _refuse(rec, f"its embedding is {b.embedding}, not the model's own pooling")
    plain = timm.create_model(b.arch, pretrained=False, num_classes=len(rec.vocab), **b.kwargs())
    body = {k.removeprefix("model."): v for k, v in model[0].state_dict().items()}
    missing = plain.load_state_dict(body, strict=False).missing_keys
    classifier = plain.get_classifier()
    head_names = {n for n, t in plain.named_parameters() if t is classifier.weight or t is classifier.bias}
    if set(missing) != head_names:
        raise _refuse(rec, f"the body's weights do not fit timm's {b.arch} ({len(missing)} missing)")
    with torch.no_grad():
        classifier.weight.copy_(weight)
        classifier.bias.copy_(bias)
    plain.eval()
    x = torch.rand(2, 3, rec.spec.img_size, rec.spec.img_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (plain(x).softmax(1) - model(x).float().softmax(1)).abs().max().item()
    if gap > 1e-5:
        raise _refuse(rec, f"timm's {b.arch} with a linear head gives other probabilities (gap {gap:.1e})")
    return plain


def data_config(rec, stats) -> dict:
    """The preprocessing the learner used, in timm's terms: squish to img_size (no crop), bilinear, mean/std."""
    size = rec.spec.img_size
    return {
        "input_size": (3, size, size),
        "interpolation": "bilinear",
        "mean": tuple(stats[0]),
        "std": tuple(stats[1]),
        "crop_pct": 1.0,
        "crop_mode": "squash",
    }


def export(learn, rec, out: Path, card: str) -> None:
    """Write the folder atomically: built in a staging folder, then renamed into place."""
    from timm.models import save_for_hf

    b = backbones.get(rec.spec.backbone)
    plain = to_timm(learn, rec)
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    # the source weights' tag and license describe ImageNet weights, not this model: the card says what applies
    own = {"tag": "lungfast", "license": "other"}
    save_for_hf(
        plain,
        str(staging),
        model_config={"label_names": list(rec.vocab), "pretrained_cfg": own},
        safe_serialization=True,
        data_config=data_config(rec, b.stats),
    )
    files.write_text(staging / "README.md", card)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def write(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    """`export --format timm` (ship.formats): the folder, its card inside as README.md."""
    from lungfast.ship import model_io

    export(model_io.load_pickle(run.learner, trusted), rec, out, card_text)
    return {"format": "timm"}


class _Features(torch.nn.Module):
    """A timm model's feature map (model[0]: what Grad-CAM reads, as for every lungfast learner)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_features(x)


class _Head(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.head = [model]  # a list: the parameters belong to model[0]; no second copy in the state dict

    def forward(self, x):
        return self.head[0].forward_head(x)


def load(path: Path, trusted: bool = False):
    """A timm folder as a fastai Learner (ship.formats): timm builds the model from the folder alone, its
    config gives the normalisation; lungfast.json gives the classes and the size it was calibrated at."""
    import json

    import timm

    from lungfast.train import learner

    path = Path(path)
    try:
        meta = json.loads((path / "lungfast.json").read_text())
        model = timm.create_model(f"local-dir:{path}", pretrained=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise LungfastError(
            f"{path}: not a loadable timm folder with a lungfast description ({type(e).__name__}: {str(e)[:100]}); "
            f"export it again with lungfast export DIR --format timm"
        ) from None
    cfg = timm.data.resolve_data_config({}, model=model)
    body = torch.nn.Sequential(_Features(model), _Head(model))
    return learner.for_inference(body, meta["vocab"], meta["img_size"], (cfg["mean"], cfg["std"]))
