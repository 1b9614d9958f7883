"""Optional MLflow tracking (`--mlflow URI`, extra `lungfast[mlflow]`), since MLflow 3 has no fastai
autolog. Per run: the run's identity as params, per-epoch metrics (callbacks.MLflowEpochs), the final test
metrics, and the record's figures and tables as artifacts. Only rank 0 logs; telemetry is off.
"""

from __future__ import annotations

import os

from lungfast.errors import LungfastError
from lungfast.results.layout import FIGURES, NEWER_FIGURES, RunDir


def mlflow_module():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    try:
        import mlflow
    except ImportError:
        raise LungfastError(
            "--mlflow needs MLflow: pip install 'lungfast[mlflow]' (mlflow-skinny, sqlalchemy, alembic)"
        ) from None
    return mlflow


class Tracker:
    """One MLflow run per lungfast run; a no-op when no URI is given."""

    def __init__(self, uri: str | None, experiment: str):
        self.mlflow = mlflow_module() if uri else None
        if self.mlflow:
            self.mlflow.set_tracking_uri(uri)
            self.mlflow.set_experiment(f"lungfast-{experiment}")

    def start(self, spec, lr_used: float) -> list:
        """Open the run's MLflow run; the callbacks that log its epochs."""
        if not self.mlflow:
            return []
        from lungfast.train.callbacks import MLflowEpochs

        self.mlflow.start_run(run_name=f"{spec.label} {spec.scheme}-split{spec.split_seed}")
        params = {**spec.key(), "schedule": spec.schedule, "lr_used": lr_used}
        self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        return [MLflowEpochs(self.mlflow)]

    def finish(self, rec, run_dir: RunDir) -> None:
        if not self.mlflow:
            return
        metrics = rec.to_json()
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        flat.update({f"{c}_{k}": v for c, d in rec.per_class.items() for k, v in d.items()})
        self.mlflow.log_metrics({f"final_{k}": float(v) for k, v in flat.items()})
        for f in [*(run_dir.figure(n) for n in {**FIGURES, **NEWER_FIGURES}), run_dir.history, run_dir.top_losses]:
            if f.is_file():
                self.mlflow.log_artifact(str(f))
        self.mlflow.end_run()

    def abort(self) -> None:
        if self.mlflow and self.mlflow.active_run():
            self.mlflow.end_run(status="KILLED")
