"""The end of every run, whatever its protocol: calibrate, score the test part, evaluate, export, record.

A trainer (`lungfast.protocols`: `train.loop` fine-tunes, `probe.run` fits on frozen embeddings) hands over a
`Trained`: the learner that will ship, its valid-part logits, its way to score labelled rows, and the record
fields only it knows. From there every protocol ends the same way, in this order:

1. the temperature is fitted on the valid part and folded into the learner (calibrated from here on);
2. the test part is scored once; its metrics, figures, bootstrap intervals, calibration, referral threshold
   and robustness sweep come from those predictions (`results.evaluate`, `referral`, `robustness`); each
   external set is scored by the same calibrated model (`results.external`);
3. the learner is exported (atomically), then the manifest is written last, marking the run complete.

A new metric touches its own module and this one, never a trainer.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Callable

import fastai
import pandas as pd
import timm
import torch

from lungfast import files
from lungfast.data import loaders, shifts
from lungfast.data.split import Split
from lungfast.results import evaluate, external, record, referral, robustness
from lungfast.results.layout import RunDir
from lungfast.results.record import RunRecord
from lungfast.runspec import RunSpec


@dataclass
class Trained:
    """What a trainer hands to the end of its run."""

    learn: object  # the fastai Learner that ships (uncalibrated): its dls give the vocab and the file pipeline
    valid_logits: torch.Tensor  # uncalibrated logits of the valid part, rows as valid_y
    valid_y: torch.Tensor  # class indices of the valid part
    score: Callable[[pd.DataFrame], pd.DataFrame]  # labelled rows -> predictions table (evaluate.as_table), calibrated
    facts: dict  # record fields only the trainer knows: source, arch, schedule, lr, epochs, speed, device, probe...


def finish(spec: RunSpec, split: Split, stage: RunDir, trained: Trained, tracker=None) -> RunRecord:
    """Evaluate, export and record a trained run in its staging folder; the manifest is the last file."""
    from fastai.callback.progress import ProgressCallback

    learn, vocab = trained.learn, list(trained.learn.dls.vocab)
    temperature = evaluate.calibrate(learn, trained.valid_logits, trained.valid_y)
    valid_probs = torch.softmax(trained.valid_logits / temperature, 1)  # as the calibrated model gives them
    test = split.part("test")
    preds = trained.score(test)
    title = f"{spec.entry} seed {spec.seed}"
    conf, predicted = valid_probs.max(1)
    metrics = {**evaluate.record_test(learn, loaders.rows_dl(learn.dls, test), preds, stage, title, spec.benign),
               **evaluate.calibration_record(preds, vocab, temperature, stage, title),
               **evaluate.test_intervals(preds, vocab, test.group_id, spec.benign),
               **referral.record(conf.numpy(), (predicted == trained.valid_y).numpy(), preds, stage, title)}
    threshold = metrics["referral"]["threshold"]
    metrics["external"] = {ext.name: external.score(ext, trained.score, vocab, spec.benign, threshold,
                                                    stage.external_predictions(ext.name)) for ext in split.external}
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
        spec=spec, learner_sha256=files.sha256(stage.learner), params=sum(p.numel() for p in learn.model.parameters()),
        vocab=vocab, **metrics, **split.facts(), threads=torch.get_num_threads(),
        versions={"fastai": fastai.__version__, "timm": timm.__version__, "torch": torch.__version__},
        **trained.facts)
    record.write(stage, rec)
    if tracker:
        tracker.finish(rec, stage)
    return rec
