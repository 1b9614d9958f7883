"""The one fine-tune loop: (backbone, seed, split) -> a complete run record.

Extended with callbacks, never edited per backbone: CSVLogger keeps the history, EpochLog prints one
readable line per epoch with throughput, Checkpoint makes a killed run resumable. The test split is
touched only after training is over.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # runs write PNGs; there is no screen
import matplotlib.pyplot as plt  # noqa: E402
import fastai
import timm
import torch
from fastai.callback.progress import CSVLogger, ProgressCallback
from fastai.torch_core import set_seed
from fastcore.basics import noop

from lungfast import data, device, distributed, evaluate, learner, record, resume, trust
from lungfast.backbones import Backbone
from lungfast.config import Experiment
from lungfast.tracking import Tracker

log = logging.getLogger("lungfast")


class EpochLog(resume.TrainedEpochCallback):
    """One log line per epoch (instead of progress bars) and the seconds and images each epoch took."""

    order = 70

    def __init__(self, label: str, earlier: list = (), lr_found: float | None = None):
        self.label, self.epochs, self.lr_found = label, list(earlier), lr_found  # earlier: before a restart

    def before_epoch(self):
        self.t0, self.n_seen = time.perf_counter(), 0

    def after_batch(self):
        if self.training:
            self.n_seen += self.y.shape[0]

    def after_trained_epoch(self):
        seconds = time.perf_counter() - self.t0
        self.epochs.append({"seconds": seconds, "train_images": self.n_seen, "lr_found": self.lr_found})
        values = dict(zip(self.recorder.metric_names[1:-1], self.recorder.log[1:-1]))
        shown = " ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, float))
        log.info("%s epoch %d: %s  %.1fs  %.0f img/s", self.label, len(self.epochs), shown, seconds,
                 self.n_seen / max(seconds, 1e-9))


def tidy_history(path: Path, keep: int | None = None) -> None:
    """CSVLogger(append=True) writes a header per fit (one per phase and restart): keep one, number epochs
    0..n-1, and keep only the first `keep` epochs when given."""
    import pandas as pd

    history = pd.read_csv(path)
    for column in ("train_loss", "valid_loss"):  # header repeats and skipped epochs' stub rows become NaN
        history[column] = pd.to_numeric(history[column], errors="coerce")
    history = history.dropna(subset=["train_loss", "valid_loss"]).reset_index(drop=True).head(keep)
    history["epoch"] = range(len(history))
    record.write_csv(path, history)


def phases(schedule: str, epochs: int, lr: float) -> list[tuple[str, int, dict]]:
    """(name, epochs, fit_one_cycle arguments) per phase. fine_tune is fastai's `Learner.fine_tune` spelled
    out (1 frozen epoch at lr, then unfrozen at lr/2 with lr_mult 100), so a killed run can resume mid-way."""
    if schedule == "fine_tune":
        return [("frozen", 1, {"lr_max": slice(lr), "pct_start": 0.99}),
                ("unfrozen", epochs, {"lr_max": slice(lr / 2 / 100, lr / 2), "pct_start": 0.3, "div": 5.0})]
    return [("all", epochs, {"lr_max": lr})]


def fit(learn, plan: list, done: int, cbs: list) -> None:
    """Run the phases, skipping the `done` epochs a killed run already finished (fastai's start_epoch)."""
    for name, n_epochs, kwargs in plan:
        if done >= n_epochs:
            done -= n_epochs
            continue
        learn.freeze() if name == "frozen" else learn.unfreeze()
        learn.fit_one_cycle(n_epochs, start_epoch=done, cbs=cbs, **kwargs)
        done = 0


def train_one(exp: Experiment, b: Backbone, seed: int, split_df, stage: Path, extra: dict,
              tracker: Tracker | None = None) -> dict:
    """Train into the staging folder `stage` and write every file of the run record there."""
    with contextlib.ExitStack() as after_fit:
        set_seed(seed, reproducible=True)
        plan = device.plan_for(device.describe())
        pretrained, weights_file = learner.resolve_weights(b, exp.pretrained, exp.weights)
        dls = data.make_dls(split_df, b.stats, exp.img_size, exp.batch_size, seed, plan)
        learn = learner.build(dls, b, pretrained, weights_file, path=stage)
        learn.remove_cb(ProgressCallback)  # bars would flood logs; `no_bar()` is only a context manager
        learn.logger = noop  # EpochLog prints instead of fastai's raw lists (a named function: no lambda in the pickle)
        device.apply(learn, plan)
        label = f"{b.name}/seed{seed}"
        schedule, epochs = b.schedule(pretrained), exp.epochs_for(b.name)
        key = {"backbone": b.name, "seed": seed, "split": exp.split, "split_seed": exp.split_seed,
               "img_size": exp.img_size, "batch_size": exp.batch_size, "epochs": epochs, "lr": exp.lr,
               "pretrained": pretrained, "n_images": len(split_df)}
        rank, world_size = distributed.world()
        # resume is single-process: under DDP every rank must run the same epochs, so a killed run restarts
        done, timings = resume.progress(stage, key) if world_size == 1 else (0, [])

        lr_found = None
        if done:
            lr_found = timings[0].get("lr_found") if timings else None
            resume.restore(learn, stage)
            log.info("%s: resuming after epoch %d of a killed run (model and optimizer restored)", label, done)
        elif exp.lr == "find":
            lr_found = float(learn.lr_find(show_plot=False).valley)
            plt.close("all")
            log.info("%s lr_find suggests %.2e", label, lr_found)
        lr = lr_found if lr_found is not None else float(exp.lr)

        tracker = tracker or Tracker(None, exp.name)
        epoch_log = EpochLog(label, timings, lr_found)
        cbs = [CSVLogger(fname="history.csv", append=True), epoch_log]  # append: one fit per phase and restart
        if world_size == 1:
            cbs.append(resume.Checkpoint(stage / "resume", key, done, epoch_log))
        else:
            distributed.patch_gloo_broadcast()
            cbs.append(distributed.RankLog())
        cbs += tracker.start(f"{label} {exp.split}-split{exp.split_seed}", {**key, "schedule": schedule, "lr": lr})
        if done and (stage / "history.csv").is_file():
            tidy_history(stage / "history.csv", keep=done)  # drop an epoch logged after the last checkpoint
        t0 = time.perf_counter()
        # DDP through fastai + accelerate when launched with several processes; SyncBatchNorm needs CUDA
        ddp = learn.distrib_ctx(sync_bn=plan.device == "cuda") if world_size > 1 else contextlib.nullcontext()
        try:
            with ddp:
                fit(learn, phases(schedule, epochs, lr), done, cbs)
        except BaseException:
            tracker.abort()
            raise
        if rank != 0:  # rank 0 alone evaluates and writes the record
            return {}
        after_fit.enter_context(distributed.alone())
        train_seconds = time.perf_counter() - t0 + sum(e["seconds"] for e in timings[:done])
        tidy_history(stage / "history.csv")

        valid_loss, valid_acc = learn.validate()
        test_paths = split_df.path[split_df.split == "test"].tolist()
        test = evaluate.evaluate(learn, data.test_dl(dls, split_df), test_paths, stage, f"{b.name} seed {seed}")
        learn.export("learner.pkl")
        learner_sha256 = trust.sha256(stage / "learner.pkl")
        n_epochs_run = len(epoch_log.epochs)
        shutil.rmtree(stage / "resume", ignore_errors=True)  # the record is complete: no checkpoint to keep
        metrics = {
            "backbone": b.name, "source": b.source, "arch": b.arch, "seed": seed, "split": exp.split,
            "split_seed": exp.split_seed, "img_size": exp.img_size, "batch_size": exp.batch_size,
            "epochs": epochs, "epochs_run": n_epochs_run, "schedule": schedule, "pretrained": pretrained,
            "weights_file": weights_file, "lr": lr, "lr_found": lr_found, "learner_sha256": learner_sha256,
            "valid_loss": float(valid_loss), "valid_accuracy": float(valid_acc),
            **test, "vocab": list(dls.vocab),
            "params": sum(p.numel() for p in learn.model.parameters()),
            "train_seconds": train_seconds, "seconds_per_epoch": train_seconds / max(n_epochs_run, 1),
            "train_img_per_s": world_size * sum(e["train_images"] for e in epoch_log.epochs) / max(train_seconds, 1e-9),
            "world_size": world_size,
            "device": plan.as_dict(), "threads": torch.get_num_threads(),
            "versions": {"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
            **extra,
        }
        record.write_json(stage / "metrics.json", metrics)  # last: its presence marks a complete record
        tracker.finish(metrics, stage)
        return metrics
