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

The store is for one writer at a time (one ``atlas sweep`` per cache folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import atlas


def artifact_key(**parts: Any) -> str:
    """A stable hash of the parts that determine an artifact (plus the Atlas version)."""
    payload = json.dumps({"atlas": atlas.__version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's files are private (0600)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


class Store:
    """A cache folder of finished artifacts and their manifests."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._remove_abandoned_temp()

    def path(self, stage: str, key: str) -> Path:
        return self.root / "objects" / stage / key

    def has(self, stage: str, key: str) -> bool:
        return self.path(stage, key).is_dir()

    @contextlib.contextmanager
    def writing(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a folder to fill; it becomes the artifact only if the block succeeds."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._tmp, prefix=f"{os.getpid()}-{stage}-"))
        try:
            yield tmp
            final = self.path(stage, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # --force: move the old one aside first (a folder
                os.replace(final, tmp.with_name(tmp.name + "-old"))  # can't be replaced when full)
            os.replace(tmp, final)  # atomic: a folder appears complete or not at all
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(tmp.with_name(tmp.name + "-old"), ignore_errors=True)

    def read_json(self, stage: str, key: str, name: str = "data.json") -> Any:
        """A finished artifact's JSON file."""
        return json.loads((self.path(stage, key) / name).read_text())

    def record(self, stage: str, key: str, meta: dict[str, Any]) -> None:
        """Note a finished artifact in the stage's manifest (idempotent)."""
        manifest = self.manifest(stage)
        if manifest.get(key) != meta:
            manifest[key] = meta
            write_json(self._manifest_path(stage), manifest)

    def manifest(self, stage: str) -> dict[str, Any]:
        path = self._manifest_path(stage)
        return json.loads(path.read_text()) if path.exists() else {}

    def write_plan(self, digest: str, plan: dict[str, Any]) -> None:
        """The sweep plan: which artifacts make up the atlas of one config."""
        write_json(self._plan_path(digest), plan)

    def read_plan(self, digest: str) -> dict[str, Any] | None:
        path = self._plan_path(digest)
        return json.loads(path.read_text()) if path.exists() else None

    def _plan_path(self, digest: str) -> Path:
        return self.root / "plans" / f"{digest}.json"

    def _manifest_path(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"

    def _remove_abandoned_temp(self) -> None:
        """Temp folders of writers that died (their pid is gone) are garbage."""
        if not self._tmp.is_dir():
            return
        for entry in self._tmp.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
