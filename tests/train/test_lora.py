"""LoRA (protocol `lora`): which layers get adapters, what trains, and that what ships is the plain architecture
with the adapters merged in. The protocol's end-to-end run on real tiles is in tests/probe/test_probe_cli.py
(every protocol row), with `predict` on its pickle."""

import io
import pickle
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lungfast import preflight, protocols
from lungfast.config import ExperimentConfig
from lungfast.errors import LungfastError
from lungfast.train import backbones, learner, lora


def model(name):
    torch.manual_seed(0)
    return learner.create_model(backbones.get(name), n_out=3, pretrained=False)


def test_a_vit_adapts_its_attention_and_a_cnn_its_ungrouped_convolutions():
    vit = model("tiny_vit")[0]
    layout, names = lora.targets(vit, "tiny_vit")
    assert layout.startswith("vision transformer") and len(names) == 2 * len(vit.model.blocks)
    assert {n.rsplit(".", 2)[-2:][1] for n in names} == {"qkv", "proj"} and all(".attn." in n for n in names)
    lite = model("tf_efficientnet_lite0")[0]
    layout, names = lora.targets(lite, "tf_efficientnet_lite0")
    convs = {n: m for n, m in lite.named_modules() if isinstance(m, nn.Conv2d)}
    assert layout == "ungrouped convolutions" and set(names) == {n for n, m in convs.items() if m.groups == 1}
    assert any(m.groups > 1 for m in convs.values())  # the depthwise ones exist and are left alone
    with pytest.raises(LungfastError, match="use fine_tune"):
        lora.targets(nn.Sequential(nn.ReLU()), "bare")


@pytest.mark.parametrize("name", ["tiny_vit", "tiny"])
def test_adapters_train_alone_and_merge_into_the_plain_architecture(name):
    plain_keys = set(model(name).state_dict())
    learn = SimpleNamespace(model=model(name), opt="stale")
    before = {k: v.clone() for k, v in learn.model[0].state_dict().items()}
    adapters = lora.inject(learn, name)
    assert learn.opt is None and adapters.facts["modules"] > 0
    trainable = [n for n, p in learn.model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any(n.startswith("1.") for n in trainable)
    body_weights = [n for n in trainable if n.startswith("0.") and "lora_" not in n]
    assert all(p.ndim == 1 for n, p in learn.model.named_parameters() if n in body_weights)  # norms' scale/shift
    assert adapters.facts["trainable_params"] == sum(p.numel() for p in learn.model.parameters() if p.requires_grad)

    opt = torch.optim.SGD([p for p in learn.model.parameters() if p.requires_grad], lr=0.5)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(3, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(learn.model(x), y).backward()
        opt.step()
    learn.model.eval()
    with torch.no_grad():
        adapted = learn.model(x)
    facts = adapters.merge(learn)
    assert facts["adapters"]["method"] == "lora" and learn.opt is None
    with torch.no_grad():
        merged = learn.model(x)
    assert torch.allclose(adapted, merged, atol=1e-4), (adapted - merged).abs().max()
    state = learn.model.state_dict()
    assert set(state) == plain_keys  # exports and safetensors rebuilds see the architecture they know
    changed = [k for k, v in before.items() if v.dtype.is_floating_point and not torch.equal(v, state[f"0.{k}"])]
    assert any(k.endswith(("qkv.weight", "conv1.weight", "conv2.weight", "conv.weight")) for k in changed), changed
    buf = io.BytesIO()
    pickle.dump(learn.model, buf)
    assert b"peft" not in buf.getvalue()  # a user loads the shipped model without peft


def test_a_protocol_whose_extra_is_missing_stops_before_any_data(monkeypatch):
    row = protocols.REGISTRY["lora"]
    monkeypatch.setitem(protocols.REGISTRY, "lora", protocols.Protocol(**{**row.__dict__, "needs": ("no_such", "x")}))
    cfg = ExperimentConfig("e", "data", ["tiny"], protocols=["lora"])
    with pytest.raises(LungfastError) as e:
        preflight.check(cfg)
    assert "no_such" in str(e.value) and "lungfast[x]" in str(e.value)
