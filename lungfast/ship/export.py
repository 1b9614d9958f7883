"""Export the leaderboard's winner: the top entry's run on the honest scheme chosen on the valid part
(`summary.SHIPPED_RULE`, never the test part), in the format asked.

`ship.formats` is the registry: `pickle` copies the run's fastai learner (what `load_learner` reads);
`safetensors` writes its weights only, plus a JSON description, for loading without pickle; `timm` writes the
Hugging Face / timm folder (`timm.create_model("local-dir:OUT", pretrained=True)`), `onnx` a model ONNX Runtime
runs. Every
export carries a model card generated from the records (a timm folder's README.md, else `<file>.md` beside
the file) and a description (`<out>.json`, the timm folder's `lungfast.json`) naming the run it came from, the
experiment as it ran and the package versions it was trained with. lungfast records a pickle's sha256 so it
loads it without `--trust`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lungfast import files
from lungfast.errors import LungfastError
from lungfast.results import record
from lungfast.results.layout import ExperimentDir
from lungfast.results.summary import SHIPPED_RULE, summarize
from lungfast.ship import card, formats, parity


def export(exp: ExperimentDir, out: Path, fmt: str = "pickle", trusted: bool = False, entry: str | None = None) -> Path:
    """Write the summary's winner (or the named leaderboard entry's shipped run) to `out` with its card and
    description; return the run folder it came from."""
    s = summarize(exp)
    if entry is not None and entry not in s.entries:
        raise LungfastError(
            f"--entry {entry}: not a leaderboard entry of {exp.path}; its entries: {', '.join(s.entries)}"
        )
    run = s.best_run(entry) if entry else s.winner
    rec = record.read(run)
    experiment = json.loads(exp.config_json.read_text()) if exp.config_json.is_file() else {}
    random = None
    if s.inflation is not None:
        mine = s.inflation[(s.inflation.backbone == rec.spec.backbone) & (s.inflation.protocol == rec.spec.protocol)]
        random = float(mine.random_test_accuracy.iloc[0]) if len(mine) else None
    chosen = formats.get(fmt)
    ways = "\n\n".join(
        f"**{f.name}** (`lungfast export --format {f.name}`):\n\n{f.how_to_load}"
        for f in [chosen, *(f for f in formats.REGISTRY.values() if f is not chosen)]
    )
    row = s.table[s.table.entry == rec.spec.entry].iloc[0].to_dict()
    precision = parity.measure(run, rec, trusted)  # before the card, which shows it
    text = card.build(
        rec, run, experiment, ways, chosen.library, random, chosen_by=SHIPPED_RULE, entry_row=row, parity=precision
    )
    out = Path(out)
    meta = chosen.write(run, rec, out, trusted, text) or {}
    description = {
        **meta,
        # which file it describes: a description left beside another model (a stopped export) is recognised
        "model_sha256": (meta.get("sha256") or files.sha256(out)) if out.is_file() else None,
        "backbone": rec.spec.backbone,
        "protocol": rec.spec.protocol,
        "source_run": str(run.path.resolve()),
        "vocab": rec.vocab,
        "img_size": rec.spec.img_size,
        "refer_below": rec.referral.get("threshold"),
        "refer_target": rec.referral.get("target"),
        "refer_delta": rec.referral.get("delta"),
        "precision": precision["recorded"],
        "parity": precision,
        "chosen_by": SHIPPED_RULE,
        "test_accuracy": rec.test_accuracy,
        "test_ci95": rec.test_ci95.get("test_accuracy"),
        "entry_mean_ci95": [row["ci95_low"], row["ci95_high"]],
        "one_model_95": [row["pi95_low"], row["pi95_high"]],
        "one_model_kind": row["pi_kind"],
        "experiment": experiment,
        "versions": rec.versions,
    }
    files.write_json(chosen.description(out), description)
    if not chosen.folder:  # a folder format writes its card inside, with the rest
        files.write_text(chosen.card(out), text)
    return run.path
