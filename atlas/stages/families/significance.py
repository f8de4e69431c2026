"""Whether a label beats chance: empirical p-values against a null, and the false
discovery rate over a layer.

A family's criteria can be met by chance: an untrained network of the same
architecture has units that respond to curves more than lines, to color edges more
than luminance edges, just by the luck of its random weights. So a unit's label is a
finding only when its evidence is stronger than what the **null units** (the same
layer of untrained twins, or of the network with each kernel's weights permuted:
``atlas.stages.null``) show under the same measurements.

The test, for one layer (``test``):

1. **Each criterion against its null.** A family's conditions each give a unit a
   margin (how far past its threshold the unit is, ``taxonomy.Condition``). For each
   condition, the unit's tail share is the share of null units with a margin at
   least as large. A unit meeting every condition gets the family's **statistic**,
   the sum of ``-log`` of its tail shares (Fisher's combination): a condition that
   random units meet as easily adds almost nothing, one they rarely meet adds much;
   a bounded metric at its limit, where many null units sit too, is no evidence.
   A unit that misses a condition is not eligible for the family.
2. **The family's p-value**: how likely a null unit is to be at least as strong in
   the family: the share of null units that are, ``(1 + k) / (1 + n)``; beyond the
   tenth strongest null unit, the share that meets the criteria times an exponential
   tail fitted to their upper half, so that a unit far beyond every null unit gets a
   p-value that says how far, not just ``1 / (1 + n)``.
3. **The unit's p-value.** A unit is labelled with the eligible family least likely
   under the null. Picking the best of several families is itself a chance to get
   lucky; the null units had the same chance, so the unit's p-value is how likely a
   null unit's best family is at least as unlikely (beyond the null's tenth most
   extreme unit: the unit's best family p-value times the null's effective number of
   families, measured there).
4. **The false discovery rate.** Benjamini-Hochberg over the layer's live units gives
   each label a **q-value**; a label with q above the rate (0.05) is not a finding,
   and the unit is "Other".

Under the null (the unit is like an untrained one) a unit's p-value is uniform, so on
a network that learned nothing the test names no unit at all with probability at
least ``1 - rate``, in expectation over networks (units of one network share its
upstream draw, so when chance names one it may name a few).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

RATE = 0.05  # the false discovery rate over a layer's labels


@dataclass(frozen=True)
class Verdict:
    """One unit's test: the family it is tested for (None: its criteria meet no
    family's), that family's statistic, the p-value of the label, its q-value,
    whether it is a finding, and the column of the statistic (a family may have
    several: its variants)."""

    family: str | None
    statistic: float | None
    p: float
    q: float
    passed: bool
    column: int | None = None


def _counts(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value, how many non-NaN reference entries are at least it (NaN values: none)."""
    ordered = np.sort(reference[~np.isnan(reference)])
    return len(ordered) - np.searchsorted(ordered, np.nan_to_num(values, nan=np.inf), side="left")


