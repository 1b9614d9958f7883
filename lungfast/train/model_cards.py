"""Constructor arguments that pathology foundation models' cards prescribe for timm (`Backbone.timm_kwargs`):
kept apart from the registry so each entry stays one line of names, and each function imports timm only when
the entry is built."""

from __future__ import annotations


def uni2_kwargs() -> dict:
    import timm
    import torch

    return {
        "img_size": 224,
        "patch_size": 14,
        "depth": 24,
        "num_heads": 24,
        "init_values": 1e-5,
        "embed_dim": 1536,
        "mlp_ratio": 2.66667 * 2,
        "no_embed_class": True,
        "mlp_layer": timm.layers.SwiGLUPacked,
        "act_layer": torch.nn.SiLU,
        "reg_tokens": 8,
        "dynamic_img_size": True,
    }


def h0_mini_kwargs() -> dict:
    import timm
    import torch

    return {"img_size": 224, "mlp_layer": timm.layers.SwiGLUPacked, "act_layer": torch.nn.SiLU}


def midnight_kwargs() -> dict:
    return {"img_size": 224, "dynamic_img_size": False}


def virchow2_kwargs() -> dict:
    import timm
    import torch

    # global_pool "token": a pooled output for fine-tuning; probes read the tokens (probe.heads.TokenBody)
    return {
        "img_size": 224,
        "init_values": 1e-5,
        "mlp_ratio": 5.3375,
        "reg_tokens": 4,
        "global_pool": "token",
        "mlp_layer": timm.layers.SwiGLUPacked,
        "act_layer": torch.nn.SiLU,
        "dynamic_img_size": True,
    }
