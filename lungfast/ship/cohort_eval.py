"""`lungfast evaluate MODEL DATA_DIR`: score any exported model on any labelled folder, with the figures every run
gives its external sets (`results.external`): for a model handed over by a colleague, or a cohort that came later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lungfast import files
from lungfast.cohorts import ExternalSet
from lungfast.data import external as external_data
from lungfast.errors import LungfastError
from lungfast.results import evaluate, external, referral
from lungfast.ship import model_io


@dataclass(frozen=True)
class Scored:
    name: str
    figures: dict  # results.external.figures + the set's facts
    predictions: pd.DataFrame  # evaluate.as_table rows + folder, group_id

    def text(self) -> str:
        per_class = pd.DataFrame(
            {
                "class": list(self.figures["recall"]),
                "recall": list(self.figures["recall"].values()),
                "images": list(self.figures["support"].values()),
            }
        )
        return (
            external.describe(self.name, self.figures)
            + "\n\n"
            + per_class.to_markdown(index=False, floatfmt=".3f")
            + "\n"
        )


def parse_label_map(items: list[str]) -> dict[str, str]:
    """["aca_*=lung_aca", "other="] -> {"aca_*": "lung_aca", "other": ""}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise LungfastError(f"--label-map {item!r}: expected FOLDER_GLOB=CLASS, e.g. --label-map 'aca_*=lung_aca'")
        folder, target = item.split("=", 1)
        out[folder.strip()] = target.strip()
    return out


def score(
    model: str,
    data_dir: str,
    label_map: dict[str, str] | None = None,
    include: str = "*",
    groups_csv: str | None = None,
    group_column: str = "group_id",
    group_pattern: str | None = None,
    benign=evaluate.BENIGN,
    trusted: bool = False,
    precision: str | None = None,
) -> Scored:
    learn = model_io.load(model, trusted, precision)
    vocab = list(learn.dls.vocab)
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(data_dir).resolve().name) or "external"
    ext = external_data.load(
        ExternalSet(name, str(data_dir), label_map or {}, include, groups_csv, group_column, group_pattern), vocab
    )
    preds = evaluate.predictions(learn, ext.frame)
    target = model_io.described(model).get("refer_target") or referral.TARGET
    figures = {
        **ext.facts(),
        **external.figures(preds, vocab, ext.frame.group_id, tuple(benign), model_io.refer_below(model), target),
    }
    return Scored(
        name, figures, preds.assign(folder=ext.frame.folder.to_numpy(), group_id=ext.frame.group_id.to_numpy())
    )


def write(scored: Scored, out: Path) -> None:
    """predictions.csv and metrics.json in `out`, each written atomically."""
    files.write_csv(out / "predictions.csv", scored.predictions)
    files.write_json(out / "metrics.json", {"name": scored.name, **scored.figures})
