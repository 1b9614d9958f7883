"""Optional MLflow tracking (`--mlflow URI`, extra `lungfast[mlflow]`): a fastai Callback, since MLflow 3
has no fastai autolog. Per run: the config as params, per-epoch metrics, the final test metrics, and the
record's figures as artifacts. Only rank 0 logs; telemetry is off.
"""

from __future__ import annotations

import os
from pathlib import Path

from lungfast.resume import TrainedEpochCallback

from lungfast.errors import LungfastError

ARTIFACTS = ("confusion_matrix.png", "top_losses.png", "saliency.png", "loss.png", "history.csv", "top_losses.csv")


def mlflow_module():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    try:
        import mlflow
    except ImportError:
        raise LungfastError("--mlflow needs MLflow: pip install 'lungfast[mlflow]' (mlflow-skinny, sqlalchemy, "
                            "alembic)") from None
    return mlflow


class MLflowCallback(TrainedEpochCallback):
    """Per-epoch metrics into the active MLflow run (train/valid loss and every fastai metric)."""

    order = 75  # after EpochLog, before Checkpoint

    def __init__(self, mlflow, first_step: int = 0):
        self.mlflow, self.step = mlflow, first_step

    def after_trained_epoch(self):
        names, values = self.recorder.metric_names[1:-1], self.recorder.log[1:-1]
        self.mlflow.log_metrics({n: float(v) for n, v in zip(names, values) if isinstance(v, float)},
                                step=self.step)
        self.step += 1


class Tracker:
    """One MLflow run per lungfast run; a no-op when no URI is given."""

    def __init__(self, uri: str | None, experiment: str):
        self.mlflow = mlflow_module() if uri else None
        if self.mlflow:
            self.mlflow.set_tracking_uri(uri)
            self.mlflow.set_experiment(f"lungfast-{experiment}")

    def start(self, name: str, params: dict):
        if not self.mlflow:
            return []
        self.mlflow.start_run(run_name=name)
        self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        return [MLflowCallback(self.mlflow)]

    def finish(self, metrics: dict, folder: Path) -> None:
        if not self.mlflow:
            return
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        flat.update({f"{c}_{k}": v for c, d in metrics.get("per_class", {}).items() for k, v in d.items()})
        self.mlflow.log_metrics({f"final_{k}": float(v) for k, v in flat.items()})
        for name in ARTIFACTS:
            if (folder / name).is_file():
                self.mlflow.log_artifact(str(folder / name))
        self.mlflow.end_run()

    def abort(self) -> None:
        if self.mlflow and self.mlflow.active_run():
            self.mlflow.end_run(status="KILLED")
