"""The one loop: a `RunSpec` and its split -> a trained learner -> a complete `RunRecord`.

Extended with callbacks (train.callbacks), never edited per backbone. The test part is touched only
after training is over, by the end every run shares (`results.run_end`).
"""

from __future__ import annotations

import contextlib
import logging

import matplotlib

matplotlib.use("Agg")  # runs write PNGs; there is no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from fastai.callback.progress import ProgressCallback  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastcore.basics import noop  # noqa: E402

from lungfast import progress, protocols  # noqa: E402
from lungfast.data import loaders  # noqa: E402
from lungfast.data.split import Split  # noqa: E402
from lungfast.results import certify, evaluate, run_end  # noqa: E402
from lungfast.results.layout import RunDir  # noqa: E402
from lungfast.runspec import RunSpec  # noqa: E402
from lungfast.train import augment, backbones, device, distributed, learner, views  # noqa: E402
from lungfast.train.callbacks import Checkpoint, EpochHistory, EpochLog, KeepCtrlC, RankLog  # noqa: E402
from lungfast.train.tracking import Tracker  # noqa: E402

log = logging.getLogger("lungfast")


SCHEDULES = {  # name (runspec.schedule_for) -> (epochs, lr) -> [(phase, epochs, fit_one_cycle arguments)]
    # fastai's `Learner.fine_tune` spelled out (1 frozen epoch at lr, then unfrozen at lr/2 with lr_mult 100),
    # so a killed run can resume mid-way
    "head_first": lambda epochs, lr: [
        ("frozen", 1, {"lr_max": slice(lr), "pct_start": 0.99}),
        ("unfrozen", epochs, {"lr_max": slice(lr / 2 / 100, lr / 2), "pct_start": 0.3, "div": 5.0}),
    ],
    "one_cycle": lambda epochs, lr: [("all", epochs, {"lr_max": lr})],
    # adapters (protocol lora) and the new head from the start; what trains was set when they were put in
    "adapters": lambda epochs, lr: [("adapters", epochs, {"lr_max": lr})],
}
TRAINABLE = {  # a phase's name -> what it leaves trainable before its epochs
    "frozen": lambda learn: learn.freeze(),
    "unfrozen": lambda learn: learn.unfreeze(),
    "all": lambda learn: learn.unfreeze(),
    "adapters": lambda learn: None,
}


def phases(schedule: str, epochs: int, lr: float) -> list[tuple[str, int, dict]]:
    """(name, epochs, fit_one_cycle arguments) per phase of a named schedule."""
    return SCHEDULES[schedule](epochs, lr)


def fit(learn, plan: list, done: int, cbs: list) -> None:
    """Run the phases, skipping the `done` epochs a killed run already finished (fastai's start_epoch)."""
    for name, n_epochs, kwargs in plan:
        if done >= n_epochs:
            done -= n_epochs
            continue
        TRAINABLE[name](learn)
        learn.fit_one_cycle(n_epochs, start_epoch=done, cbs=cbs, **kwargs)
        done = 0


def callbacks(spec: RunSpec, stage: RunDir, done: int, lr_found: float | None, lr: float, tracker: Tracker) -> list:
    """The run's callbacks: history, log line, and a checkpoint (single process) or rank log (data parallel)."""
    cbs = [EpochHistory(stage.history, EpochHistory.read(stage.history, done)), EpochLog(spec.label), KeepCtrlC()]
    if distributed.world()[1] == 1:
        cbs.append(Checkpoint(stage.resume, spec.key(), lr_found))
    else:
        distributed.patch_gloo_broadcast()
        cbs.append(RankLog())
    b = backbones.get(spec.backbone)
    cbs += [augment.CALLBACKS[name](b.stats, spec.seed) for name in spec.augment]
    return cbs + tracker.start(spec, lr)


