"""The artifact store: what a sweep computed, keyed by what determined it.

An artifact is a folder of files (JSON, ``.npy`` arrays, WebP images) under
``objects/<stage>/<key>``. Its key is a hash of everything that determines it
(model weights digest, layer, units, stage parameters, seed, Atlas version), so a
changed parameter gives a new key and an unchanged one is never recomputed.

Writes are atomic at the level of the whole artifact: files go into a private temp
folder that is renamed into place only when complete. A sweep killed at any
moment (even ``kill -9``) leaves either the finished artifact or nothing, and the
rerun resumes at the first missing key. A manifest per stage lists the finished
keys with a readable description of each, for people and for ``render``.

Each artifact lists its files and their sizes (``.complete``), so that one damaged
afterwards (a truncated ``data.json``, a deleted image) is found: ``has`` says no, the
sweep recomputes it, and ``render`` refuses to show it. Folders and files get the
modes the umask gives (not ``mkdtemp``'s private 0700), so a web server running as
another user can read a site made from them.

One writer at a time: ``Store.lock`` takes an exclusive ``flock`` on ``lock`` in the
cache folder, so a second ``atlas sweep`` on the same cache waits (and says so) until
the first is done, then finds its work done. The kernel releases the lock of a process
that dies, even by ``kill -9``: a stale lock is taken over without anyone's help.
Readers (``render``, ``serve``) never take it: they read finished artifacts only.

A sharded sweep (``atlas.distributed``) has many writers on one store, each writing
only the artifacts it claimed: rank 0 holds the lock for all of them and alone keeps
the manifests (``manifests=False`` on the others). Temp folders are named by host and
pid, so a writer only ever clears its own machine's dead writers' folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator, TypeVar

import atlas
from atlas.artifacts import SCHEMA, Plan, Record
from atlas.errors import DISK_FULL, AtlasError, DiskFull, EmptyResult, folder_size
from atlas.files import folder_mode, write_atomic, write_json

R = TypeVar("R", bound=Record)

CONTENTS = ".complete"  # an artifact's files and their sizes, written last
_HOST = socket.gethostname().replace("+", "-")  # temp folders are "<pid>+<host>+<stage>-<random>"


def artifact_key(**parts: Any) -> str:
    """A stable hash of the parts that determine an artifact (plus the Atlas version)."""
    payload = json.dumps({"atlas": atlas.__version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


class Store:
    """A cache folder of finished artifacts and their manifests."""

    def __init__(self, root: Path, manifests: bool = True):
        self.root = Path(root)
        self.manifests = manifests  # whether ``record`` writes them (one writer of a sharded sweep does)
        self._tmp = self.root / "tmp"
        self._check_schema()
        self._remove_abandoned_temp()

    def path(self, stage: str, key: str) -> Path:
        return self.root / "objects" / stage / key

    def has(self, stage: str, key: str) -> bool:
        """Whether the artifact is there, whole: every file it was written with, at its size."""
        return self.damage(stage, key) is None

    def damage(self, stage: str, key: str) -> str | None:
        """What is wrong with a finished artifact's files, or None. (An artifact from
        before contents were listed is taken as it is.)"""
        folder = self.path(stage, key)
        contents = folder / CONTENTS
        if not folder.is_dir():
            return "missing"
        if not contents.exists():
            return None
        try:
            listed = json.loads(contents.read_text())
        except (ValueError, OSError):
            return f"its list of files ({contents}) is unreadable"
        for name, size in listed.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} bytes, not {size}"
        return None

    @contextlib.contextmanager
    def writing(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a folder to fill; it becomes the artifact only if the block succeeds."""
        self._mark_schema()
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._tmp, prefix=f"{os.getpid()}+{_HOST}+{stage}-"))
        try:
            try:
                yield tmp
                _refuse_empty_arrays(tmp, stage)
                _list_contents(tmp)
            except OSError as e:
                if e.errno in DISK_FULL:
                    raise DiskFull(self.root, folder_size(tmp), f"a {stage} artifact") from None
                raise
            os.chmod(tmp, folder_mode())
            final = self.path(stage, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # --force, or a damaged one: move it aside first (a folder
                os.replace(final, tmp.with_name(tmp.name + "-old"))  # can't be replaced when full)
            os.replace(tmp, final)  # atomic: a folder appears complete or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp.with_name(tmp.name + "-old"), ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, waiting=lambda holder: None) -> Iterator[None]:
        """Hold the store's one-writer lock; ``waiting(holder)`` is called once, with
        the holder's pid as it wrote it, when another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                waiting(handle.read().strip() or "?")
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, record: type[R], key: str) -> R:
        """A finished artifact's record (``atlas.artifacts``)."""
        return record.read(self.path(record.STAGE, key))

    def read_json(self, stage: str, key: str, name: str = "data.json") -> Any:
        """A finished artifact's JSON file, as it is."""
        return json.loads((self.path(stage, key) / name).read_text())

    def record(self, stage: str, key: str, meta: dict[str, Any]) -> None:
        """Note a finished artifact in the stage's manifest (idempotent)."""
        if not self.manifests:
            return
        manifest = self.manifest(stage)
        if manifest.get(key) != meta:
            manifest[key] = meta
            write_json(self._manifest_path(stage), manifest)

    def manifest(self, stage: str) -> dict[str, Any]:
        path = self._manifest_path(stage)
        return json.loads(path.read_text()) if path.exists() else {}

    def write_plan(self, digest: str, plan: Plan) -> None:
        """The sweep plan: which artifacts make up the atlas of one config."""
        self._mark_schema()
        write_json(self._plan_path(digest), plan.to_json())

    def read_plan(self, digest: str) -> Plan | None:
        path = self._plan_path(digest)
        return Plan.from_json(json.loads(path.read_text())) if path.exists() else None

    def _check_schema(self) -> None:
        """Refuse a store another layout wrote (one without the file is schema 1's)."""
        path = self.root / "schema"
        found = int(path.read_text().strip() or 0) if path.is_file() else SCHEMA
        if found != SCHEMA:
            raise AtlasError(f"{self.root}: this cache was written by a store of schema {found}, and this Atlas "
                             f"reads schema {SCHEMA}; delete it, or sweep into another folder (sweep.cache)")

    def _mark_schema(self) -> None:
        if not (self.root / "schema").is_file():
            write_atomic(self.root / "schema", f"{SCHEMA}\n")

    def _plan_path(self, digest: str) -> Path:
        return self.root / "plans" / f"{digest}.json"

    def _manifest_path(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"

    def _remove_abandoned_temp(self) -> None:
        """Temp folders of this machine's writers that died (their pid is gone) are
        garbage; another machine's are its own business."""
        if not self._tmp.is_dir():
            return
        for entry in self._tmp.iterdir():
            pid, _, rest = entry.name.partition("+")
            host = rest.partition("+")[0] if rest else _HOST  # "<pid>-<stage>-...": before hosts were named
            pid = pid if rest else entry.name.split("-", 1)[0]
            if host == _HOST and pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _refuse_empty_arrays(folder: Path, stage: str) -> None:
    """Unless the artifact's record says it is no answer (a top-level ``no_answer``)."""
    import numpy as np

    for record in folder.glob("*.json"):
        if json.loads(record.read_text()).get("no_answer"):
            return
    for path in sorted(folder.glob("*.np[yz]")):
        if path.suffix == ".npz":
            with np.load(path) as loaded:
                arrays = dict(loaded.items())
        else:
            arrays = {"": np.load(path)}
        for name, array in arrays.items():
            what = f"the {stage} stage's {path.name}{f'[{name}]' if name else ''}"
            if array.size == 0 or not np.isfinite(array).all():
                raise EmptyResult(f"{what} is empty or not finite; it must store no answer with the reason instead")
            if array.size > 1 and array.min() == array.max():
                raise EmptyResult(f"{what} is constant ({array.flat[0]}); it must store no answer with the reason "
                                  "instead")


def _list_contents(folder: Path) -> None:
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / CONTENTS).write_text(json.dumps(sizes, sort_keys=True))


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
