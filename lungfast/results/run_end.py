"""The end of every run, whatever its protocol: calibrate, score the test part, evaluate, export, record.

A trainer (`lungfast.protocols`: `train.loop` fine-tunes, `probe.run` fits on frozen embeddings) hands over a
`Trained`: the learner that will ship, its way to score labelled rows, the record fields only it knows, and
the evidence that calibrates it. From there every protocol ends the same way, in this order:

1. on the trainer's `Evidence` (data that did not pick the run and is not the test part), the temperature is
   fitted and kept only where it lowers the evidence's cross-fitted ECE (`calibration.choose`), then folded
   into the learner (calibrated from here on); the referral threshold is certified there (`certify`);
2. the test part is scored once; its metrics, figures, bootstrap intervals, calibration, what the threshold
   keeps and robustness sweep come from those predictions (`results.evaluate`, `referral`, `robustness`);
   each external set is scored by the same calibrated model (`results.external`);
3. the learner is exported (atomically), then the manifest is written last, marking the run complete.

A new metric touches its own module and this one, never a trainer.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import fastai
import numpy as np
import pandas as pd
import timm
import torch

from lungfast import files
from lungfast.data import loaders, shifts
from lungfast.data.split import Split
from lungfast.results import calibration, certify, cost, evaluate, external, record, referral, robustness
from lungfast.results.layout import RunDir
from lungfast.results.record import RunRecord
from lungfast.runspec import RunSpec

RECORD_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}


@dataclass
class Evidence:
    """Where temperature and referral threshold are fitted: predictions on labelled tiles that neither chose the
    shipped run nor belong to the test part."""

    logits: torch.Tensor  # uncalibrated logits
    y: torch.Tensor  # class indices
    groups: np.ndarray  # tile group of each row: the unit of evidence
    folds: np.ndarray  # fold of each row (whole groups), for the cross-fitted temperature check
    kind: str  # what it is, for the record and the card


@dataclass
class Trained:
    """What a trainer hands to the end of its run."""

    learn: object  # the fastai Learner that ships (uncalibrated): its dls give the vocab and the file pipeline
    score: Callable[[pd.DataFrame], pd.DataFrame]  # labelled rows -> predictions table (evaluate.as_table), calibrated
    facts: dict  # record fields only the trainer knows: source, arch, schedule, lr, epochs, speed, device, probe...
    evidence: Evidence  # for calibration and the referral threshold


def finish(spec: RunSpec, split: Split, stage: RunDir, trained: Trained, tracker=None) -> RunRecord:
    """Evaluate, export and record a trained run in its staging folder; the manifest is the last file."""
    from fastai.callback.progress import ProgressCallback

    learn, vocab = trained.learn, list(trained.learn.dls.vocab)
    ev = trained.evidence
    temperature, chosen = calibration.choose(ev.logits, ev.y, ev.folds)
    calibration.fold(learn.model, temperature)
    conf, predicted = torch.softmax(ev.logits.float() / temperature, 1).max(1)  # as the calibrated model gives them
    ev_correct = (predicted == ev.y).numpy()
    cert = certify.certify(conf.numpy(), ev_correct, ev.groups, spec.refer_target, spec.refer_delta)
    test = split.part("test")
    preds = trained.score(test)
    title = f"{spec.entry} seed {spec.seed}"
    metrics = {
        **evaluate.record_test(learn, loaders.rows_dl(learn.dls, test), preds, stage, title, spec.benign),
        **evaluate.calibration_record(preds, vocab, temperature, stage, title),
        **evaluate.test_intervals(preds, vocab, test.group_id, spec.benign, spec.bootstrap_resamples),
        **referral.record(
            cert,
            ev.kind,
            conf.numpy(),
            ev_correct,
            preds.assign(group_id=test.group_id.to_numpy()),
            stage,
            title,
            spec.bootstrap_resamples,
        ),
    }
    metrics["calibration"].update(chosen, evidence=ev.kind)
    metrics["external"] = {
        ext.name: external.score(
            ext, trained.score, vocab, spec.benign, cert, stage.external_predictions(ext.name), spec.bootstrap_resamples
        )
        for ext in split.external
    }
    metrics.update(cost.measure(learn.model, spec.img_size, trained.facts.get("device", {}), spec.throughput_seconds))
    if spec.robustness_n:
        rows = shifts.sample(test, spec.robustness_n)
        metrics.update(robustness.sweep(trained.score, preds, rows, vocab, stage, title))

    learn.remove_cb(ProgressCallback)  # the same pickle whether or not a terminal watched the training
    # the loading machine applies its own device plan (bf16 autocast where its CPU has the units)
    learn.remove_cbs([cb for cb in learn.cbs if getattr(type(cb), "machine_only", False)])
    with files.atomic_path(stage.learner) as tmp:  # absolute: fastai would join a name onto learn.path
        learn.export(tmp.resolve())
    shutil.rmtree(stage.resume, ignore_errors=True)  # the record is complete: no checkpoint to keep
    rec = RunRecord(
        spec=spec,
        learner_sha256=files.sha256(stage.learner),
        params=sum(p.numel() for p in learn.model.parameters()),
        vocab=vocab,
        **{k: v for k, v in metrics.items() if k in RECORD_FIELDS},
        extra={k: v for k, v in metrics.items() if k not in RECORD_FIELDS},  # a new metric needs no field
        **split.facts(),
        threads=torch.get_num_threads(),
        versions={"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
        **trained.facts,
    )
    record.write(stage, rec)
    if tracker:
        tracker.finish(rec, stage)
    return rec