def train_one(spec: RunSpec, split: Split, stage: RunDir, tracker: Tracker | None = None) -> run_end.RunRecord | None:
    """Train into the staging folder and write every file of the run record there. Ranks other than 0
    train alongside rank 0 and return None."""
    set_seed(spec.seed, reproducible=True)
    b, plan = backbones.get(spec.backbone), device.plan_for(device.describe(), spec.precision)
    dls = loaders.make_dls(split.frame, b.stats, spec.img_size, spec.batch_size, spec.seed, plan)
    learn = learner.build(dls, b, spec.pretrained, spec.weights_file, path=stage.path, head=spec.head)
    protocol = protocols.get(spec.protocol)
    adapters = protocol.load("adapters")(learn, b.name) if protocol.adapters else None
    if not progress.fastai_bars():  # epoch and batch bars for a person at a terminal; in logs, EpochLog's lines
        learn.remove_cb(ProgressCallback)
    learn.logger = noop  # EpochLog prints instead of fastai's raw lists (a named function: no lambda in the pickle)
    device.apply(learn, plan)
    world_size = distributed.world()[1]
    # resume is single-process: under DDP every rank must run the same epochs, so a killed run restarts
    done, lr_found = Checkpoint.progress(stage.resume, spec.key()) if world_size == 1 else (0, None)
    if done:
        Checkpoint.restore(learn, stage.resume)
        log.info(
            "%s: resuming after epoch %d of an earlier attempt that did not finish (model and optimizer "
            "restored; --force starts over)",
            spec.label,
            done,
        )
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
        facts = adapters.merge(learn) if adapters else {}  # from here on the plain architecture, as it ships
        end = trained(spec, split, learn, plan, lr, lr_found, world_size, history.rows, done)
        end.facts.update(facts)
        return run_end.finish(spec, split, stage, end, tracker)


def trained(
    spec: RunSpec, split: Split, learn, plan, lr: float, lr_found, world_size: int, epochs: list[dict], resumed: int = 0
) -> run_end.Trained:
    """The fine-tuned learner for the end of the run: its own way to score rows (its files through its inference
    pipeline, as `predict` reads them), the record fields of the training, and its evidence (`halves`). From here
    on the model sees its test-time views (`spec.tta`): evaluation, calibration and the export all see the same."""
    learn.model = views.wrap(learn.model, spec.tta, frozen=False)
    valid_loss, valid_acc = learn.validate()
    probs, targets = learn.get_preds(dl=learn.dls.valid)
    selection_accuracy, evidence = halves(
        torch.log(probs.clamp_min(1e-12)), targets, split.part("valid").group_id.to_numpy(), spec.seed
    )

    def score(rows):
        return evaluate.predictions(learn, rows)

    b, seconds = backbones.get(spec.backbone), sum(e["seconds"] for e in epochs)
    facts = dict(
        source=b.source,
        arch=b.arch,
        schedule=spec.schedule,
        lr_used=lr,
        lr_found=lr_found,
        epochs_run=len(epochs),
        valid_loss=float(valid_loss),
        valid_accuracy=float(valid_acc),
        train_seconds=seconds,
        seconds_per_epoch=seconds / max(len(epochs), 1),
        train_img_per_s=world_size * sum(e["train_images"] for e in epochs) / max(seconds, 1e-9),
        world_size=world_size,
        device=plan.as_dict(),
        selection_accuracy=selection_accuracy,
        resumed_after_epoch=resumed,  # 0: trained in one go; k: an earlier attempt stopped after epoch k
    )
    return run_end.Trained(learn, score, facts, evidence)


def halves(logits: torch.Tensor, y: torch.Tensor, groups, seed: int) -> tuple[float, run_end.Evidence]:
    """The valid part's tile groups dealt into two halves: the selection half's accuracy is what export's choice
    among runs reads, the calibration half fits the temperature and certifies the referral threshold, so neither
    is fitted on the evidence that picked the run (refitting a fine-tuned network per fold would cost a training
    each). A valid part of one group cannot be halved: it then does both, and says so."""
    half = certify.folds(groups, 2, seed)
    pick, calib = half == 0, half == 1
    kind = (
        f"the calibration half of the valid part ({len(set(groups[calib]))} tile groups; the other half chose the run)"
    )
    if not calib.any():
        pick = calib = np.ones(len(groups), bool)
        kind = "the whole valid part (one tile group: too few to halve; it also chose the run)"
    accuracy = float((logits[torch.as_tensor(pick)].argmax(1) == y[torch.as_tensor(pick)]).float().mean())
    mine = torch.as_tensor(calib)
    return accuracy, run_end.Evidence(logits[mine], y[mine], groups[calib], certify.folds(groups[calib], 2, seed), kind)
