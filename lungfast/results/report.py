"""`report.html`: one static, self-contained page per experiment (images inlined, no server, no internet)."""

from __future__ import annotations

import base64
import html
import platform
from pathlib import Path

import pandas as pd

from lungfast import files
from lungfast.data import split
from lungfast.results import charts, columns, efficiency, ladder, pairs, stats
from lungfast.results.layout import FIGURES, NEWER_FIGURES, ExperimentDir
from lungfast.results.summary import Summary

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}.figs img{max-width:420px;border:1px solid #ddd}
.side{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}details{margin:1em 0}
details table{font-size:90%}summary{cursor:pointer}"""


def _img(path: Path, caption: str) -> str:
    return _png(path.read_bytes(), caption)


def _png(data: bytes, caption: str, css_id: str | None = None) -> str:
    ident = f' id="{css_id}"' if css_id else ""
    return (
        f'<figure><img{ident} alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _fig(fig, caption: str, css_id: str | None = None) -> str:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return _png(buf.getvalue(), caption, css_id)


def _table(df: pd.DataFrame, css_id: str) -> str:
    return df.to_html(index=False, table_id=css_id, float_format=lambda v: f"{v:.4f}", na_rep="–", border=0)


def key_table(table: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs first; `backbone` names the augmentation too (x+stain)."""
    return table[[c for c in columns.names(columns.REPORT) if c in table]].assign(
        backbone=table.entry.str.split("/").str[0]
    )


def split_summary(exp: ExperimentDir) -> pd.DataFrame:
    """Images and tile groups per class and part, for every split folder."""
    frames = []
    for d in exp.split_dirs():
        where = "." if d.path == exp.path else d.name
        frames.append(split.summary(split.read_csv(d.split_csv)).assign(split_folder=where))
    summary = pd.concat(frames)
    return (
        summary.pivot_table(index=["split_folder", "label"], columns="part", values=["images", "groups"], aggfunc="sum")
        .reset_index()
        .pipe(_flatten)
    )


def _flatten(df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [" ".join(str(p) for p in c if p).strip() if isinstance(c, tuple) else c for c in df.columns]
    return df


def build(s: Summary) -> str:
    exp, table = s.exp, s.table
    parts = [
        f"<h1>lungfast: {html.escape(exp.name)}</h1>",
        "<h2>Leaderboard</h2>",
        f"<p>Test part, {html.escape(s.scheme)} scheme; mean over runs (training seeds x split seeds), "
        f"95% interval (ci_kind says what it covers: seeds, splits, test tiles).</p>",
        "<div class='side'>",
        _table(key_table(table), "leaderboard"),
        _fig(charts.comparison(s), "Test accuracy with 95% interval whiskers", "comparison-chart"),
        "</div>",
        "<details><summary>All columns</summary>",
        _table(table, "leaderboard-all"),
        "</details>",
    ]
    speed = charts.accuracy_vs_speed(s)
    if speed is not None:
        parts += [
            "<h2>Accuracy against cost</h2>",
            _fig(speed, "Test accuracy against inference img/s at batch 64; the Pareto front joined", "pareto-chart"),
        ]
    if s.comparison:
        parts.append(f"<p id='comparison'>{html.escape(stats.describe(s.comparison))}</p>")
    if s.pairs is not None:
        parts += ["<h2>All pairs (paired test, Holm-adjusted)</h2>", _table(s.pairs, "pairs")]
        if s.friedman:
            parts.append(
                _fig(
                    pairs.cd_diagram(s.friedman, exp.name), "Critical-difference diagram (Nemenyi, 0.05)", "cd-diagram"
                )
            )
        else:
            parts.append(f"<p id='no-friedman'>{html.escape(pairs.why_no_friedman(s.ranked_runs, s.entries))}</p>")
    shifts = charts.per_shift(s)
    if shifts:
        parts += [
            "<h2>Robustness: accuracy under each input shift</h2><div class='figs' id='shifts'>",
            *[_fig(fig, f"{name}: accuracy vs severity") for name, fig in shifts.items()],
            "</div>",
        ]
    if s.inflation is not None:
        parts += ["<h2>Random-split inflation</h2>", _table(s.inflation, "inflation")]
    if s.ladder is not None:
        parts += [
            "<h2>Generalisation ladder: random split → grouped split → external sets</h2><div class='side'>",
            _table(ladder.as_text_table(s.ladder, s.entries), "ladder"),
            _fig(
                ladder.chart(s.ladder, s.entries, exp.name), "Accuracy per rung, 95% interval whiskers", "ladder-chart"
            ),
            "</div>",
        ]
    if s.efficiency is not None:
        parts += [
            "<h2>Label efficiency</h2><div class='side'>",
            _table(efficiency.as_text_table(s.efficiency, s.entries), "efficiency"),
            _fig(
                efficiency.chart(s.efficiency, s.entries, exp.name),
                "Test accuracy against labelled tiles",
                "efficiency-chart",
            ),
            "</div>",
        ]
    parts += ["<h2>Splits (images and tile groups per class and part)</h2>", _table(split_summary(exp), "splits")]
    for backbone in s.entries:
        best = s.best_run(backbone)
        acc = s.runs.test_accuracy[s.runs.run_dir == str(best.path)].iloc[0]
        parts.append(
            f"<h2>{html.escape(backbone)}</h2><p>shown: {html.escape(str(best.path.relative_to(exp.path)))} "
            f"(test accuracy {acc:.4f})</p><div class='figs'>"
        )
        parts += [
            _img(best.figure(f), cap) for f, cap in {**FIGURES, **NEWER_FIGURES}.items() if best.figure(f).is_file()
        ]
        parts.append("</div>")
    first = s.runs.iloc[0]
    env = {
        **first.versions,
        "python": platform.python_version(),
        **{f"device.{k}": v for k, v in first.device.items()},
        "threads": first.threads,
    }
    parts += ["<h2>Environment</h2>", _table(pd.DataFrame([env]), "environment")]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>lungfast {html.escape(exp.name)}"
        f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write(s: Summary) -> Path:
    files.write_text(s.exp.report_html, build(s))
    return s.exp.report_html