def _tail(reference: np.ndarray, values: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Per value, (1 + reference entries >= it) / (1 + len): NaN in ``values`` -> 1.
    With ``exclude_self`` the values are the reference itself: each counts itself once,
    so a null unit's share has the same denominator as a real unit's against the null."""
    count = _counts(reference, values) - (1 if exclude_self else 0)
    return np.where(np.isnan(values), 1.0, (1 + count) / (1 + len(reference)))


def statistics(real: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One family's statistic for each real and each null unit (null units against the
    others): ``real`` (units, conditions) and ``null`` (null units, conditions) are
    margins, NaN where a condition does not apply. -inf: not eligible."""
    def combine(margins: np.ndarray, tails: np.ndarray) -> np.ndarray:
        applies = ~np.isnan(margins)
        eligible = applies.any(1) & np.all(np.where(applies, margins >= 0, True), axis=1)
        return np.where(eligible, -np.log(tails).sum(1), -np.inf)

    real_tails = np.stack([_tail(null[:, c], real[:, c], False) for c in range(real.shape[1])], axis=1)
    null_tails = np.stack([_tail(null[:, c], null[:, c], True) for c in range(null.shape[1])], axis=1)
    return combine(real, real_tails), combine(null, null_tails)


TAIL = 10  # beyond the TAIL-th most extreme null value, p-values come from a fitted tail


def _smooth_tail(reference: np.ndarray, values: np.ndarray, exclude_self: bool) -> np.ndarray:
    """P(a null draw >= value), for each value (NaN: 1), from ``reference`` (NaN: a draw
    that meets nothing). Empirical, ``(1 + k) / (1 + n)``, where at least ``TAIL`` null
    draws are that large; beyond, the share that meets anything times an exponential
    tail fitted to the upper half of those that do (their mean excess over the median),
    so a unit beyond every null unit gets a p-value below ``1 / (1 + n)`` that says how
    far beyond. With fewer than ``2 * TAIL`` draws that meet anything, the empirical
    value. ``exclude_self``: as ``_tail``."""
    p = _tail(reference, values, exclude_self)
    met = np.sort(reference[~np.isnan(reference)])
    if len(met) >= 2 * TAIL:
        count = _counts(reference, values) - (1 if exclude_self else 0)
        median = float(np.median(met))
        excess = float(np.mean(met[met > median] - median)) if (met > median).any() else 0.0
        if excess > 0:
            above = np.nan_to_num(values, nan=-np.inf) - median
            fitted = (len(met) + 1) / (1 + len(reference)) * 0.5 * np.exp(-np.maximum(above, 0) / excess)
            p = np.where((count < TAIL) & ~np.isnan(values), fitted, p)
    return p


def _family_p(real: np.ndarray, null: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """(units, families): for each eligible unit, how likely a null unit is at least as
    strong in the family (``_smooth_tail``); 1 where the unit is not eligible."""
    columns = []
    for f in range(real.shape[1]):
        reference = np.where(np.isfinite(null[:, f]), null[:, f], np.nan)
        values = np.where(np.isfinite(real[:, f]), real[:, f], np.nan)
        columns.append(_smooth_tail(reference, values, exclude_self))
    return np.stack(columns, axis=1).reshape(real.shape)


def _unit_p(best: np.ndarray, null_best: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Each unit's p-value: how likely a null unit's best family is at least as unlikely
    (its least family p-value at most the unit's). Picking the best of several families
    is a chance to get lucky; the null units had the same chance, so the null measures
    what it is worth. Empirical where ``TAIL`` null units are that extreme; beyond, the
    unit's best family p-value times the null's effective number of families there (how
    many times more often a null unit's best family is that unlikely than one family
    is, at the ``TAIL``-th most extreme null unit). ``exclude_self``: as ``_tail``."""
    n = len(null_best)
    ordered = np.sort(null_best)
    count = np.searchsorted(ordered, best, side="right") - (1 if exclude_self else 0)
    p = (1 + count) / (1 + n)
    if n >= 2 * TAIL:
        edge = ordered[TAIL - 1]  # the TAIL-th smallest
        families = max(1.0, TAIL / (1 + n) / edge) if edge > 0 else 1.0
        p = np.where(count < TAIL, families * best, p)
    return np.minimum(np.where(best >= 1, 1.0, p), 1.0)


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up adjusted p-values), in the order given."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def _label(p: np.ndarray, statistic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's family (the eligible one least likely under the null, ties to the
    larger statistic; -1: none) and that family's p-value (1: none)."""
    best = np.full(len(p), -1)
    value = np.ones(len(p))
    for row in range(len(p)):
        columns = np.flatnonzero(np.isfinite(statistic[row]))
        if len(columns):
            best[row] = min(columns, key=lambda c: (p[row, c], -statistic[row, c]))
            value[row] = p[row, best[row]]
    return best, value


def test(real: np.ndarray, null: np.ndarray, families: Sequence[str], rate: float = RATE) -> list[Verdict]:
    """Every real unit's label tested against the null units: ``real`` and ``null``
    are statistics (units, columns) from ``statistics``, each column's family in
    ``families`` (a family may have several columns: its variants). With fewer than two null units no label can be tested: none passes."""
    if len(real) == 0:
        return []
    if len(null) < 2:
        return [Verdict(None, None, 1.0, 1.0, False) for _ in range(len(real))]
    best, value = _label(_family_p(real, null), real)
    _, null_value = _label(_family_p(null, null, exclude_self=True), null)
    p = _unit_p(value, null_value)
    q = benjamini_hochberg(p)
    return [Verdict(families[b] if b >= 0 else None, round(float(real[row, b]), 4) if b >= 0 else None,
                    float(f"{p[row]:.3g}"), float(f"{q[row]:.3g}"), bool(b >= 0 and q[row] <= rate),
                    int(b) if b >= 0 else None)
            for row, b in enumerate(best)]


def self_test(null: np.ndarray, families: Sequence[str], rate: float = RATE) -> dict[str, int]:
    """How many null units of each family pass the same test when the null units are
    taken for a layer, each against the others: what the test names on a network that
    learned nothing."""
    found: dict[str, int] = {}
    if len(null) < 3:
        return found
    best, value = _label(_family_p(null, null, exclude_self=True), null)
    passed = (benjamini_hochberg(_unit_p(value, value, exclude_self=True)) <= rate) & (best >= 0)
    for row in np.flatnonzero(passed):
        found[families[best[row]]] = found.get(families[best[row]], 0) + 1
    return found


def eligible_counts(null: np.ndarray, families: Sequence[str]) -> dict[str, int]:
    """How many null units meet each family's criteria, before any test: what a label
    without the test would say about chance (a unit meeting several counts for each)."""
    return {f: int(np.isfinite(null[:, i]).sum()) for i, f in enumerate(families) if np.isfinite(null[:, i]).any()}
