"""Where every file of an experiment lives. No other module builds a results path or globs for records.

<results_dir>/<name>/                    ExperimentDir
  experiment.json                        the resolved configuration
  leaderboard.csv/.md, inflation.csv, ladder.csv, comparison.json, report.html, lung.pkl (export default)
  split.csv, split.key.json, runs/       one split: the experiment folder is its SplitDir
  <scheme>-split<seed>/                  several splits: one SplitDir each, with its own
    split.csv, split.key.json, runs/     split files and runs
      runs/<backbone>/seed<k>/           RunDir: a complete run record (fine-tuning)
      runs/<backbone>/<protocol>-seed<k>/  the same for linear, knn, fewshot
      runs/<backbone>/.seed<k>.partial/  its staging folder while it trains (resume/ inside)
      .locks/<backbone>.seed<k>.lock     held by the process training that run
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lungfast import protocols
from lungfast.runspec import model_folder

# the figures of a run record, with the captions the report gives them
FIGURES = {
    "confusion_matrix.png": "Confusion matrix (test)",
    "loss.png": "Loss curves",
    "top_losses.png": "Top losses (test)",
    "saliency.png": "Grad-CAM saliency (test)",
}
NEWER_FIGURES = {
    "reliability.png": "Reliability before and after temperature scaling (test)",  # not in 0.1 records
    "risk_coverage.png": "Risk-coverage: accuracy of the tiles kept, most confident first",
    "robustness.png": "Accuracy under stain, blur, JPEG and magnification shifts (test)",
}
TABLES = ("history.csv", "test_predictions.csv", "top_losses.csv")
MANIFEST = "metrics.json"  # the run record proper; written last, so its presence marks a finished run
LEARNER = "learner.pkl"
RUN_FILES = (MANIFEST, *TABLES, *FIGURES, LEARNER)


@dataclass(frozen=True)
class RunDir:
    """A run's folder: the final record, or its staging folder while training."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    manifest = property(lambda self: self.path / MANIFEST)
    history = property(lambda self: self.path / "history.csv")
    test_predictions = property(lambda self: self.path / "test_predictions.csv")
    top_losses = property(lambda self: self.path / "top_losses.csv")
    learner = property(lambda self: self.path / LEARNER)
    robustness = property(lambda self: self.path / "robustness.csv")  # shift, severity, accuracy, ece, n
    robustness_predictions = property(lambda self: self.path / "robustness_predictions.csv")  # per tile and shift
    resume = property(lambda self: self.path / "resume")  # checkpoint of a run in progress

    def external_predictions(self, name: str) -> Path:
        """Per image predictions on an external set (path, actual, predicted, probabilities, folder, group)."""
        return self.path / f"external-{name}.csv"

    def figure(self, name: str) -> Path:
        assert name in FIGURES or name in NEWER_FIGURES, name
        return self.path / name

    def has_every_file(self) -> bool:
        return all((self.path / f).is_file() for f in RUN_FILES)

    @property
    def staging(self) -> RunDir:
        """A hidden sibling with a fixed name, so a rerun finds what a killed run left."""
        return RunDir(self.path.with_name(f".{self.path.name}.partial"))

    @property
    def lock(self) -> Path:
        """Held by the process training this run, so two plain `lungfast run`s never write one run. Kept out
        of runs/ (a lock file must outlive its holders: deleting it would let a third process lock a new one)."""
        return self.split_dir.path / ".locks" / f"{self.path.parent.name}.{self.path.name}.lock"

    @property
    def split_dir(self) -> SplitDir:
        return SplitDir(self.path.parent.parent.parent)  # <split>/runs/<backbone>/seed<k>


@dataclass(frozen=True)
class SplitDir:
    """One split (one scheme, one split seed): its assignment of images to parts, and its runs."""

    path: Path

    split_csv = property(lambda self: self.path / "split.csv")
    split_key = property(lambda self: self.path / "split.key.json")

    def run(
        self,
        backbone: str,
        seed: int,
        protocol: str = protocols.DEFAULT,
        augment=(),
        fraction: float = 1.0,
        tta: str = "none",
    ) -> RunDir:
        """runs/<backbone>/seed<k> for fine-tuning, runs/<backbone>/<protocol>-seed<k> for the others;
        runs/<backbone>+stain/... when trained with stain augmentation, runs/<backbone>@dihedral/... with test-time
        views; ...-labels0.05 on a share of the labels."""
        name = protocols.get(protocol).run_folder(seed) + (f"-labels{fraction:g}" if fraction < 1 else "")
        return RunDir(self.path / "runs" / model_folder(backbone, augment, tta) / name)

    def runs(self) -> list[RunDir]:
        """Every run folder with a manifest (complete or damaged: the record reader decides)."""
        return _runs(self.path.glob(f"runs/*/*/{MANIFEST}"))

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ExperimentDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, config) -> ExperimentDir:
        return cls(Path(config.results_dir) / config.name)

    name = property(lambda self: self.path.name)
    config_json = property(lambda self: self.path / "experiment.json")
    leaderboard_csv = property(lambda self: self.path / "leaderboard.csv")
    leaderboard_md = property(lambda self: self.path / "leaderboard.md")
    inflation_csv = property(lambda self: self.path / "inflation.csv")
    ladder_csv = property(lambda self: self.path / "ladder.csv")  # random -> grouped -> external sets, per entry
    efficiency_csv = property(lambda self: self.path / "label_efficiency.csv")  # accuracy per share of the labels
    comparison_json = property(lambda self: self.path / "comparison.json")
    report_html = property(lambda self: self.path / "report.html")

    def split_dir(self, scheme: str, split_seed: int, only_split: bool) -> SplitDir:
        """An experiment with one split keeps the plain layout; several get a folder each."""
        return SplitDir(self.path if only_split else self.path / f"{scheme}-split{split_seed}")

    def split_dirs(self) -> list[SplitDir]:
        """Every split folder that holds a split.csv (the plain one first)."""
        return [SplitDir(p.parent) for p in [*self.path.glob("split.csv"), *sorted(self.path.glob("*/split.csv"))]]

    def run_dirs(self) -> list[RunDir]:
        """Every run folder with a manifest, of the plain split and of split folders."""
        return _runs([*self.path.glob(f"runs/*/*/{MANIFEST}"), *self.path.glob(f"*/runs/*/*/{MANIFEST}")])


def _runs(manifests) -> list[RunDir]:
    """Run folders of these manifests; hidden ones are staging folders of runs in progress."""
    return [RunDir(p.parent) for p in sorted(manifests) if not p.parent.name.startswith(".")]
