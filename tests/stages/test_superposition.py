"""Toy models of superposition: dense features get a dimension each, sparse ones share."""

import numpy as np

from atlas.stages.superposition import DECAY, interference, norms, stored, summary, train


def test_dense_features_are_stored_one_per_dimension_and_sparse_ones_in_superposition():
    models = train(20, 5, (0.0, 0.99), decay=DECAY, seed=0)
    dense, sparse = stored(models)
    assert dense == 5  # as many as it has dimensions: the five most important
    assert sparse >= 10  # twice as many as it has dimensions
    n = norms(models)
    assert set(np.argsort(-n[0])[:5]) == set(range(5))
    # Dense: the stored features are (nearly) orthogonal; sparse: they interfere.
    on = n[0] >= 0.5
    assert interference(models)[0][on].max() < 0.05
    assert interference(models)[1][n[1] >= 0.5].mean() > 0.05


def test_interference_of_hand_set_columns():
    from atlas.stages.superposition import ToyModels

    w = np.array([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])  # features 0, 1 on the axes, feature 2 on the diagonal
    models = ToyModels(w, np.zeros((1, 3)), (0.0,), np.ones(3), np.zeros(1))
    # Feature 0 sees feature 2 projected onto it: (1 . (1, 1))^2 = 1; feature 2 sees 0 and 1: 2 * (1/sqrt2)^2.
    assert np.allclose(interference(models)[0], [1.0, 1.0, 1.0])
    assert np.allclose(norms(models)[0], [1, 1, np.sqrt(2)])
    assert summary(models)["models"][0]["dims_per_feature"] == 0.5  # 2 dims / |W|_F^2 = 2 / 4
