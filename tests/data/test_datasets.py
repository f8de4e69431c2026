import numpy as np
import pytest

from atlas.data import ImageFolder, WorldDataset, open_dataset, world
from atlas.errors import AtlasError
from tests.conftest import make_images


def test_world_dataset_is_the_atlas_split_with_labels():
    data = open_dataset("world", 12, root=None)
    assert isinstance(data, WorldDataset) and len(data.records) == 12
    assert data.records[3].label == world.CLASSES[world.make_scene(0, 3, "atlas").label]
    assert np.array_equal(data.load(3, 64), world.make_scene(0, 3, "atlas").image)
    assert data.load(3, 16).shape == (16, 16, 3)
    assert data.scan() == {} and data.digest() == WorldDataset(12).digest() != WorldDataset(13).digest()


def test_image_folder_labels_from_subfolders_and_skips_corrupt_files(tmp_path):
    made = make_images(tmp_path)
    data = ImageFolder(tmp_path, limit=100)
    assert [r.name for r in data.records] == sorted([*made, "cool/broken.jpg"])
    assert {r.label for r in data.records} == {"warm", "cool"}
    assert list(data.scan()) == ["cool/broken.jpg"]
    batches = list(data.batches(8, batch_size=4))
    assert [len(i) for i, _ in batches] == [4, 1] and batches[0][1].shape == (4, 8, 8, 3)


def test_image_folder_limit_and_errors(tmp_path):
    make_images(tmp_path / "images")
    assert len(ImageFolder(tmp_path / "images", limit=2).records) == 2
    with pytest.raises(AtlasError, match=r"data.images: .*nowhere is not a folder of images \(nor one of: world\)"):
        open_dataset("nowhere", 10, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match=r"data.images: no images"):
        open_dataset("empty", 10, tmp_path)
