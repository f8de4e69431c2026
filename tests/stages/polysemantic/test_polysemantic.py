"""Polysemanticity: a unit that is the OR of two unrelated detectors scores high, a pure one low."""

import numpy as np
import pytest
import torch
from torch import nn

from atlas.data import Dataset, ImageRecord, WorldDataset
from atlas.models import LoadedModel
from atlas.stages import LayerInfo
from atlas.stages.polysemantic import SILENT, Probe, _disagreement, strongest, unit_directions, where_it_fired
from atlas.stages.polysemantic.meanings import meanings

RED, BLUE, GREEN = 0, 1, 2
OR_UNIT, PURE_UNIT = 3, 4


class Squares(Dataset):
    """Grey 16x16 images, each with one square of red, blue or green (random brightness,
    size, place and pixel noise), labelled by its color."""

    def __init__(self, count: int = 120, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.root, self.skipped, self.records, self._images = "squares", {}, [], []
        colors = {"red": (1, 0, 0), "blue": (0, 0, 1), "green": (0, 1, 0)}
        for i in range(count):
            name = list(colors)[i % 3]
            pixels = np.full((16, 16, 3), 0.5) + rng.normal(0, 0.03, (16, 16, 3))
            side, (y, x) = int(rng.integers(3, 6)), rng.integers(0, 10, 2)
            pixels[y:y + side, x:x + side] = np.array(colors[name]) * rng.uniform(0.7, 1.0)
            self._images.append((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
            self.records.append(ImageRecord(f"{name}-{i}", name))

    def digest(self) -> str:
        return "squares"

    def load(self, index: int, size: int) -> np.ndarray:
        return self._images[index]


def detectors() -> LoadedModel:
    """1x1 convolution + ReLU: red, blue, green detectors (a color minus the mean of the
    other two), unit 3 = red OR blue (their sum), unit 4 = red again, twice as strong."""
    conv = nn.Conv2d(3, 5, kernel_size=1)
    red, blue, green = [1.0, -0.5, -0.5], [-0.5, -0.5, 1.0], [-0.5, 1.0, -0.5]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([red, blue, green, np.add(red, blue).tolist(), [2 * w for w in red]])
                          .view(5, 3, 1, 1))
        conv.bias.zero_()
    module = nn.Sequential()
    module.add_module("conv", conv)
    module.add_module("relu", nn.ReLU())
    return LoadedModel("detectors", "test", module.eval().requires_grad_(False), (0, 0, 0), (1, 1, 1), 16, "d")


@pytest.fixture(scope="module")
def found():
    layer = LayerInfo("relu", (5, 16, 16), tuple(range(5)))
    (found,) = strongest(detectors(), [Probe(layer, lambda acts: acts, 5)], Squares(), top=24, batch_size=16,
                         device=torch.device("cpu"))
    return layer, found


def scores(layer, found):
    directions = unit_directions(layer)
    return [meanings(found.vectors[u], directions[u]) for u in range(5)]


def test_or_of_two_unrelated_detectors_scores_high_and_its_clusters_are_the_two(found):
    layer, found = found
    result = scores(layer, found)[OR_UNIT]
    colors = [Squares().records[i].label for i in found.images[OR_UNIT]]
    assert {colors[r] for r in range(len(colors))} == {"red", "blue"}  # its strong examples are both
    assert result.score > 0.7 and result.separation > 0.7 and result.balance >= 0.25
    for k in (0, 1):  # each cluster is one color
        assert len({c for c, a in zip(colors, result.assignment) if a == k}) == 1


def test_pure_units_score_low(found):
    layer, found = found
    result = scores(layer, found)
    for unit in (RED, BLUE, GREEN, PURE_UNIT):
        assert result[unit].score < 0.2, (unit, result[unit])
    assert min(result[OR_UNIT].score - result[u].score for u in (RED, BLUE, GREEN, PURE_UNIT)) > 0.5


def test_the_strongest_examples_are_the_units_maxima(found):
    layer, found = found
    data = Squares()
    model = detectors()
    with torch.no_grad():
        x = torch.from_numpy(np.stack([data.load(i, 16) for i in range(len(data.records))])).permute(0, 3, 1, 2) / 255
        acts = model.module(x.float())
    best = acts[:, OR_UNIT].flatten(1).max(1).values
    assert np.allclose(found.values[OR_UNIT], best.sort(descending=True).values[:24].numpy(), atol=1e-5)
    # The vectors are the layer at those places, centred on each channel's mean over every position.
    everything = acts.permute(1, 0, 2, 3).reshape(5, -1).double()
    image, position = found.images[OR_UNIT, 0], found.positions[OR_UNIT, 0]
    expected = acts[image].flatten(1)[:, position].double() - everything.mean(1)
    assert np.allclose(found.vectors[OR_UNIT, 0], expected.numpy(), atol=1e-4)


def test_meanings_of_orthogonal_groups_and_of_one_group():
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    two = np.concatenate([a + 0.1 * rng.normal(size=(20, 8)), b + 0.1 * rng.normal(size=(20, 8))])
    result = meanings(two)
    assert result.score > 0.8 and result.balance == 0.5
    assert (result.assignment[:20] == 0).all() and (result.assignment[20:] == 1).all()
    one = a + 0.1 * rng.normal(size=(40, 8))
    assert meanings(one).score < 0.1
    # A few odd examples are not a second meaning: 2 of 40 count a tenth as much.
    odd = np.concatenate([one[:38], two[20:22]])
    assert meanings(odd).separation > 0.8 and meanings(odd).score < 0.2
    # Projecting out the shared direction leaves only what differs.
    assert meanings(two, direction=a + b).score > 0.75


def test_the_world_says_what_is_under_a_place():
    world = WorldDataset(8)
    obj = world.truth(3)[0]
    x0, y0, x1, y1 = obj["parts"][1]["box"]
    fx, fy = (x0 + x1) / 2 / world.truth_size, (y0 + y1) / 2 / world.truth_size
    assert where_it_fired(world, 3, fx, fy) == (obj["class"], obj["parts"][1]["name"])
    corner = next((x, y) for x, y in [(0.01, 0.01), (0.99, 0.01), (0.01, 0.99), (0.99, 0.99)]
                  if not (obj["box"][0] <= x * 64 <= obj["box"][2] and obj["box"][1] <= y * 64 <= obj["box"][3]))
    assert where_it_fired(world, 3, *corner) == ("background", None)
    assert where_it_fired(Squares(), 0, 0.5, 0.5) == ("red", None)  # no ground truth: the label


def test_diversity_images_disagree_when_they_point_different_ways():
    own = np.array([1.0, 0, 0, 0])
    same = np.array([[5.0, 1, 0, 0], [9.0, 2, 0, 0]])  # alike once the unit's own direction is out
    assert _disagreement(same, own) == pytest.approx(0, abs=1e-9)
    apart = np.array([[5.0, 1, 0, 0], [9.0, 0, 3, 0]])
    assert _disagreement(apart, own) == pytest.approx(1)


def test_probing_several_layers_in_one_pass_gives_each_the_same_answer(found):
    layer, alone = found
    conv = LayerInfo("conv", (5, 16, 16), tuple(range(5)))
    two = [Probe(conv, lambda acts: acts[:, :2], 2), Probe(layer, lambda acts: acts, 5)]
    first, second = strongest(detectors(), two, Squares(), top=24, batch_size=16, device=torch.device("cpu"))
    for name in ("values", "images", "positions", "vectors", "mean"):
        assert np.array_equal(getattr(second, name), getattr(alone, name)), name
    assert first.values.shape == (2, 24) and first.vectors.shape == (2, 24, 5)
    # Before the ReLU, the red detector's strongest examples are the same red squares.
    assert set(first.images[RED].tolist()) == set(alone.images[RED].tolist())


def test_the_stage_writes_scores_clusters_and_crops_and_leaves_silent_units_unscored(tmp_path):
    import json

    from atlas.artifacts import MixingSummary
    from atlas.config import Config, ModelConfig
    from atlas.pipeline import no_progress
    from atlas.stages import StageContext, polysemantic
    from atlas.store import Store

    model = detectors()
    with torch.no_grad():  # unit 2 (green) made silent: negative everywhere, then the ReLU
        model.module.conv.weight[GREEN] = -1.0
    config = Config(models=(ModelConfig(name="detectors", arch="test", layers=("relu",)),))
    ctx = StageContext(config=config, store=Store(tmp_path), device=torch.device("cpu"), progress=no_progress,
                       dataset=Squares())
    layer = LayerInfo("relu", (5, 16, 16), tuple(range(5)))
    made = polysemantic.run(ctx, model, [layer])
    (key,) = made.keys["relu"]
    (summary,) = made.model  # the model's summary, with this one layer in it
    assert [entry["layer"] for entry in ctx.store.read(MixingSummary, summary).layers] == ["relu"]
    folder = ctx.store.path(polysemantic.STAGE, key)
    units = json.loads((folder / "data.json").read_text())["units"]
    assert units[str(GREEN)] == {"score": None, "no_answer": SILENT, "clusters": []}
    mixed = units[str(OR_UNIT)]
    assert mixed["score"] > 0.7 and len(mixed["clusters"]) == 2
    # Each cluster is one color, which is also what is "under" it (no ground truth: the label).
    assert sorted(c["labels"][0][0] for c in mixed["clusters"]) == ["blue", "red"]
    assert all(c["labels"][0][1] == 1.0 and c["things"] == c["labels"] for c in mixed["clusters"])
    assert mixed["purity"] == round(max(c["size"] for c in mixed["clusters"]) / 48, 4)  # the larger color
    shown = [ex for c in mixed["clusters"] for ex in c["examples"] if "crop" in ex]
    assert len(shown) == 12 and all((folder / ex["crop"]).is_file() for ex in shown)
    # 40 of the 120 squares are red: its 48 strongest are those 40 and 8 others.
    assert units[str(RED)]["score"] < 0.2 and units[str(RED)]["purity"] == round(40 / 48, 4)


@pytest.mark.parametrize("seed", range(8))
def test_structureless_contexts_score_near_zero_and_two_meanings_do_not(seed):
    """A dense, signed layer's context at a unit's examples can be noise: 2-means splits
    it into two "orthogonal" halves, which alone looked like two meanings."""
    rng = np.random.default_rng(seed)
    channels, examples = int(rng.choice([8, 32, 128, 512])), int(rng.choice([24, 48]))
    noise = rng.normal(size=(examples, channels)) * rng.uniform(0.1, 10, channels)  # channels of any scale
    assert meanings(noise).separation > 0.5 and meanings(noise).score < 0.15
    a, b = rng.normal(size=channels), rng.normal(size=channels)
    half = examples // 2
    two = np.concatenate([3 * a + rng.normal(size=(half, channels)), 3 * b + rng.normal(size=(half, channels))])
    order = rng.permutation(examples)
    result = meanings(two[order])
    assert result.score > 0.4, result
    truth = (order >= half).astype(int)
    assert (result.assignment == truth).all() or (result.assignment == 1 - truth).all()
