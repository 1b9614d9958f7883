"""A frozen-embedding run: a `RunSpec` with protocol linear/knn/fewshot and its split -> a complete
`RunRecord`, in the same record layout as a fine-tune run.

The body is frozen and its embeddings come from the cache (`probe.embeddings`); the protocol fits a
classifier; the run ships as a fastai Learner whose model is the body followed by a `ProbeHead` carrying
that classifier, so `predict`, the app, the safetensors export and `load_learner` use it unchanged. Test
probabilities are the head's on the cached embeddings of the tile store's pixels: the same pixels the
exported learner gives `predict` from the original files, so the record describes the model that ships.
The run ends as every run does (`results.run_end`).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import torch
from fastai.callback.progress import ProgressCallback
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from torch import nn
from torch.nn import functional as F

from lungfast import files, protocols
from lungfast.data import loaders
from lungfast.data.split import PARTS, Split
from lungfast.probe import embeddings, fits, heads
from lungfast.results import certify, evaluate, run_end
from lungfast.results.layout import RunDir
from lungfast.runspec import RunSpec
from lungfast.train import backbones, device, learner, views

log = logging.getLogger("lungfast")


def frozen_body(spec: RunSpec, n_classes: int) -> nn.Module:
    """The backbone's body as fastai builds it (model[0]), weights as the spec says (`heads.body_for`)."""
    return heads.body_for(backbones.get(spec.backbone), n_classes, spec.pretrained, spec.weights_file)


def embedder(spec: RunSpec, vocab: list[str]):
    """The frozen body + pooling a probe embeds with, its cache key, and how `embeddings.embed` runs it."""
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe(), spec.precision)
    body, pool = frozen_body(spec, len(vocab)), heads.Embedding(b.embedding, b.prefix_tokens)
    key = embeddings.model_key(b, spec.pretrained, spec.weights_file, spec.img_size, plan.precision)
    return b, plan, body, pool, key


def features(spec: RunSpec, frame, vocab: list[str]) -> tuple[np.ndarray, float | None]:
    """The embeddings of frame's tiles (cached; averaged over the spec's test-time views) and the images per
    second that made them. A feature ensemble: its parts' embeddings side by side, each from its own cache."""
    b = backbones.get(spec.backbone)
    if b.parts:
        found = []
        for name in b.parts:
            pretrained, weights_file = learner.resolve_weights(backbones.get(name), spec.pretrained, {})
            part = dataclasses.replace(spec, backbone=name, pretrained=pretrained, weights_file=weights_file)
            found.append(features(part, frame, vocab))
        speeds = [s for _, s in found]
        return np.concatenate([x for x, _ in found], 1), None if None in speeds else 1 / sum(1 / s for s in speeds)
    b, plan, body, pool, key = embedder(spec, vocab)
    return embeddings.embed(frame, nn.Sequential(body, pool), key, vocab, spec.img_size, b.stats, plan, spec.tta)


def embed_split(spec: RunSpec, split: Split) -> None:
    """Fill the embedding cache for a split's tiles (a launcher's prepare step: its tasks then only read it)."""
    features(spec, split.frame, sorted(split.frame.label.unique()))


