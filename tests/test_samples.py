"""`atlas data samples`: seeded crops of the photographs Python packages ship."""

import numpy as np
import pytest
from PIL import Image

from atlas.data.samples import crops, write_samples
from atlas.errors import AtlasError


def test_crops_are_seeded_squares_of_the_asked_size():
    image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    a = list(crops(image, 3, 32, np.random.default_rng(1)))
    b = list(crops(image, 3, 32, np.random.default_rng(1)))
    assert all(x.shape == (32, 32, 3) for x in a) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_samples_make_one_folder_per_photograph_and_never_overwrite(tmp_path):
    pytest.importorskip("skimage")  # the real extra
    folder = tmp_path / "photos"
    counts = write_samples(folder, per_photo=1, size=32)
    assert len(counts) >= 15 and "astronaut" in counts and "china" in counts
    assert Image.open(folder / "astronaut" / "000.png").size == (32, 32)
    with pytest.raises(AtlasError, match="not empty"):
        write_samples(folder, per_photo=1, size=32)
    assert not list(tmp_path.glob(".photos.writing-*"))  # nothing left half-written
