"""Does the model a user loads give what the record says, in every precision it may run in?

At export, the run's learner predicts a fixed draw of its test tiles in fp32, in bf16 (autocast + channels_last,
as a CPU with bf16 units runs it; emulated and slower elsewhere) and through ONNX Runtime (fp32). Every two of
them are compared: the largest probability gap, how many tiles change class, and how many change side of the
referral threshold. The export's description and card carry the table; `model_io.precision_note` quotes it
when a model predicts in another precision than the one its figures were made in.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lungfast import files
from lungfast.cache import cache_dir
from lungfast.data import split as splits

N = 256  # test tiles compared: enough to see a flip near the threshold, seconds at most on a CPU


def tiles(run, n: int = N) -> list[Path]:
    """A fixed draw of the run's test tiles (all of them when fewer than n)."""
    test = splits.read_csv(run.split_dir.split_csv).query("part == 'test'")
    test = test[test.path.map(lambda p: Path(p).is_file())]
    return [Path(p) for p in test.sample(min(n, len(test)), random_state=0).sort_index().path]


def probabilities(run, rec, paths: list[Path], trusted: bool) -> dict[str, np.ndarray]:
    """precision name -> N x classes probabilities of the run's calibrated learner."""
    from lungfast.ship import model_io, onnx_model, predict
    from lungfast.train import backbones, device

    out, learners = {}, {}
    for precision in ("fp32", "bf16"):  # a fresh load each: the bf16 plan changes the model's memory format
        learners[precision] = learn = model_io.load_pickle(run.learner, trusted)
        learn.model.eval()
        device.apply(learn, device.plan_for(device.describe(cpu=True), precision))
        out[precision] = predict.predict(learn, paths, progress=False)[rec.vocab].to_numpy(dtype=float)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp, "model.onnx")
        onnx_model.export(learners["fp32"], backbones.get(rec.spec.backbone).stats, rec.spec.img_size, onnx)
        Path(tmp, "model.onnx.json").write_text(json.dumps({"vocab": rec.vocab, "img_size": rec.spec.img_size}))
        out["onnx"] = onnx_model.predict(onnx, paths)[rec.vocab].to_numpy(dtype=float)
    return out


def compare(probs: dict[str, np.ndarray], threshold: float | None) -> dict:
    """{"n", "pairs": {"a|b": max_gap, class_flips, refer_flips}} for every two precisions (names sorted)."""
    pairs = {}
    for a, b in itertools.combinations(sorted(probs), 2):
        pa, pb = probs[a], probs[b]
        refer = (lambda p: p.max(1) < threshold) if threshold is not None else (lambda p: np.ones(len(p), bool))
        pairs[f"{a}|{b}"] = {
            "max_gap": float(np.abs(pa - pb).max()) if len(pa) else 0.0,
            "class_flips": int((pa.argmax(1) != pb.argmax(1)).sum()),
            "refer_flips": int((refer(pa) != refer(pb)).sum()),
        }
    return {"n": int(len(next(iter(probs.values())))), "pairs": pairs}


def measure(run, rec, trusted: bool) -> dict:
    """The parity table of a run's learner on its test tiles, plus the precision its figures were made in.
    Measured once per (learner file, tiles, machine, libraries) and kept in `<cache>/parity/`: exporting one run
    in several formats (or again) measures the same model on the same pixels, which gives the same table."""
    paths = tiles(run)
    threshold = rec.referral.get("threshold")
    target = cache_dir("parity") / f"{_key(run, paths, threshold)}.json" if paths else None
    if target is not None and target.is_file():
        table = json.loads(target.read_text())
    else:
        table = compare(probabilities(run, rec, paths, trusted), threshold) if paths else {}
        if target is not None:
            files.write_json(target, table)
    return {"recorded": rec.device.get("precision", "fp32"), **table}


def _key(run, paths: list[Path], threshold) -> str:
    import onnxruntime
    import torch

    from lungfast.train import device

    what = [files.sha256(run.learner), [files.identity(p) for p in paths], threshold, device.describe(cpu=True)]
    what += [torch.__version__, onnxruntime.__version__, N]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def markdown(parity: dict) -> str:
    if not parity.get("pairs"):
        return "Not measured (no test tiles on this machine).\n"
    rows = [
        {
            "compared": k.replace("|", " vs "),
            "largest probability gap": f"{v['max_gap']:.2g}",
            "class flips": v["class_flips"],
            "refer flips": v["refer_flips"],
        }
        for k, v in parity["pairs"].items()
    ]
    return (
        f"Its figures were made in **{parity['recorded']}**; `predict`, `evaluate`, the app and the notebook "
        f"load it in that precision on any machine. The same model on {parity['n']} test tiles in each "
        f"precision:\n\n" + pd.DataFrame(rows).to_markdown(index=False) + "\n"
    )
