"""Embeddings are computed once per (model, image size, source file) and rebuilt only where a key changes."""

import os

import numpy as np
import pytest
import torch

from lungfast.data import images, synthetic
from lungfast.probe import embeddings
from lungfast.train import backbones

VOCAB = ["lung_aca", "lung_n", "lung_scc"]


@pytest.fixture
def frame(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path / "cache"))
    df, _ = images.scan(synthetic.make_dataset(tmp_path / "d", originals_per_class=2, copies=2))
    return df


class Mean(torch.nn.Module):
    """A model whose embedding of an image is its mean colour (easy to check), counting its calls."""

    calls = 0

    def forward(self, x):
        Mean.calls += len(x)
        return x.mean((2, 3))


def test_cached_then_reused_then_rebuilt_only_for_a_changed_source(frame):
    key = embeddings.model_key(backbones.get("tiny"), False, None, 32)
    Mean.calls = 0
    first, speed = embeddings.embed(frame, Mean(), key, VOCAB, 32, ([0, 0, 0], [1, 1, 1]))
    assert first.shape == (len(frame), 3) and Mean.calls == len(frame) and speed > 0
    again, speed_again = embeddings.embed(frame, Mean(), key, VOCAB, 32, ([0, 0, 0], [1, 1, 1]))
    assert Mean.calls == len(frame) and np.array_equal(again, first) and speed_again == speed  # nothing recomputed
    src = frame.path.iloc[0]
    from PIL import Image

    Image.new("RGB", (96, 96), (0, 0, 0)).save(src)
    os.utime(src, ns=(10**18, 10**18))
    third, _ = embeddings.embed(frame, Mean(), key, VOCAB, 32, ([0, 0, 0], [1, 1, 1]))
    assert Mean.calls == len(frame) + 1 and np.allclose(third[0], 0) and np.array_equal(third[1:], first[1:])


def test_the_model_key_changes_with_weights_size_and_backbone(tmp_path):
    lite = backbones.get("tf_efficientnet_lite0")
    w = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, w)
    keys = {
        embeddings.model_key(lite, True, None, 224),
        embeddings.model_key(lite, True, None, 128),
        embeddings.model_key(lite, False, None, 224),
        embeddings.model_key(lite, True, str(w), 224),
        embeddings.model_key(backbones.get("tiny"), False, None, 224),
    }
    assert len(keys) == 5
    assert embeddings.model_key(lite, True, None, 224) == embeddings.model_key(lite, True, None, 224)
