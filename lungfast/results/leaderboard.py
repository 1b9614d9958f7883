"""The leaderboard files, rendered from the experiment's `Summary` (never edited by hand): leaderboard.csv
and .md, inflation.csv, comparison.json; and the README block `<!-- leaderboard:NAME -->`."""

from __future__ import annotations

from pathlib import Path
from textwrap import fill

import pandas as pd

from lungfast import files, protocols
from lungfast.results import ladder, readme, stats
from lungfast.results.evaluate import clinical_pair
from lungfast.results.summary import EXTERNAL, Summary

SHOWN = ["ci_kind", "vs_best", "n", "valid_accuracy", "macro_f1", "cancer_sensitivity", "benign_specificity", "ece",
         "ece_calibrated", "refer_kept", "refer_kept_accuracy", "refer_met", "shifted_accuracy", "worst_shift", "test_loss", "params_m", "seconds_per_epoch", "train_img_per_s", "pretrained", "scheme",
         "img_size"]


def _fmt(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    shown = table[["rank", "backbone", "protocol"]].copy()
    shown["test_accuracy"] = [f"{m:.{digits}f} ± {s:.{digits}f}" if s == s else f"{m:.{digits}f}"
                              for m, s in zip(table.test_accuracy, table.test_accuracy_std)]
    shown["95% CI"] = [f"{lo:.{digits}f}–{hi:.{digits}f}" if lo == lo else "n=1"
                       for lo, hi in zip(table.ci95_low, table.ci95_high)]
    shown["one model 95%"] = [f"{lo:.{digits}f}–{hi:.{digits}f}" if lo == lo else "–"
                              for lo, hi in zip(table.pi95_low, table.pi95_high)]
    for c in [*SHOWN, *external_columns(table)]:
        shown[c] = table[c]
    shown["worst_shift"] = [f"{name} {acc:.{digits}f}" if name else "–" for name, acc in
                            zip(table.worst_shift, table.worst_shift_accuracy)]
    shown.insert(1, "backbone", shown.pop("backbone").str.cat(table.augment.map(lambda a: f"+{a}" if a else "")))
    return shown


def external_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(EXTERNAL)]


def notes(s: Summary) -> list[str]:
    """What a column cannot say by itself: the referral promise and whether it could be given; no clinical pair
    when no benign class is named among the classes."""
    out = [referral_note(s)] if "referral" in s.ranked_runs else []
    for vocab, benign in {(tuple(v), tuple(b)) for v, b in zip(s.ranked_runs.vocab, s.ranked_runs.benign)}:
        if not clinical_pair(list(vocab), benign):
            out.append(f"cancer_sensitivity and benign_specificity: not computed, because benign_classes "
                       f"({', '.join(benign) or 'none'}) does not split the classes ({', '.join(vocab)}) into benign "
                       f"and cancer; name the benign class(es) with benign_classes = [...]")
    return out


def referral_note(s: Summary) -> str:
    """The winner's referral promise, or why there is none, with what it did on the test part."""
    from lungfast.results.external import kept_text
    from lungfast.results.summary import shipped

    ref = shipped(s.ranked_runs[s.ranked_runs.entry == s.entries[0]]).referral
    if not isinstance(ref, dict) or "message" not in ref:
        return "referral: this record predates certified thresholds; rerun with --force for one"
    on_test = kept_text({**ref["test"], "threshold": ref["threshold"], "target": ref["target"]})
    return f"referral of {s.entries[0]} (the run export ships): {ref['message']}; on its test part: {on_test}"


def pairs_text(s: Summary) -> str:
    """Every pair of entries, Holm-adjusted, and the Friedman test over splits (or why there is none)."""
    from lungfast.results import pairs

    if s.pairs is None:
        return ""
    text = ("\nAll pairs, paired permutation test on the same test tiles (pooled over splits), p Holm-adjusted over "
            f"{len(s.pairs)} pair(s):\n\n" + s.pairs.to_markdown(index=False, floatfmt=".4f") + "\n")
    if s.friedman:
        f = s.friedman
        text += (f"\nFriedman test over {f['n_splits']} splits: chi2 = {f['statistic']:.3f}, p = {f['p_value']:.4g}; "
                 f"Nemenyi critical difference {f['critical_difference']:.3f} in mean rank (report: diagram).\n")
    else:
        text += "\n" + pairs.why_no_friedman(s.ranked_runs, s.entries) + "\n"
    return text


