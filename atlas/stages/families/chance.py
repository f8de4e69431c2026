"""Family labels against chance: a layer's labels kept only where they beat the null.

``atlas.stages.families.taxonomy`` says which family's criteria a unit meets; ``atlas.stages.families.significance``
says how often null units (untrained twins, or permuted kernels: ``atlas.stages.null``)
meet them as strongly. Here the two meet, for one layer:

- ``label_layer`` labels the layer's live units and its null units by the same
  criteria, tests every label against the null (``significance.test``) and keeps a
  named family only where its q-value is within the rate; the others become "Other",
  keeping what the criteria said and why it was not enough. It also says how often
  the null's own units get each label: by the criteria alone, and after the test.
- ``cluster_null`` is the discovered families' null: the best cluster that the same
  clustering finds among as many null units as the layer has, drawn again and again.

Pure functions of numbers (no torch, no store), so tests and benchmarks call them
directly.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from atlas.stages.families import calibration, discovery, significance, taxonomy
from atlas.stages.families.handwritten import MATCH
from atlas.stages.families.taxonomy import OTHER

CLUSTER_DRAWS = 99  # subsets of null units clustered for the discovered families' null


def margins(per_unit: dict[int, dict[str, Any]], units: Sequence[int], conditions: Sequence[taxonomy.Condition],
            first_layer: bool) -> np.ndarray:
    """(units, conditions) of each unit's margin on each condition
    (``taxonomy.Condition.margin``), NaN where one does not apply."""
    rows = [[np.nan if m is None else m for m in (c.margin(per_unit[u]["metrics"], first_layer)
                                                  for c in conditions)] for u in units]
    return np.array(rows, dtype=float).reshape(len(units), len(conditions))


def null_summary(values: np.ndarray) -> dict[str, Any]:
    """A family's null statistics, in brief: how many null units meet its criteria, and
    the 95th percentile and largest statistic among them."""
    met = values[np.isfinite(values)]
    return {"meets": int(len(met)), "p95": round(float(np.quantile(met, 0.95)), 3) if len(met) else None,
            "max": round(float(met.max()), 3) if len(met) else None}


def label_layer(per_unit: dict[int, dict[str, Any]], live: Sequence[int], null_per_unit: dict[int, dict[str, Any]],
                families: Sequence[taxonomy.Family], first_layer: bool,
                rate: float = significance.RATE) -> dict[str, Any]:
    """Test every live unit's label against the null units (both from ``label_units``
    over the same ``families``: those possible in the layer) and relabel in place: a
    unit keeps a named family only when the test passes; one whose criteria hold but
    whose test fails is "Other", with what the criteria said kept in its "test".
    Returns the layer's null report: {"units", "rate", "meets": {symbol: null units
    meeting the criteria}, "passed": {symbol: null units passing the same test},
    "distributions": {symbol: ``null_summary``}}."""
    null_units = sorted(null_per_unit)
    # One column per family and per variant of it (``taxonomy.Family.variants``).
    columns = [(f.symbol, name, conditions) for f in families for name, conditions in f.condition_sets()]
    symbols = [symbol for symbol, _, _ in columns]
    real = np.zeros((len(live), len(columns)))
    null = np.zeros((len(null_units), len(columns)))
    for i, (_, _, conditions) in enumerate(columns):
        real[:, i], null[:, i] = significance.statistics(margins(per_unit, live, conditions, first_layer),
                                                         margins(null_per_unit, null_units, conditions, first_layer))
    verdicts = significance.test(real, null, symbols, rate)
    own = [i for i, (_, name, _) in enumerate(columns) if name is None]  # each family's own criteria
    distributions = {symbols[i]: null_summary(null[:, i]) for i in own}
    for u, verdict in zip(live, verdicts):
        record = per_unit[u]
        criteria = record["family"] if record["family"] != OTHER.symbol else None
        column = verdict.column
        record["test"] = {"family": verdict.family, "variant": None if column is None else columns[column][1],
                          "statistic": verdict.statistic, "p": verdict.p, "q": verdict.q,
                          "passed": verdict.passed and criteria is not None, "criteria": criteria,
                          "null": None if column is None else null_summary(null[:, column])}
        if verdict.passed and criteria is not None:
            if verdict.family != criteria:  # the family least likely by chance, of those its criteria meet
                second, second_score = taxonomy.runner_up(record["scores"], verdict.family)
                record.update(second=second, second_score=second_score, borderline=False)
            record["family"] = verdict.family
            record["confidence"] = record["scores"][verdict.family]
        elif criteria is not None:  # the criteria hold, but no more than they do by chance
            record.update(family=OTHER.symbol, confidence=round(1 - record["scores"][criteria], 4))
    for u in live:  # the confidence shown is a probability (``atlas.stages.families.calibration``)
        record = per_unit[u]
        record["raw_confidence"] = record["confidence"]
        record["confidence"] = calibration.calibrated(calibration.group(record), record["confidence"])
    own_symbols = [symbols[i] for i in own]
    return {"units": len(null_units), "rate": rate, "meets": significance.eligible_counts(null[:, own], own_symbols),
            "passed": significance.self_test(null, symbols, rate), "distributions": distributions,
            "matches": _null_matches(null_per_unit, null_units, null[:, own], own_symbols)}


def _null_matches(null_per_unit: dict[int, dict[str, Any]], null_units: Sequence[int], statistics: np.ndarray,
                  symbols: Sequence[str]) -> dict[str, float]:
    """Per family with a handwritten detector: the 95th percentile of the null units'
    correlation with their own detector, among those that meet the family's criteria
    (what a random unit that looks like the family gets on the seventh argument)."""
    found = {}
    for i, symbol in enumerate(symbols):
        metric = MATCH.get(symbol)
        values = [null_per_unit[u]["metrics"].get(metric) for row, u in enumerate(null_units)
                  if np.isfinite(statistics[row, i])] if metric else []
        values = [v for v in values if v is not None]
        if values:
            found[symbol] = round(float(np.quantile(values, 0.95)), 4)
    return found


def cluster_null(null_responses: np.ndarray, size: int, seed: int = 0, draws: int = CLUSTER_DRAWS) -> list[float]:
    """For ``draws`` random sets of ``size`` null units (columns of ``null_responses``,
    stimuli x units), the coherence of the best cluster of at least
    ``discovery.MIN_MEMBERS`` that ``discovery.cluster`` finds (0 where none)."""
    signature = discovery.signatures(null_responses)
    rng = np.random.default_rng(seed)
    size = min(size, len(signature))
    best = []
    for _ in range(draws):
        rows = rng.choice(len(signature), size, replace=False)
        clusters = [c for c in discovery.cluster(signature[rows]) if len(c) >= discovery.MIN_MEMBERS]
        best.append(max((float(discovery.coherence(signature[rows], c)) for c in clusters), default=0.0))
    return best


def beats_cluster_null(value: float, null_best: Sequence[float]) -> float:
    """The p-value of a cluster's coherence against the null's best clusters."""
    null_best = np.asarray(null_best)
    return float((1 + (null_best >= value).sum()) / (1 + len(null_best)))
