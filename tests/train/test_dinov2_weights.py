"""Midnight-12k and Phikon-v2 ship transformers Dinov2 weights; lungfast converts them to timm's ViT once. The
conversion is checked against transformers itself: a small random Dinov2Model and the timm model built from its
converted weights give the same tokens, for both FFNs (MLP, SwiGLU) and both key spellings (transformers 4 files,
transformers 5 models)."""

import re

import pytest
import timm
import torch

from lungfast.errors import LungfastError
from lungfast.train.weights import dinov2_to_timm

transformers = pytest.importorskip("transformers", reason="the test extra installs transformers")


def old_spelling(state: dict) -> dict:
    """transformers 4's names, as files on the hub were saved (the inverse of transformers 5's conversion_mapping)."""
    names = {
        "q_proj": "attention.query",
        "k_proj": "attention.key",
        "v_proj": "attention.value",
        "o_proj": "output.dense",
    }
    out = {
        re.sub(r"attention\.(q_proj|k_proj|v_proj|o_proj)", lambda m: "attention." + names[m[1]], k): v
        for k, v in state.items()
        if "gate_proj" not in k and "up_proj" not in k
    }
    out = {k.replace("mlp.down_proj", "mlp.weights_out"): v for k, v in out.items()}
    for key in [k for k in state if "mlp.gate_proj" in k]:
        out[key.replace("gate_proj", "weights_in")] = torch.cat(
            [state[key], state[key.replace("gate_proj", "up_proj")]]
        )
    return out


@pytest.mark.parametrize("swiglu", [False, True])
@pytest.mark.parametrize("spelling", ["transformers5", "transformers4"])
def test_converted_dinov2_gives_transformers_tokens(swiglu, spelling):
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=14,
        image_size=28,
        use_swiglu_ffn=swiglu,
        mlp_ratio=4,
        layerscale_value=0.5,
    )
    hf = transformers.Dinov2Model(cfg).eval()
    state = hf.state_dict() if spelling == "transformers5" else old_spelling(hf.state_dict())
    hidden = (int(32 * 4 * 2 / 3) + 7) // 8 * 8  # transformers' SwiGLU: 2/3 of 4x, up to a multiple of 8
    kwargs = (
        {"mlp_layer": timm.layers.SwiGLUPacked, "act_layer": torch.nn.SiLU, "mlp_ratio": 2 * hidden / 32}
        if swiglu
        else {"mlp_ratio": 4}
    )
    vit = timm.models.VisionTransformer(
        img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=4, init_values=1.0, num_classes=0, **kwargs
    ).eval()
    vit.load_state_dict(dinov2_to_timm(state))  # strict: every timm tensor filled, nothing left over
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(vit.forward_features(x), hf(pixel_values=x).last_hidden_state, atol=1e-5)


def test_an_unknown_tensor_is_refused():
    with pytest.raises(LungfastError, match="unknown tensor decoder.weight"):
        dinov2_to_timm({"decoder.weight": torch.zeros(1)})
