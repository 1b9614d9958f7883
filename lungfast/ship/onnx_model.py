"""`lungfast export --format onnx` and `lungfast predict model.onnx FILES`: the model with its normalisation inside
(float pixels in [0, 1], N x 3 x H x W, any batch size) and calibrated probabilities out, run by ONNX Runtime.

Pixels for it come from the learner's own decode (`data.store.decode`: `to_rgb` + fastai's squish Resize), so
ONNX Runtime sees what the pickle sees; the description `<model>.onnx.json` holds classes, size and referral.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lungfast import files
from lungfast.errors import LungfastError


class Normalised(torch.nn.Module):
    """pixels in [0, 1] -> normalise -> model -> softmax: everything a caller would otherwise have to know."""

    def __init__(self, model: torch.nn.Module, stats):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(stats[0], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(stats[1], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels):
        return self.model((pixels - self.mean) / self.std).float().softmax(1)


INLINE_BYTES = 1_800_000_000  # protobuf holds at most 2 GB: weights beyond this go to `<model>.onnx.data`


def export(learn, stats, img_size: int, out: Path) -> None:
    """One self-contained file (weights inside), or for a model over 1.8 GB the file plus `<name>.data` beside it,
    which it names. Built in a staging folder under the final name, then moved into place (the weights first), so
    no other file is left beside it and a copied model opens."""
    import contextlib
    import io
    import logging
    import os
    import shutil
    import tempfile

    wrapped = Normalised(learn.model.float().eval(), stats).eval()
    example = torch.rand(2, 3, img_size, img_size)
    big = sum(t.numel() * t.element_size() for t in wrapped.state_dict().values()) > INLINE_BYTES
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        staged = stage / out.name
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates on stdout
            for name in ("torch.onnx", "onnxscript", "onnx_ir"):  # progress notes, not problems
                logging.getLogger(name).setLevel(logging.ERROR)
            torch.onnx.export(
                wrapped,
                (example,),
                str(staged),
                input_names=["pixels"],
                output_names=["probabilities"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                dynamo=True,
                verbose=False,
                external_data=big,
            )
        data = out.with_name(out.name + ".data")
        if (stage / data.name).exists():
            os.replace(stage / data.name, data)
        elif data.exists():  # an earlier, larger export's weights: not this model's
            data.unlink()
        os.replace(staged, out)
    except (OSError, RuntimeError) as e:
        failed = files.write_error(e, out)
        if failed is None:
            raise
        raise failed from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write(run, rec, out: Path, trusted: bool, card_text: str) -> dict:
    """`export --format onnx` (ship.formats)."""
    from lungfast.ship import model_io
    from lungfast.train import backbones

    export(model_io.load_pickle(run.learner, trusted), backbones.get(rec.spec.backbone).stats, rec.spec.img_size, out)
    return {"format": "onnx", "input": "pixels: N x 3 x H x W float in [0, 1]", "output": "probabilities (calibrated)"}


class Runtime(torch.nn.Module):
    """ONNX Runtime behind a torch module, so lungfast's file pipeline and fastai's get_preds drive it like any
    model: pixels in [0, 1] in, log-probabilities out (fastai's softmax gives the calibrated probabilities back)."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.session = str(path), session(path)
        # fastai finds the device from a parameter; this one is never trained (no gradients: no Grad-CAM)
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, pixels):
        probs = self.session.run(None, {"pixels": pixels.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(probs).clamp_min(1e-12).log()


def load(path: Path, trusted: bool = False):
    """An ONNX export as a fastai Learner (ship.formats): `predict`, `evaluate`, the app and `notebook.load`
    read it like the other formats; no pickle, no torch weights. Its pixels are not normalised here: the graph
    holds the normalisation."""
    from lungfast.train import learner

    meta = describe(Path(path))
    return learner.for_inference(
        Runtime(Path(path)), meta["vocab"], meta["img_size"], ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    )


def describe(path: Path) -> dict:
    meta = Path(str(path) + ".json")
    try:
        return json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise LungfastError(
            f"{path}: its description {meta.name} is missing or damaged ({type(e).__name__}); export "
            f"again with lungfast export DIR --format onnx"
        ) from None


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pixels(paths: list[Path], size: int) -> np.ndarray:
    """N x 3 x size x size float32 in [0, 1], decoded as the learner decodes."""
    from lungfast.data.store import decode

    return np.stack([decode(str(p), size) for p in paths]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def predict(path: Path, paths: list[Path], batch_size: int = 64) -> pd.DataFrame:
    """The columns of `ship.predict.predict`: path, predicted, one per class, refer (when known), error."""
    from lungfast.data.images import unreadable_reason

    meta, run = describe(path), session(path)
    vocab, size = meta["vocab"], int(meta["img_size"])
    errors = {p: ("file not found" if not p.exists() else unreadable_reason(p)) for p in paths}
    good = [p for p in paths if errors[p] is None]
    rows = pd.DataFrame(
        {
            "path": [str(p) for p in paths],
            "predicted": "",
            **{c: float("nan") for c in vocab},
            "error": [errors[p] or "" for p in paths],
        }
    )
    if good:
        probs = np.concatenate(
            [
                run.run(None, {"pixels": pixels(good[i : i + batch_size], size)})[0]
                for i in range(0, len(good), batch_size)
            ]
        )
        ok = rows.error == ""
        rows.loc[ok, vocab] = probs
        rows.loc[ok, "predicted"] = [vocab[i] for i in probs.argmax(1)]
    t = meta.get("refer_below", "unknown")
    if t != "unknown":
        below = float("inf") if t is None else float(t)
        rows.insert(len(rows.columns) - 1, "refer", rows[vocab].max(axis=1).lt(below) & (rows.error == ""))
    return rows
