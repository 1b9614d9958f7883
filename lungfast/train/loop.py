"""The one loop: a `RunSpec` and its split -> a trained learner -> a complete `RunRecord`.

Extended with callbacks (train.callbacks), never edited per backbone. The test part is touched only
after training is over, by `results.evaluate`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil

import matplotlib

matplotlib.use("Agg")  # runs write PNGs; there is no screen
import matplotlib.pyplot as plt  # noqa: E402
import fastai  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from fastai.callback.progress import ProgressCallback  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastcore.basics import noop  # noqa: E402

from lungfast import progress  # noqa: E402
from lungfast.data import loaders  # noqa: E402
from lungfast.data.split import Split  # noqa: E402
from lungfast.results import atomic, evaluate, record  # noqa: E402
from lungfast.results.layout import RunDir  # noqa: E402
from lungfast.runspec import RunSpec  # noqa: E402
from lungfast.ship import trust  # noqa: E402
from lungfast.train import augment, backbones, device, distributed, learner  # noqa: E402
from lungfast.train.callbacks import Checkpoint, EpochHistory, EpochLog, RankLog  # noqa: E402
from lungfast.train.tracking import Tracker  # noqa: E402

log = logging.getLogger("lungfast")


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


def callbacks(spec: RunSpec, stage: RunDir, done: int, lr_found: float | None, lr: float, tracker: Tracker) -> list:
    """The run's callbacks: history, log line, and a checkpoint (single process) or rank log (data parallel)."""
    cbs = [EpochHistory(stage.history, EpochHistory.read(stage.history, done)), EpochLog(spec.label)]
    if distributed.world()[1] == 1:
        cbs.append(Checkpoint(stage.resume, spec.key(), lr_found))
    else:
        distributed.patch_gloo_broadcast()
        cbs.append(RankLog())
    b = backbones.get(spec.backbone)
    cbs += [augment.CALLBACKS[name](b.stats, spec.seed) for name in spec.augment]
    return cbs + tracker.start(spec, lr)


def train_one(spec: RunSpec, split: Split, stage: RunDir, tracker: Tracker | None = None) -> record.RunRecord | None:
    """Train into the staging folder and write every file of the run record there. Ranks other than 0
    train alongside rank 0 and return None."""
    set_seed(spec.seed, reproducible=True)
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe())
    dls = loaders.make_dls(split.frame, b.stats, spec.img_size, spec.batch_size, spec.seed, plan)
    learn = learner.build(dls, b, spec.pretrained, spec.weights_file, path=stage.path)
    if not progress.fastai_bars():  # epoch and batch bars for a person at a terminal; in logs, EpochLog's lines
        learn.remove_cb(ProgressCallback)
    learn.logger = noop  # EpochLog prints instead of fastai's raw lists (a named function: no lambda in the pickle)
    device.apply(learn, plan)
    world_size = distributed.world()[1]
    # resume is single-process: under DDP every rank must run the same epochs, so a killed run restarts
    done, lr_found = Checkpoint.progress(stage.resume, spec.key()) if world_size == 1 else (0, None)
    if done:
        Checkpoint.restore(learn, stage.resume)
        log.info("%s: resuming after epoch %d of an earlier attempt that did not finish (model and optimizer "
                 "restored; --force starts over)", spec.label, done)
    elif spec.lr == "find":
        lr_found = float(learn.lr_find(show_plot=False).valley)
        plt.close("all")
        log.info("%s lr_find suggests %.2e", spec.label, lr_found)
    lr = lr_found if lr_found is not None else float(spec.lr)
    tracker = tracker or Tracker(None, spec.experiment)
    cbs = callbacks(spec, stage, done, lr_found, lr, tracker)
    # DDP through fastai + accelerate when launched with several processes; SyncBatchNorm needs CUDA
    ddp = learn.distrib_ctx(sync_bn=plan.device == "cuda") if world_size > 1 else contextlib.nullcontext()
    try:
        with ddp:
            fit(learn, phases(spec.schedule, spec.epochs, lr), done, cbs)
    except BaseException:
        tracker.abort()
        raise
    if not distributed.is_main():  # rank 0 alone evaluates and writes the record
        return None
    with distributed.alone():
        history = next(c for c in cbs if isinstance(c, EpochHistory))  # fit's callbacks leave with the fit
        rec = _record(spec, split, stage, learn, plan, lr, lr_found, world_size, history.rows)
    tracker.finish(rec, stage)
    return rec


def _record(spec, split: Split, stage: RunDir, learn, plan, lr, lr_found, world_size: int,
            epochs: list[dict]) -> record.RunRecord:
    """Evaluate on the valid and test parts, export the learner, and write the manifest (last)."""
    valid_loss, valid_acc = learn.validate()
    probs, targets = learn.get_preds(dl=learn.dls.valid)
    temperature = evaluate.calibrate(learn, torch.log(probs.clamp_min(1e-12)), targets)  # from here on calibrated
    tdl, test_part = loaders.test_dl(learn.dls, split.frame), split.part("test")
    title = f"{spec.backbone} seed {spec.seed}"
    preds = evaluate.predictions(learn, tdl, test_part.path.tolist())
    vocab = list(learn.dls.vocab)
    valid_probs = torch.softmax(torch.log(probs.clamp_min(1e-12)) / temperature, 1)  # as the calibrated model

    def score(rows):  # the robustness sweep's way to predict: this learner, through its own pipeline
        return evaluate.predictions(learn, loaders.rows_dl(learn.dls, rows), rows.path.tolist())

    test = {**evaluate.record_test(learn, tdl, preds, stage, title),
            **evaluate.calibration_record(preds, vocab, temperature, stage, title),
            **evaluate.test_intervals(preds, vocab, test_part.group_id),
            **evaluate.clinical_record(spec, score, preds, vocab, valid_probs, targets, test_part, stage, title)}
    learn.remove_cb(ProgressCallback)  # the same pickle whether or not a terminal watched the training
    with atomic.atomic_path(stage.learner) as tmp:  # absolute: fastai would join a name onto learn.path
        learn.export(tmp.resolve())
    shutil.rmtree(stage.resume, ignore_errors=True)  # the record is complete: no checkpoint to keep
    b = backbones.get(spec.backbone)
    seconds = sum(e["seconds"] for e in epochs)
    rec = record.RunRecord(
        spec=spec, source=b.source, arch=b.arch, schedule=spec.schedule, lr_used=lr, lr_found=lr_found,
        epochs_run=len(epochs), learner_sha256=trust.sha256(stage.learner),
        params=sum(p.numel() for p in learn.model.parameters()), vocab=list(learn.dls.vocab),
        valid_loss=float(valid_loss), valid_accuracy=float(valid_acc), **test, **split.facts(),
        train_seconds=seconds, seconds_per_epoch=seconds / max(len(epochs), 1),
        train_img_per_s=world_size * sum(e["train_images"] for e in epochs) / max(seconds, 1e-9),
        world_size=world_size, threads=torch.get_num_threads(), device=plan.as_dict(),
        versions={"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__})
    record.write(stage, rec)
    return rec