def efficiency_text(s: Summary) -> str:
    from lungfast.results import efficiency

    if s.efficiency is None:
        return ""
    return ("\nLabel efficiency, test accuracy (95% interval) by share of the labelled tile groups (nested, "
            "class-balanced; the test part unchanged):\n\n"
            + efficiency.as_text_table(s.efficiency, s.entries).to_markdown(index=False) + "\n")


def ladder_text(s: Summary, floatfmt: str = ".3f") -> str:
    """The ladder table (random split -> grouped split -> external sets), or "" without external sets."""
    if s.ladder is None:
        return ""
    return ("\nGeneralisation ladder, accuracy (95% interval): random split -> grouped split -> each external set\n\n"
            + ladder.as_text_table(s.ladder, s.entries).to_markdown(index=False) + "\n")


def _ran(shown: pd.DataFrame) -> pd.DataFrame:
    """Without the columns of work that did not run (no sweep: no shifted_accuracy), never a column of nan."""
    empty = [c for c in shown if shown[c].isna().all() or shown[c].astype(str).isin(["–", "nan", "None", ""]).all()]
    return shown.drop(columns=empty)


TERMINAL = ["rank", "backbone", "protocol", "test_accuracy", "95% CI", "vs_best", "n", "ece_calibrated",
            "refer_kept", "refer_kept_accuracy", "shifted_accuracy", "cancer_sensitivity"]
GIVE_UP = ["n", "cancer_sensitivity", "refer_kept", "refer_kept_accuracy", "ece_calibrated", "shifted_accuracy",
           "protocol", "95% CI"]
SHORT = {"test_accuracy": "test acc", "ece_calibrated": "ece cal", "refer_kept": "kept", "refer_kept_accuracy": "kept acc",
         "shifted_accuracy": "shifted", "cancer_sensitivity": "cancer sens"}  # the files keep the full names
WIDTH = 100


def to_terminal(s: Summary, width: int = WIDTH) -> str:
    """The key columns, at most `width` characters a line; everything else is in leaderboard.md/.csv and
    the report."""
    shown = _ran(_fmt(s.table, digits=3))
    shown = shown[[c for c in [*TERMINAL[:5], *external_columns(shown), *TERMINAL[5:]] if c in shown]]
    if s.table.protocol.nunique() == 1:  # said once by the entries themselves
        shown = shown.drop(columns="protocol")
    elif external_columns(shown):  # columns are scarce: the entry (backbone/protocol) says both in one
        shown = shown.drop(columns="protocol").assign(backbone=s.table.entry.to_numpy())
    optional = [c for c in GIVE_UP if c in shown]
    while True:
        short = {**SHORT, **{c: c.replace(EXTERNAL, "ext:") for c in external_columns(shown)}}
        text = shown.rename(columns=short).to_markdown(index=False, floatfmt=".3f")
        if max(map(len, text.splitlines())) <= width or not optional:
            break
        shown = shown.drop(columns=optional.pop(0))
    text += "\n" + fill(f"{s.scheme} scheme; every column: leaderboard.md, leaderboard.csv and report.html in "
                        f"{s.exp.path}", width) + "\n"
    if s.inflation is not None:
        text += "\nRandom-split inflation (same data, same settings):\n\n"
        inflation = _ran(s.inflation)
        if "protocol" in inflation and inflation.protocol.nunique() == 1:
            inflation = inflation.drop(columns="protocol")
        text += inflation.to_markdown(index=False, floatfmt=".3f") + "\n"
    text += ladder_text(s)
    text += efficiency_text(s)
    text += "".join("\n" + fill(n, width) + "\n" for n in notes(s))
    if s.comparison is not None:
        text += "\n" + fill(stats.describe(s.comparison), width) + "\n"
    return text


