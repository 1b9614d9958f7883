"""The fine-tuning head registry (experiment key `head`): what sits on a fine-tuned backbone's body, as the
keyword arguments fastai's `create_head` takes. Ground floor: config validates names without importing fastai.

- `timm` (the default): average pooling and one Linear layer, the classifier layout of timm's own models, so a
  fine-tuned timm winner exports as a plain timm model (`lungfast export --format timm`) and loads with
  `timm.create_model` alone, as a linear-probe winner does. It is also what timm's fine-tuning recipes train.
- `fastai`: fastai's default head (concatenated average + max pooling, BatchNorm, Linear-ReLU-BatchNorm-Linear
  with dropout), the head of the published capstone; `experiments/capstone.toml` names it to reproduce it.
  timm has no such head, so these winners ship as pickle, safetensors or ONNX.
"""

from __future__ import annotations

REGISTRY: dict[str, dict] = {"timm": {"concat_pool": False, "lin_ftrs": [], "ps": 0.0, "first_bn": False}, "fastai": {}}
DEFAULT = "timm"
LEGACY = "fastai"  # the head of every record written before the key existed


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def kwargs(name: str) -> dict:
    return dict(REGISTRY[name])
