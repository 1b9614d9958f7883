"""lungfast from Python, for notebooks: the same runs, records and files as the `lungfast` command.

    from lungfast import notebook as lf

    exp = lf.run("experiments/cpu-quick.toml", img_size=64, epochs=1)  # keyword overrides: the keys of --set
    exp.leaderboard          # pandas DataFrame, best first (every column of leaderboard.csv)
    exp.runs                 # one row per run record
    exp.ladder               # random split -> grouped split -> external sets (None without external sets)
    exp                      # in Jupyter: the report, inline
    exp.export("lung.pkl")   # the winner, as `lungfast export` writes it

    model = lf.load("lung.pkl")
    model.predict(["tile.jpeg", "more_tiles/"])       # DataFrame: path, predicted, one column per class, refer
    model.evaluate("other_lab/", label_map={"aca_*": "lung_aca"})  # an external cohort's figures

Progress shows as notebook bars in Jupyter, as lines elsewhere. `lf.demo_data(folder)` writes the synthetic
tiles the demo uses (no download), for trying all this in a minute on a CPU.
"""

from __future__ import annotations

import html
import logging
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from lungfast import config, runner
from lungfast.results import report
from lungfast.results.layout import ExperimentDir
from lungfast.results.summary import Summary, summarize

__all__ = ["run", "open_results", "load", "demo_data", "Experiment", "Model"]


def _logging() -> None:
    """lungfast's INFO lines (and so its bars) in a notebook, where nothing configured logging."""
    log = logging.getLogger("lungfast")
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


@dataclass(frozen=True)
class Experiment:
    """An experiment's results folder, read through the same summary the leaderboard and report use."""

    path: Path

    @cached_property
    def summary(self) -> Summary:
        return summarize(ExperimentDir(self.path))

    leaderboard = property(lambda self: self.summary.table)
    runs = property(lambda self: self.summary.runs)
    ladder = property(lambda self: self.summary.ladder)

    def report(self):
        """The self-contained report.html, shown inline (an iframe: its styles stay its own)."""
        from IPython.display import HTML

        page = report.build(self.summary)
        return HTML(f'<iframe srcdoc="{html.escape(page)}" style="width:100%;height:900px;border:0"></iframe>')

    def _repr_html_(self) -> str:
        return self.report().data

    def export(self, out: str | Path, format: str = "pickle", trust: bool = False) -> Path:
        """The winner, as `lungfast export`: returns the file written."""
        from lungfast.ship import export

        export.export(ExperimentDir(self.path), Path(out), format, trust)
        return Path(out)


def run(experiment: str | Path | dict, force: bool = False, **overrides) -> Experiment:
    """Run an experiment file (or a dict of its keys) with keyword overrides, as `lungfast run FILE --set KEY=VALUE`;
    complete runs are reused. Returns the experiment's results."""
    _logging()
    if isinstance(experiment, dict):
        cfg = config.from_dict({**experiment, **overrides}, "experiment")
    else:
        cfg = config.load(experiment, values=overrides)
    runner.run(cfg, force=force)
    return Experiment(ExperimentDir.of(cfg).path)


def open_results(path: str | Path) -> Experiment:
    """An experiment folder written earlier (results/NAME)."""
    return Experiment(Path(path))


@dataclass
class Model:
    """An exported model (pickle or safetensors) and the figures it shipped with."""

    path: Path
    learn: object

    def predict(self, paths: list[str | Path], tta: bool = False) -> pd.DataFrame:
        from lungfast.ship import model_io, predict

        return predict.predict(
            self.learn, predict.collect([str(p) for p in paths]), tta=tta, refer_below=model_io.refer_below(self.path)
        )

    def evaluate(self, data_dir: str | Path, **how) -> dict:
        """Score a labelled folder (keywords: label_map, include, groups_csv, group_column, group_pattern, benign)."""
        from lungfast.ship import cohort_eval

        return cohort_eval.score(str(self.path), str(data_dir), **how).figures


def load(path: str | Path, trust: bool = False, precision: str | None = None) -> Model:
    """An exported model, in the precision its figures were made in unless `precision` asks for another."""
    from lungfast.ship import model_io

    return Model(Path(path), model_io.load(path, trust, precision))


def demo_data(folder: str | Path, originals_per_class: int = 12, copies: int = 6) -> Path:
    """The demo's synthetic tiles (not medical data) in LC25000's layout; returns the class-folder root."""
    from lungfast.data import synthetic

    return synthetic.make_dataset(Path(folder), originals_per_class, copies)
