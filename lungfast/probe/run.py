"""A frozen-embedding run: a `RunSpec` with protocol linear/knn/fewshot and its split -> a complete
`RunRecord`, in the same record layout as a fine-tune run.

The body is frozen and its embeddings come from the cache (`probe.embeddings`); the protocol fits a
classifier; the run ships as a fastai Learner whose model is the body followed by a `ProbeHead` carrying
that classifier, so `predict`, the app, the safetensors export and `load_learner` use it unchanged. Test
probabilities are the head's on the cached test embeddings: the same numbers the learner gives for the
same prepared images.
"""

from __future__ import annotations

import logging
import time

import fastai
import timm
import torch
from fastai.callback.progress import ProgressCallback
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from torch import nn
from torch.nn import functional as F

from lungfast.data import loaders
from lungfast.data.split import PARTS, Split
from lungfast.probe import embeddings, heads, protocols
from lungfast.results import atomic, evaluate, record
from lungfast.results.layout import RunDir
from lungfast.runspec import RunSpec
from lungfast.ship import trust
from lungfast.train import backbones, device, learner

log = logging.getLogger("lungfast")


def frozen_body(spec: RunSpec, n_classes: int) -> nn.Module:
    """The backbone's body as fastai builds it (model[0]), weights as the spec says; random init is seeded
    the same for every run, so all runs of one model key share one cached embedding."""
    torch.manual_seed(0)
    b = backbones.get(spec.backbone)
    return heads.frozen_body(b, learner.create_model(b, n_classes, spec.pretrained, spec.weights_file)[0])


def train_probe(spec: RunSpec, split: Split, stage: RunDir, tracker=None) -> record.RunRecord:
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe())
    vocab = sorted(split.frame.label.unique())
    body = frozen_body(spec, len(vocab))
    pool = heads.Embedding(b.embedding, b.prefix_tokens)
    key = embeddings.model_key(b, spec.pretrained, spec.weights_file, spec.img_size)
    x, embed_speed = embeddings.embed(split.frame, nn.Sequential(body, pool), key, vocab, spec.img_size, b.stats,
                                      plan.device)
    y = split.frame.label.map({c: i for i, c in enumerate(vocab)}).to_numpy()
    parts = {p: (x[(split.frame.part == p).to_numpy()], y[(split.frame.part == p).to_numpy()]) for p in PARTS}
    if tracker:
        tracker.start(spec, None)
    t0 = time.perf_counter()
    fit = protocols.PROTOCOLS[spec.protocol](parts, len(vocab), spec.seed)
    seconds = time.perf_counter() - t0
    atomic.write_csv(stage.history, _history(fit.history))

    # the same DataLoaders as a fine-tune run: the exported learner carries the same inference pipeline
    dls = loaders.file_dls(split.frame, b.stats, spec.img_size, spec.batch_size, spec.seed, plan)
    learn = Learner(dls, nn.Sequential(body, heads.ProbeHead(pool, fit.classifier)), loss_func=CrossEntropyLossFlat(),
                    metrics=accuracy, path=stage.path, splitter=all_params)
    learn.remove_cb(ProgressCallback)  # as fine-tune learners are exported: callers add a bar where they want one
    head = learn.model[1]
    head_logits = lambda x: head[1](torch.as_tensor(x, dtype=torch.float32)) / head.temperature  # noqa: E731
    valid_y = torch.as_tensor(parts["valid"][1])
    with torch.inference_mode():
        temperature = evaluate.calibrate(learn, head_logits(parts["valid"][0]), valid_y)
        z = head_logits(parts["test"][0])  # calibrated from here on, as the exported learner
        valid_probs = F.softmax(head_logits(parts["valid"][0]), 1)

    def score(rows):  # the robustness sweep's way to predict: cached embeddings of the shifted tiles, this head
        v, _ = embeddings.embed(rows, nn.Sequential(body, pool), key, vocab, spec.img_size, b.stats, plan.device)
        with torch.inference_mode():
            return _table(head_logits(v), rows.label.map({c: i for i, c in enumerate(vocab)}).to_numpy(), vocab,
                          rows.path.tolist())

    test, title = split.part("test"), f"{spec.backbone} {spec.protocol} seed {spec.seed}"
    preds = _table(z, parts["test"][1], vocab, test.path.tolist())
    metrics = {**evaluate.record_test(learn, loaders.test_dl(dls, split.frame), preds, stage, title),
               **evaluate.calibration_record(preds, vocab, temperature, stage, title),
               **evaluate.test_intervals(preds, vocab, test.group_id),
               **evaluate.clinical_record(spec, score, preds, vocab, valid_probs, valid_y, test, stage, title)}
    with atomic.atomic_path(stage.learner) as tmp:  # absolute: fastai would join a name onto learn.path
        learn.export(tmp.resolve())
    chosen = next(r for r in fit.history if r["setting"] == fit.chosen)
    rec = record.RunRecord(
        spec=spec, source=b.source, arch=b.arch, schedule=f"{spec.protocol} on frozen embeddings", lr_used=None,
        lr_found=None, epochs_run=0, learner_sha256=trust.sha256(stage.learner),
        params=sum(p.numel() for p in learn.model.parameters()), vocab=vocab,
        valid_loss=chosen["valid_loss"], valid_accuracy=chosen["accuracy"], **metrics, **split.facts(),
        train_seconds=seconds, seconds_per_epoch=seconds, train_img_per_s=len(parts["train"][0]) / max(seconds, 1e-9),
        world_size=1, threads=torch.get_num_threads(), device=plan.as_dict(),
        versions={"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
        embed_img_per_s=embed_speed, probe={"protocol": spec.protocol, "chosen": fit.chosen, **fit.extra,
                                            "embedding_dim": int(x.shape[1])})
    record.write(stage, rec)
    if tracker:
        tracker.finish(rec, stage)
    return rec


def _table(logits: torch.Tensor, y, vocab: list[str], paths: list[str]):
    """The predictions table (evaluate.as_table) of calibrated logits."""
    y = torch.as_tensor(y)
    return evaluate.as_table(F.softmax(logits, 1), y, F.cross_entropy(logits, y, reduction="none"), vocab, paths)


def all_params(model: nn.Module) -> list:
    """fastai's export makes an optimizer, which needs parameters: a frozen body has none trainable."""
    return [list(model.parameters())]


def _history(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([{"epoch": i, **r} for i, r in enumerate(rows)])
