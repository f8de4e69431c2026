import numpy as np

from atlas.data import world


def test_scenes_are_a_pure_function_of_seed_split_and_index():
    a = world.make_scene(3, 17, "train")
    b = world.make_scene(3, 17, "train")
    assert np.array_equal(a.image, b.image) and a.label == b.label and a.objects == b.objects
    assert not np.array_equal(a.image, world.make_scene(3, 17, "test").image)
    assert not np.array_equal(a.image, world.make_scene(3, 18, "train").image)
    assert a.image.shape == (64, 64, 3) and a.image.dtype == np.uint8


def test_labels_cover_every_class_and_scene_label_matches_without_drawing():
    labels = [world.make_scene(0, i).label for i in range(200)]
    assert set(labels) == set(range(len(world.CLASSES)))
    assert [world.scene_label(0, i) for i in range(200)] == labels


def test_ground_truth_describes_the_object():
    scenes = [world.make_scene(1, i) for i in range(120)]
    poses = {s.objects[0]["pose"] for s in scenes if s.name in ("animal", "fish", "vehicle")}
    assert poses == {"left", "right"}  # mirrored poses exist
    for scene in scenes:
        (obj,) = scene.objects
        assert obj["class"] == scene.name and obj["parts"]
        x0, y0, x1, y1 = obj["box"]
        assert x1 > x0 and y1 > y0
    vehicle = next(s for s in scenes if s.name == "vehicle")
    assert [p["name"] for p in vehicle.objects[0]["parts"]].count("wheel") == 2


def test_scenes_have_natural_statistics_not_noise():
    images = np.stack([world.make_scene(2, i).image for i in range(64)]).astype(np.float64) / 255
    # Neighbouring pixels are strongly correlated, as in photographs (white noise: ~0).
    left, right = images[:, :, :-1].ravel(), images[:, :, 1:].ravel()
    assert np.corrcoef(left, right)[0, 1] > 0.8
    # Color channels are correlated too.
    r, g = images[..., 0].ravel(), images[..., 1].ravel()
    assert np.corrcoef(r, g)[0, 1] > 0.3
    # Some scenes are partly out of focus: their sharpness varies a lot across scenes.
    sharpness = np.abs(np.diff(images, axis=2)).mean((1, 2, 3))
    assert sharpness.max() > 3 * sharpness.min()


def test_make_batch_stacks_scenes():
    images, labels = world.make_batch(0, 5, 3, "test")
    assert images.shape == (3, 64, 64, 3)
    assert labels.tolist() == [world.make_scene(0, i, "test").label for i in (5, 6, 7)]
