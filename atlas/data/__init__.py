"""Datasets: the images a sweep shows the model.

An ``ImageFolder`` is a flat folder of images, or one subfolder per class (the
subfolder name is the label). Files are taken in sorted order and the first
``limit`` are used, so the same folder gives the same dataset on every machine.
Unreadable or corrupt files are skipped and counted, never fatal: the sweep reports
how many it skipped and which.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from atlas.errors import AtlasError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    name: str  # path relative to the dataset root, with "/" separators
    label: str  # class subfolder, or "" in a flat folder


@dataclass
class ImageFolder:
    root: Path
    limit: int
    records: list[ImageRecord] = field(init=False)
    skipped: dict[str, str] = field(init=False, default_factory=dict)  # name -> why

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise AtlasError(f"data.images: {self.root} is not a folder of images")
        paths = sorted(p for p in self.root.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise AtlasError(f"data.images: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.root}")
        self.records = [self._record(p) for p in paths[: self.limit]]

    def _record(self, path: Path) -> ImageRecord:
        rel = path.relative_to(self.root)
        return ImageRecord(path, rel.as_posix(), rel.parts[0] if len(rel.parts) > 1 else "")

    def digest(self) -> str:
        """Identifies the dataset's content cheaply: names, sizes, modification times."""
        h = hashlib.sha256()
        for r in self.records:
            stat = r.path.stat()
            h.update(f"{r.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def load(self, index: int, size: int) -> np.ndarray | None:
        """Image ``index`` as uint8 (size, size, 3), centre-cropped; None if unreadable."""
        record = self.records[index]
        try:
            with Image.open(record.path) as img:
                img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            if record.name not in self.skipped:
                self.skipped[record.name] = str(e) or type(e).__name__
                log.debug("skipping unreadable image %s: %s", record.path, e)
            return None

    def scan(self) -> dict[str, str]:
        """Try to read every image once; return {name: why} for the unreadable ones."""
        for i in range(len(self.records)):
            self.load(i, 8)
        return dict(self.skipped)

    def batches(self, size: int, batch_size: int) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (indices, uint8 images (B, size, size, 3)), skipping unreadable files."""
        indices: list[int] = []
        images: list[np.ndarray] = []
        for i in range(len(self.records)):
            image = self.load(i, size)
            if image is None:
                continue
            indices.append(i)
            images.append(image)
            if len(images) == batch_size:
                yield indices, np.stack(images)
                indices, images = [], []
        if images:
            yield indices, np.stack(images)


def open_dataset(images: str, limit: int, root: Path) -> ImageFolder:
    """The dataset that ``[data] images`` names (a folder, relative to the config)."""
    return ImageFolder((root / Path(images).expanduser()).resolve(), limit)
