"""The house: floors import only downward, no import cycle, small modules (the fast tier keeps it so)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import import_graph  # noqa: E402


def test_no_arrow_runs_back_up():
    assert import_graph.forbidden() == []


def test_no_import_cycle_between_modules():
    assert import_graph.cycles() == []


def test_the_checker_sees_a_returning_arrow(monkeypatch):
    real = import_graph.edges()
    monkeypatch.setattr(
        import_graph,
        "edges",
        lambda: {
            **real,
            "lungfast.data.store": {"lungfast.results.record"},
            "lungfast.results.record": {"lungfast.data.store"},
        },
    )
    assert import_graph.forbidden() == ["lungfast.data.store -> lungfast.results.record"]
    assert ["lungfast.data.store", "lungfast.results.record"] in import_graph.cycles()


def test_modules_stay_small():
    big = {str(f): n for f in import_graph.modules().values() if (n := len(f.read_text().splitlines())) >= 250}
    assert big == {}


def test_no_protocol_name_is_compared_as_a_literal_outside_the_registry():
    """What depends on a protocol reads its row (`protocols.REGISTRY`), never `protocol == "knn"`."""
    import ast

    from lungfast import protocols

    names = set(protocols.names())
    found = []
    for module, path in import_graph.modules().items():
        if module == "lungfast.protocols":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    literals = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    found += [
                        f"{module}:{node.lineno} {lit.value!r}"
                        for lit in literals
                        if isinstance(lit, ast.Constant) and lit.value in names
                    ]
    assert found == []
