"""Test-time views of a tile (the experiment key `tta`): a tissue tile has no up and no left, so a model may
look at it in every orientation of the dihedral group and average what it sees.

View k turns the tile k % 4 quarter turns, then mirrors it left-right when k >= 4: views 0-7 are the eight
symmetries of a square. "flips" is the subset of the four mirror images (none, upside down, left-right, both).
This module is the registry (no torch, so the config reads it); `train.views` applies it to a model.
"""

from __future__ import annotations

from lungfast.errors import LungfastError

REGISTRY: dict[str, tuple[int, ...]] = {
    "none": (0,),  # the tile as it is
    "flips": (0, 2, 4, 6),  # as is, upside down (a half turn), mirrored left-right, mirrored top-bottom
    "dihedral": tuple(range(8)),  # all four quarter turns, each also mirrored
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> tuple[int, ...]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise LungfastError(f"unknown tta {name!r}; known: {', '.join(REGISTRY)}") from None
