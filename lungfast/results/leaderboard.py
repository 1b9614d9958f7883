"""The leaderboard files, rendered from the experiment's `Summary` (never edited by hand): leaderboard.csv
and .md, inflation.csv, comparison.json; and the README block `<!-- leaderboard:NAME -->`."""

from __future__ import annotations

from pathlib import Path
from textwrap import fill

import pandas as pd

from lungfast import files
from lungfast.results import columns, ladder, protocol_tables, readme, stats
from lungfast.results.evaluate import clinical_pair
from lungfast.results.summary import EXTERNAL, Summary


def _fmt(table: pd.DataFrame, where: str = columns.MD, digits: int = 4) -> pd.DataFrame:
    """The columns a table shows (the column registry), as it prints them, then the external sets'."""
    shown = pd.DataFrame(
        {c.name: c.text(table, digits) for c in columns.shown(where) if not c.csv or c.name in table}, index=table.index
    )
    for c in external_columns(table):
        shown[c] = table[c]
    return shown


def external_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(EXTERNAL)]


def notes(s: Summary) -> list[str]:
    """What a column cannot say by itself: the referral promise and whether it could be given; no clinical pair
    when no benign class is named among the classes."""
    out = [referral_note(s)] if "referral" in s.ranked_runs else []
    for vocab, benign in {(tuple(v), tuple(b)) for v, b in zip(s.ranked_runs.vocab, s.ranked_runs.benign)}:
        if not clinical_pair(list(vocab), benign):
            out.append(
                f"cancer_sensitivity and benign_specificity: not computed, because benign_classes "
                f"({', '.join(benign) or 'none'}) does not split the classes ({', '.join(vocab)}) into benign "
                f"and cancer; name the benign class(es) with benign_classes = [...]"
            )
    if "resumed_after_epoch" in s.ranked_runs:
        resumed = s.ranked_runs[s.ranked_runs.resumed_after_epoch.fillna(0) > 0]
        if len(resumed):
            which = ", ".join(
                f"{r.entry} (seed {r.seed}, {r.scheme} split {r.split_seed}, after epoch {int(r.resumed_after_epoch)})"
                for r in resumed.itertuples()
            )
            out.append(
                f"resumed: {which}. A resumed run restores its weights and optimizer, not the random state of its "
                f"data order and augmentation, so its figures differ from an uninterrupted run's (--force reruns it)."
            )
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
    text = (
        "\nAll pairs, paired permutation test on the same test tiles (pooled over splits), p Holm-adjusted over "
        f"{len(s.pairs)} pair(s):\n\n" + s.pairs.to_markdown(index=False, floatfmt=".4f") + "\n"
    )
    if s.friedman:
        f = s.friedman
        text += (
            f"\nFriedman test over {f['n_splits']} splits: chi2 = {f['statistic']:.3f}, p = {f['p_value']:.4g}; "
            f"Nemenyi critical difference {f['critical_difference']:.3f} in mean rank (report: diagram).\n"
        )
    else:
        text += "\n" + pairs.why_no_friedman(s.ranked_runs, s.entries) + "\n"
    return text


def efficiency_text(s: Summary) -> str:
    from lungfast.results import efficiency

    if s.efficiency is None:
        return ""
    return (
        "\nLabel efficiency, test accuracy (95% interval) by share of the labelled tile groups (nested, "
        "class-balanced; the test part unchanged):\n\n"
        + efficiency.as_text_table(s.efficiency, s.entries).to_markdown(index=False)
        + "\n"
    )


def ladder_text(s: Summary, floatfmt: str = ".3f") -> str:
    """The ladder table (random split -> grouped split -> external sets), or "" without external sets."""
    if s.ladder is None:
        return ""
    return (
        "\nGeneralisation ladder, accuracy (95% interval): random split -> grouped split -> each external set\n\n"
        + ladder.as_text_table(s.ladder, s.entries).to_markdown(index=False)
        + "\n"
    )


def _ran(shown: pd.DataFrame) -> pd.DataFrame:
    """Without the columns of work that did not run (no sweep: no shifted_accuracy), never a column of nan."""
    empty = [c for c in shown if shown[c].isna().all() or shown[c].astype(str).isin(["–", "nan", "None", ""]).all()]
    return shown.drop(columns=empty)


WIDTH = 100


def to_terminal(s: Summary, width: int = WIDTH) -> str:
    """The key columns, at most `width` characters a line; everything else is in leaderboard.md/.csv and
    the report."""
    shown = _ran(_fmt(s.table, columns.TERMINAL, digits=3))
    first = [c for c in shown if c not in external_columns(shown)]  # the external sets right after the 95% CI
    at = first.index("95% CI") + 1 if "95% CI" in first else len(first)
    shown = shown[[*first[:at], *external_columns(shown), *first[at:]]]
    if s.table.protocol.nunique() == 1:  # said once by the entries themselves
        shown = shown.drop(columns="protocol")
    elif external_columns(shown):  # columns are scarce: the entry (backbone/protocol) says both in one
        shown = shown.drop(columns="protocol").assign(backbone=s.table.entry.to_numpy())
    optional = [c.name for c in sorted(columns.REGISTRY, key=lambda c: c.drop) if c.drop and c.name in shown]
    while True:
        short = {
            **{c.name: c.header for c in columns.REGISTRY},
            **{c: c.replace(EXTERNAL, "ext:") for c in external_columns(shown)},
        }
        text = shown.rename(columns=short).to_markdown(index=False, floatfmt=".3f")
        if max(map(len, text.splitlines())) <= width or not optional:
            break
        shown = shown.drop(columns=optional.pop(0))
    text += (
        "\n"
        + fill(
            f"{s.scheme} scheme; every column: leaderboard.md, leaderboard.csv and report.html in {s.exp.path}", width
        )
        + "\n"
    )
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
    text += (
        f"\nOn the {s.scheme} scheme. {columns.legend()}. external:NAME: mean accuracy on that external set "
        "(another source), scored by the calibrated model each run ships.\n"
    )
    text += "".join(f"\n{n}\n" for n in notes(s))
    text += pairs_text(s)
    text += ladder_text(s, ".4f")
    text += efficiency_text(s)
    text += protocol_tables.markdown(s.runs[s.runs.train_fraction == s.top_fraction])
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
