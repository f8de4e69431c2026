import numpy as np
import torch

from atlas.stages.examples import StreamingTopK, spatial_max


def test_streaming_topk_equals_topk_over_the_whole_set():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(103, 5, generator=generator)
    positions = torch.randint(0, 50, (103, 5), generator=generator)
    top = StreamingTopK(units=5, k=7)
    for start in range(0, 103, 10):
        top.update(values[start:start + 10], torch.arange(start, min(start + 10, 103)), positions[start:start + 10])
    expected_values, expected_images = values.T.topk(7, dim=1)
    assert torch.equal(top.values, expected_values)
    assert torch.equal(top.images, expected_images)
    assert torch.equal(top.positions, positions.T.gather(1, expected_images))


def test_topk_with_fewer_items_than_k():
    top = StreamingTopK(units=1, k=4)
    top.update(torch.tensor([[2.0], [5.0]]), torch.tensor([10, 11]), torch.tensor([[0], [3]]))
    assert top.values.tolist() == [[5.0, 2.0]] and top.images.tolist() == [[11, 10]]


def test_spatial_max_gives_value_and_flat_position():
    acts = torch.zeros(1, 2, 3, 4)
    acts[0, 0, 2, 1] = 5.0
    acts[0, 1, 0, 3] = 7.0
    values, positions = spatial_max(acts)
    assert values.tolist() == [[5.0, 7.0]] and positions.tolist() == [[2 * 4 + 1, 3]]


def test_reservoir_keeps_everything_when_the_stream_fits():
    import numpy as np

    from atlas.stages.examples import ImageReservoir

    reservoir = ImageReservoir(units=2, size=10)
    values = torch.tensor([[3.0, 0.0], [1.0, 5.0], [2.0, 4.0]])
    reservoir.update(values, torch.tensor([7, 8, 9]), torch.tensor([[0, 1], [2, 3], [4, 5]]))
    sorted_values, images, positions = reservoir.sample(0)
    assert sorted_values.tolist() == [1.0, 2.0, 3.0] and images.tolist() == [8, 9, 7]
    assert positions.tolist() == [2, 4, 0]
    assert np.array_equal(reservoir.sample(1)[1], [7, 9, 8])


def test_reservoir_is_a_uniform_sample_with_bounded_memory():
    import numpy as np

    from atlas.stages.examples import ImageReservoir

    counts = np.zeros(100)
    for seed in range(300):
        reservoir = ImageReservoir(units=1, size=10, seed=seed)
        for start in range(0, 100, 7):
            ids = torch.arange(start, min(start + 7, 100))
            reservoir.update(ids[:, None].float(), ids, torch.zeros(len(ids), 1, dtype=torch.long))
        assert reservoir.values.shape == (10, 1)
        counts[reservoir.images] += 1
    # Each of the 100 images is kept with probability 10/100: 30 times in 300 runs.
    assert counts.sum() == 3000 and counts.min() > 12 and counts.max() < 50
    assert abs(counts[:50].sum() - counts[50:].sum()) < 300  # early and late images alike


def test_quantile_examples_pick_evenly_within_tenths_strongest_first():
    from atlas.stages.examples import quantile_examples

    groups = quantile_examples(list(range(100)), bins=10, per_bin=3)
    assert groups[0] == [99, 94, 90] and groups[-1] == [9, 4, 0]  # linspace, rounded half to even
    assert quantile_examples(list(range(3)), bins=10, per_bin=5).count([]) == 7


def test_values_are_what_the_network_passes_and_an_unrectified_layer_keeps_both_ends(tiny_project):
    import json

    import pytest

    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.store import Store

    config = load_config(tiny_project / "atlas.toml", [
        "sweep.stages=['examples']", "models[0].arch='tests.tiny_models:make_signed_net'",
        "models[0].layers=['pre', 'block']"])
    (model,) = sweep(config).to_json()["models"]
    store = Store(tiny_project / "cache")
    pre, block = (json.loads((store.path("examples", layer["artifacts"]["examples"][0]) / "data.json").read_text())
                  for layer in model["layers"])
    names = {int(i): image["name"] for data in (pre, block) for i, image in data["images"].items()}
    # pre unit 1: the batch norm's scale is -1, so the ReLU passes blue below half: the least
    # blue pixel (the red image's pure red one, B = 0) is its strongest, not the blue image (the raw maximum).
    strongest = pre["units"]["1"]["top"][0]
    assert names[strongest["image"]] == "warm/red.png" and (strongest["y"], strongest["x"]) == (3, 12)
    assert strongest["value"] == pytest.approx(0.5, abs=1e-6)
    assert names[pre["units"]["1"]["top"][1]["image"]] in ("warm/red.png", "warm/orange.png")
    assert pre["units"]["1"]["fraction_active"] == pytest.approx(3 / 5)  # red, orange, green (B = 30)
    assert not pre["unrectified"] and "bottom" not in pre["units"]["1"]
    # block: signed with no activation. No fraction active; the most negative images are kept.
    assert block["unrectified"] and block["units"]["0"]["fraction_active"] is None
    unit = block["units"]["0"]  # R - G
    assert names[unit["top"][0]["image"]] == "warm/red.png"
    assert names[unit["bottom"][0]["image"]] == "cool/green.png"
    assert unit["bottom"][0]["value"] == pytest.approx((20 - 220) / 255, abs=1e-5)
    folder = store.path("examples", model["layers"][1]["artifacts"]["examples"][0])
    assert (folder / unit["bottom"][0]["crop"]).is_file()


