"""The ground floor for files, importable by every stage: atomic writes, checksums and a file's identity.

Atomic writes: a reader never sees a half-written file or a half-made run folder. A file is written to a
temporary name beside its target and renamed onto it; a run is trained into a staging folder and renamed into
place when every file is there, with the user's normal permissions (umask), not a temporary file's 0600. A cache
keys a source file by its identity (path, size, mtime); `os_error_line` words a failed write as one line.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from lungfast.cache import cache_dir
from lungfast.errors import LungfastError

log = logging.getLogger("lungfast")


def identity(path: str | Path) -> tuple[str, int, int]:
    """What a cache keys a source file by: absolute path, byte size and mtime, so a changed file is new."""
    st = os.stat(path)
    return os.path.abspath(path), st.st_size, st.st_mtime_ns


def identity_key(path: str | Path) -> str:
    return "|".join(map(str, identity(path)))


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _sweep(target: Path) -> None:
    """Remove temporary files of `target` that a killed process of this machine left (SIGKILL skips every
    cleanup). Temporary names carry pid@host, so a live writer's file, or another machine's, is never touched."""
    prefix, host = f".{target.name}.", socket.gethostname()
    for p in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        owner = p.name[len(prefix) : -len(".tmp")].rsplit(".", 1)[0]
        pid, _, on = owner.partition("@")
        if on == host and pid.isdigit() and not _alive(int(pid)):
            p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no room: disk full, quota reached, file size limit
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)  # no permission, or a read-only file system


def write_error(e: BaseException, target: Path) -> OSError | None:
    """`e` as an OSError naming `target` when it is a failed write, else None. torch's zip writer reports a
    full disk as a RuntimeError without the file ("file write failed"); numpy and PIL raise OSError without it."""
    if isinstance(e, OSError) and (e.errno in FULL or e.errno in DENIED or e.filename is None and e.errno is not None):
        return OSError(e.errno, e.strerror or os.strerror(e.errno), str(target))
    if isinstance(e, RuntimeError) and any(
        m in str(e) for m in ("write failed", "PytorchStreamWriter", "inline_container")
    ):
        return OSError(
            errno.ENOSPC if free_bytes(target) < 2**20 else errno.EIO,
            "the write failed (is the disk full?)",
            str(target),
        )
    return None


def free_bytes(path: Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds. A failed
    write (a full disk, say) leaves no partial file behind and is raised as an OSError naming `target`."""
    target, tmp = Path(target), None
    try:  # a read-only or missing folder fails here, named as the target, not as a temporary name
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_owner()}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as e:
        failed = write_error(e, target)
        if failed is None:
            raise
        raise failed from e
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except (OSError, RuntimeError) as e:
        failed = write_error(e, target)
        if failed is None:
            raise
        raise failed from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(target) -> None:
    """Fail now, naming `target`, if it could not be written: before the work whose result it holds."""

    target = Path(target)
    if target.is_dir():
        raise LungfastError(f"{target}: is a folder; name a file to write, e.g. {target / 'predictions.csv'}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(e.errno, e.strerror, e.filename or str(target)) from None


def write_text(target, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target, obj) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(target, df) -> None:
    """UTF-8; a file name that is not is written as its bytes (surrogateescape), so `read_csv` gives it back."""
    with atomic_path(target) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8", errors="surrogateescape")


def read_csv(source, **kwargs):  # a CSV `write_csv` wrote, paths that are not UTF-8 included
    import pandas as pd

    return pd.read_csv(source, encoding="utf-8", encoding_errors="surrogateescape", **kwargs)


def save_figure(fig, target) -> None:  # zlib level 3: PNGs ~5% larger than level 6's, written about twice as fast
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", pil_kwargs={"compress_level": 3})
    plt.close(fig)


@contextmanager
def staged_folder(final: Path, stage: Path, fresh: bool = False):
    """Yield the staging folder `stage`; on success it replaces `final` in one rename. Kept when the block
    is interrupted (a killed run resumes from it), removed when it fails on bad input or settings."""

    if fresh and stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    except LungfastError:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if final.exists():  # --force: move the old folder aside first, then drop it
        old = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, old)
        shutil.rmtree(old)
    os.replace(stage, final)


@contextmanager
def exclusive(lock_file: Path, what: str):
    """One process at a time: hold an advisory lock (flock) on `lock_file`, waiting, with a line naming the
    holder, while another process holds it. The kernel frees the lock when its holder dies, even by SIGKILL,
    so a killed run never blocks the rerun that resumes it."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            log.info("%s: %s is working on it; waiting for it to finish", what, f.read().strip() or "another process")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"lungfast pid {os.getpid()} on {socket.gethostname()}")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def os_error_line(e: OSError) -> str:
    """One line for a file the user's settings chose: what failed, where, and which setting moves it."""
    where = Path(e.filename)
    cache = cache_dir()
    in_cache = where.resolve().is_relative_to(cache.resolve())
    setting = (
        f"set LUNGFAST_CACHE to a folder on another disk (the cache is now {cache})"
        if in_cache
        else "choose another results_dir (--set results_dir=DIR) or --out"
    )
    if e.errno in FULL:  # disk full, quota, or the file size limit (ulimit -f)
        return (
            f"{e.strerror} writing {where} ({free_bytes(where) / 1e6:,.0f} MB free on that disk); free some "
            f"space or {setting}, then run the same command again: finished work is kept, no partial file is"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: {e.strerror}; fix its permissions or {setting}"
    if e.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"cannot write below {where}: it is a file where a folder is needed; move it or {setting}"
    return (
        f"cannot write or read {where}: {e.strerror or e}; check the disk ({free_bytes(where) / 1e6:,.0f} MB "
        f"free there), or {setting}"
    )
