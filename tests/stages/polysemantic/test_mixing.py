"""The findings of the polysemanticity and universality pages, on numbers made by hand."""

import pytest

from atlas.stages.polysemantic.mixing import (MOST_MIXED, family_agreement, layer_summary, rank_correlation,
                                              spread_features)
from atlas.stages.universality import buddy_families


def test_rank_correlation_is_spearmans_and_none_when_a_side_is_constant():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)  # ranks 0 3 1 2
    assert rank_correlation([1, 2, 3], [5, 5, 5]) is None
    assert rank_correlation([1, 2], [1, 2]) is None  # too few to rank


def test_layer_summary_lists_the_most_mixed_first_and_agrees_with_the_ground_truth():
    scores = {u: u / 10 for u in range(8)}
    purity = {u: 1 - u / 10 for u in range(8)}  # the more mixed the score, the less pure the examples
    summary = layer_summary(scores, purity)
    assert summary["mixed"] == [7, 6, 5, 4, 3, 2][:MOST_MIXED]
    assert summary["median"] == pytest.approx(0.35)
    assert summary["agreement"] == pytest.approx(1.0)
    assert layer_summary({}, {}) is None


def test_a_pure_unit_whose_strongest_uses_are_mixed_is_a_spread_feature():
    scores = {"a": {0: 0.1, 1: 0.5, 2: 0.9}, "b": {0: 0.9, 1: 0.8, 2: 0.1, 3: 0.2, 4: 0.3, 5: 0.15}}
    # a0 (pure) feeds b0 and b1 (both mixed) strongly and b2 weakly; a1 is not pure.
    outputs = {"a": ("b", {0: [(0, 1.0), (1, 0.6), (2, 0.2)], 1: [(0, 1.0), (1, 1.0)]})}
    (found,) = spread_features(["a", "b"], scores, outputs)
    assert (found["unit"], found["layer"], found["next"], found["mixed"]) == (0, "a", "b", 2)
    assert found["uses"] == [[0, 1.0], [1, 0.6]]  # within half of the strongest weight
    # A use at less than half the strongest does not count: with b1 at 0.4, one mixed use is not enough.
    outputs["a"][1][0][1] = (1, 0.4)
    assert spread_features(["a", "b"], scores, outputs) == []
    assert spread_features(["a"], scores, outputs) == []  # no next layer


def test_family_agreement_counts_shared_families_against_chance():
    pairs = [("Cu", "Cu"), ("Cu", "Cu"), ("Ln", "Cu"), ("Ln", "Ln")]
    # left: Cu Cu Ln Ln, right: Cu Cu Cu Ln -> expected (2 * 3 + 2 * 1) / 4 = 2
    assert family_agreement(pairs) == {"pairs": 4, "same": 3, "expected": 2.0}
    assert family_agreement([]) is None


def test_buddy_families_counts_each_pair_once_and_only_above_chance_with_named_families():
    def match(model, layer, index, buddy=True, above=True):
        return {"model": model, "layer": layer, "index": index, "buddy": buddy, "above_chance": above}

    matches = {"m": {"l": {"0": [match("n", "k", 3)], "1": [match("n", "k", 4, above=False)],
                           "2": [match("n", "k", 5)]}},
               "n": {"k": {"3": [match("m", "l", 0)], "5": [match("m", "l", 2)]}}}
    named = {("m", "l", 0): "Cu", ("n", "k", 3): "Ln", ("m", "l", 1): "Cu", ("n", "k", 4): "Cu",
             ("m", "l", 2): "Cu"}  # n/k/5 has no named family
    assert buddy_families(matches, named) == [("Cu", "Ln")]
