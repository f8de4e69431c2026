"""Datasets: the images a sweep shows the model.

Two kinds share one interface (``records``, ``load``, ``batches``, ``scan``,
``digest``):

- ``ImageFolder``: a flat folder of images, or one subfolder per class (the
  subfolder name is the label). Files are taken in sorted order and the first
  ``limit`` are used, so the same folder gives the same dataset on every machine.
  Unreadable or corrupt files are skipped and counted, never fatal.
- ``WorldDataset``: the embedded procedural world (``[data] images = "world"``),
  scenes of its ``atlas`` split, which no zoo model saw in training.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from atlas.errors import AtlasError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_PIXELS = 64_000_000  # larger images are skipped: a dataset image is shown at a few hundred pixels
EMBEDDED = ("world",)


@dataclass(frozen=True)
class ImageRecord:
    name: str  # unique within the dataset (a relative path, or a scene id)
    label: str  # class, or "" when unknown


class Dataset:
    """A fixed, ordered list of images that can be loaded one at a time."""

    root: str  # where it comes from, for people
    records: list[ImageRecord]
    skipped: dict[str, str]  # name -> why it could not be read

    def digest(self) -> str:
        raise NotImplementedError

    def load(self, index: int, size: int) -> np.ndarray | None:
        """Image ``index`` as uint8 (size, size, 3); None if it cannot be read."""
        raise NotImplementedError

    truth_size = 0  # pixels on a side of the image that ``truth`` boxes are in

    def truth(self, index: int) -> list[dict] | None:
        """What image ``index`` contains, where the dataset knows (the embedded world):
        ``[{"class", "box", "parts": [{"name", "box"}]}]``, boxes as (x0, y0, x1, y1)."""
        return None

    def scan(self) -> dict[str, str]:
        """Try to read every image once; return {name: why} for the unreadable ones."""
        for i in range(len(self.records)):
            self.load(i, 8)
        return dict(self.skipped)

    def batches(self, size: int, batch_size: int, only: Sequence[int] | None = None
                ) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield (indices, uint8 images (B, size, size, 3)) of every image (or of those
        in ``only``), skipping unreadable files."""
        indices: list[int] = []
        images: list[np.ndarray] = []
        for i in (range(len(self.records)) if only is None else only):
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


class ImageFolder(Dataset):
    def __init__(self, root: Path, limit: int):
        if not root.is_dir():
            raise AtlasError(f"data.images: {root} is not a folder of images (nor one of: {', '.join(EMBEDDED)})")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise AtlasError(f"data.images: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
        self.root, self._folder, self.skipped = str(root), root, {}
        self._paths = paths[:limit]
        self.records = [self._record(p) for p in self._paths]

    def _record(self, path: Path) -> ImageRecord:
        rel = path.relative_to(self._folder)
        return ImageRecord(rel.as_posix(), rel.parts[0] if len(rel.parts) > 1 else "")

    def digest(self) -> str:
        """Identifies the dataset's content cheaply: names, sizes, modification times."""
        h = hashlib.sha256()
        for record, path in zip(self.records, self._paths):
            stat = path.stat()
            h.update(f"{record.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def load(self, index: int, size: int) -> np.ndarray | None:
        record = self.records[index]
        try:
            with Image.open(self._paths[index]) as img:
                if img.width * img.height > MAX_PIXELS:  # decoding would take gigabytes
                    raise ValueError(f"{img.width}x{img.height} pixels, more than the {MAX_PIXELS:,} Atlas reads")
                img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            # The reason without the folder: it is stored, keyed by the dataset's content, not its place.
            why = (str(e) or type(e).__name__).replace(str(self._paths[index]), record.name)
            self.skipped.setdefault(record.name, why)
            log.debug("skipping unreadable image %s: %s", self._paths[index], e)
            return None


class WorldDataset(Dataset):
    """Scenes 0 .. limit-1 of the world's ``atlas`` split, labelled by class."""

    SEED = 0

    def __init__(self, limit: int):
        from atlas.data import world

        self._world = world
        self.root, self.skipped = "world (the embedded procedural dataset)", {}
        self.records = [ImageRecord(f"scene-{i:05d}", world.CLASSES[world.scene_label(self.SEED, i, "atlas")])
                        for i in range(limit)]

    def digest(self) -> str:
        # Scenes are a pure function of (seed, index) and the generator's code version.
        return hashlib.sha256(f"world/{self._world.VERSION}/{self.SEED}/{len(self.records)}".encode()).hexdigest()[:16]

    def load(self, index: int, size: int) -> np.ndarray:
        image = self._world.make_scene(self.SEED, index, "atlas").image
        if size != image.shape[0]:
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
        return image

    def scan(self) -> dict[str, str]:
        return {}  # generated scenes are always readable

    @property
    def truth_size(self) -> int:
        return self._world.SIZE

    def truth(self, index: int) -> list[dict]:
        return _world_objects(self.SEED, index)


@functools.lru_cache(maxsize=4096)
def _world_objects(seed: int, index: int) -> list[dict]:
    from atlas.data import world

    return world.make_scene(seed, index, "atlas").objects


def open_dataset(images: str, limit: int, root: Path) -> Dataset:
    """The dataset that ``[data] images`` names: an embedded one, or a folder."""
    if images == "world":
        return WorldDataset(limit)
    return ImageFolder((root / Path(images).expanduser()).resolve(), limit)
