"""Generated blocks in a README: the text between `<!-- TAG -->` and `<!-- /TAG -->` is replaced by what
lungfast measured or computed, never typed. Used by `lungfast leaderboard --readme` and the benchmarks."""

from __future__ import annotations

from pathlib import Path

from lungfast import files
from lungfast.errors import LungfastError


def replace_block(readme: Path, tag: str, body: str, inline: bool = False) -> None:
    """`inline`: the block sits inside a sentence or a table cell, so no line breaks around the body."""
    start, end = f"<!-- {tag} -->", f"<!-- /{tag} -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise LungfastError(f"{readme}: no {start} ... {end} block to fill; add the two markers where it belongs")
    head, rest = text.split(start, 1)
    gap = "" if inline else "\n"
    files.write_text(readme, f"{head}{start}{gap}{body.strip()}{gap}{end}{rest.split(end, 1)[1]}")
