"""docs/reference.md's generated blocks, made from the code itself, never typed: the experiment keys (the fields
of `config.ExperimentConfig` and their comments), the command line (its argparse parser), the registries
(protocols, fine-tuning heads, model formats, leaderboard columns) and the layout map (the import graph, with
each module's first docstring line).

    python tools/docs.py          # rewrite the blocks
    python tools/docs.py --check  # exit 1 naming each stale block (tests/test_docs.py runs it in the fast tier)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import os
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
REFERENCE = REPO / "docs" / "reference.md"


def _comments(source: str) -> dict[int, str]:
    """line number -> the comment on it."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def keys() -> str:
    """Every experiment key: its type, default and the comment config.py gives it (unknown keys are errors)."""
    source = (REPO / "lungfast" / "config.py").read_text()
    comments, lines = _comments(source), source.splitlines()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "ExperimentConfig")
    from lungfast.config import ExperimentConfig

    fields = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign):
            continue
        above = node.lineno - 1
        note = (
            comments.get(node.lineno)
            or comments.get(node.end_lineno)
            or (comments.get(above) if lines[above - 1].strip().startswith("#") else "")
        )
        found = fields[node.target.id]
        value = found.default_factory() if found.default_factory is not dataclasses.MISSING else found.default
        default = "required" if value is dataclasses.MISSING else repr(value)
        kind = ast.unparse(node.annotation).replace("|", "\\|")
        rows.append(f"| `{node.target.id}` | `{kind}` | `{default}` | {note.replace('|', '/')} |")
    return "\n".join(rows)


def cli() -> str:
    """`lungfast --help` and each command's help, at 100 columns."""
    from lungfast import cli as lungfast_cli

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width: the page is the same on every machine
    try:
        parser = lungfast_cli.parser()
        out = ["```text", parser.format_help().rstrip(), "```"]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            out += ["", f"### lungfast {name}", "", "```text", p.format_help().rstrip(), "```"]
    finally:
        os.environ.pop("COLUMNS") if saved is None else os.environ.update(COLUMNS=saved)
    return "\n".join(out)


def registries() -> str:
    from lungfast import fine_tune_heads, protocols
    from lungfast.results import columns
    from lungfast.ship import formats

    out = ["### Protocols (`lungfast/protocols.py`)", "", "| name | frozen body | what it is |", "|---|---|---|"]
    out += [f"| `{p.name}` | {'yes' if p.frozen else 'no'} | {p.note} |" for p in protocols.REGISTRY.values()]
    out += [
        "",
        "### Fine-tuning heads (`lungfast/fine_tune_heads.py`, key `head`)",
        "",
        "| name | fastai head keywords |",
    ]
    out += ["|---|---|"] + [
        f"| `{n}`{' (default)' if n == fine_tune_heads.DEFAULT else ''} | `{kw or 'fastai defaults'}` |"
        for n, kw in fine_tune_heads.REGISTRY.items()
    ]
    out += ["", "### Model formats (`lungfast/ship/formats.py`, `export --format`)", ""]
    out += ["| name | default file | card library | predicts in |", "|---|---|---|---|"]
    out += [
        f"| `{f.name}` | `{f.default_name}` | {f.library} | {f.runs_in or 'the recorded precision'} |"
        for f in formats.REGISTRY.values()
    ]
    out += ["", "### Leaderboard columns (`lungfast/results/columns.py`)", ""]
    out += ["| column | terminal | shown in | mean over runs | meaning |", "|---|---|---|---|---|"]
    out += [
        f"| `{c.name}` | {c.header} | {', '.join(sorted(c.shown)) or 'csv only'}{'' if c.csv else ' (display)'} | "
        f"{'yes' if c.mean else ''} | {c.doc} |"
        for c in columns.REGISTRY
    ]
    return "\n".join(out)


def layout() -> str:
    """Every module by floor (bottom up), with the first line of its docstring."""
    import import_graph

    order = ["ground", "data", "results", "train", "probe", "ship", "dataset", "runner", "demo", "notebook"]
    order += ["commands", "cli"]
    by_floor: dict[str, list[str]] = {}
    for name, path in import_graph.modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        line = doc.strip().split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".") + "."
        rel = path.relative_to(REPO).as_posix()
        by_floor.setdefault(import_graph.floor(name), []).append(f"- `{rel}`: {line}")
    graph = import_graph.floor_graph()
    out = []
    for f in order + sorted(set(by_floor) - set(order)):
        if f in by_floor:
            below = ", ".join(sorted(graph.get(f, ()))) or "nothing of lungfast"
            out += [f"### {f} (imports {below})", "", *by_floor[f], ""]
    return "\n".join(out).rstrip()


BLOCKS = {"keys": keys, "cli": cli, "registries": registries, "layout": layout}


def rendered(text: str, name: str, body: str) -> str:
    start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
    head, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"{REFERENCE}: no {start} block")
    return f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main(check: bool = False) -> int:
    text = original = REFERENCE.read_text()
    for name, make in BLOCKS.items():
        text = rendered(text, name, make())
    if check:
        stale = [n for n in BLOCKS if rendered(original, n, BLOCKS[n]()) != original]
        for n in stale:
            print(f"{REFERENCE.relative_to(REPO)}: block {n} is stale; run python tools/docs.py", file=sys.stderr)
        return 1 if stale else 0
    if text != original:
        REFERENCE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
