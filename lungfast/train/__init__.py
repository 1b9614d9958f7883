"""Stage 2, training: the backbone registry, a Learner per entry, the one loop and its callbacks, the
device plan, data-parallel runs and optional MLflow tracking."""
