"""The import graph between lungfast's floors, and the arrows that must never return.

    python tools/import_graph.py        # floor -> the floors it imports (every import, lazy ones too)

Floors, bottom up: the ground floor (files, cache, errors, progress, protocols, config, typecheck, cohorts,
runspec), data, results, train and probe, ship, and the top (runner, launch, demo, the notebook API, the CLI's commands,
cli). A floor imports only floors below it, with one exception the flow of data asks for: trainers (train,
probe) write run records through results, and results never imports a trainer.
`FORBIDDEN` lists the arrows tests keep out; `cycles()` finds any import cycle between modules.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "lungfast"
GROUND = {
    "files",
    "cache",
    "errors",
    "progress",
    "protocols",
    "config",
    "runspec",
    "typecheck",
    "cohorts",
    "fine_tune_heads",
    "resources",
    "tta",
    "lungfast",
}
ORDER = [  # floors from the ground up; each of the first six imports none above it
    "ground",
    "data",
    "results",
    "train",
    "probe",
    "ship",
    "preflight",
    "runner",
    "launch",
    "dataset",
    "demo",
    "notebook",
    "commands",
    "cli",
]
FORBIDDEN = {  # floor -> floors it must not import
    **{floor: set(ORDER[i + 1 :]) for i, floor in enumerate(ORDER[:6])},
    "launch": {"notebook", "commands", "cli"},
    "notebook": {"commands", "cli", "launch"},
    "commands": {"notebook", "cli"},
}


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def edges() -> dict[str, set[str]]:
    """module -> lungfast modules it imports, anywhere in the file."""
    known = modules()
    graph = defaultdict(set)
    for name, f in known.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
                graph[name].update(found or ([node.module] if node.module in known else []))
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in known)
        graph[name].discard(name)
    return graph


def floor(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "lungfast"
    return "ground" if name in GROUND else name


def floor_graph() -> dict[str, set[str]]:
    out = defaultdict(set)
    for a, targets in edges().items():
        out[floor(a)].update(floor(b) for b in targets if floor(b) != floor(a))
    return out


def forbidden() -> list[str]:
    """'a -> b' for every module import that crosses a forbidden arrow."""
    return [
        f"{a} -> {b}"
        for a, targets in sorted(edges().items())
        for b in sorted(targets)
        if floor(b) in FORBIDDEN.get(floor(a), set())
    ]


def cycles() -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan)."""
    graph, index, low, stack, on, found = edges(), {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    order = ORDER
    graph = floor_graph()
    for f in order:
        print(f"{f:8} -> {', '.join(sorted(graph.get(f, ()), key=order.index)) or '(nothing)'}")
    bad, loops = forbidden(), cycles()
    print("forbidden arrows: " + (", ".join(bad) if bad else "none"))
    print("import cycles: " + ("; ".join(" <-> ".join(c) for c in loops) if loops else "none"))
    sys.exit(1 if bad or loops else 0)
