"""The `lungfast` command. Every user error is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from lungfast.config import PRECISIONS
from lungfast.errors import INTERRUPTED, LungfastError, note_ctrl_c
from lungfast.files import os_error_line

log = logging.getLogger("lungfast")


PRECISION_HELP = (
    "default: the precision the model's figures (accuracy, calibration, referral threshold) were made "
    "in, recorded at export; another one prints the gap export measured"
)


FORMAT_HELP = (
    "pickle: fastai learner; safetensors: weights only + JSON, loads without pickle; timm: a Hugging Face / timm "
    'folder (linear-probe winners, and fine-tuned ones with head = "timm"); onnx: for ONNX Runtime'
)


def _quiet_imports():
    # Known, harmless noise from importing fastai with this torch/pandas; everything else stays visible.
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"The 'mode.chained_assignment' option is deprecated")
    warnings.filterwarnings("ignore", message=r"load_learner. uses Python's insecure pickle")


def parser() -> argparse.ArgumentParser:
    from lungfast import commands as c
    from lungfast.ship import formats

    p = argparse.ArgumentParser(prog="lungfast", description="Compare image backbones on LC25000 lung tiles.")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    p.add_argument("-v", "--verbose", action="store_true", help="debug detail (e.g. each rank's items)")
    names = [f.default_name for f in formats.REGISTRY.values()]
    model_help = " / ".join([*names, "a run's learner.pkl"])  # every format predict, evaluate and app read
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("backbones", help="list the backbone registry").set_defaults(fn=c.cmd_backbones)
    r = sub.add_parser("run", help="run an experiment file")
    r.add_argument("experiment", help="experiments/NAME.toml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (repeatable)")
    r.add_argument("--force", action="store_true", help="remake the splits and rerun complete runs")
    r.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on CUDA)",
    )
    r.add_argument("--mlflow", metavar="URI", help="also log to MLflow, e.g. sqlite:///mlflow.db")
    r.add_argument(
        "--shard",
        metavar="I/N",
        help="run only every N-th run starting at the I-th (many machines, "
        "one results folder); then `lungfast leaderboard` merges",
    )
    r.add_argument(
        "--on",
        choices=("slurm", "local"),
        help="launch the missing runs as tasks: a Slurm job array, or N at once on this machine ([slurm] table)",
    )
    r.add_argument("--wait", action="store_true", help="with --on slurm: wait for every task, then merge and print")
    r.add_argument("--only", metavar="J[,J]", help="only these runs of the experiment's list (what a task runs)")
    r.set_defaults(fn=c.cmd_run)
    lb = sub.add_parser("leaderboard", help="regenerate and print an experiment's leaderboard")
    lb.add_argument("dir", help="results/NAME")
    lb.add_argument("--readme", help="also refresh this README's <!-- leaderboard:NAME --> block")
    lb.add_argument("--note", default="", help="line shown above the table (command, wall time, machine)")
    lb.set_defaults(fn=c.cmd_leaderboard)
    pp = sub.add_parser(
        "prepare",
        help="build a data set's tile store ahead of runs (the one "
        "every run on all of its images reads: a login node, before sharded runs)",
    )
    pp.add_argument("data_dir", help="folder with one sub-folder per class")
    pp.add_argument("--size", type=int, nargs="+", required=True, help="target size(s) in px")
    pp.set_defaults(fn=c.cmd_prepare)
    g = sub.add_parser("groups", help="write groups.csv (filename,label,group_id) from LC25000-clean's annotations/")
    g.add_argument("annotations", help="a clone's annotations/ folder (<class>/<model>/<variant>/final_clusters.csv)")
    g.add_argument("--out", default="groups.csv", help="output CSV (default groups.csv)")
    g.add_argument("--model", default="UNI", help="whose clusters to use (default UNI, the published choice)")
    g.add_argument("--variant", default="resize_only", help="annotation variant folder (default resize_only)")
    g.set_defaults(fn=c.cmd_groups)
    rp = sub.add_parser("report", help="regenerate an experiment's self-contained report.html")
    rp.add_argument("dir", help="results/NAME")
    rp.set_defaults(fn=c.cmd_report)
    e = sub.add_parser("export", help="write the top row's learner")
    e.add_argument("dir", help="results/NAME")
    e.add_argument("--out", help=f"output file or folder (default DIR/ {', '.join(names)})")
    e.add_argument("--format", choices=list(formats.REGISTRY), default=next(iter(formats.REGISTRY)), help=FORMAT_HELP)
    e.add_argument("--trust", action="store_true", help="load run pickles lungfast cannot vouch for")
    e.add_argument(
        "--entry", help="ship this leaderboard entry (e.g. tf_efficientnet_lite0, tiny/linear) instead of the top row"
    )
    e.set_defaults(fn=c.cmd_export)
    pr = sub.add_parser("predict", help="label images with a saved model (CSV)")
    pr.add_argument("model", help=model_help)
    pr.add_argument("paths", nargs="+", help="image files and folders (searched recursively)")
    pr.add_argument("--out", help="CSV file (default: stdout)")
    pr.add_argument("--tta", action="store_true", help="fastai test-time augmentation")
    pr.add_argument("--trust", action="store_true", help="load a pickle lungfast did not write (runs its code)")
    pr.add_argument("--precision", choices=PRECISIONS, default=None, help=PRECISION_HELP)
    pr.set_defaults(fn=c.cmd_predict)
    ev = sub.add_parser("evaluate", help="score a saved model on a labelled folder (an external cohort)")
    ev.add_argument("model", help=model_help)
    ev.add_argument("data_dir", help="one sub-folder of images per class")
    ev.add_argument(
        "--label-map",
        action="append",
        default=[],
        metavar="GLOB=CLASS",
        help="map class folders onto the model's classes, e.g. 'aca_*=lung_aca' (repeatable; =  leaves out)",
    )
    ev.add_argument("--include", default="*", help="only files whose name matches this glob, e.g. '*_20x_*'")
    ev.add_argument("--groups-csv", help="CSV with a filename column and a group column (e.g. patients)")
    ev.add_argument("--group-column", default="group_id", help="the groups CSV's group column (default group_id)")
    ev.add_argument("--group-pattern", help="regex on file names whose first group is the group (instead of a CSV)")
    ev.add_argument("--benign", nargs="*", default=["lung_n"], help="benign class(es) of the clinical pair")
    ev.add_argument("--out", help="folder for predictions.csv and metrics.json")
    ev.add_argument("--trust", action="store_true", help="load a pickle lungfast did not write (runs its code)")
    ev.add_argument("--precision", choices=PRECISIONS, default=None, help=PRECISION_HELP)
    ev.set_defaults(fn=c.cmd_evaluate)
    ap = sub.add_parser("app", help="Gradio app: upload a tile, get probabilities and Grad-CAM")
    ap.add_argument("model", help=model_help)
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    ap.add_argument("--trust", action="store_true", help="load a pickle lungfast did not write (runs its code)")
    ap.set_defaults(fn=c.cmd_app)
    d = sub.add_parser("demo", help="synthetic data, full pipeline, CPU, minutes")
    d.add_argument("--workdir", default="results/demo-work", help="where data and records go")
    d.add_argument("--force", action="store_true", help="rerun even if records exist")
    d.set_defaults(fn=c.cmd_demo)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    rank, world_size = (int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1)))
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(
        format=f"[rank {rank}] %(message)s" if world_size > 1 else "%(message)s", level=level, stream=sys.stderr
    )
    if getattr(args, "nproc", 1) < 1:
        print(
            f"lungfast: error: --nproc {args.nproc}: expected a positive number of processes, e.g. --nproc 2",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "nproc", 1) > 1 and world_size == 1:  # start the processes; each runs this command
        from lungfast.train import distributed

        drop = {i for i, a in enumerate(argv) if a.startswith("--nproc")}
        drop |= {i + 1 for i in drop if argv[i] == "--nproc"}  # "--nproc N" as well as "--nproc=N"
        return distributed.launch(args.nproc, [a for i, a in enumerate(argv) if i not in drop])
    _quiet_imports()
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed as its bytes, as ls does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    note_ctrl_c()
    try:
        args.fn(args)
    except LungfastError as e:
        print(f"lungfast: error: {' '.join(str(e).splitlines())}", file=sys.stderr)  # one line, whatever it quotes
        return 2
    except BrokenPipeError:  # `lungfast predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own recipe: no flush error at exit
        return 0
    except OSError as e:
        if not e.filename:  # not about a file of the user's: a bug or the machine, show it all
            raise
        print(f"lungfast: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lungfast: interrupted; {INTERRUPTED.get(args.command, 'nothing was written')}", file=sys.stderr)
        return 130
    finally:
        note_ctrl_c(on=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
