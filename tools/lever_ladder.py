"""The lever ladder: what each lever (protocol, test-time views, feature ensemble) gave, read from run records.

    python tools/lever_ladder.py results/ladder-ens results/ladder-flips ...   # markdown table on stdout
    python tools/lever_ladder.py results/ladder-dihedral --readme docs/results.md --block ladder-tta

One row per leaderboard entry of each experiment folder (the honest scheme): mean test accuracy over its splits
with the standard deviation and the 95% interval of the mean, the tiles per second the embedding (or frozen
stages) ran at when its cache was filled, the mean fit seconds per run, and inference img/s at batch 64. Every
figure comes from the records; nothing is typed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lungfast.results.layout import ExperimentDir  # noqa: E402
from lungfast.results.summary import summarize  # noqa: E402


def rows(folder: str) -> list[dict]:
    s = summarize(ExperimentDir(folder))
    out = []
    for r in s.table.itertuples():
        runs = s.runs[(s.runs.entry == r.entry) & (s.runs.scheme == r.scheme)]
        embed = pd.to_numeric(runs["embed_img_per_s"], errors="coerce").mean() if "embed_img_per_s" in runs else None
        out.append(
            {
                "experiment": Path(folder).name,
                "entry": r.entry,
                "tta": runs.tta.iloc[0] if "tta" in runs else "none",
                "splits": int(r.n_splits),
                "epochs": int(runs.epochs_run.max()),
                "test acc": f"{r.test_accuracy:.4f}" + (f" ± {r.test_accuracy_std:.4f}" if r.n_splits > 1 else ""),
                "95% CI of mean": f"{r.ci95_low:.4f}–{r.ci95_high:.4f}",
                "embed img/s": "–" if embed is None or embed != embed else f"{embed:.0f}",
                "fit s/run": f"{runs.train_seconds.mean():.0f}",
                "infer img/s b64": f"{r.infer_img_per_s_b64:.0f}",
            }
        )
    return out


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="experiment folders under results/")
    p.add_argument("--readme", help="also write the table into this page's block (see --block)")
    p.add_argument("--block", default="ladder", help="the block's tag: <!-- TAG --> ... <!-- /TAG -->")
    args = p.parse_args()
    table = pd.DataFrame([row for folder in args.folders for row in rows(folder)])
    text = table.sort_values("test acc", ascending=False).to_markdown(index=False)
    print(text)
    if args.readme:
        from lungfast.results.readme import replace_block

        replace_block(Path(args.readme), args.block, text)


if __name__ == "__main__":
    main()
