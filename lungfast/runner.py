"""`lungfast run`: config -> data set -> one split per (scheme, split seed) -> a RunSpec per run -> the
loop -> run records -> summary -> leaderboard and report. Everything a run does, in that order.

Input is checked before anything is written: a bad data folder, groups CSV or backbone name stops the
run with one line and leaves no results folder behind.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from lungfast import files, fine_tune_heads, preflight, protocols
from lungfast.config import ExperimentConfig
from lungfast.data import split
from lungfast.dataset import load_data, make_or_reuse_split
from lungfast.errors import LungfastError
from lungfast.results import record
from lungfast.results.layout import ExperimentDir, RunDir, SplitDir
from lungfast.runspec import RunSpec
from lungfast.train import backbones, distributed

log = logging.getLogger("lungfast")


def spec_for(
    cfg: ExperimentConfig,
    backbone: str,
    protocol: str,
    seed: int,
    scheme: str,
    split_seed: int,
    n_images: int,
    fraction: float = 1.0,
) -> RunSpec:
    """The one place a run's identity is assembled."""
    from lungfast.train.learner import resolve_weights

    pretrained, weights_file = resolve_weights(backbones.get(backbone), cfg.pretrained, cfg.weights)
    return RunSpec(
        experiment=cfg.name,
        backbone=backbone,
        seed=seed,
        scheme=scheme,
        split_seed=split_seed,
        img_size=cfg.img_size,
        batch_size=cfg.batch_size,
        epochs=cfg.epochs_for(backbone),
        lr=cfg.lr,
        pretrained=pretrained,
        weights_file=weights_file,
        n_images=n_images,
        protocol=protocol,
        augment=cfg.augment_for(protocol),
        tta=cfg.tta,
        robustness_n=cfg.robustness_n,
        precision=cfg.precision,
        benign=tuple(cfg.benign_classes),
        train_fraction=fraction,
        refer_target=cfg.refer_target,
        refer_delta=cfg.refer_delta,
        bootstrap_resamples=cfg.bootstrap_resamples,
        throughput_seconds=cfg.throughput_seconds,
        head=fine_tune_heads.LEGACY if protocols.get(protocol).frozen else cfg.head,  # a probe has its own head
    )


@dataclasses.dataclass(frozen=True)
class Planned:
    """One run of an experiment's fixed list: its place in the list (what `--only` and a Slurm task name)."""

    index: int
    scheme: str
    split_seed: int
    backbone: str
    protocol: str
    seed: int
    fraction: float

    @property
    def label(self) -> str:
        share = "" if self.fraction == 1 else f" {self.fraction:g} of labels"
        return f"{self.backbone} {self.protocol} seed {self.seed}{share}, {self.scheme} split {self.split_seed}"


def plan(cfg: ExperimentConfig) -> list[Planned]:
    """Every run of the experiment, in the fixed order shards and tasks index: split x fraction x backbone x
    protocol x seed."""
    splits = [(scheme, s) for scheme in cfg.schemes for s in cfg.split_seed_list]
    rows = [
        (scheme, split_seed, b, p, seed, f)
        for scheme, split_seed in splits
        for f in cfg.train_fractions[::-1]
        for b in cfg.backbones
        for p in cfg.protocols
        for seed in cfg.seeds
    ]
    return [Planned(i, *row) for i, row in enumerate(rows)]


def is_done(cfg: ExperimentConfig, run: Planned) -> bool:
    """A complete record exists for the run (read from its folder alone: no data is loaded)."""
    where = ExperimentDir.of(cfg).split_dir(run.scheme, run.split_seed, cfg.single_split)
    return record.is_complete(
        where.run(run.backbone, run.seed, run.protocol, cfg.augment_for(run.protocol), run.fraction, cfg.tta)
    )