def test_histogram_of_a_unit_that_barely_varies_in_float32():
    """EfficientNet-Lite2 had a unit whose float32 values spanned one step of float32
    (numpy: "Too many bins for data range"); the histogram is taken in float64."""
    from atlas.stages.examples import _histogram

    values = np.array([3e6] * 50 + [3e6 + 0.25] * 50, np.float32)
    histogram = _histogram(values)
    assert sum(histogram["counts"]) == 100 and histogram["counts"][0] == 50 and histogram["counts"][-1] == 50
    assert len(histogram["edges"]) == 21


def test_near_duplicates_are_one_place_and_distinct_photographs_are_not():
    """Crops of real photographs: the same place shifted by a pixel or rescaled by a tenth
    is a near-duplicate; two places of one photograph, or two photographs, are not."""
    import pytest

    data = pytest.importorskip("skimage.data")
    from PIL import Image

    from atlas.stages.examples import near_duplicate, signature

    def resized(pixels, size=48):
        return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC))

    astronaut, coffee = data.astronaut(), data.coffee()
    place = astronaut[100:196, 150:246]
    assert near_duplicate(signature(resized(place)), signature(resized(astronaut[101:197, 151:247])))
    assert near_duplicate(signature(resized(place)), signature(resized(astronaut[95:200, 145:250])))
    assert not near_duplicate(signature(resized(place)), signature(resized(astronaut[300:396, 150:246])))
    assert not near_duplicate(signature(resized(place)), signature(resized(coffee[100:196, 150:246])))


def test_top_examples_show_a_repeated_image_once(tiny_project):
    """Two exact copies of the red image join the dataset: every unit's top examples
    hold at most one of the three, and the unit records the copies it skipped."""
    import json
    import shutil

    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.store import Store

    images = tiny_project / "images" / "warm"
    for copy in ("red-again.png", "red-once-more.png"):
        shutil.copy(images / "red.png", images / copy)
    config = load_config(tiny_project / "atlas.toml", ["sweep.stages=['examples']"])
    (model,) = sweep(config).to_json()["models"][:1]
    store = Store(tiny_project / "cache")
    found = json.loads((store.path("examples", model["layers"][0]["artifacts"]["examples"][0])
                        / "data.json").read_text())
    names = {int(i): image["name"] for i, image in found["images"].items()}
    reds = {"warm/red.png", "warm/red-again.png", "warm/red-once-more.png"}
    red_units = 0
    for unit in found["units"].values():
        shown = [names[ex["image"]] for ex in unit["top"]]
        assert len(set(shown) & reds) <= 1, shown
        assert len(shown) == 3  # skipped copies make room for the next distinct image (6 in all)
        if shown[0] in reds:  # the copies tie with it, so they come next and are skipped
            red_units += 1
            assert unit["duplicates"] == 2, shown
    assert red_units >= 1


def test_a_tiny_field_is_told_apart_by_its_surroundings():
    from atlas.stages.examples import context

    assert context((50, 50, 53, 53), 224) == (35, 35, 67, 67)  # 3 px grown to 32 about its centre
    assert context((0, 0, 3, 3), 224) == (0, 0, 32, 32)  # kept inside the image
    assert context((220, 100, 224, 104), 224) == (192, 86, 224, 118)
    assert context((0, 0, 64, 64), 224) == (0, 0, 64, 64)  # a field larger than that is itself
    assert context((0, 0, 3, 3), 16) == (0, 0, 16, 16)  # an image smaller than that: all of it
