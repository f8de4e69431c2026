import numpy as np

from atlas.stages.families import calibration, chance, significance
from atlas.stages.families.taxonomy import FAMILIES


def test_benjamini_hochberg_matches_its_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # Sorted: 0.005, 0.01, 0.03, 0.04, 0.5 -> x 5 / rank: 0.025, 0.025, 0.05, 0.05, 0.5 (monotone from the top).
    assert np.allclose(significance.benjamini_hochberg(p), [0.025, 0.05, 0.05, 0.025, 0.5])


def test_a_criterion_every_null_unit_meets_as_well_adds_no_evidence():
    rng = np.random.default_rng(0)
    null = np.column_stack([np.full(200, 2.0), rng.uniform(0, 1, 200)])  # condition 0 at its bound for everyone
    real = np.array([[2.0, 0.5], [2.0, 5.0], [2.0, -0.1]])
    real_stat, null_stat = significance.statistics(real, null)
    assert np.isneginf(real_stat[2])  # misses a condition: not eligible
    # Condition 0 contributes -log(201/201) = 0: the statistic is condition 1's tail alone.
    assert np.isclose(real_stat[1], np.log(201))
    assert real_stat[0] < real_stat[1] and np.isfinite(null_stat).all()


def test_units_like_the_null_are_almost_never_named_and_units_beyond_it_are():
    rng = np.random.default_rng(1)
    families = ["A", "B", "C"]
    null = rng.normal(size=(400, 3))
    null[rng.uniform(size=null.shape) < 0.5] = -np.inf  # half the null meets no criteria
    like_null = rng.normal(size=(300, 3))
    like_null[rng.uniform(size=like_null.shape) < 0.5] = -np.inf
    verdicts = significance.test(like_null, null, families)
    assert sum(v.passed for v in verdicts) <= 3  # a 5% false discovery rate: none, or a stray few
    beyond = like_null.copy()
    beyond[:30, 1] = 10.0  # 30 units far beyond every null unit in B
    verdicts = significance.test(beyond, null, families)
    assert all(v.passed and v.family == "B" for v in verdicts[:30])
    assert verdicts[0].p < 1 / 401 and verdicts[0].q <= 0.05  # beyond every null unit: the fitted tail says how far
    # The null's own units, taken for a layer, pass almost never.
    assert sum(significance.self_test(null, families).values()) <= 3


def test_with_too_small_a_null_nothing_is_named():
    verdicts = significance.test(np.array([[5.0]]), np.array([[1.0]]), ["A"])
    assert verdicts[0].passed is False


def _record(metrics, family="Ot", score=0.0):
    return {"metrics": metrics, "family": family, "confidence": score, "scores": {"Cv": score}}


def test_a_layer_keeps_the_labels_that_beat_its_null_and_says_why_it_drops_the_others():
    curve = next(f for f in FAMILIES if f.symbol == "Cv")
    rng = np.random.default_rng(2)

    def metrics(contour, curvature, bulge, match):
        return {"contour_curve": contour, "curvature": curvature, "bulge_selectivity": bulge, "curve_match": match}

    # Null units: curve-ish by the criteria some of the time, never following a curve detector closely.
    null = {i: _record(metrics(1.0, rng.uniform(-0.5, 1), rng.uniform(0, 0.6), rng.uniform(-0.3, 0.3)))
            for i in range(300)}
    real = {0: _record(metrics(1.0, 1.0, 0.9, 0.9), "Cv", 1.0),  # a curve detector beyond every null unit
            1: _record(metrics(1.0, 0.5, 0.3, 0.1), "Cv", 0.8)}  # meets the criteria as the null does
    report = chance.label_layer(real, [0, 1], null, [curve], first_layer=False)
    assert real[0]["family"] == "Cv" and real[0]["test"]["passed"] and real[0]["test"]["p"] < 1 / 301
    assert real[1]["family"] == "Ot" and real[1]["test"]["criteria"] == "Cv" and not real[1]["test"]["passed"]
    assert report["units"] == 300 and report["meets"]["Cv"] > 50 and report["passed"].get("Cv", 0) <= 3


def test_a_family_variant_the_null_never_shows_carries_a_unit_its_base_criteria_would_not():
    from atlas.stages.families.taxonomy import Condition, Family

    base = (Condition("a", low=0.0),)
    family = Family("Zz", "Test", "", base, variants=(("strict", (Condition("b", low=0.5),)),))
    rng = np.random.default_rng(3)

    def _record(metrics, family, score):
        return {"metrics": metrics, "family": family, "confidence": score, "scores": {"Zz": score}}

    # Null units meet "a" as strongly as the real ones, and never show "b".
    null = {i: _record({"a": rng.uniform(0, 2), "b": rng.uniform(0, 0.4)}, "Zz", 0.6) for i in range(200)}
    real = {i: _record({"a": 1.0, "b": 0.9}, "Zz", 0.6) for i in range(3)}
    report = chance.label_layer(real, [0, 1, 2], null, [family], first_layer=False)
    assert all(real[i]["family"] == "Zz" and real[i]["test"]["variant"] == "strict" for i in range(3))
    assert report["meets"] == {"Zz": 200}  # the family's own criteria: every null unit meets them
    # Without the variant the same units are no different from the null.
    real = {i: _record({"a": 1.0, "b": 0.9}, "Zz", 0.6) for i in range(3)}
    chance.label_layer(real, [0, 1, 2], null, [Family("Zz", "Test", "", base)], first_layer=False)
    assert all(real[i]["family"] == "Ot" and real[i]["test"]["variant"] is None for i in range(3))


def test_calibration_is_a_monotone_map_fitted_per_group():
    observations = [("named", 0.6, False), ("named", 0.7, True), ("named", 0.9, True), ("named", 0.95, True),
                    ("other", 0.2, False), ("other", 0.9, True)]
    table = calibration.fit(observations)
    assert [p for _, p in table["named"]] == sorted(p for _, p in table["named"])
    assert calibration.calibrated("named", 0.95, table) > calibration.calibrated("named", 0.6, table)
    assert calibration.calibrated("discovered", 0.7, table) == 0.7  # no table: the raw confidence
    # Equal raw confidences are one block: 1.0 nine times right in ten is 0.83 (smoothed), whatever their order.
    tied = calibration.fit([("named", 0.7, True), ("named", 0.7, False)] + [("named", 1.0, i > 0) for i in range(10)])
    assert [upper for upper, _ in tied["named"]] == [0.7, 1.0]
    assert calibration.calibrated("named", 1.0, tied) == round(10 / 12, 3)
    assert calibration.group({"family": "Ot", "test": {"criteria": "Cv"}}) == "demoted"
