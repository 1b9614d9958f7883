"""Partial fine-tuning (protocol `partial`): the early stages of a pretrained body stay frozen and their feature
maps are computed once from the tile store and cached; only the last stage(s) and the head train, on those maps.

On a CPU this is most of fine-tuning's gain for a fraction of its cost: the frozen stages hold most of the
network's operations at full resolution, and run once per tile instead of once per tile per epoch. Training
augments the cached maps with the dihedral group (a quarter turn or mirror of a feature map is the map of the
turned tile, up to the stages' padding). Epochs run up to the experiment's `epochs`; the one with the lowest valid
loss is kept. The shipped learner is the ordinary fine-tune learner (body + head, the same file pipeline and
weights layout), so evaluation, calibration, export and `predict` are fine-tuning's (`train.loop.trained`).

Where the body is cut is a registry keyed by the body's layout (`CUTS`): timm EfficientNet/MobileNet (its last
`STAGES` block stages, conv_head and bn2 train), timm ResNets (layer4 trains), and sequential bodies (torchvision
and fastai's xresnet: the last child trains).
"""

from __future__ import annotations

import hashlib
import logging
import time

import numpy as np
import pandas as pd
import torch
from fastai.callback.progress import ProgressCallback
from fastai.torch_core import set_seed
from fastcore.basics import noop
from torch import nn
from torch.nn import functional as F

from lungfast import files, progress
from lungfast.cache import cache_dir
from lungfast.data import loaders
from lungfast.data import store as tile_store
from lungfast.data.split import Split
from lungfast.errors import LungfastError
from lungfast.probe import embeddings
from lungfast.results import run_end
from lungfast.results.layout import RunDir
from lungfast.runspec import RunSpec
from lungfast.train import backbones, device, learner, loop, views

log = logging.getLogger("lungfast")
STAGES = 2  # EfficientNet-style bodies: block stages that train (with conv_head): lite0's last two, 192 and 320 ch
WEIGHT_DECAY = 1e-2


def _efficientnet(body):
    m = body.model
    early = nn.Sequential(m.conv_stem, m.bn1, *m.blocks[:-STAGES])
    return early, nn.Sequential(*m.blocks[-STAGES:], m.conv_head, m.bn2)


def _resnet(body):
    m = body.model
    return nn.Sequential(m.conv1, m.bn1, m.act1, m.maxpool, m.layer1, m.layer2, m.layer3), m.layer4


def _sequential(body):
    return body[:-1], body[-1:]


CUTS = [  # (does the body have this layout, (early, late) modules sharing the body's weights)
    (lambda b: hasattr(getattr(b, "model", None), "conv_head") and hasattr(b.model, "blocks"), _efficientnet),
    (lambda b: hasattr(getattr(b, "model", None), "layer4") and getattr(b, "needs_pool", True), _resnet),
    (lambda b: isinstance(b, nn.Sequential) and len(b) > 1, _sequential),
]


def cut(body: nn.Module, name: str) -> tuple[nn.Module, nn.Module]:
    for fits, split in CUTS:
        if fits(body):
            return split(body)
    raise LungfastError(f"protocol partial: {name}'s body has no layout lungfast knows where to cut; use fine_tune")


def early_features(spec: RunSpec, frame, early: nn.Module, plan) -> np.ndarray:
    """The frozen stages' maps of frame's tiles (rows aligned, float16), computed once per (model, tiles) and
    cached in `<cache>/partial/`."""
    b, tiles = backbones.get(spec.backbone), tile_store.ensure(frame, spec.img_size)
    key = embeddings.model_key(b, spec.pretrained, spec.weights_file, spec.img_size, plan.precision)
    init = "" if spec.pretrained else f"|seed {spec.seed}"  # random weights are drawn per training seed
    name = hashlib.sha1(f"{key}|{STAGES}|{tiles.path}{init}".encode()).hexdigest()[:20]
    target = cache_dir("partial") / f"{name}.npy"
    if not target.is_file():
        rows, vocab = np.arange(len(tiles.images)), sorted(frame.label.unique())
        log.info("computing the frozen stages' maps of %d tiles once (cached in %s)", len(rows), target.parent)
        bar, out, t0 = progress.bar(len(rows), "mapped"), None, time.perf_counter()
        for start, v in embeddings.compute(early, tiles, rows, vocab, spec.img_size, b.stats, plan):
            out = np.empty((len(rows), *v.shape[1:]), np.float16) if out is None else out
            out[start : start + len(v)] = v
            bar(start + len(v))
        log.info("frozen stages: %.0f tiles/s", len(rows) / (time.perf_counter() - t0))
        with files.atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out)
    return np.load(target, mmap_mode="r")[tiles.rows(frame.path)]


