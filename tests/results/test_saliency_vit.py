"""Grad-CAM works on ViT bodies too (the pathology foundation models are ViTs): tokens back on their grid."""

import numpy as np
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from PIL import Image

from lungfast.data import loaders
from lungfast.results import saliency
from lungfast.train import learner
from lungfast.train.backbones import Backbone


def test_grad_cam_maps_of_a_timm_vit_vary(tmp_path):
    vit = Backbone("vit", "timm", "test_vit", False)  # timm's tiny test ViT, 160 px
    learn = Learner(
        loaders.inference_dls(["a", "b", "c"], 160, ([0.5] * 3, [0.5] * 3)),
        learner.create_model(vit, 3),
        loss_func=CrossEntropyLossFlat(),
    )
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    layer, reshape = saliency.target_layer(learn.model)
    assert reshape is not None and layer is learn.model[0].model.blocks[-1].norm1
    maps, rgb = saliency.cam_maps(learn, paths, [0, 1])
    assert maps.shape == (2, 160, 160) and maps[0].std() > 1e-3 and not np.allclose(maps[0], maps[1])
