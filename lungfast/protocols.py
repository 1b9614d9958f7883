"""The protocol registry: how a backbone is compared. One row per protocol, like the backbone registry.

Everything that depends on a protocol reads its row: config validation (`names`), the runner's dispatch
(`trainer`), which runs share one process only (`frozen`), run folders and leaderboard entries (`named`),
reloading a weights-only export (`head`) and the leaderboard's extra tables (`tables`). Trainers and heads
are named as "module:attribute" and imported when used, so this ground-floor module imports no stage.

Adding a protocol: one row here and its trainer (or, for a frozen-embedding protocol, its `fit` function
in `probe/fits.py` and its classifier in `probe/heads.py`). Every protocol reads the same pixels: the
tile store (`data.store`), which fine-tuning, embeddings and `predict` share.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from lungfast.errors import LungfastError

PROBE = "lungfast.probe.run:train_probe"


@dataclass(frozen=True)
class Protocol:
    name: str  # as written in experiment files (`protocols = [...]`) and run records
    trainer: str  # "module:function" (spec, split, staging RunDir, tracker) -> RunRecord
    frozen: bool  # body frozen: embeddings computed once per model and reused, no training augmentation, one process
    fit: str | None = None  # frozen: "module:function" (parts, n_classes, seed) -> probe.fits.Fit
    head: str | None = None  # frozen: "module:Class" of the classifier, rebuilt from its state dict on reload
    tables: tuple[str, ...] = ()  # extra leaderboard tables its runs fill (results.protocol_tables.TABLES)
    column: tuple[str, str] = ("", "")  # in those tables: (header, record value as "key" or "key.subkey")
    named: bool = True  # its name is part of leaderboard entries and run folders (fine-tuning's never was)
    pixels: str = "tile store"  # what it reads; one resize implementation for every protocol and `predict`
    augmentable: bool = True  # trains on pixels, so `augment` (stain) applies; frozen or cached-feature ones: not
    schedule: str = ""  # trained: a `train.loop.SCHEDULES` name that replaces the pretrained/scratch default
    adapters: str | None = None  # trained: "module:function" (learner, backbone name) -> adapters put in the body
    needs: tuple[str, str] = ()  # (module, pip extra) it imports beyond lungfast's core; checked before any run
    note: str = ""  # one line for docs

    def load(self, what: str):
        """The trainer, fit function or head class named by field `what`."""
        module, _, attr = getattr(self, what).partition(":")
        return getattr(importlib.import_module(module), attr)

    def entry(self, name: str) -> str:
        """The leaderboard entry of a backbone (with its augmentations) under this protocol."""
        return f"{name}/{self.name}" if self.named else name

    def run_folder(self, seed: int) -> str:
        return f"{self.name}-seed{seed}" if self.named else f"seed{seed}"


REGISTRY = {
    p.name: p
    for p in [
        Protocol(
            "fine_tune",
            "lungfast.train.loop:train_one",
            frozen=False,
            named=False,
            note="the whole network trained (pretrained: the new head first, then everything)",
        ),
        Protocol(
            "partial",
            "lungfast.probe.partial:train_partial",
            frozen=False,
            augmentable=False,
            note="the early stages frozen and their maps cached once; the last stage(s) + head trained on them",
        ),
        Protocol(
            "lora",
            "lungfast.train.loop:train_one",
            frozen=False,
            schedule="adapters",
            adapters="lungfast.train.lora:inject",
            needs=("peft", "lora"),
            note="LoRA adapters (peft) on the body's attention or convolutions + the head; merged into what ships",
        ),
        Protocol(
            "linear",
            PROBE,
            frozen=True,
            augmentable=False,
            fit="lungfast.probe.fits:linear",
            head="lungfast.probe.heads:Linear",
            tables=("frozen_features",),
            column=("linear", "test_accuracy"),
            note="logistic regression on frozen embeddings, C chosen on valid",
        ),
        Protocol(
            "knn",
            PROBE,
            frozen=True,
            augmentable=False,
            fit="lungfast.probe.fits:knn",
            head="lungfast.probe.heads:KNN",
            tables=("frozen_features",),
            column=("1-NN", "probe.knn1_test_accuracy"),
            note="cosine k-NN (k = 20) on frozen embeddings, 1-NN recorded too",
        ),
        Protocol(
            "mlp",
            PROBE,
            frozen=True,
            augmentable=False,
            fit="lungfast.probe.fits:mlp",
            head="lungfast.probe.heads:MLP",
            tables=("frozen_features",),
            column=("MLP", "test_accuracy"),
            note="eva's MLP probe (one hidden layer) on frozen embeddings, epochs chosen on valid loss",
        ),
        Protocol(
            "fewshot",
            PROBE,
            frozen=True,
            augmentable=False,
            fit="lungfast.probe.fits:fewshot",
            head="lungfast.probe.heads:Centroids",
            tables=("few_shot",),
            note="SimpleShot class centroids; 1/4/16-shot episodes recorded",
        ),
    ]
}
DEFAULT = "fine_tune"


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Protocol:
    try:
        return REGISTRY[name]
    except KeyError:
        raise LungfastError(f"unknown protocol {name!r}; known: {', '.join(REGISTRY)}") from None
