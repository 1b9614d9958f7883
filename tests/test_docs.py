"""docs/reference.md's generated blocks (experiment keys, registries, command line, layout) match the code."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import docs  # noqa: E402


def test_every_generated_block_is_current(capsys):
    assert docs.main(check=True) == 0, capsys.readouterr().err


def test_a_stale_block_is_named(monkeypatch, capsys):
    real = docs.BLOCKS["keys"]
    monkeypatch.setitem(docs.BLOCKS, "keys", lambda: real() + "\n| `new_key` | `int` | `1` | a key added in code |")
    assert docs.main(check=True) == 1
    assert "block keys is stale" in capsys.readouterr().err


def test_every_experiment_key_is_documented_with_its_comment():
    from lungfast.config import ExperimentConfig

    text = docs.keys()
    for f in ExperimentConfig.__dataclass_fields__:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{f}` |"))
        assert row.rstrip(" |").split("|")[-1].strip(), f"{f} has no comment in config.py"
