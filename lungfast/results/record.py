"""The run record: `metrics.json` is the run's manifest, read and written only through `RunRecord`.

It holds the run's identity (the `RunSpec` fields), what the run measured on the valid and test parts,
and where and how it ran. It is flat JSON so that any tool can read it. Records written by earlier
versions load too: `LEGACY` maps their keys onto today's.

Same seed, same data, same machine: same numbers. What can still differ across machines is recorded
beside them: device plan, threads and library versions (CPU and CUDA kernels round differently).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field

from lungfast import files
from lungfast.errors import LungfastError
from lungfast.results.layout import RunDir
from lungfast.runspec import RunSpec

log = logging.getLogger("lungfast")


@dataclass
class RunRecord:
    spec: RunSpec  # who the run is
    # how it trained
    source: str  # the registry entry's source and architecture, as they were when the run trained
    arch: str
    schedule: str  # train.loop.SCHEDULES name (head_first, one_cycle), or how a probe fitted
    lr_used: float | None  # the configured lr, or lr_find's suggestion; None for frozen-embedding protocols
    lr_found: float | None
    epochs_run: int  # epochs trained by this run (a resumed run counts the ones before the kill)
    learner_sha256: str  # of learner.pkl, so lungfast can vouch for it
    params: int
    vocab: list[str]
    # valid part (after training)
    valid_loss: float
    valid_accuracy: float
    # test part (results.evaluate): touched only after training
    test_accuracy: float
    test_loss: float
    macro_f1: float
    balanced_accuracy: float
    roc_auc_ovr: float | None
    cancer_sensitivity: float | None
    benign_specificity: float | None
    per_class: dict
    confusion_matrix: list
    # data
    n_train: int
    n_valid: int
    n_test: int
    skipped_images: int
    skipped_files: list[str]
    groups_csv: str | None
    # speed and environment
    train_seconds: float
    seconds_per_epoch: float
    train_img_per_s: float
    world_size: int
    threads: int
    device: dict
    versions: dict
    ece: float | None = None  # test part, top-label expected calibration error, before temperature scaling
    ece_calibrated: float | None = None  # after it (what the exported learner gives)
    calibration: dict = field(default_factory=dict)  # temperature; ECE, MCE, NLL, Brier before and after
    test_ci95: dict = field(default_factory=dict)  # figure -> [low, high], bootstrap over the test part's tile groups
    referral: dict = field(
        default_factory=dict
    )  # certify.Certified (threshold, promise, evidence) + what it does on test
    refer_kept: float | None = None  # share of test tiles the certified threshold keeps (0: it refers every tile)
    refer_kept_accuracy: float | None = None  # their accuracy (None: none kept), beside the target in `referral`
    selection_accuracy: float | None = None  # what export's choice reads (valid part; fine-tuning: its selection half)
    resumed_after_epoch: int = 0  # epochs an earlier, stopped attempt finished (0: trained in one go); see leaderboard
    robustness: dict = field(default_factory=dict)  # sweep: sample size, settings, accuracy per shift at mid severity
    shifted_accuracy: float | None = None  # mean test accuracy over the shifts at the middle severity
    worst_shift: str | None = None  # the shift with the lowest accuracy at the middle severity
    worst_shift_accuracy: float | None = None
    labelled_groups: int | None = None  # tile groups in the train and valid parts it learned from
    external: dict = field(default_factory=dict)  # external set -> accuracy, intervals, per class, ECE, referral
    embed_img_per_s: float | None = None  # frozen-embedding protocols: embedding throughput (of the cache fill)
    probe: dict = field(default_factory=dict)  # frozen-embedding protocols: chosen setting, sweep, k-NN, few-shot
    adapters: dict = field(default_factory=dict)  # lora: rank, alpha, adapted modules, trainable parameters (merged)
    extra: dict = field(default_factory=dict)  # keys this version does not know (from a newer one), kept

    def to_json(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("spec", "extra")}
        return {**self.extra, **self.spec.key(), **out}

    def row(self, run_dir: RunDir) -> dict:
        """One flat row for tables, with the folder it came from."""
        return {**self.to_json(), "run_dir": str(run_dir.path)}

    @classmethod
    def from_json(cls, d: dict) -> RunRecord:
        d = _upgrade(dict(d))
        spec_names = {f.name for f in dataclasses.fields(RunSpec)}
        own = {f.name for f in dataclasses.fields(cls)} - {"spec", "extra"}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        } - {"spec"}
        missing = sorted(
            (required | {f.name for f in dataclasses.fields(RunSpec) if f.default is dataclasses.MISSING}) - set(d)
        )
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        extra = {k: v for k, v in d.items() if k not in own | spec_names}
        return cls(spec=RunSpec.from_dict(d), extra=extra, **{k: d[k] for k in own if k in d})


OLD_SCHEDULES = {"fine_tune": "head_first", "fit_one_cycle": "one_cycle"}


def _upgrade(d: dict) -> dict:
    """Records of lungfast 0.1 (before the run model): `split` meant the scheme, `lr` the lr used."""
    if "scheme" not in d and "split" in d:
        d["scheme"] = d.pop("split")
    if "lr_used" not in d and "lr" in d:
        d["lr_used"] = d["lr"]
        d["lr"] = "find" if d.get("lr_found") is not None else d["lr"]
    if d.get("schedule") in OLD_SCHEDULES:  # earlier versions named schedules after fastai's methods
        d["schedule"] = OLD_SCHEDULES[d["schedule"]]
    if "n_images" not in d and {"n_train", "n_valid", "n_test"} <= set(d):
        d["n_images"] = d["n_train"] + d["n_valid"] + d["n_test"]
    return d


def write(run_dir: RunDir, rec: RunRecord) -> None:
    """Write the manifest. Last of a run's files: its presence marks a finished run."""
    files.write_json(run_dir.manifest, rec.to_json())


def read(run_dir: RunDir) -> RunRecord:
    try:
        return RunRecord.from_json(json.loads(run_dir.manifest.read_text()))
    except (OSError, ValueError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
        raise LungfastError(
            f"{run_dir.manifest}: damaged run record ({type(e).__name__}: {str(e)[:80]}); "
            f"rerun the experiment to redo this run, or delete the folder"
        ) from None


def is_complete(run_dir: RunDir) -> bool:
    """Every file there and a manifest that reads; a damaged record is named and counts as missing."""
    if not run_dir.has_every_file():
        return False
    try:
        read(run_dir)
    except LungfastError as e:
        log.warning("%s", e)
        return False
    return True


def read_all(run_dirs: list[RunDir]) -> list[tuple[RunDir, RunRecord]]:
    """Every complete, readable record; a damaged one is named in a warning and skipped."""
    out = []
    for run_dir in run_dirs:
        if not run_dir.has_every_file():
            continue
        try:
            out.append((run_dir, read(run_dir)))
        except LungfastError as e:
            log.warning("skipped: %s", e)
    return out