def to_markdown(s: Summary) -> str:
    text = _ran(_fmt(s.table)).to_markdown(index=False, floatfmt=".4f") + "\n"
    text += (f"\nn counts runs (training seeds x split seeds) on the {s.scheme} scheme; ci_kind says what the 95% "
             f"interval covers: runs (t interval over them), test tiles (bootstrap over the test part's tile "
             f"groups), or both combined. ece: before temperature scaling; ece_calibrated: after (what export "
             f"ships; the temperature is kept only where it lowered the evidence's cross-fitted ECE). refer_kept: share of "
             f"test tiles kept by the run's certified referral threshold (the rest go to a pathologist; 0 where "
             f"none could be certified), refer_kept_accuracy: their accuracy, refer_met: runs whose kept test "
             f"tiles reached the referral target. shifted_accuracy: mean test accuracy under "
             f"stain, stain re-targeting, blur, JPEG and magnification shifts at the middle severity; worst_shift: "
             f"the lowest of them. external:NAME: mean accuracy on that external set (another source), scored by "
             f"the calibrated model each run ships.\n")
    text += "".join(f"\n{n}\n" for n in notes(s))
    text += ("\nvs_best: against #1, Holm-adjusted paired test (tied: no evidence #1 is better at 0.05). one model 95%: "
             "where a single model of the entry is expected to score on new tile groups (a prediction interval over "
             "splits, or with one split the group bootstrap of the run that ships), wider than the interval of the "
             "mean.\n")
    text += pairs_text(s)
    text += ladder_text(s, ".4f")
    text += efficiency_text(s)
    for name in dict.fromkeys(t for p in s.runs.protocol.unique() for t in protocols.get(p).tables):
        title, make = TABLES[name]
        table = make(s.runs[s.runs.train_fraction == s.top_fraction])
        if table is not None:
            text += f"\n{title}:\n\n" + table.to_markdown(index=False) + "\n"
    if s.inflation is not None:
        text += "\nRandom-split inflation (same data, same settings):\n\n"
        text += s.inflation.to_markdown(index=False, floatfmt=".4f") + "\n"
    if s.comparison is not None:
        text += "\n" + stats.describe(s.comparison) + "\n"
    return text


def write(s: Summary) -> str:
    """Write leaderboard.csv/.md (+ inflation.csv, comparison.json) and return what a terminal shows."""
    exp = s.exp
    files.write_csv(exp.leaderboard_csv, s.table)
    if s.ladder is not None:
        files.write_csv(exp.ladder_csv, s.ladder)
    if s.efficiency is not None:
        files.write_csv(exp.efficiency_csv, s.efficiency)
    if s.inflation is not None:
        files.write_csv(exp.inflation_csv, s.inflation)
    if s.comparison is not None:
        files.write_json(exp.comparison_json, s.comparison)
    files.write_text(exp.leaderboard_md, to_markdown(s))
    return to_terminal(s)


def update_readme(path: Path, s: Summary, note: str) -> None:
    """Refresh the README's `<!-- leaderboard:NAME -->` block from the records."""
    readme.replace_block(path, f"leaderboard:{s.exp.name}", f"{note}\n\n{to_markdown(s)}")


def probe_table(runs: pd.DataFrame) -> pd.DataFrame | None:
    """1-NN and linear-probe accuracy per backbone and scheme, as LC25000-clean publishes them."""
    cols = {}
    knn = runs[runs.protocol == "knn"]
    if len(knn):
        cols["1-NN"] = knn.assign(value=[p.get("knn1_test_accuracy") for p in knn.probe])
    if (runs.protocol == "linear").any():
        cols["linear"] = runs[runs.protocol == "linear"].assign(value=lambda d: d.test_accuracy)
    if not cols:
        return None
    rows = {}
    for name, df in cols.items():
        for (backbone, scheme), g in df.groupby(["backbone", "scheme"]):
            v = g.groupby("split_seed").value.mean()  # linear and 1-NN do not depend on the training seed
            text = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
            rows.setdefault(backbone, {"backbone": backbone})[f"{name} {scheme}"] = f"{text} (n={len(v)})"
    return pd.DataFrame(list(rows.values())).fillna("–")


def fewshot_table(runs: pd.DataFrame) -> pd.DataFrame | None:
    few = runs[runs.protocol == "fewshot"]
    if not len(few):
        return None
    rows = []
    for (backbone, scheme), g in few.groupby(["backbone", "scheme"]):
        row = {"backbone": backbone, "scheme": scheme, "n": g.split_seed.nunique()}
        for k in sorted({k for p in g.probe for k in p.get("shots", {})}, key=int):
            row[f"{k}-shot"] = f"{pd.Series([p['shots'][k]['mean'] for p in g.probe if k in p['shots']]).mean():.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


# the extra tables protocols fill (`lungfast.protocols`, field `tables`): name -> (title, runs -> table or None)
TABLES = {
    "frozen_features": ("Frozen features, test accuracy mean ± std over split seeds (LC25000-clean's columns)",
                        probe_table),
    "few_shot": ("Few-shot (SimpleShot), test accuracy: mean over split seeds of the mean over 100 episodes",
                 fewshot_table),
}
