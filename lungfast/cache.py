"""The user's lungfast cache folder: tile stores, embeddings, converted weights, trusted-pickle entries.

`LUNGFAST_CACHE` overrides it (tests point it at a temporary folder); else `$XDG_CACHE_HOME/lungfast`,
else `~/.cache/lungfast`. Each user of the cache asks for its own sub-folder here.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = (
        os.environ.get("LUNGFAST_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lungfast"
    )
    return Path(root, *parts)
