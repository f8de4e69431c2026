"""Natural photographs that ship with Python packages, as a dataset folder.

ImageNet cannot be downloaded here, but scikit-image, scikit-learn and matplotlib
carry twenty photographs between them (an astronaut, a cat, coffee, a rocket, the
Hubble deep field, a retina, bricks, grass, Grace Hopper, a Chinese temple, a
flower, ...). ``write_samples`` cuts seeded random crops of them into a folder with
one subfolder per photograph (the label), which ``[data] images`` reads like any
image folder: enough natural image statistics (edges, textures, faces, text) for
the dataset stages of a real ImageNet model.

The packages are the optional ``real`` extra (``pip install -e ".[real]"``); a
photograph a package does not have (an older version, a file that needs a download)
is left out and said.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from atlas.errors import AtlasError

log = logging.getLogger(__name__)

SKIMAGE = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
           "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text", "retina", "cell")
SKLEARN = ("china", "flower")
MATPLOTLIB = ("grace_hopper",)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()
    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data(f"{name}.jpg") as file:
            return np.asarray(Image.open(file).convert("RGB"))
    return load


SOURCES: dict[str, Callable[[], np.ndarray]] = {
    **{name: _skimage(name) for name in SKIMAGE}, **{name: _sklearn(name) for name in SKLEARN},
    **{name: _matplotlib(name) for name in MATPLOTLIB},
}


def photographs() -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 RGB array) for every photograph the installed packages have."""
    for name, load in SOURCES.items():
        try:
            image = np.asarray(load())
        except (ImportError, OSError, ValueError, AttributeError) as error:  # not installed, or needs a download
            log.warning("photograph %s left out: %s", name, error)
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        yield name, np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``count`` random square crops of ``image`` (H, W, 3), each a random 30-100% of its
    shorter side, resized to ``size`` pixels: (size, size, 3) uint8."""
    h, w, _ = image.shape
    for _ in range(count):
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(image[top:top + side, left:left + side])
        yield np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


def write_samples(folder: Path, per_photo: int = 25, size: int = 256, seed: int = 0) -> dict[str, int]:
    """Crops of every photograph into ``folder``/<photograph>/<n>.png; {photograph: crops}.

    Written to a temporary folder beside it and moved into place whole, so an
    interrupted run leaves nothing half-written; an existing, non-empty ``folder`` is
    an error (nothing is overwritten)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise AtlasError(f"{folder}: already exists and is not empty; remove it or choose another folder")
    if per_photo < 1 or size < 16:
        raise AtlasError("--crops must be at least 1 and --size at least 16")
    rng = np.random.default_rng(seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.writing-", dir=folder.parent))
    counts: dict[str, int] = {}
    try:
        for name, image in photographs():
            (staging / name).mkdir()
            for i, crop in enumerate(crops(image, per_photo, size, rng)):
                Image.fromarray(crop).save(staging / name / f"{i:03d}.png")
            counts[name] = per_photo
        if not counts:
            raise AtlasError("no photographs found: install the real extra (pip install -e \".[real]\")")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts
