"""Every callback of the loop. They find each other through the learner (fastai registers a callback as
`learn.<snake_case name>`), never through references to each other; `order` only sets who runs first.

- EpochHistory (60): one row per trained epoch, across phases and restarts; writes history.csv each epoch.
- EpochLog (70): one readable log line per epoch, from the history's last row.
- MLflowEpochs (75): the epoch's metrics to MLflow, step = epoch number.
- Checkpoint (80): model + optimizer after each epoch, then progress.json: a killed run resumes.
- RankLog (71): under data parallelism, which items each rank trained on and its final weights.
- KeepCtrlC (0): a Ctrl-C that a library swallowed (fastprogress's bar) is raised again at the next batch.
- CpuAutocast (10): the CPU bf16 plan (`train.device`): each batch's forward and loss under bf16 autocast,
  channels_last; fp32 master weights and predictions (fastai's MixedPrecision is CUDA-only).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
from fastai.callback.core import Callback

from lungfast import files
from lungfast.errors import raise_swallowed_ctrl_c

log = logging.getLogger("lungfast")


class KeepCtrlC(Callback):
    """Beside every fastai bar: fastprogress's console bar swallows a Ctrl-C that lands while it draws (a bare
    `except:` around a print); the CLI noted it, and this raises it again at the next step."""

    order = 0

    def before_batch(self):
        raise_swallowed_ctrl_c()

    after_batch = before_validate = after_epoch = before_batch


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


class EpochHistory(TrainedEpochCallback):
    """history.csv, written once per epoch and always right: epoch numbers run on across the phases of
    fine_tune and across a restart, which starts from the rows of the epochs its checkpoint holds."""

    order = 60  # after fastai's Recorder (50), which computes the epoch's metrics

    def __init__(self, path: Path, earlier: list[dict] = ()):
        self.path, self.rows = path, list(earlier)

    def before_epoch(self):
        self.t0, self.n_seen = time.perf_counter(), 0

    def after_batch(self):
        if self.training:
            self.n_seen += self.y.shape[0]

    def after_trained_epoch(self):
        values = dict(zip(self.recorder.metric_names[1:-1], self.recorder.log[1:-1]))
        values = {k: float("nan") if v is None else float(v) for k, v in values.items()}  # None: no valid part
        self.rows.append(
            {"epoch": len(self.rows), **values, "seconds": time.perf_counter() - self.t0, "train_images": self.n_seen}
        )
        files.write_csv(self.path, pd.DataFrame(self.rows))

    @staticmethod
    def read(path: Path, keep: int) -> list[dict]:
        """The first `keep` rows of a killed run's history (a row written after its last checkpoint goes)."""
        if keep == 0 or not path.is_file():
            return []
        return pd.read_csv(path).head(keep).to_dict("records")


class EpochLog(TrainedEpochCallback):
    """One log line per epoch (instead of progress bars), with the epoch's throughput."""

    order = 70

    def __init__(self, label: str):
        self.label = label

    def after_trained_epoch(self):
        row = self.learn.epoch_history.rows[-1]
        shown = " ".join(
            f"{k}={v:.4f}"
            for k, v in row.items()
            if k not in ("epoch", "seconds", "train_images") and isinstance(v, float)
        )
        log.info(
            "%s epoch %d: %s  %.1fs  %.0f img/s",
            self.label,
            row["epoch"] + 1,
            shown,
            row["seconds"],
            row["train_images"] / max(row["seconds"], 1e-9),
        )


class MLflowEpochs(TrainedEpochCallback):
    """Per-epoch metrics into the active MLflow run (train/valid loss and every fastai metric)."""

    order = 75

    def __init__(self, mlflow):
        self.mlflow = mlflow

    def after_trained_epoch(self):
        row = self.learn.epoch_history.rows[-1]
        self.mlflow.log_metrics(
            {k: v for k, v in row.items() if k not in ("epoch", "seconds", "train_images")}, step=row["epoch"]
        )


class Checkpoint(TrainedEpochCallback):
    """After each epoch: save model + optimizer, then progress.json (in that order: progress never claims
    an epoch whose weights are not on disk). `key` is the run's identity: a rerun resumes only into it."""

    order = 80

    def __init__(self, folder: Path, key: dict, lr_found: float | None):
        # absolute: fastai's save joins a relative name onto learn.path/models
        self.folder, self.key, self.lr_found = folder.resolve(), key, lr_found

    def after_trained_epoch(self):
        from fastai.learner import save_model

        with files.atomic_path(self.folder / "state.pth") as tmp:  # a full disk leaves the last good state
            save_model(tmp, self.learn.model, getattr(self.learn, "opt", None), with_opt=True)
        files.write_json(
            self.folder / "progress.json",
            {"key": self.key, "lr_found": self.lr_found, "epochs_done": len(self.learn.epoch_history.rows)},
        )

    @staticmethod
    def progress(folder: Path, key: dict) -> tuple[int, float | None]:
        """(epochs done, lr_found) of a killed run with the same identity, else (0, None)."""
        f = folder / "progress.json"
        if not f.is_file():
            return 0, None
        saved = json.loads(f.read_text())
        if saved.get("key") != key:
            log.info("%s: left by a run with other settings; starting over", folder.parent.name)
            return 0, None
        return saved["epochs_done"], saved.get("lr_found")

    @staticmethod
    def restore(learn, folder: Path) -> None:
        learn.load((folder / "state").resolve(), with_opt=True)  # absolute, as in after_trained_epoch


class RankLog(Callback):
    """Per rank: which training items it saw in each epoch (debug level), and its final weights digest."""

    order = 71

    def after_train(self):
        dl = self.learn.dl
        if not hasattr(dl, "all_idxs"):
            return
        # the rank's slice, as fastai's DistributedDL.get_idxs cuts it from the broadcast list
        idxs = dl.all_idxs + (dl.all_idxs * (dl.n_padded // dl.n))[: dl.n_padded - dl.n]
        mine = idxs[dl.rank * dl.n_padded // dl.world_size : (dl.rank + 1) * dl.n_padded // dl.world_size]
        log.info("rank %d/%d: epoch %d trained on %d of %d items", dl.rank, dl.world_size, self.epoch, len(mine), dl.n)
        log.debug("rank %d/%d: epoch %d items %s", dl.rank, dl.world_size, self.epoch, sorted(mine))

    def after_fit(self):
        from lungfast.train.distributed import weights_digest, world

        rank, size = world()
        log.info("rank %d/%d: final weights %s", rank, size, weights_digest(self.learn.model))


class CpuAutocast(Callback):
    """bf16 autocast on a CPU around each batch's forward pass and loss, training and inference alike
    (`get_preds` runs the same events). No loss scaling: bf16 has fp32's range."""

    order = 10
    machine_only = True  # this machine's plan, not part of the model: taken off before export

    def __init__(self, channels_last: bool = True):
        self.channels_last, self._ctx = channels_last, None

    def before_batch(self):
        import torch

        if self.channels_last:  # the model was converted once, by train.device.apply
            self.learn.xb = tuple(
                x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in self.xb
            )
        self._ctx = torch.autocast("cpu", dtype=torch.bfloat16)
        self._ctx.__enter__()

    def after_pred(self):
        self.learn.pred = self.pred.float()  # the loss and every metric in fp32

    def after_loss(self):
        self._leave()

    def after_cancel_batch(self):
        self._leave()

    def _leave(self):
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
