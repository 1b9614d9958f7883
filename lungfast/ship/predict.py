"""`lungfast predict`: label image files and folders with a saved model, as CSV.

Images go through the learner's own test DataLoader in batches (the training pipeline minus augmentation),
or through fastai's test-time augmentation with `--tta`. Unreadable files get a row with an error note.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pandas as pd

from lungfast.data import loaders
from lungfast.data.images import IMAGE_SUFFIXES, unreadable_reason
from lungfast.errors import LungfastError


def collect(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for image files (sorted)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(item)
    if not found:
        raise LungfastError(f"no image files in {', '.join(inputs)}")
    return found


def predict(
    learn, paths: list[Path], tta: bool = False, progress: bool | None = None, refer_below: float | None = None
) -> pd.DataFrame:
    """Class probabilities per file; with `refer_below` (the model's 99%-accuracy threshold), a `refer`
    column: true where the top probability is below it (a pathologist should look)."""
    from fastai.callback.progress import ProgressCallback

    from lungfast.train.callbacks import KeepCtrlC

    vocab = list(learn.dls.vocab)
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
        dl = learn.dls.test_dl(good) if tta else loaders.inference(learn.dls.test_dl(good))
        if progress is None:  # a bar for a person at a terminal (on stderr: stdout may carry the CSV)
            from lungfast.progress import interactive

            progress = interactive()
        bar = [ProgressCallback(), KeepCtrlC()] if progress and len(good) > dl.bs else []
        # fastprogress draws on stdout, which may carry the CSV: send the bar to stderr
        with contextlib.redirect_stdout(sys.stderr), learn.added_cbs(bar):
            probs = learn.tta(dl=dl)[0] if tta else learn.get_preds(dl=dl)[0]
        ok = rows.error == ""
        rows.loc[ok, vocab] = probs.numpy()
        rows.loc[ok, "predicted"] = [vocab[i] for i in probs.argmax(dim=1)]
    if refer_below is not None:
        rows.insert(len(rows.columns) - 1, "refer", rows[vocab].max(axis=1).lt(refer_below) & (rows.error == ""))
    return rows
