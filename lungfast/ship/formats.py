"""The model-format registry: one row per format a winner ships in, used both ways. `export` writes with a row's
`write`; `predict`, `evaluate`, the app and `notebook.load` read any exported model through `model_io.load`,
which asks the rows which one a path is (`of`) and rebuilds a fastai Learner with its `read`; the CLI's
`--format` choices are the rows' names. A new format is one row here and its two functions.

Writers take (run, record, out, trusted, card text) and return the description's format fields; readers take
(path, trusted) and return a Learner whose `dls.test_dl` runs lungfast's inference pipeline (same pixels as
training). A folder format (timm) holds its card (README.md) and description (lungfast.json) inside; a file
format has its own `<file>.json` and `<file>.md` beside it (two models in one folder keep their own cards).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lungfast.errors import LungfastError


@dataclass(frozen=True)
class ModelFormat:
    name: str  # `lungfast export --format NAME`
    default_name: str  # what export writes in the experiment folder when no --out is given
    library: str  # the model card's library_name
    how_to_load: str  # the card's instructions (markdown)
    writer: str  # "module:function" (run, rec, out, trusted, card_text) -> the description's format fields
    reader: str  # "module:function" (path, trusted) -> fastai Learner for inference
    claims: Callable[[Path], bool]  # whether a path is a model in this format
    folder: bool = False  # out is a folder that holds its card and description
    runs_in: str | None = None  # the precision it always predicts in (ONNX Runtime: its fp32 graph); None: any
    fallback: bool = False  # claims what no other row claims (a pickle may have any name)

    def write(self, run, rec, out: Path, trusted: bool, card_text: str) -> dict:
        return _named(self.writer)(run, rec, out, trusted, card_text)

    def read(self, path: Path, trusted: bool = False):
        return _named(self.reader)(path, trusted)

    def description(self, path: Path) -> Path:
        return path / "lungfast.json" if self.folder else path.with_name(path.name + ".json")

    def card(self, path: Path) -> Path:
        return path / "README.md" if self.folder else path.with_name(path.name + ".md")  # its own: lung.pkl.md


def _named(where: str):
    """Functions are named, imported when used: this registry imports no format's machinery (and no cycle)."""
    module, _, attr = where.partition(":")
    return getattr(importlib.import_module(module), attr)


def _suffix(*suffixes: str) -> Callable[[Path], bool]:
    return lambda p: p.suffix.lower() in suffixes and not p.is_dir()


REGISTRY: dict[str, ModelFormat] = {
    f.name: f
    for f in [
        ModelFormat(
            "pickle",
            "lung.pkl",
            "fastai",
            "```python\nfrom fastai.learner import load_learner  # a pickle runs code: load only what you trust\n"
            'learn = load_learner("lung.pkl")\nlearn.predict("tile.jpeg")\n```\nor `lungfast predict lung.pkl TILES`.',
            "lungfast.ship.model_io:write_pickle",
            "lungfast.ship.model_io:load_pickle",
            lambda p: p.is_file(),
            fallback=True,
        ),
        ModelFormat(
            "safetensors",
            "lung.safetensors",
            "safetensors",
            "`lungfast predict lung.safetensors TILES` (rebuilt from the registry; runs no pickle code).",
            "lungfast.ship.model_io:write_safetensors",
            "lungfast.ship.model_io:read_safetensors",
            _suffix(".safetensors"),
        ),
        ModelFormat(
            "timm",
            "lung-timm",
            "timm",
            '```python\nimport timm, torch\nmodel = timm.create_model("local-dir:PATH", pretrained=True).eval()  # or '
            '"hf-hub:ORG/NAME"\ncfg = timm.data.resolve_data_config({}, model=model)\ntransform = '
            "timm.data.create_transform(**cfg)\nprobs = model(transform(image)[None]).softmax(1)  # calibrated\n```\n"
            "Publish the folder with `hf upload ORG/NAME PATH .` (huggingface_hub's command line); "
            "`lungfast predict PATH TILES` reads it too.",
            "lungfast.ship.timm_export:write",
            "lungfast.ship.timm_export:load",
            lambda p: p.is_dir() and (p / "config.json").is_file(),
            folder=True,
        ),
        ModelFormat(
            "onnx",
            "lung.onnx",
            "onnx",
            "`lungfast predict lung.onnx TILES`, or ONNX Runtime directly: input `pixels` (N x 3 x H x W float in "
            "[0, 1], RGB squished to the size in `lung.onnx.json`), output `probabilities` (calibrated).",
            "lungfast.ship.onnx_model:write",
            "lungfast.ship.onnx_model:load",
            _suffix(".onnx"),
            runs_in="onnx",
        ),
    ]
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> ModelFormat:
    return REGISTRY[name]


def of(path: str | Path) -> ModelFormat:
    """The format of an exported model (or a run's learner.pkl), or one line saying what lungfast reads."""
    path = Path(path)
    if not path.exists():
        raise LungfastError(f"{path}: model file not found; make one with lungfast export DIR --out FILE")
    for f in sorted(REGISTRY.values(), key=lambda f: f.fallback):
        if f.claims(path):
            return f
    known = ", ".join(f"{f.name} ({f.default_name})" for f in REGISTRY.values())
    raise LungfastError(f"{path}: not a model format lungfast reads; it reads {known}")
