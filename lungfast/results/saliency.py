"""Where the model looks: Grad-CAM (the `grad-cam` package) on test images, for every registry entry.

The target layer is the learner's body, model[0]: fastai builds every vision learner as body + head, and
the body's output is the last feature map (resnet's layer4, efficientnet's conv_head), the layer Grad-CAM
is meant for. ViT bodies (the foundation models) use their last block's tokens, reshaped to the patch grid.
So timm, torchvision and fastai's xresnet models all work without a per-architecture table.
(The last Conv2d inside the body is not: in xresnet it feeds a zero-initialised BatchNorm and gave
all-zero maps.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn


def target_layer(model: nn.Sequential):
    """(layer, reshape_transform) for Grad-CAM: the body for convnets; for a timm ViT body (pathology
    foundation models) the last block's first norm, its patch tokens laid back out on their grid."""
    body = getattr(model[0], "saliency_layer", model[0])  # a feature ensemble names its first part's body
    vit = getattr(getattr(body, "body", body), "model", None)  # fastai's TimmBody, or a probe's TokenBody
    if vit is None or not hasattr(vit, "blocks") or not hasattr(vit, "num_prefix_tokens"):
        return body, None
    skip = vit.num_prefix_tokens

    def tokens_to_grid(t: torch.Tensor) -> torch.Tensor:
        t = t[:, skip:]
        side = int(round(t.shape[1] ** 0.5))
        return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    return vit.blocks[-1].norm1, tokens_to_grid


def _batch(learn, paths: list[str]) -> torch.Tensor:
    dl = learn.dls.test_dl(paths)
    return torch.cat([b[0].as_subclass(torch.Tensor) for b in dl]).to(next(learn.model.parameters()).device)


def cam_maps(learn, paths: list[str], classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(Grad-CAM maps in [0, 1], shape N x H x W; the de-normalized images, N x H x W x 3)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = _batch(learn, paths)
    # one view: Grad-CAM hooks a single forward pass, and a model with test-time views runs its body once per view
    model = nn.Sequential(learn.model[0], learn.model[1]).eval()
    layer, reshape = target_layer(model)
    with torch.enable_grad(), GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        maps = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(c) for c in classes])
    norm = next(t for t in learn.dls.after_batch.fs if type(t).__name__ == "Normalize")
    rgb = (x.detach().cpu() * norm.std.cpu() + norm.mean.cpu()).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return maps, rgb


def pick_examples(preds: pd.DataFrame, per_kind: int = 2) -> pd.DataFrame:
    """Per actual class: the most confident correct and the worst wrong predictions."""
    rows = []
    for _, cls in preds.groupby("actual", sort=True):
        right = cls[cls.actual == cls.predicted].sort_values("probability", ascending=False).head(per_kind)
        wrong = cls[cls.actual != cls.predicted].sort_values("loss", ascending=False).head(per_kind)
        rows += [right.assign(kind="correct"), wrong.assign(kind="wrong")]
    return pd.concat(rows).reset_index(drop=True)


def figure(learn, preds: pd.DataFrame):
    """A grid: one row per class, correct then wrong examples, each overlaid with its predicted class's map."""
    import matplotlib.pyplot as plt
    from pytorch_grad_cam.utils.image import show_cam_on_image

    chosen = pick_examples(preds)
    vocab = list(learn.dls.vocab)
    maps, rgb = cam_maps(learn, chosen.path.tolist(), [vocab.index(p) for p in chosen.predicted])
    labels = sorted(chosen.actual.unique())
    cols = max(chosen.groupby("actual").size())
    fig, axes = plt.subplots(len(labels), cols, figsize=(3 * cols, 3.2 * len(labels)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, label in enumerate(labels):
        for c, (i, row) in enumerate(chosen[chosen.actual == label].iterrows()):
            axes[r][c].imshow(show_cam_on_image(rgb[i].astype(np.float32), maps[i], use_rgb=True))
            axes[r][c].set_title(
                f"{row.kind}: {row.predicted} {row.probability:.2f}\nactual {row.actual}",
                fontsize=9,
                color="green" if row.kind == "correct" else "red",
            )
    fig.suptitle("Grad-CAM of the predicted class (test part)")
    return fig
