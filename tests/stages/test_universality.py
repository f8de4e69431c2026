import numpy as np
import pytest
import torch
from torch import nn

from atlas.models.loading import LoadedModel
from atlas.stages import LayerInfo
from atlas.stages.universality import PairMoments, Side, aligned, compare, pooled
from atlas.stages.universality.matching import MAX_SETS, best_buddies, matched_sets, summarize


def streamed(x: np.ndarray, y: np.ndarray, full: bool = True, batch: int = 37) -> PairMoments:
    moments = PairMoments(full=full)
    for start in range(0, len(x), batch):
        moments.update(torch.from_numpy(x[start:start + batch]), torch.from_numpy(y[start:start + batch]))
    return moments


def direct_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA through the centred Gram matrices (the definition, not the feature-space identity)."""
    x, y = x - x.mean(0), y - y.mean(0)
    gram_x, gram_y = x @ x.T, y @ y.T
    return float((gram_x * gram_y).sum() / np.sqrt((gram_x * gram_x).sum() * (gram_y * gram_y).sum()))


@pytest.fixture
def activations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = (x @ rng.normal(size=(12, 9)) + 0.5 * rng.normal(size=(300, 9))).astype(np.float32)
    return x, y


def test_streamed_correlations_equal_numpys_even_with_large_means(activations):
    x, y = activations
    x = x + 1e4  # a shift that would cancel the variance away without the shifted sums
    expected = np.corrcoef(x.T.astype(np.float64), y.T.astype(np.float64))[:12, 12:]
    for full in (False, True):
        assert np.allclose(streamed(x, y, full).correlation(), expected, atol=1e-4)


def test_a_constant_unit_correlates_zero_instead_of_nan(activations):
    x, y = activations
    x[:, 3] = 2.0
    r = streamed(x, y).correlation()
    assert np.all(r[3] == 0) and np.isfinite(r).all()


def test_cka_of_a_layer_with_itself_is_one_and_matches_the_gram_definition(activations):
    x, y = activations
    assert streamed(x, x).cka() == pytest.approx(1.0, abs=1e-6)
    assert streamed(x, y).cka() == pytest.approx(direct_cka(x.astype(np.float64), y.astype(np.float64)), abs=1e-5)
    assert streamed(x, y).cka() < 0.99


def test_cka_is_invariant_to_orthogonal_transforms_and_scaling(activations):
    x, y = activations
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    reference = streamed(x, y).cka()
    assert streamed((x @ q).astype(np.float32), y).cka() == pytest.approx(reference, abs=1e-5)
    assert streamed(x, 7.5 * y).cka() == pytest.approx(reference, abs=1e-5)
    # ... but not to an arbitrary invertible transform (what tells CKA from CCA).
    skew = np.diag(np.linspace(0.1, 10, 12))
    assert abs(streamed((x @ skew).astype(np.float32), y).cka() - reference) > 0.01


def test_cka_needs_full_moments(activations):
    with pytest.raises(ValueError, match="full"):
        streamed(*activations, full=False).cka()


def test_pooled_and_aligned_observations():
    acts = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    assert torch.equal(pooled(acts), acts.mean((2, 3)))
    rows = aligned(acts, 2)
    assert rows.shape == (2 * 2 * 2, 3)
    assert rows[0, 1] == acts[0, 1, :2, :2].mean()  # image 0, top-left cell, channel 1
    assert torch.equal(aligned(acts, 4)[5], acts[0, :, 1, 1])  # no resampling at the same size


def test_best_buddies_are_mutual_best_matches():
    scores = np.array([[0.9, 0.1, 0.0],
                       [0.8, 0.2, 0.7],  # row 1 prefers column 0, which prefers row 0
                       [0.0, 0.3, 0.75]])
    assert best_buddies(scores) == [(0, 0, 0.9), (2, 2, 0.75)]


# -- matching two models ------------------------------------------------------------

class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 12, 5, padding=2), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        return self.conv2(self.conv1(x))


def permuted_copy(model: TwoConvs, p1: torch.Tensor, p2: torch.Tensor, noise: float) -> TwoConvs:
    """The same network with its channels reordered (conv1 by p1, conv2 by p2) and noise on every weight."""
    copy = TwoConvs()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        c1, c2 = model.conv1[0], model.conv2[0]
        copy.conv1[0].weight.copy_(c1.weight[p1])
        copy.conv1[0].bias.copy_(c1.bias[p1])
        copy.conv2[0].weight.copy_(c2.weight[p2][:, p1])
        copy.conv2[0].bias.copy_(c2.bias[p2])
        for param in copy.parameters():
            param.add_(noise * param.abs().mean() * torch.randn(param.shape, generator=generator))
    return copy


def loaded(module: nn.Module, name: str) -> LoadedModel:
    return LoadedModel(name, "test", module.eval().requires_grad_(False), (0, 0, 0), (1, 1, 1), 24, name)


def image_batches(count: int = 6, size: int = 24):
    generator = torch.Generator().manual_seed(0)
    for _ in range(count):
        x = torch.rand(16, 3, size, size, generator=generator)
        yield x, x


def test_matching_recovers_a_permutation_of_a_noisy_copy():
    torch.manual_seed(0)
    model = TwoConvs()
    p1, p2 = torch.randperm(12), torch.randperm(16)
    copy = permuted_copy(model, p1, p2, noise=0.1)
    torch.manual_seed(1)
    random_a, random_b = TwoConvs(), TwoConvs()
    layers = [LayerInfo("conv1", (12, 24, 24), tuple(range(12))), LayerInfo("conv2", (16, 12, 12), tuple(range(16)))]
    a = Side(loaded(model, "a"), loaded(random_a, "ra"), layers)
    b = Side(loaded(copy, "b"), loaded(random_b, "rb"), layers)
    result = compare(a, b, image_batches())
    for name, perm in (("conv1", p1), ("conv2", p2)):
        buddies = best_buddies(result["scores"][name, name])
        # Unit i of the copy is unit perm[i] of the model.
        assert sorted((i, j) for i, j, _ in buddies) == sorted((int(perm[j]), j) for j in range(len(perm)))
        assert min(s for _, _, s in buddies) > 0.9
    assert np.diag(result["cka_trained"]).min() > 0.95  # conv1~conv1, conv2~conv2 in CKA too
    assert result["cka_trained"][0, 0] > result["cka_random_b"][0, 0]

    pair = {"a": {"model": "a", "layers": [{"name": l.name, "units": list(l.units)} for l in layers]},
            "b": {"model": "b", "layers": [{"name": l.name, "units": list(l.units)} for l in layers]},
            "cka_trained": result["cka_trained"].tolist(), "cka_random_b": result["cka_random_b"].tolist(),
            "arrays": {(field, la, lb): value for field in ("scores", "chance_a", "chance_b")
                       for (la, lb), value in result[field].items()}}
    summary = summarize([pair])
    for j in range(16):  # every unit of the copy finds its original, above chance, as best buddies
        match = summary["matches"]["b"]["conv2"][str(j)][0]
        assert (match["model"], match["layer"], match["index"]) == ("a", "conv2", int(p2[j]))
        assert match["above_chance"] and match["buddy"] and match["score"] > match["chance"]
    perms = {"conv1": p1, "conv2": p2}
    assert len(summary["sets"]) == min(12 + 16, MAX_SETS)
    for matched in summary["sets"]:  # each a unit of the model and its permuted copy
        original, copied = matched["units"]
        assert original["layer"] == copied["layer"] and original["index"] == int(perms[copied["layer"]][copied["index"]])


def test_matched_sets_keep_one_unit_per_model():
    buddies = [(("a", "l", 0), ("b", "l", 3), 0.9, 0.9), (("b", "l", 3), ("c", "l", 1), 0.7, 0.7),
               (("a", "l", 1), ("b", "l", 4), 0.8, 0.8), (("b", "l", 4), ("a", "m", 2), 0.8, 0.8)]
    sets = matched_sets(buddies)
    assert sets == [{"units": [{"model": "a", "layer": "l", "index": 0}, {"model": "b", "layer": "l", "index": 3},
                               {"model": "c", "layer": "l", "index": 1}], "score": 0.8}]


class ConvThenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(6 * 24 * 24, 5), nn.ReLU())

    def forward(self, x):
        return self.fc(self.conv(x))


def test_layers_without_space_are_compared_on_pooled_activations():
    torch.manual_seed(0)
    model, twin_a, twin_b = ConvThenLinear(), ConvThenLinear(), ConvThenLinear()
    layers = [LayerInfo("conv", (6, 24, 24), tuple(range(6))), LayerInfo("fc", (5,), tuple(range(5)))]
    a = Side(loaded(model, "a"), loaded(twin_a, "ra"), layers)
    b = Side(loaded(model, "b"), loaded(twin_b, "rb"), layers)  # the same network on both sides
    result = compare(a, b, image_batches())
    assert np.allclose(np.diag(result["scores"]["fc", "fc"]), 1.0, atol=1e-4)
    assert result["cka_trained"][1, 1] == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(result["cka_trained"]).all()
