"""The loop's phases and its history/checkpoint callbacks, on fastai's synthetic regression learner."""

import os
import signal

import pandas as pd
import pytest
from fastai.callback.core import Callback
from fastai.test_utils import synth_learner

from lungfast.errors import note_ctrl_c
from lungfast.train.callbacks import Checkpoint, EpochHistory, EpochLog, KeepCtrlC
from lungfast.train.loop import fit, phases


def test_fine_tune_is_one_frozen_epoch_then_the_unfrozen_ones():
    plan = phases("head_first", 3, 1e-3)
    assert [(name, n) for name, n, _ in plan] == [("frozen", 1), ("unfrozen", 3)]
    assert plan[1][2]["lr_max"] == slice(1e-3 / 2 / 100, 1e-3 / 2)
    assert [(name, n) for name, n, _ in phases("one_cycle", 4, 1e-3)] == [("all", 4)]


class Frozen:
    """Records which phases `fit` asks a learner for, without training."""

    def __init__(self):
        self.calls = []

    def freeze(self):
        self.calls.append("freeze")

    def unfreeze(self):
        self.calls.append("unfreeze")

    def fit_one_cycle(self, n, start_epoch, cbs, **kw):
        self.calls.append((n, start_epoch))


@pytest.mark.parametrize(
    "done,expected",
    [
        (0, ["freeze", (1, 0), "unfreeze", (3, 0)]),
        (1, ["unfreeze", (3, 0)]),  # the frozen epoch was done before the kill
        (2, ["unfreeze", (3, 1)]),  # one unfrozen epoch done: fastai's start_epoch skips it
    ],
)
def test_fit_resumes_after_the_epochs_already_done(done, expected):
    learn = Frozen()
    fit(learn, phases("head_first", 3, 1e-3), done, [])
    assert learn.calls == expected


def history_of(path):
    return pd.read_csv(path)


def test_history_is_written_once_per_epoch_across_phases(tmp_path):
    learn = synth_learner()
    cbs = [EpochHistory(tmp_path / "history.csv"), EpochLog("synth")]
    learn.fit(1, cbs=cbs)  # a frozen phase, then an unfrozen one, as fine_tune runs them
    learn.fit(2, cbs=cbs)
    h = history_of(tmp_path / "history.csv")
    assert list(h.epoch) == [0, 1, 2]
    assert list(h.columns) == ["epoch", "train_loss", "valid_loss", "seconds", "train_images"]
    assert h.train_loss.dtype == float and (h.train_images == len(learn.dls.train) * learn.dls.bs).all()


def test_history_after_a_restart_keeps_the_checkpointed_epochs_only(tmp_path):
    path = tmp_path / "history.csv"
    learn = synth_learner()
    learn.fit(3, cbs=[EpochHistory(path)])
    before = history_of(path)
    # killed after epoch 2 was logged but before its checkpoint: the checkpoint holds 2 epochs
    earlier = EpochHistory.read(path, keep=2)
    assert len(earlier) == 2
    learn.fit(3, start_epoch=2, cbs=[EpochHistory(path, earlier)])
    after = history_of(path)
    assert list(after.epoch) == [0, 1, 2]  # the cancelled epochs 0 and 1 are not logged again
    assert after.iloc[:2].equals(before.iloc[:2]) and after.train_loss.iloc[2] != before.train_loss.iloc[2]


def test_checkpoint_progress_and_restore_only_for_the_same_run(tmp_path):
    learn = synth_learner(path=tmp_path)
    key = {"backbone": "tiny", "seed": 0}
    learn.fit(2, cbs=[EpochHistory(tmp_path / "history.csv"), Checkpoint(tmp_path / "resume", key, 0.01)])
    assert Checkpoint.progress(tmp_path / "resume", key) == (2, 0.01)
    assert Checkpoint.progress(tmp_path / "resume", {**key, "seed": 1}) == (0, None)
    assert Checkpoint.progress(tmp_path / "nothing", key) == (0, None)
    fresh = synth_learner(path=tmp_path)
    fresh.create_opt()
    Checkpoint.restore(fresh, tmp_path / "resume")
    assert fresh.model.a.item() == learn.model.a.item() and fresh.model.b.item() == learn.model.b.item()


def test_history_without_a_valid_part_keeps_its_columns(tmp_path):
    from fastai.data.core import DataLoaders

    learn = synth_learner()
    learn.dls = DataLoaders(learn.dls.train, [])  # no valid part: fastai's recorder gives None for its figures
    learn.fit(1, cbs=[EpochHistory(tmp_path / "history.csv")])
    h = history_of(tmp_path / "history.csv")
    assert list(h.columns[:3]) == ["epoch", "train_loss", "valid_loss"] and h.valid_loss.isna().all()


class SwallowingBar(Callback):
    """fastprogress's console bar: a print inside a bare `except:`, where a Ctrl-C may land."""

    def before_train(self):
        self.batches_after = 0
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered while the bar draws
        except:  # noqa: E722 (the library's own code)
            pass

    def after_batch(self):
        self.batches_after += self.training


@pytest.mark.parametrize("kept", [True, False])
def test_a_ctrl_c_a_bar_swallowed_still_stops_training(kept):
    learn, bar = synth_learner(), SwallowingBar()
    started = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, even under `nohup ... &`
    note_ctrl_c()  # as the CLI does
    try:
        if kept:
            with pytest.raises(KeyboardInterrupt):
                learn.fit(3, cbs=[bar, KeepCtrlC()])
            assert bar.batches_after <= 1  # stopped at the next step, not after the fit
        else:  # the bug it fixes: without KeepCtrlC the fit runs to its end
            learn.fit(3, cbs=[bar])
            assert bar.batches_after == len(learn.dls.train)
    finally:
        note_ctrl_c(on=False)
        restored = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, started)
    assert restored is signal.default_int_handler
