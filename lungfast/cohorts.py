"""External cohorts in an experiment file: labelled image folders from another source, scored by every run.

    [[external]]
    name = "lunghist700-20x"
    data_dir = "~/data/LungHist700/images"
    include = "*_20x_*"
    label_map = { "aca_*" = "lung_aca", "nor" = "lung_n", "scc_*" = "lung_scc" }
    groups_csv = "~/data/LungHist700/groups.csv"
    group_column = "patient_id"

Only the description lives here (the ground floor); `data.external` reads the images and `results.external`
scores them. Tile groups are given as for the training data: a CSV column, or a pattern on file names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from lungfast import typecheck
from lungfast.errors import LungfastError

NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,59}"  # a leaderboard column and a file name


@dataclass(frozen=True)
class ExternalSet:
    name: str  # how records, the leaderboard and the report name it
    data_dir: str  # one sub-folder of images per class, as the training data (sub-folders of those count too)
    label_map: dict[str, str] = field(default_factory=dict)  # folder-name glob -> training class ("" leaves it out)
    include: str = "*"  # glob on file names: which images count (LungHist700 keeps 20x and 40x in one folder)
    groups_csv: str | None = None  # a CSV with a `filename` column and `group_column` (e.g. one patient per group)
    group_column: str = "group_id"  # the groups CSV's column that holds the group
    group_pattern: str | None = None  # regex on file names: its first group (or the whole match) is the group


def check_groups(groups_csv: str | None, group_pattern: str | None, where: str) -> None:
    """Groups come from a CSV or from a pattern, never both; a pattern must compile."""
    if groups_csv and group_pattern:
        raise LungfastError(f"{where}: groups_csv and group_pattern both given; tile groups come from one of them")
    if group_pattern is not None:
        try:
            re.compile(group_pattern)
        except re.error as e:
            raise LungfastError(f"{where}: group_pattern {group_pattern!r} is not a regular expression ({e})") from None


def parse(raw: list[dict], source: str) -> list[ExternalSet]:
    """The `[[external]]` tables of an experiment file, checked; paths with `~` expanded."""
    out = []
    for i, entry in enumerate(raw, 1):
        where = f"{source}: external set {i}" + (f" ({entry['name']})" if isinstance(entry.get("name"), str) else "")
        typecheck.check_fields(ExternalSet, entry, where)
        ext = ExternalSet(
            **{
                **entry,
                "data_dir": os.path.expanduser(entry["data_dir"]),
                **({"groups_csv": os.path.expanduser(entry["groups_csv"])} if entry.get("groups_csv") else {}),
            }
        )
        if not re.fullmatch(NAME, ext.name):
            raise LungfastError(f"{where}: name must be a plain name (letters, digits, _ . + -), got {ext.name!r}")
        check_groups(ext.groups_csv, ext.group_pattern, where)
        out.append(ext)
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise LungfastError(f"{source}: external set names must differ, got {', '.join(names)}")
    return out
