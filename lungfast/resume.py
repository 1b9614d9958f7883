"""Runs that survive being killed: a checkpoint after every finished epoch, inside the run's staging folder.

The staging folder of a run has a fixed name (`runs/<backbone>/.seed<k>.partial/`), so a rerun finds what a
killed run left: `resume/state.pth` (model and optimizer, fastai's `learn.save(with_opt=True)`) and
`resume/progress.json` (epochs done, their timings, the run's settings). If the settings match, training
continues after the last finished epoch; anything else there is discarded.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from fastai.callback.core import Callback

from lungfast import record

log = logging.getLogger("lungfast")


class TrainedEpochCallback(Callback):
    """Calls `after_trained_epoch` after every epoch that trained. On resume, fastai's `start_epoch` cancels
    the epochs already done, yet still sends them `after_epoch`: those are not passed on."""

    def after_cancel_epoch(self):
        self._cancelled = True

    def after_epoch(self):
        if getattr(self, "_cancelled", False):
            self._cancelled = False
            return
        self.after_trained_epoch()

    def after_trained_epoch(self):
        raise NotImplementedError


class Checkpoint(TrainedEpochCallback):
    """After each epoch: save model + optimizer, then record progress (in that order: progress never
    claims an epoch whose weights are not on disk)."""

    order = 80  # after CSVLogger (60) and EpochLog (70)

    def __init__(self, folder: Path, key: dict, epochs_done: int, epoch_log):
        # absolute: fastai's save joins a relative name onto learn.path/models
        self.folder, self.key, self.done, self.epoch_log = folder.resolve(), key, epochs_done, epoch_log

    def after_trained_epoch(self):
        self.done += 1
        self.folder.mkdir(exist_ok=True)
        self.learn.save(self.folder / "state.partial", with_opt=True)  # fastai appends .pth
        os.replace(self.folder / "state.partial.pth", self.folder / "state.pth")
        record.write_json(self.folder / "progress.json", {"key": self.key, "epochs_done": self.done,
                                                          "timings": self.epoch_log.epochs})


def progress(stage: Path, key: dict) -> tuple[int, list]:
    """(epochs already done, their timings) from a killed run with the same settings, else (0, [])."""
    f = stage / "resume" / "progress.json"
    if not f.is_file():
        return 0, []
    saved = json.loads(f.read_text())
    if saved["key"] != key:
        log.info("%s: left by a run with other settings; starting over", stage.name)
        return 0, []
    return saved["epochs_done"], saved["timings"]


def restore(learn, stage: Path) -> None:
    learn.load((stage / "resume" / "state").resolve(), with_opt=True)  # absolute, as in Checkpoint
