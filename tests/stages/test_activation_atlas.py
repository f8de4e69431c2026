"""Activation atlases: the direction objective, the layout, the grid and the stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from atlas import optvis
from atlas.stages.activation_atlas import cells, layout


def test_direction_objective_is_the_dot_product_times_the_cosine_over_positions():
    acts = torch.zeros(3, 2, 1, 2)  # two positions
    acts[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # length 5; the other position is zero
    acts[1, :, 0, 0] = torch.tensor([0.0, 2.0])
    acts[2, :, 0, :] = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    directions = torch.tensor([[1.0, 0.0], [10.0, 0.0], [1.0, 1.0]])
    values = optvis.direction_values(acts, directions)
    assert values[0].item() == pytest.approx(3.0 * 0.6 / 2)  # dot 3 (unit direction) x cosine 3/5, over 2 positions
    assert values[1].item() == pytest.approx(0.0)  # orthogonal: dot 0
    assert values[2].item() == pytest.approx(8 ** 0.5)  # along it at both: dot |(2, 2)|, cosine 1
    moved = optvis.direction_values(acts, directions, origin=torch.tensor([3.0, 0.0]))
    # (3, 4) less the origin is (0, 4): orthogonal to (1, 0); the zero position is (-3, 0): away, cosine floored
    assert moved[0].item() == pytest.approx((0 + -3 * 0.1) / 2)
    flat = optvis.direction_values(torch.tensor([[0.0, -2.0]]), torch.tensor([[0.0, 1.0]]))  # (N, C): one position
    assert flat.item() == pytest.approx(-2.0 * 0.1)  # pointing away: the cosine is floored, the sign stays


def clusters(per: int = 60, dims: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters of positive vectors, each around its own random direction."""
    rng = np.random.default_rng(seed)
    centres = rng.random((3, dims)) ** 4 * 5
    vectors = np.concatenate([centre + rng.normal(0, 0.05, (per, dims)) for centre in centres]).clip(0)
    return vectors.astype(np.float32), np.repeat(np.arange(3), per)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_layout_keeps_clusters_apart(seed):
    vectors, truth = clusters(seed=seed)
    places, trust = layout(vectors, "tsne", seed)
    assert places.shape == (len(vectors), 2) and places.min() >= 0 and places.max() <= 1
    # every point's nearest neighbour in the layout is from its own cluster
    distance = np.linalg.norm(places[:, None] - places[None], axis=2) + np.eye(len(places)) * 9
    assert (truth[distance.argmin(1)] == truth).all()
    assert trust > 0.9


def test_scale_does_not_move_a_vector_in_the_layout():
    """Directions are laid out, not lengths: a cluster of the same direction at ten
    times the activation lands with its short copies."""
    vectors, truth = clusters(per=40, seed=3)
    scaled = vectors.copy()
    scaled[truth == 0][:20] *= 10
    places, _ = layout(scaled, "tsne", 0)
    distance = np.linalg.norm(places[:, None] - places[None], axis=2) + np.eye(len(places)) * 9
    assert (truth[distance.argmin(1)] == truth).all()


def test_cells_count_label_and_name_the_units_that_carry_them():
    # four points in the top-left cell of a 2x2 grid, two in the bottom-right, one alone
    places = np.array([[0.1, 0.1], [0.2, 0.1], [0.1, 0.2], [0.3, 0.3], [0.9, 0.9], [0.8, 0.7], [0.9, 0.1]])
    vectors = np.array([[5, 0, 0], [5, 0, 1], [4, 0, 0], [5, 1, 0], [0, 0, 6], [0, 1, 6], [0, 9, 0]], np.float32)
    owners = np.array([0, 1, 2, 2, 3, 3, 4])
    labels = ["cat", "cat", "dog", "car", ""]
    found = cells(places, vectors, owners, labels, grid=2, min_count=2, units=[0, 1, 2])
    assert [(c["row"], c["column"], c["count"]) for c in found] == [(0, 0, 4), (1, 1, 2)]
    top_left, bottom_right = found
    assert top_left["units"][0][0] == 0 and bottom_right["units"][0][0] == 2  # their strongest channel
    assert top_left["labels"] == [["cat", 0.5], ["dog", 0.5]]  # images 0, 1 (cat), 2 twice (dog)
    assert bottom_right["labels"] == [["car", 1.0]]
    # images by their point's distance to the cell's centre (0.25, 0.25), each once
    assert top_left["examples"] == [2, 1, 0]  # (0.3, 0.3) is image 2; then (0.2, 0.1), image 1
    np.testing.assert_allclose(top_left["direction"], vectors[:4].mean(0))
    only_swept = cells(places, vectors, owners, labels, grid=2, min_count=2, units=[1, 2])
    assert all(u != 0 for c in only_swept for u, _ in c["units"])  # an unswept channel is never named


def test_a_direction_image_turns_toward_its_direction():
    """ColorNet's conv1 is a fixed 1x1 color filter: the image for the direction of unit
    2 (blue) is blue at its centre, and that of unit 0 (R - G) red."""
    from atlas.models import LoadedModel
    from atlas.optvis.render import render_directions
    from tests.tiny_models import ColorNet

    model = LoadedModel("c", "test", ColorNet().eval(), (0, 0, 0), (1, 1, 1), 16, "digest")
    rendered = render_directions(model, "conv1", np.array([[0, 0, 1, 0], [1, 0, 0, 0]], np.float32),
                                 steps=60, size=48, lr=0.3, seed=0, device=torch.device("cpu"))
    centre = rendered.images[:, 20:28, 20:28].reshape(2, -1, 3).mean(1)
    assert centre[0, 2] > centre[0, 0] + 40 and centre[0, 2] > centre[0, 1] + 40  # blue
    assert centre[1, 0] > centre[1, 1] + 40  # red over green
    assert not rendered.failed.any()
    assert (rendered.activations > rendered.start).all()


def test_the_stage_maps_a_layer_and_is_cached(tiny_project):
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.store import Store

    overrides = ["sweep.stages=['atlas']", "atlas.points=48", "atlas.grid=3", "atlas.min_count=2"]
    config = load_config(tiny_project / "atlas.toml", overrides)
    (model,) = sweep(config).to_json()["models"]
    store = Store(tiny_project / "cache")
    key = model["layers"][0]["artifacts"]["atlas"][0]
    folder = store.path("atlas", key)
    found = json.loads((folder / "data.json").read_text())
    # 6 files for 48 vectors: 8 positions each, of the 5 readable ones; silent vectors left out
    assert found["sampled"] == 40 and 0 < found["points"] <= 40
    assert sum(c["count"] for c in found["cells"]) <= found["points"]
    assert all(c["count"] >= 2 for c in found["cells"]) and found["cells"]
    for cell in found["cells"]:
        assert (folder / f"cell-{cell['row']}-{cell['column']}.webp").is_file()
        assert {str(i) for i in cell["examples"]} <= set(found["images"])
    assert np.load(folder / "layout.npy").shape == (found["points"], 2)
    # a second sweep reuses it
    again = sweep(load_config(tiny_project / "atlas.toml", overrides)).to_json()["models"][0]
    assert again["layers"][0]["artifacts"]["atlas"] == [key]
    assert json.loads((folder / "data.json").read_text()) == found
