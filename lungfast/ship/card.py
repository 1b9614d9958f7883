"""The model card of an export, generated from the run's record and its experiment (never typed by hand).

Every export carries one: a timm folder's `README.md` (what the Hugging Face hub shows), `<file>.md` beside a
pickle, a safetensors file or an ONNX file (`lung.pkl.md`: each model its own). Its YAML header (license, tags,
datasets, metrics) is what `huggingface_hub.ModelCard` parses; the body says what the model is for, what it was
trained and tested on, how well (with intervals), where it fails, how to load it each way, and what it was made
with.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pandas as pd

from lungfast.data import split as splits
from lungfast.results import columns
from lungfast.results.layout import RunDir
from lungfast.ship.card_sections import calibration_text, fmt, interval, met, referral_text
from lungfast.ship.parity import markdown as parity_markdown

LIMITS = (
    "It is a research model, not a diagnostic device: it has not been validated for clinical use and must not "
    "guide a diagnosis. LC25000 comes from one source (one institution's slides, one scanner, one staining "
    "protocol), holds 250 original tiles per class (the rest are rotations and flips of them), and its tiles "
    "were chosen as clear examples of each class; expect lower accuracy on other labs' slides (see the "
    "external sets and the robustness table when present), on other magnifications, and on tissue that is "
    "none of the classes."
)
OTHER_LIMITS = (  # for a data set that is not LC25000: what holds for any tile classifier trained on one source
    "It is a research model, not a diagnostic device: it has not been validated for clinical use and must not "
    "guide a diagnosis. It knows only the slides, scanners and staining of its training data; expect lower "
    "accuracy elsewhere (see the external sets and the robustness table when present), on other magnifications, "
    "and on tissue that is none of the classes."
)
LC25000_CLASSES = {"lung_aca", "lung_n", "lung_scc"}


def is_lc25000(rec, experiment: dict) -> bool:
    """The data set is LC25000's lung part as it ships (its folder name and its classes), not a user's own."""
    return Path(experiment.get("data_dir", "")).name == "lung_image_sets" and set(rec.vocab) <= LC25000_CLASSES


def test_claim(rec) -> str:
    """What the test part is, as the scheme and the groups make it true."""
    if rec.spec.scheme == "random":
        return (
            "On the test part of a random split (copies of one original tile may sit in train and test, so this "
            "figure overstates accuracy on new tissue)"
        )
    if not rec.groups_csv:
        return "On the test part (no tile groups were known: each image its own group, so copies may be in both)"
    return "On the test part (tile groups never seen in training)"


PATHS = ("data_dir", "groups_csv", "results_dir")


def shareable(experiment: dict) -> dict:
    """The experiment with its paths cut to their last part: a published card names folders, not the author's disk."""
    cut = lambda v: Path(v).name if isinstance(v, str) and v else v  # noqa: E731
    out = {k: cut(v) if k in PATHS else v for k, v in experiment.items()}
    out["weights"] = {k: cut(v) for k, v in experiment.get("weights", {}).items()}
    out["external"] = [{k: cut(v) if k in PATHS else v for k, v in e.items()} for e in experiment.get("external", [])]
    return out


def parts_table(run: RunDir) -> pd.DataFrame:
    """Tiles and tile groups per class and part of the run's split."""
    summary = splits.summary(splits.read_csv(run.split_dir.split_csv))
    wide = summary.pivot_table(index="label", columns="part", values=["images", "groups"], aggfunc="sum")
    wide.columns = [f"{part} {what}" for what, part in wide.columns]
    return wide[[f"{p} {w}" for p in splits.PARTS for w in ("images", "groups")]].reset_index()


def header(rec, library: str, license: str, metrics: dict, lc25000: bool = True) -> str:
    tags = ["image-classification", "histopathology", "lung", *(["lc25000"] if lc25000 else []), "lungfast", library]
    lines = [
        "---",
        f"license: {license}",
        f"library_name: {library}",
        "pipeline_tag: image-classification",
        "tags:",
        *[f"- {t}" for t in dict.fromkeys(tags)],
        *(["datasets:", "- LC25000"] if lc25000 else []),
        "metrics:",
        *[f"- {m}" for m in metrics],
        "---",
    ]
    return "\n".join(lines) + "\n"


