"""Errors a user can act on.

Anything raised as an ``AtlasError`` is a problem with the user's input (a config
key, a file, a model name) or their machine (a full disk, a read-only folder), not a
bug: the CLI prints its message as one line, without a traceback, and exits with
code 2. ``user_os_error`` says which ``OSError``s are of that kind, and how to put
them in words; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class AtlasError(Exception):
    """Bad input: the message names the config key or the file at fault."""


class ConfigError(AtlasError):
    """A config file or a ``--set`` override is invalid."""


class DiskFull(AtlasError):
    """No space left where Atlas was writing: which folder, how much it had written
    when the disk filled (what it needed, at least), and how much is free."""

    def __init__(self, folder: Path, written: int, what: str):
        self.folder, self.written = Path(folder), written
        free = shutil.disk_usage(_existing(self.folder)).free
        super().__init__(f"{self.folder}: no space left on its device while writing {what} (it needed more than "
                         f"{readable_size(written)}; {readable_size(free)} free); free some space or choose another "
                         "folder, and run again: finished work is kept")


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_USER_ERRNOS = {
    errno.EACCES: "permission denied (check the folder's owner and mode)",
    errno.EPERM: "operation not permitted (check the folder's owner and mode)",
    errno.EROFS: "read-only file system (choose a writable folder)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, where a file was expected",
    errno.ENAMETOOLONG: "name too long",
    errno.ENOENT: "no such file or folder",
    errno.EMFILE: "too many open files (raise `ulimit -n`)",
}


def user_os_error(error: OSError) -> str | None:
    """One line for an ``OSError`` the user's machine or input caused (a full disk, a
    folder without write permission); None for anything else (a bug)."""
    if error.errno in DISK_FULL:
        where = Path(error.filename) if error.filename else Path.cwd()
        return f"{where}: no space left on its device ({readable_size(shutil.disk_usage(_existing(where)).free)} free)"
    if error.errno in _USER_ERRNOS and error.filename:
        return f"{error.filename}: {_USER_ERRNOS[error.errno]}"
    return None


def readable_size(n: int) -> str:
    """A size as people read it: 812 bytes, 12.3 kB, 4.5 MB, 1.2 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def folder_size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (0 when it is gone)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else 0


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class EmptyResult(RuntimeError):
    """A stage tried to store a non-finite, all-zero or constant array as data (a bug:
    such a result is "no answer", and its artifact says why instead)."""
