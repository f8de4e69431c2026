"""A family label's confidence as a probability: how often a label like it is right.

The criteria give a raw confidence (``taxonomy.classify``: a named family's score,
0.5 to 1; for "Other", one less the best family's score), and the null's test decides
whether a named family stands (``atlas.stages.families.chance``). Neither is a probability. Here each
label's raw confidence is mapped, within its **group**, to the share of ground-truth
units with such a label and raw confidence that were right:

- ``named``: a named family that beat the null;
- ``demoted``: the criteria named a family, but not beyond chance, so "Other";
- ``other``: no family's criteria held.

``CALIBRATION`` holds, per group, breakpoints ``(raw upper bound, probability)`` of a
monotone (isotonic) fit; ``benchmarks/families_groundtruth.py --fit`` fits them on the
development networks (seeds 0-5) and reports the reliability of the result on the
held-out ones. A group with no table keeps its raw confidence; so do discovered
families (their fit to the cluster), which ground truth does not have.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# Fitted by `python benchmarks/families_groundtruth.py --first 0 --networks 6 --fit`.
# 2026-12-03, seeds 0-5, 162 units; held-out reliability in the README.
CALIBRATION: dict[str, list[tuple[float, float]]] = {
    "demoted": [(0.1333, 0.111), (0.411, 0.75)],
    "named": [(0.7393, 0.8), (1.0, 0.983)],
    "other": [(1.0, 0.957)],
}


def group(record: dict[str, Any]) -> str:
    """Which calibration group a unit's families record belongs to."""
    test = record.get("test") or {}
    if record["family"] == "Ot":
        return "demoted" if test.get("criteria") else "other"
    return "named" if test.get("passed") else "discovered"  # a discovered family's members: not calibrated


def calibrated(name: str, raw: float, table: dict[str, list[tuple[float, float]]] | None = None) -> float:
    """The probability a label of group ``name`` with raw confidence ``raw`` is right."""
    breakpoints = (CALIBRATION if table is None else table).get(name)
    if not breakpoints:
        return raw
    for upper, probability in breakpoints:
        if raw <= upper:
            return probability
    return breakpoints[-1][1]


def _isotonic(raw: np.ndarray, right: np.ndarray) -> list[tuple[float, float]]:
    """Pool-adjacent-violators over ``raw`` (sorted ascending), each block's rate smoothed
    towards one half by one right and one wrong: [(the block's largest raw, its rate)]."""
    tied: list[list[float]] = []  # [raw, rights, count]: one raw value is one block, a lookup cannot split it
    for value, ok in zip(raw, right):
        if tied and tied[-1][0] == value:
            tied[-1][1:] = [tied[-1][1] + float(ok), tied[-1][2] + 1.0]
        else:
            tied.append([value, float(ok), 1.0])
    blocks: list[list[float]] = []  # [upper, rights, count]
    for block in tied:
        blocks.append(list(block))
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            upper, rights, count = blocks.pop()
            blocks[-1] = [upper, blocks[-1][1] + rights, blocks[-1][2] + count]
    rates = np.maximum.accumulate([(rights + 1) / (count + 2) for _, rights, count in blocks])  # still monotone
    return [(round(float(block[0]), 4), round(float(rate), 3)) for block, rate in zip(blocks, rates)]


def fit(observations: Sequence[tuple[str, float, bool]]) -> dict[str, list[tuple[float, float]]]:
    """``CALIBRATION`` from (group, raw confidence, right) of labelled ground-truth units."""
    table = {}
    for name in sorted({g for g, _, _ in observations}):
        pairs = sorted((raw, ok) for g, raw, ok in observations if g == name)
        table[name] = _isotonic(np.array([r for r, _ in pairs]), np.array([ok for _, ok in pairs]))
    return table