def train_partial(spec: RunSpec, split: Split, stage: RunDir, tracker=None) -> run_end.RunRecord:
    set_seed(spec.seed, reproducible=True)
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe(), spec.precision)
    dls = loaders.make_dls(split.frame, b.stats, spec.img_size, spec.batch_size, spec.seed, plan)
    learn = learner.build(dls, b, spec.pretrained, spec.weights_file, path=stage.path, head=spec.head)
    learn.remove_cb(ProgressCallback)
    learn.logger = noop
    early, late = cut(learn.model[0], b.name)
    early.requires_grad_(False)
    late.requires_grad_(True)
    learn.model[1].requires_grad_(True)
    maps = early_features(spec, split.frame, early.eval(), plan)
    index = {c: i for i, c in enumerate(dls.vocab)}
    y = torch.tensor(split.frame.label.map(index).to_numpy(), device=plan.device)
    part = split.frame.part.to_numpy()
    lr = float(spec.lr) if not isinstance(spec.lr, str) else 1e-3
    if tracker:
        tracker.start(spec, lr)
    rows = fit(nn.Sequential(late, learn.model[1]), maps, y, part, spec, lr, plan)
    files.write_csv(stage.history, pd.DataFrame(rows))
    device.apply(learn, plan)
    trained = loop.trained(spec, split, learn, plan, lr, None, 1, rows)
    trained.facts["schedule"] = f"partial: frozen stages cached, {type(late).__name__} + head trained"
    return run_end.finish(spec, split, stage, trained, tracker)


def fit(net: nn.Module, maps: np.ndarray, y, part, spec: RunSpec, lr: float, plan) -> list[dict]:
    """AdamW with a cosine schedule over `spec.epochs`, a random dihedral view of each batch's maps; the epoch
    with the lowest valid loss is kept (its weights restored). Returns one history row per epoch."""
    train, valid = np.flatnonzero(part == "train"), np.flatnonzero(part == "valid")
    bs = min(spec.batch_size, len(train))
    steps = spec.epochs * (len(train) // bs)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(spec.seed)
    best, rows = (float("inf"), None), []
    for epoch in range(spec.epochs):
        t0, net = time.perf_counter(), net.train()
        order, losses = train[torch.randperm(len(train), generator=g).numpy()], []
        for i in range(0, len(order) - bs + 1, bs):
            batch = np.sort(order[i : i + bs])  # sorted: a memory-mapped cache reads forward
            z = torch.from_numpy(np.array(maps[batch])).to(plan.device).float()
            z = views.view(z, int(torch.randint(8, (1,), generator=g)))
            with device.autocast(plan):
                loss = F.cross_entropy(net(z).float(), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        valid_loss, accuracy = _score(net, maps, y, valid, plan)
        rows.append(
            dict(
                epoch=epoch,
                train_loss=float(np.mean(losses)),
                valid_loss=valid_loss,
                accuracy=accuracy,
                seconds=time.perf_counter() - t0,
                train_images=len(losses) * bs,
            )
        )
        log.info("%s epoch %d: valid_loss=%.4f accuracy=%.4f", spec.label, epoch + 1, valid_loss, accuracy)
        if valid_loss < best[0]:
            best = (valid_loss, {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    return rows


def _score(net, maps, y, idx, plan) -> tuple[float, float]:
    net.eval()
    with torch.inference_mode(), device.autocast(plan):
        z = torch.cat(
            [
                net(torch.from_numpy(np.array(maps[idx[i : i + 256]])).to(plan.device).float()).float()
                for i in range(0, len(idx), 256)
            ]
        )
    return float(F.cross_entropy(z, y[idx])), float((z.argmax(1) == y[idx]).float().mean())
