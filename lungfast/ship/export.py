"""Export the leaderboard's winner: the top entry's run on the honest scheme chosen on the valid part
(`summary.SHIPPED_RULE`, never the test part), in the format asked.

`FORMATS` is the registry: `pickle` copies the run's fastai learner (what `load_learner` reads); `safetensors`
writes its weights only, plus a JSON description, for loading without pickle; `timm` writes the Hugging Face /
timm folder (`timm.create_model("local-dir:OUT", pretrained=True)`), `onnx` a model ONNX Runtime runs. Every
export carries a model card generated from the records (a timm folder's README.md, else `MODEL_CARD.md` beside
the file) and a description (`<out>.json`, the timm folder's `lungfast.json`) naming the run it came from, the
experiment as it ran and the package versions it was trained with. lungfast records a pickle's sha256 so it
loads it without `--trust`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lungfast import files
from lungfast.results import record
from lungfast.results.layout import ExperimentDir
from lungfast.results.summary import SHIPPED_RULE, summarize
from lungfast.ship import card, model_io, parity, trust
from lungfast.train import backbones

LOAD = {  # how the card tells a reader to load each format
    "pickle": "```python\nfrom fastai.learner import load_learner  # a pickle runs code: load only what you trust\n"
    'learn = load_learner("lung.pkl")\nlearn.predict("tile.jpeg")\n```\nor `lungfast predict lung.pkl TILES`.',
    "safetensors": "`lungfast predict lung.safetensors TILES` (rebuilt from the registry; runs no pickle code).",
    "timm": '```python\nimport timm, torch\nmodel = timm.create_model("local-dir:PATH", pretrained=True).eval()  # or '
    '"hf-hub:ORG/NAME"\ncfg = timm.data.resolve_data_config({}, model=model)\ntransform = '
    "timm.data.create_transform(**cfg)\nprobs = model(transform(image)[None]).softmax(1)  # calibrated\n```\n"
    "Publish the folder with `hf upload ORG/NAME PATH .` (huggingface_hub's command line).",
    "onnx": "`lungfast predict lung.onnx TILES`, or ONNX Runtime directly: input `pixels` (N x 3 x H x W float in "
    "[0, 1], RGB squished to the size in `lung.onnx.json`), output `probabilities` (calibrated).",
}


def _pickle(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    if not (trusted or trust.vouched(run.learner)):
        raise model_io.refusal(run.learner)
    with files.atomic_path(out) as tmp:
        shutil.copyfile(run.learner, tmp)
    return {"format": "fastai-pickle", "sha256": trust.remember(out)}


def _safetensors(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    return model_io.export_safetensors(model_io.load_pickle(run.learner, trusted), rec, run, out)


def _onnx(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    from lungfast.ship import onnx_model

    onnx_model.export(
        model_io.load_pickle(run.learner, trusted), backbones.get(rec.spec.backbone).stats, rec.spec.img_size, out
    )
    return {
        "format": "onnx",
        "img_size": rec.spec.img_size,
        "input": "pixels: N x 3 x H x W float in [0, 1]",
        "output": "probabilities (calibrated)",
    }


def _timm(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    from lungfast.ship import timm_export

    timm_export.export(model_io.load_pickle(run.learner, trusted), rec, out, card_text)
    return {"format": "timm"}


# name -> (run, record, out, trusted, card text) -> the description's format fields
FORMATS = {"pickle": _pickle, "safetensors": _safetensors, "timm": _timm, "onnx": _onnx}


def export(exp: ExperimentDir, out: Path, fmt: str = "pickle", trusted: bool = False) -> Path:
    """Write the summary's winner to `out` with its card and description; return the run folder it came from."""
    s = summarize(exp)
    run = s.winner
    rec = record.read(run)
    experiment = json.loads(exp.config_json.read_text()) if exp.config_json.is_file() else {}
    random = None
    if s.inflation is not None:
        mine = s.inflation[(s.inflation.backbone == rec.spec.backbone) & (s.inflation.protocol == rec.spec.protocol)]
        random = float(mine.random_test_accuracy.iloc[0]) if len(mine) else None
    library = "timm" if fmt == "timm" else "fastai" if fmt == "pickle" else fmt
    ways = "\n\n".join(
        f"**{f}** (`lungfast export --format {f}`):\n\n{LOAD[f]}" for f in [fmt, *(f for f in LOAD if f != fmt)]
    )
    row = s.table[s.table.entry == rec.spec.entry].iloc[0].to_dict()
    precision = parity.measure(run, rec, trusted)  # before the card, which shows it
    text = card.build(
        rec, run, experiment, ways, library, random, chosen_by=SHIPPED_RULE, entry_row=row, parity=precision
    )
    out = Path(out)
    meta = FORMATS[fmt](run, rec, out, trusted, text)  # (the timm folder holds its card; the rest get MODEL_CARD.md)
    description = {
        **(meta or {}),
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
    if fmt == "timm":
        files.write_json(out / "lungfast.json", description)
    else:
        files.write_json(model_io.sidecar(out), description)
        files.write_text(out.with_name("MODEL_CARD.md"), text)
    return run.path
