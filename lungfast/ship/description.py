"""What lungfast recorded about a model it loads: the export's description (`<model>.json`, a folder format's
lungfast.json) or, for a run's own learner, the run record; and the notes a user needs when that is missing,
stale, or says the model predicts in another precision here than its figures were made in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lungfast import files
from lungfast.errors import LungfastError
from lungfast.results import record
from lungfast.results.layout import MANIFEST, RunDir

log = logging.getLogger("lungfast")
_DIGESTS: dict[str, str] = {}  # identity (path, size, mtime) -> sha256: a model is hashed once per process
_NOTED: set[str] = set()


def sidecar(path: Path) -> Path:
    """Where an exported model's description lives (`<file>.json`, or a folder format's lungfast.json)."""
    from lungfast.ship import formats

    path = Path(path)
    return formats.of(path).description(path) if path.exists() else path.with_name(path.name + ".json")


def described(path: str | Path) -> dict:
    """What lungfast recorded about a model: its export description (`<model>.json`), or for a run's own
    learner the run record's referral and precision; {} when neither is there or readable (a damaged
    description costs the advice it holds, never the prediction)."""
    path = Path(path)
    try:
        if sidecar(path).is_file():
            d = json.loads(sidecar(path).read_text())
            if d.get("model_sha256") and path.is_file() and _digest(path) != d["model_sha256"]:
                note_once(
                    f"note: {sidecar(path).name} describes another model than {path.name} (written over it, or an "
                    f"export stopped between the two): its referral threshold and precision are not used; export again"
                )
                return {}
            return d
        if (path.parent / MANIFEST).is_file():
            rec = record.read(RunDir(path.parent))
            return {
                "refer_below": rec.referral.get("threshold", "unknown"),
                "refer_target": rec.referral.get("target"),
                "precision": rec.device.get("precision"),
            }
    except (ValueError, LungfastError):
        pass
    return {}


def precision_note(path: str | Path, used: str, why: str = "", found: dict | None = None) -> str | None:
    """One line when a model predicts in another precision than its figures were made in, with the gap export
    measured between the two (ship.parity); None when they agree or nothing was recorded. `found`: the model's
    `described` dict, when the caller has read it already."""
    d = described(path) if found is None else found
    recorded = d.get("precision")
    if not recorded or recorded == used or (recorded, used) == ("fp32", "onnx"):  # ONNX Runtime runs fp32
        return None
    pair = (d.get("parity") or {}).get("pairs", {}).get("|".join(sorted((recorded, used))))
    gap = (
        f"export measured a largest probability gap of {pair['max_gap']:.2g} between the two on "
        f"{d['parity']['n']} test tiles ({pair['class_flips']} class and {pair['refer_flips']} refer flips)"
        if pair
        else "the gap between the two was not measured (export it again to measure it)"
    )
    return (
        f"note: {Path(path).name} was evaluated, calibrated and thresholded in {recorded}; it predicts in {used} "
        f"here{f' ({why})' if why else ''}: {gap}"
    )


def refer_below(path: str | Path) -> float | None:
    """The certified referral threshold (tiles below it go to a pathologist): from the export's description, or
    the run record of a run's own learner. inf: none could be certified (refer every tile); None: not recorded
    (models older than the referral)."""
    t = described(path).get("refer_below", "unknown")
    return None if t == "unknown" else float("inf") if t is None else float(t)


def _digest(path: Path) -> str:
    key = files.identity_key(path)
    if key not in _DIGESTS:
        _DIGESTS[key] = files.sha256(path)
    return _DIGESTS[key]


def note_once(text: str) -> None:
    if text not in _NOTED:
        _NOTED.add(text)
        log.warning("%s", text)
