"""A weights file that is not weights, or weights for a backbone that has none, is one clear error."""

import pickle

import pytest
import torch

from lungfast import config, preflight
from lungfast.errors import LungfastError
from lungfast.train import weights


def test_text_pickle_and_empty_files_are_not_weights(tmp_path):
    (tmp_path / "w.txt").write_text("resnet18 weights, honest")
    (tmp_path / "w.pkl").write_bytes(pickle.dumps({"a": object()}))
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pth")
    for name, message in [
        ("w.txt", "not a weights file"),
        ("w.pkl", "not a weights file"),
        ("no_tensors.pth", "holds no state dict of tensors"),
        ("missing.pth", "file not found"),
    ]:
        with pytest.raises(LungfastError, match=message) as e:
            weights.check_file("resnet18", str(tmp_path / name))
        assert f"weights.resnet18 = {tmp_path / name}" in str(e.value) and "\n" not in str(e.value)


def test_a_state_dict_and_a_wrapped_checkpoint_are_weights(tmp_path):
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "a.pth")
    torch.save({"state_dict": {"conv.weight": torch.zeros(2)}, "epoch": 3}, tmp_path / "b.pth")
    weights.check_file("resnet18", str(tmp_path / "a.pth"))
    weights.check_file("resnet18", str(tmp_path / "b.pth"))


def test_weights_for_a_scratch_backbone_or_an_unknown_one_are_refused(tmp_path):
    base = dict(name="x", data_dir="d", backbones=["xresnet18"])
    with pytest.raises(LungfastError, match="xresnet18 always trains from scratch"):
        preflight.check_weights(config.from_dict({**base, "weights": {"xresnet18": "w.pth"}}))
    with pytest.raises(LungfastError, match="unknown backbone 'resnet5O'"):
        preflight.check_weights(config.from_dict({**base, "weights": {"resnet5O": "w.pth"}}))