def run(
    cfg: ExperimentConfig,
    force: bool = False,
    shard: tuple[int, int] = (1, 1),
    mlflow: str | None = None,
    only: list[int] | None = None,
) -> str:
    """Run every missing record (of shard i/n: every n-th run of `plan`; or the runs `only` names), then write the
    leaderboard and the report; return the leaderboard text. A shard writes only its own run folders (and
    identical split files, atomically), so shards may share one results folder."""
    preflight.check(cfg)
    everything = plan(cfg)
    if only is not None and any(not 0 <= j < len(everything) for j in only):
        raise LungfastError(f"--only {only}: this experiment's runs are numbered 0 to {len(everything) - 1}")
    data = load_data(cfg)
    preflight.check_classes(cfg, sorted(data.frame.label.unique()))
    from lungfast.train.tracking import Tracker  # fastai loads here, after the cheap checks (seconds sooner)

    exp, main = ExperimentDir.of(cfg), distributed.is_main()
    tracker = Tracker(mlflow if main else None, cfg.name)  # only rank 0 tracks
    if main:
        files.write_json(exp.config_json, dataclasses.asdict(cfg))
    i, n = shard
    mine = [everything[j] for j in only] if only is not None else everything[i - 1 :: n]
    splits = {  # every split first: one that cannot be made stops the run before any training
        (scheme, seed): distributed.once(
            make_or_reuse_split, cfg, data, scheme, seed, exp.split_dir(scheme, seed, cfg.single_split), force
        )
        for scheme, seed in dict.fromkeys((r.scheme, r.split_seed) for r in mine)
    }
    for (scheme, split_seed), one in splits.items():
        picked = [r for r in mine if (r.scheme, r.split_seed) == (scheme, split_seed)]
        where = exp.split_dir(scheme, split_seed, cfg.single_split)
        sizes = {f: len(labelled(one, f, split_seed, cfg).frame) for f in {r.fraction for r in picked}}
        specs = [
            spec_for(cfg, r.backbone, r.protocol, r.seed, scheme, split_seed, sizes[r.fraction], r.fraction)
            for r in picked
        ]
        run_split(specs, one, where, force, tracker)
    if not main:
        return ""
    if only is not None:  # a task of a launched comparison: the launcher merges once all are done
        return f"{len(mine)} run(s) done: " + "; ".join(r.label for r in mine)
    if n > 1:  # the shared leaderboard is merged once all shards are done, by `lungfast leaderboard`
        return (
            f"shard {i}/{n}: {len(mine)} of {len(everything)} runs done. When every shard has finished: "
            f"lungfast leaderboard {exp.path}"
        )
    return merge(cfg)


def merge(cfg: ExperimentConfig) -> str:
    """The leaderboard and report of every record the experiment has: the end of a run, or of launched tasks."""
    from lungfast.results import leaderboard, report
    from lungfast.results.summary import summarize

    summary = summarize(ExperimentDir.of(cfg))
    text = leaderboard.write(summary)
    log.info("report: %s", report.write(summary))
    return text


def labelled(one: split.Split, fraction: float, split_seed: int, cfg: ExperimentConfig) -> split.Split:
    """The split a run at `fraction` of the labels trains on (`Split.labelled_fraction`), with enough to train."""
    mine = one.labelled_fraction(fraction, split_seed)
    if fraction < 1:
        n = int((mine.frame.part == "train").sum())
        if n < cfg.batch_size:
            raise LungfastError(
                f"train_fractions {fraction:g}: the train part then holds {n} images, fewer than "
                f"batch_size {cfg.batch_size}, so no step would train; raise the fraction or set "
                f"batch_size to at most {n}"
            )
    return mine


def run_split(specs: list[RunSpec], one: split.Split, where: SplitDir, force: bool, tracker=None) -> None:
    """Train the runs of one split that have no complete record (all of them with force)."""
    from lungfast.data import store as tile_store
    from lungfast.ship import trust

    todo = []
    for spec in specs:
        done = where.run(spec.backbone, spec.seed, spec.protocol, spec.augment, spec.train_fraction, spec.tta)
        if record.is_complete(done) and not force:
            log.info("%s: complete record found, skipped (--force reruns)", spec.label)
            unscored = [e.name for e in one.external if e.name not in record.read(done).external]
            if unscored:  # an external set added after the run: its column stays empty for this run
                log.warning(
                    "%s: its record has no score on external set(s) %s (added later); --force reruns it",
                    spec.label,
                    ", ".join(unscored),
                )
        else:
            todo.append(spec)
    if todo:  # every protocol reads the split's uint8 tile store: built once, by one process, before any run
        distributed.once(tile_store.ensure, one.frame, todo[0].img_size)
    for spec in todo:
        final = where.run(spec.backbone, spec.seed, spec.protocol, spec.augment, spec.train_fraction, spec.tta)
        protocol, mine = protocols.get(spec.protocol), one.labelled_fraction(spec.train_fraction, spec.split_seed)
        if not distributed.is_main():  # other ranks train alongside rank 0 and write nothing that lasts
            if not protocol.frozen:  # frozen-embedding protocols run on rank 0 alone
                with tempfile.TemporaryDirectory() as scratch:
                    protocol.load("trainer")(spec, mine, RunDir(scratch))
            continue
        with files.exclusive(final.lock, spec.label):  # another plain `lungfast run` may be on this run
            if not force and record.is_complete(final):
                log.info("%s: completed by another process meanwhile, skipped", spec.label)
                continue
            b = backbones.get(spec.backbone)
            log.info(
                "%s: training (%s, %d px, %s split %d)",
                spec.label,
                b.source,
                spec.img_size,
                spec.scheme,
                spec.split_seed,
            )
            with files.staged_folder(final.path, final.staging.path, fresh=force):
                rec = protocol.load("trainer")(spec, mine, final.staging, tracker)
                # vouch before the rename: a kill between the two must not leave an untrusted complete record
                trust.remember(final.learner, rec.learner_sha256)
        log.info(
            "%s: test_accuracy=%.4f valid_accuracy=%.4f (%.1fs)",
            spec.label,
            rec.test_accuracy,
            rec.valid_accuracy,
            rec.train_seconds,
        )
