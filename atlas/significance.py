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
2. **The claim's p-value**: the share of null units whose statistic for the family
   is at least the unit's (the unit counted as one more draw: ``(1 + k) / (1 + n)``).
3. **The false discovery rate.** Every claim the criteria make ("unit u is of family
   F", for each family whose criteria it meets) is one hypothesis; Benjamini-Hochberg
   over all of the layer's claims gives each a **q-value**, and a claim with q above
   the rate (0.05) is not a finding. A unit is labelled with its passing family of
   least q (a unit whose criteria hold for two families is tested for both, and both
   count as claims).

Under the null (the unit is like an untrained one) a claim's p-value is uniform, so
on a network that learned nothing the test names no unit at all with probability at
least ``1 - rate``. The smallest p-value a claim can get is ``1 / (1 + n)``: with ``M``
claims in a layer, ``k`` of them can pass only if ``n + 1 >= M / (k * rate)``;
``atlas.stages.null`` draws networks until the null has ``[null] units``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

RATE = 0.05  # the false discovery rate over a layer's labels


@dataclass(frozen=True)
class Verdict:
    """One unit's test: the family it is tested for (None: its criteria meet no
    family's), that family's statistic, the p-value of the label, its q-value and
    whether it is a finding."""

    family: str | None
    statistic: float | None
    p: float
    q: float
    passed: bool


def _tail(reference: np.ndarray, values: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Per value, (1 + reference entries >= it) / (1 + len): NaN in ``values`` -> 1.
    With ``exclude_self`` the values are the reference itself, each left out once."""
    n = len(reference)
    ordered = np.sort(reference[~np.isnan(reference)])
    count = len(ordered) - np.searchsorted(ordered, np.nan_to_num(values, nan=np.inf), side="left")
    if exclude_self:
        return np.where(np.isnan(values), 1.0, count / n)  # (1 + (count - 1)) / (1 + (n - 1))
    return np.where(np.isnan(values), 1.0, (1 + count) / (1 + n))


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


def _family_p(real: np.ndarray, null: np.ndarray, exclude_self: bool) -> np.ndarray:
    """(units, families) of the share of null units whose statistic is at least the
    unit's; 1 where the unit is not eligible."""
    columns = []
    for f in range(real.shape[1]):
        reference = np.where(np.isfinite(null[:, f]), null[:, f], np.nan)
        values = np.where(np.isfinite(real[:, f]), real[:, f], np.nan)
        columns.append(_tail(reference, values, exclude_self))
    return np.stack(columns, axis=1).reshape(real.shape)


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


def _claims(p: np.ndarray, statistic: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Benjamini-Hochberg over every claim "unit u is of family F" that the criteria make
    (eligible pairs), and each unit's family: the passing one with the least q-value,
    else the eligible one with the least p-value (ties to the larger statistic).
    (column or -1, q-values (units, families), passed per unit)."""
    eligible = np.isfinite(statistic)
    q = np.ones_like(p)
    q[eligible] = benjamini_hochberg(p[eligible])
    best = np.full(len(p), -1)
    for row in range(len(p)):
        columns = np.flatnonzero(eligible[row])
        if len(columns):
            best[row] = min(columns, key=lambda c: (q[row, c] > rate, q[row, c], p[row, c], -statistic[row, c]))
    passed = np.array([b >= 0 and q[row, b] <= rate for row, b in enumerate(best)], dtype=bool)
    return best, q, passed


def test(real: np.ndarray, null: np.ndarray, families: Sequence[str], rate: float = RATE) -> list[Verdict]:
    """Every real unit's label tested against the null units: ``real`` and ``null``
    are statistics (units, families) from ``statistics``, columns in ``families``
    order. Each claim the criteria make is tested against the null units' statistic
    for its family; the false discovery rate is controlled over all the layer's
    claims. With fewer than two null units no label can be tested: none passes."""
    if len(real) == 0:
        return []
    if len(null) < 2:
        return [Verdict(None, None, 1.0, 1.0, False) for _ in range(len(real))]
    p = _family_p(real, null, False)
    best, q, passed = _claims(p, real, rate)
    return [Verdict(families[b] if b >= 0 else None, round(float(real[row, b]), 4) if b >= 0 else None,
                    round(float(p[row, b]), 6) if b >= 0 else 1.0, round(float(q[row, b]), 6) if b >= 0 else 1.0,
                    bool(passed[row])) for row, b in enumerate(best)]


def self_test(null: np.ndarray, families: Sequence[str], rate: float = RATE) -> dict[str, int]:
    """How many null units of each family pass the same test when the null units are
    taken for a layer, each against the others: what the test names on a network
    that learned nothing."""
    if len(null) < 3:
        return {}
    best, _, passed = _claims(_family_p(null, null, True), null, rate)
    found: dict[str, int] = {}
    for row in np.flatnonzero(passed):
        found[families[best[row]]] = found.get(families[best[row]], 0) + 1
    return found


def eligible_counts(null: np.ndarray, families: Sequence[str]) -> dict[str, int]:
    """How many null units meet each family's criteria, before any test: what a label
    without the test would say about chance (a unit meeting several counts for each)."""
    return {f: int(np.isfinite(null[:, i]).sum()) for i, f in enumerate(families) if np.isfinite(null[:, i]).any()}