def build(
    rec,
    run: RunDir,
    experiment: dict,
    how_to_load: str,
    library: str,
    random_split: float | None = None,
    license: str = "other",
    chosen_by: str = "",
    entry_row: dict | None = None,
    parity: dict | None = None,
) -> str:
    """The card's markdown: YAML header, then the sections a reader of a medical model looks for."""
    spec, cal, ref, figures = rec.spec, rec.calibration, rec.referral, rec.to_json()
    metrics = {"accuracy": rec.test_accuracy, "balanced_accuracy": rec.balanced_accuracy, "ece": rec.ece_calibrated}
    parts = parts_table(run)
    groups_line = (
        f"tile groups from {rec.groups_csv if rec.groups_csv.startswith('pattern ') else Path(rec.groups_csv).name}"
        if rec.groups_csv  # a name, not the author's disk
        else "no tile groups (each image its own)"
    )
    lc25000 = is_lc25000(rec, experiment)
    data = Path(experiment.get("data_dir", "?")).name
    out = [
        header(rec, library, license, metrics, lc25000),
        f"# {spec.entry}: lung histopathology tile classifier ({', '.join(rec.vocab)})\n",
        "Made by lungfast from its run records; every figure below is read from them.\n",
        "## Intended use\n",
        f"Research on H&E lung tissue tiles: classify a tile as one of {', '.join(rec.vocab)}, or refer it to a "
        f"pathologist when the model is unsure. {LIMITS.split(': it')[0]}.\n",
        "## Model\n",
        f"- backbone: `{spec.backbone}` ({rec.source} `{rec.arch}`), {rec.params / 1e6:.2f} M parameters, "
        f"{'pretrained weights' if spec.pretrained else 'trained from random initialisation'}",
        f"- protocol: `{spec.protocol}` ({rec.schedule}); input: RGB squished to {spec.img_size} x {spec.img_size} "
        f"px, scaled to [0, 1], normalised with the backbone's mean and std",
        f"- output: calibrated class probabilities (temperature {cal.get('temperature', float('nan')):.4f} folded "
        f"into the last layer)"
        + (f"\n- test-time views: `{spec.tta}`, averaged inside the model" if spec.tta != "none" else "")
        + (f"\n- chosen: {chosen_by}" if chosen_by else ""),
        "",
        "## Training data\n",
        ("LC25000 lung tiles (Borkowski et al., arXiv:1912.12142), " if lc25000 else "The data set in ")
        + f"folder `{data}`: classes "
        f"{', '.join(rec.vocab)}; `{spec.scheme}` scheme, split seed {spec.split_seed}, {groups_line}; "
        f"{rec.n_train} train, {rec.n_valid} valid, {rec.n_test} test images ({rec.skipped_images} unreadable "
        f"skipped). Tiles (images) and tile groups per class and part:\n",
        parts.to_markdown(index=False) + "\n",
        "## Test results\n",
        f"{test_claim(rec)}, 95% intervals from a bootstrap over test tile groups:\n",
        pd.DataFrame(
            [
                {"figure": k, "value": fmt(figures.get(k)), "95% interval": interval(rec.test_ci95.get(k))}
                for k in columns.names(columns.CARD)
            ]
        ).to_markdown(index=False, disable_numparse=True)
        + "\n",
    ]
    if entry_row:
        r = entry_row
        out.append(
            f"Over the entry's {r['n']} run(s) ({spec.entry} on the {spec.scheme} scheme): mean test accuracy "
            f"{r['test_accuracy']:.4f}, 95% interval of the mean {interval((r['ci95_low'], r['ci95_high']))} "
            f"({r['ci_kind']}); for one model on new tile groups, as this one: "
            f"{interval((r['pi95_low'], r['pi95_high']))} ({r['pi_kind']}).\n"
        )
    if random_split is not None:
        out.append(
            f"The same settings on a random split (copies of one tile in train and test, as most published "
            f"LC25000 results) scored {random_split:.4f}: the difference is what the random split inflates.\n"
        )
    if rec.external:
        out += [
            "## External sets\n",
            pd.DataFrame(
                [
                    {
                        "set": name,
                        "images": f["n"],
                        "groups": f["n_groups"],
                        "accuracy": fmt(f["accuracy"]),
                        "95% interval": interval(f["ci95"]["accuracy"]),
                        "balanced accuracy": fmt(f["balanced_accuracy"]),
                        "ECE": fmt(f["ece_calibrated"]),
                        "kept by referral": fmt(f["referral"]["kept"], 3),
                        "kept accuracy": fmt(f["referral"]["accuracy_kept"]),
                        "kept 95% interval": interval(f["referral"].get("accuracy_kept_ci95")),
                        "target": met(f["referral"]),
                    }
                    for name, f in rec.external.items()
                ]
            ).to_markdown(index=False, disable_numparse=True)
            + "\n",
        ]
    out += ["## Calibration and referral\n", calibration_text(cal), referral_text(ref)]
    if parity is not None:
        out += ["## Precision\n", parity_markdown(parity)]
    if rec.robustness.get("middle"):
        out += [
            "## Robustness\n",
            f"Test accuracy on {rec.robustness.get('n')} test tiles under input shifts at the "
            f"middle severity (clean: {fmt(rec.robustness.get('clean_accuracy'))}):\n",
            pd.DataFrame([{"shift": k, "accuracy": fmt(v)} for k, v in rec.robustness["middle"].items()]).to_markdown(
                index=False, disable_numparse=True
            )
            + "\n",
        ]
    out += [
        "## Limitations\n",
        (LIMITS if lc25000 else OTHER_LIMITS) + "\n",
        "## How to load it\n",
        how_to_load + "\n",
        "## Reproduce\n",
        "The experiment as it ran (rerun it with `lungfast run`):\n",
        "```json\n" + json.dumps(shareable(experiment), indent=1, sort_keys=True) + "\n```\n",
        "Made with "
        + ", ".join(f"{k} {v}" for k, v in {**rec.versions, "python": platform.python_version()}.items())
        + f"; device {rec.device.get('device', '?')} ({rec.device.get('precision', 'fp32')}).\n",
    ]
    return "\n".join(out)
