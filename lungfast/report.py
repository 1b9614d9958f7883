"""`report.html`: one static, self-contained page per experiment (images inlined, no server, no internet)."""

from __future__ import annotations

import base64
import html
import platform
from pathlib import Path

import pandas as pd

from lungfast import leaderboard, record, split

FIGURES = [("confusion_matrix.png", "Confusion matrix (test)"), ("loss.png", "Loss curves"),
           ("top_losses.png", "Top losses (test)"), ("saliency.png", "Grad-CAM saliency (test)")]
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}.figs img{max-width:420px;border:1px solid #ddd}"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(df: pd.DataFrame, css_id: str) -> str:
    return df.to_html(index=False, table_id=css_id, float_format=lambda v: f"{v:.4f}", na_rep="–", border=0)


def split_summary(exp_dir: Path) -> pd.DataFrame:
    frames = []
    for csv in sorted([*exp_dir.glob("split.csv"), *exp_dir.glob("*/split.csv")]):
        where = "." if csv.parent == exp_dir else csv.parent.name
        frames.append(split.summary(pd.read_csv(csv, dtype={"group_id": str})).assign(split_folder=where))
    summary = pd.concat(frames)
    return summary.pivot_table(index=["split_folder", "label"], columns="split", values=["images", "groups"],
                               aggfunc="sum").reset_index().pipe(_flatten)


def _flatten(df: pd.DataFrame) -> pd.DataFrame:
    df.columns = [" ".join(str(p) for p in c if p).strip() if isinstance(c, tuple) else c for c in df.columns]
    return df


def build(exp_dir: Path) -> str:
    runs = leaderboard.load_runs(exp_dir)
    table, infl = leaderboard.build(exp_dir, runs), leaderboard.inflation(runs)
    comp = leaderboard.comparison(table, runs)
    parts = [f"<h1>lungfast: {html.escape(exp_dir.name)}</h1>", "<h2>Leaderboard</h2>",
             f"<p>Test split, {html.escape(leaderboard.primary_split(runs))} split; mean over seeds and splits, "
             f"95% t interval.</p>", _table(table, "leaderboard")]
    if comp:
        from lungfast import stats

        parts.append(f"<p id='comparison'>{html.escape(stats.describe(comp))}</p>")
    if infl is not None:
        parts += ["<h2>Random-split inflation</h2>", _table(infl, "inflation")]
    parts += ["<h2>Split summary (images and tile groups per class)</h2>", _table(split_summary(exp_dir), "splits")]
    main = runs[runs.split == leaderboard.primary_split(runs)]
    for backbone in table.backbone:
        best = main[main.backbone == backbone].sort_values("test_accuracy", ascending=False).iloc[0]
        where = Path(best.run_dir)
        parts.append(f"<h2>{html.escape(backbone)}</h2><p>shown: {html.escape(str(where.relative_to(exp_dir)))} "
                     f"(test accuracy {best.test_accuracy:.4f})</p><div class='figs'>")
        parts += [_img(where / f, cap) for f, cap in FIGURES]
        parts.append("</div>")
    first = runs.iloc[0]
    env = {**first.versions, "python": platform.python_version(), **{f"device.{k}": v for k, v in first.device.items()},
           "threads": first.threads}
    parts += ["<h2>Environment</h2>", _table(pd.DataFrame([env]), "environment")]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>lungfast {html.escape(exp_dir.name)}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def write(exp_dir: Path) -> Path:
    target = exp_dir / "report.html"
    record.write_text(target, build(exp_dir))
    return target
