"""Export the leaderboard's winner: the top backbone's best run on the honest scheme.

`pickle` copies the run's fastai learner (what `load_learner` reads); `safetensors` writes its weights
only, plus a JSON description, for loading without pickle. Both get a `<out>.json` sidecar naming the
run they came from, and lungfast records the pickle's sha256 so it will load it without `--trust`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lungfast import files
from lungfast.results import record
from lungfast.results.layout import ExperimentDir
from lungfast.results.summary import summarize
from lungfast.ship import model_io, trust


def export(exp: ExperimentDir, out: Path, fmt: str = "pickle", trusted: bool = False) -> Path:
    """Write the summary's winner to `out`; return the run folder it came from."""
    run = summarize(exp).winner
    rec = record.read(run)
    if fmt == "safetensors":
        model_io.export_safetensors(model_io.load_pickle(run.learner, trusted), rec, run, out)
        return run.path
    if not (trusted or trust.vouched(run.learner)):
        raise model_io.refusal(run.learner)
    with files.atomic_path(out) as tmp:
        shutil.copyfile(run.learner, tmp)
    digest = trust.remember(out)
    files.write_json(model_io.sidecar(out), {"format": "fastai-pickle", "backbone": rec.spec.backbone,
                                              "source_run": str(run.path.resolve()), "sha256": digest,
                                              "vocab": rec.vocab, "refer_below": rec.referral.get("threshold")})
    return run.path