def train_probe(spec: RunSpec, split: Split, stage: RunDir, tracker=None) -> run_end.RunRecord:
    vocab = sorted(split.frame.label.unique())
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe(), spec.precision)
    x, embed_speed = features(spec, split.frame, vocab)
    y = split.frame.label.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    parts = {p: (x[(split.frame.part == p).to_numpy()], y[(split.frame.part == p).to_numpy()]) for p in PARTS}
    if tracker:
        tracker.start(spec, None)
    t0 = time.perf_counter()
    fit = protocols.get(spec.protocol).load("fit")(parts, len(vocab), spec.seed)
    seconds = time.perf_counter() - t0
    files.write_csv(stage.history, _history(fit.history))

    # the same file pipeline as a fine-tune run's exported learner, for `predict` and the test figures
    dls = loaders.file_dls(split.frame, b.stats, spec.img_size, spec.batch_size, spec.seed, plan)
    pool = heads.Embedding(b.embedding, b.prefix_tokens)
    model = nn.Sequential(frozen_body(spec, len(vocab)), heads.ProbeHead(pool, fit.classifier))
    learn = Learner(
        dls,
        views.wrap(model, spec.tta, frozen=True),  # its test-time views: what `features` averaged
        loss_func=CrossEntropyLossFlat(),
        metrics=accuracy,
        path=stage.path,
        splitter=all_params,
    )
    learn.remove_cb(ProgressCallback)  # as fine-tune learners are exported: callers add a bar where they want one
    head = learn.model[1]
    index = {c: i for i, c in enumerate(vocab)}

    def logits(v):  # the shipped head on embeddings, divided by its temperature (once calibration sets it)
        with torch.inference_mode():
            return head[1](torch.as_tensor(v, dtype=torch.float32)) / head.temperature

    def score(rows):  # cached embeddings of the rows' store pixels (the test part's are cached already), this head
        v, _ = features(spec, rows, vocab)
        return _table(logits(v), rows.label.map(index).to_numpy(), vocab, rows.path.tolist())

    labelled = (split.frame.part != "test").to_numpy()
    evidence = out_of_fold(
        protocols.get(spec.protocol).load("fit"),
        x[labelled],
        y[labelled],
        split.frame.group_id.to_numpy()[labelled],
        len(vocab),
        spec.seed,
        fit.chosen,
    )
    chosen = next(r for r in fit.history if r["setting"] == fit.chosen)
    facts = dict(
        source=b.source,
        arch=b.arch,
        schedule=f"{spec.protocol} on frozen embeddings",
        lr_used=None,
        lr_found=None,
        epochs_run=0,
        valid_loss=chosen["valid_loss"],
        valid_accuracy=chosen["accuracy"],
        train_seconds=seconds,
        seconds_per_epoch=seconds,
        train_img_per_s=len(parts["train"][0]) / max(seconds, 1e-9),
        world_size=1,
        device=plan.as_dict(),
        embed_img_per_s=embed_speed,
        probe={"protocol": spec.protocol, "chosen": fit.chosen, **fit.extra, "embedding_dim": int(x.shape[1])},
    )
    trained = run_end.Trained(learn, score, {**facts, "selection_accuracy": chosen["accuracy"]}, evidence)
    return run_end.finish(spec, split, stage, trained, tracker)


FOLDS = 5


def out_of_fold(fit_fn, x, y, groups, n_classes: int, seed: int, setting: str) -> run_end.Evidence:
    """Out-of-fold logits over the labelled (train + valid) tiles: the chosen classifier refitted on all folds but
    one, whole tile groups per fold, predicting the one left out. Cheap on cached embeddings, and evidence the
    shipped head never fitted; the test part stays untouched."""
    folds = certify.folds(groups, FOLDS, seed)
    out = torch.zeros(len(y), n_classes)
    for f in np.unique(folds):
        held = folds == f
        parts = {"train": (x[~held], y[~held]), "valid": (x[held], y[held]), "test": (x[held], y[held])}
        out[torch.as_tensor(held)] = fits.logits(fit_fn(parts, n_classes, seed, only=setting).classifier, x[held])
    return run_end.Evidence(
        out,
        torch.as_tensor(y),
        groups,
        folds,
        f"out-of-fold predictions over the {len(np.unique(groups))} tile groups of the train and "
        f"valid parts ({len(np.unique(folds))} group folds, the chosen setting refitted)",
    )


def _table(logits: torch.Tensor, y, vocab: list[str], paths: list[str]):
    """The predictions table (evaluate.as_table) of calibrated logits."""
    y = torch.as_tensor(np.array(y))  # a copy: pandas hands out read-only arrays
    return evaluate.as_table(F.softmax(logits, 1), y, F.cross_entropy(logits, y, reduction="none"), vocab, paths)


def all_params(model: nn.Module) -> list:
    """fastai's export makes an optimizer, which needs parameters: a frozen body has none trainable."""
    return [list(model.parameters())]


def _history(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([{"epoch": i, **r} for i, r in enumerate(rows)])
