"""Dictionary learning: the sparse autoencoder finds planted sparse directions, and the
dictionary model reads the layer through its encoder."""

import torch
from torch import nn

from atlas.models import LoadedModel
from atlas.stages.dictionary import DictionaryReadout, dictionary_model, train


def planted(inputs=16, directions=24, active=1.5, samples=32768, seed=0):
    """Sparse sums of more unit directions than dimensions (superposition), plus an offset."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(directions, inputs, generator=g)
    d /= d.norm(dim=1, keepdim=True)
    on = torch.rand(samples, directions, generator=g) < active / directions
    return (on * (torch.rand(samples, directions, generator=g) + 0.5)) @ d + 0.2, d


def test_sparse_autoencoder_recovers_planted_directions():
    x, directions = planted()
    trained = train(x, 48, l1=0.05, steps=3000, batch=1024, lr=3e-3, seed=0)
    decoder = trained.sae.decoder.detach().T
    decoder = decoder / decoder.norm(dim=1, keepdim=True)
    best = (directions @ decoder.T).max(1).values
    assert best.min() >= 0.9, best
    assert trained.stats["explained_variance"] > 0.85 and trained.stats["l0"] < 6  # sparse: 1.5 planted on average
    # A dense code of the same data (no sparsity penalty) does not find them.
    dense = train(x, 48, l1=0.0, steps=300, batch=1024, lr=3e-3, seed=0).sae.decoder.detach().T
    assert (directions @ (dense / dense.norm(dim=1, keepdim=True)).T).max(1).values.min() < 0.9


def test_the_dictionary_model_outputs_the_encoders_pre_activations_at_the_layer():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    module = nn.Sequential()
    module.add_module("conv", conv)
    module.add_module("relu", nn.ReLU())
    model = LoadedModel("m", "test", module.eval(), (0, 0, 0), (1, 1, 1), 8, "digest")
    trained = train(torch.rand(512, 4), 8, l1=0.01, steps=20, batch=64, lr=1e-2, seed=0)
    wrapped = dictionary_model(model, "relu", trained, "key")
    assert wrapped.digest != model.digest and isinstance(wrapped.module.relu, DictionaryReadout)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        acts = module(x)  # the original model is untouched
        out = wrapped.module(x)
        vectors = acts.permute(0, 2, 3, 1).reshape(-1, 4)
        expected = trained.sae.pre(vectors * trained.scale).reshape(2, 8, 8, 8).permute(0, 3, 1, 2)
    assert out.shape == (2, 8, 8, 8) and torch.allclose(out, expected, atol=1e-5)
