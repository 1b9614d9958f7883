"""What each `lungfast` verb does, given its parsed arguments (`cli.parser` defines them, `cli.main` runs one).

Each imports what it needs when it runs, so `lungfast --help` and a bad argument cost no fastai import.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")


def cmd_backbones(args):
    from lungfast.runspec import schedule_for
    from lungfast.train import backbones, learner

    print(f"{'name':24} {'source':12} {'weights':9} {'schedule':14} {'params_m':>8}  note")
    for b in backbones.REGISTRY.values():
        note = "  ".join(
            n
            for n in (
                "test only" if b.test_only else "",
                b.note,
                b.hub or "",
                f"license {b.license}" if b.license else "",
            )
            if n
        )
        print(
            f"{b.name:24} {b.source:12} {backbones.weights_kind(b):9} {schedule_for(b.has_weights):14} "
            f"{learner.param_count(b) / 1e6:8.2f}  {note}".rstrip()
        )
    from lungfast import protocols  # every backbone runs under every protocol (`protocols = [...]`)

    print(f"\n{'protocol':24} {'body':12} note")
    for p in protocols.REGISTRY.values():
        print(f"{p.name:24} {'frozen' if p.frozen else 'trained':12} {p.note}")


def _shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 1, 1
    try:
        i, n = map(int, text.split("/"))
        assert 1 <= i <= n
    except (ValueError, AssertionError):
        raise LungfastError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. --shard 2/4") from None
    return i, n


def _only(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise LungfastError(f"--only {text!r}: expected run numbers, e.g. --only 3 or --only 0,5") from None


def cmd_run(args):
    from lungfast import config, runner
    from lungfast.results.layout import ExperimentDir

    cfg = config.load(args.experiment, args.set)
    only = _only(args.only)
    if args.on:
        if args.force or args.shard or args.nproc > 1:
            raise LungfastError("--on launches the missing runs as tasks; --force, --shard and --nproc do not apply")
        from lungfast.launch.submit import launch

        text, failed = launch(cfg, Path(args.experiment), args.set, args.on, args.wait, only)
        print("\n\n".join([text, *(["\n".join(failed)] if failed else [])]))
        print(f"records: {ExperimentDir.of(cfg).path}")
        if failed:
            raise LungfastError(
                f"{len(failed)} run(s) failed; each is listed above with its log and how to resubmit it"
            )
        return
    text = runner.run(cfg, force=args.force, shard=_shard(args.shard), mlflow=args.mlflow, only=only)
    if text:  # other ranks of a distributed run report nothing
        print(text)
        print(f"records: {ExperimentDir.of(cfg).path}")


def cmd_leaderboard(args):
    from lungfast import files
    from lungfast.results import leaderboard
    from lungfast.results.layout import ExperimentDir
    from lungfast.results.summary import summarize

    summary = summarize(ExperimentDir(args.dir))
    try:
        print(leaderboard.write(summary))
    except OSError as e:  # a read-only results folder (a colleague's, a mounted archive): show it, write nothing
        if e.errno not in files.DENIED:
            raise
        print(leaderboard.to_terminal(summary))
        log.warning("note: %s: read-only, so leaderboard.md/.csv were not rewritten (shown above only)", args.dir)
    if args.readme:  # the README's tables are regenerated from records, never typed
        leaderboard.update_readme(Path(args.readme), summary, args.note)


def cmd_prepare(args):
    from lungfast.data import images, store

    df, skipped = images.scan(args.data_dir)
    for size in args.size:
        tiles = store.ensure(df, size)
        print(
            f"prepared {len(df)} images at {size} px: tile store {tiles.path}"
            + (f" ({len(skipped)} unreadable skipped)" if skipped else "")
        )


def cmd_groups(args):
    from lungfast import files
    from lungfast.data import groups

    table = groups.from_lc25000_clean(Path(args.annotations), args.model, args.variant)
    files.write_csv(args.out, table)
    per = table.groupby("label").agg(images=("filename", "size"), groups=("group_id", "nunique"))
    print(f"wrote {args.out}: " + ", ".join(f"{c} {r.images} images in {r.groups} groups" for c, r in per.iterrows()))


def cmd_report(args):
    from lungfast.results import report
    from lungfast.results.layout import ExperimentDir
    from lungfast.results.summary import summarize

    print(f"wrote {report.write(summarize(ExperimentDir(args.dir)))}")


def cmd_export(args):
    from lungfast.results.layout import ExperimentDir
    from lungfast.ship import export, formats

    exp = ExperimentDir(args.dir)
    out = Path(args.out) if args.out else exp.path / formats.get(args.format).default_name
    run = export.export(exp, out, args.format, args.trust, args.entry)
    print(f"exported {out} (from {run})")


def cmd_predict(args):
    from lungfast import files
    from lungfast.ship import model_io, predict

    if args.out:
        files.check_writable(args.out)  # before the predictions, not after them
    learn = model_io.load(args.model, args.trust, args.precision)  # any exported format (ship.formats)
    table = predict.predict(
        learn, predict.collect(args.paths), tta=args.tta, refer_below=model_io.refer_below(args.model)
    )
    if args.out:
        files.write_csv(args.out, table)
        print(f"wrote {len(table)} rows to {args.out}", file=sys.stderr)
    else:
        table.to_csv(sys.stdout, index=False)
    bad = int((table.error != "").sum())
    if bad:
        log.warning("%d file(s) could not be read; see the error column", bad)


def cmd_evaluate(args):
    from lungfast import files
    from lungfast.ship import cohort_eval

    if args.out:
        files.check_writable(args.out)
    scored = cohort_eval.score(
        args.model,
        args.data_dir,
        cohort_eval.parse_label_map(args.label_map),
        args.include,
        args.groups_csv,
        args.group_column,
        args.group_pattern,
        args.benign,
        args.trust,
        args.precision,
    )
    print(scored.text())
    if args.out:
        cohort_eval.write(scored, Path(args.out))
        print(f"wrote predictions.csv and metrics.json to {args.out}", file=sys.stderr)


def cmd_app(args):
    from lungfast.ship import app

    app.serve(args.model, host=args.host, port=args.port, trusted=args.trust)


def cmd_demo(args):
    from lungfast import demo

    demo.run_demo(Path(args.workdir), force=args.force)
