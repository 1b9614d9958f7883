"""The one fine-tune loop: (backbone, seed, split) -> a complete run record.

Extended with callbacks, never edited per backbone: CSVLogger keeps the history, EpochLog prints one
readable line per epoch with throughput. The test split is touched only after training is over.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs write PNGs; there is no screen
import matplotlib.pyplot as plt  # noqa: E402
import fastai
import timm
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import CSVLogger, ProgressCallback
from fastai.torch_core import set_seed
from fastcore.basics import noop

from lungfast import data, device, evaluate, learner, record, trust
from lungfast.backbones import Backbone
from lungfast.config import Experiment

log = logging.getLogger("lungfast")


class EpochLog(Callback):
    """One log line per epoch (instead of progress bars) and the seconds and images each epoch took."""

    order = 70

    def __init__(self, label: str):
        self.label, self.epochs = label, []

    def before_epoch(self):
        self.t0, self.n_seen = time.perf_counter(), 0

    def after_batch(self):
        if self.training:
            self.n_seen += self.y.shape[0]

    def after_epoch(self):
        seconds = time.perf_counter() - self.t0
        self.epochs.append({"seconds": seconds, "train_images": self.n_seen})
        values = dict(zip(self.recorder.metric_names[1:-1], self.recorder.log[1:-1]))
        shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, float))
        log.info("%s epoch %d: %s  %.1fs  %.0f img/s", self.label, len(self.epochs), shown, seconds,
                 self.n_seen / max(seconds, 1e-9))


def tidy_history(path: Path) -> None:
    """CSVLogger(append=True) writes a header per fit (fine_tune fits twice): keep one, number epochs 0..n-1."""
    import pandas as pd

    history = pd.read_csv(path)
    history = history[history.epoch.astype(str) != "epoch"].reset_index(drop=True)
    history["epoch"] = range(len(history))
    record.write_csv(path, history)


def train_one(exp: Experiment, b: Backbone, seed: int, split_df, stage: Path, extra: dict) -> dict:
    """Train into the staging folder `stage` and write every file of the run record there."""
    set_seed(seed, reproducible=True)
    plan = device.plan_for(device.describe())
    pretrained, weights_file = learner.resolve_weights(b, exp.pretrained, exp.weights)
    dls = data.make_dls(split_df, b.stats, exp.img_size, exp.batch_size, seed, plan)
    learn = learner.build(dls, b, pretrained, weights_file, path=stage)
    learn.remove_cb(ProgressCallback)  # bars would flood logs; `no_bar()` is only a context manager
    learn.logger = noop  # EpochLog prints instead of fastai's raw lists (a named function: no lambda in the pickle)
    device.apply(learn, plan)
    label = f"{b.name}/seed{seed}"

    lr_found = None
    if exp.lr == "find":
        lr_found = float(learn.lr_find(show_plot=False).valley)
        plt.close("all")
        log.info("%s lr_find suggests %.2e", label, lr_found)
    lr = lr_found if lr_found is not None else float(exp.lr)

    epoch_log = EpochLog(label)
    cbs = [CSVLogger(fname="history.csv", append=True), epoch_log]  # append: fine_tune calls fit twice
    schedule, epochs = b.schedule(pretrained), exp.epochs_for(b.name)
    t0 = time.perf_counter()
    if schedule == "fine_tune":
        learn.fine_tune(epochs, base_lr=lr, cbs=cbs)
    else:
        learn.fit_one_cycle(epochs, lr_max=lr, cbs=cbs)
    train_seconds = time.perf_counter() - t0
    tidy_history(stage / "history.csv")

    valid_loss, valid_acc = learn.validate()
    test = evaluate.evaluate(learn, data.test_dl(dls, split_df), stage, f"{b.name} seed {seed}")
    learn.export("learner.pkl")
    learner_sha256 = trust.sha256(stage / "learner.pkl")
    n_epochs_run = len(epoch_log.epochs)
    metrics = {
        "backbone": b.name, "source": b.source, "arch": b.arch, "seed": seed, "split": exp.split,
        "split_seed": exp.split_seed, "img_size": exp.img_size, "batch_size": exp.batch_size,
        "epochs": epochs, "epochs_run": n_epochs_run, "schedule": schedule, "pretrained": pretrained,
        "weights_file": weights_file, "lr": lr, "lr_found": lr_found, "learner_sha256": learner_sha256,
        "valid_loss": float(valid_loss), "valid_accuracy": float(valid_acc),
        **test, "vocab": list(dls.vocab),
        "params": sum(p.numel() for p in learn.model.parameters()),
        "train_seconds": train_seconds, "seconds_per_epoch": train_seconds / max(n_epochs_run, 1),
        "train_img_per_s": sum(e["train_images"] for e in epoch_log.epochs) / max(train_seconds, 1e-9),
        "device": plan.as_dict(), "threads": torch.get_num_threads(),
        "versions": {"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
        **extra,
    }
    record.write_json(stage / "metrics.json", metrics)  # last: its presence marks a complete record
    return metrics
