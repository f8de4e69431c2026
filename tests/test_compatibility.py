"""The compatibility matrix (benchmarks/compatibility.py): every torchvision classification
architecture, random weights, a small input, through every per-unit stage and a render;
each stage gives values or a stated reason, never an exception or an empty result."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from compatibility import ARCHS, STAGES, check  # noqa: E402


# The whole matrix, one test per architecture (about two minutes in all here).
@pytest.mark.parametrize("arch", ARCHS)
def test_every_per_unit_stage_gives_values_or_a_stated_reason(arch, tmp_path):
    row = check(arch, folder=tmp_path)
    assert set(row.answers) == set(STAGES)
    assert not row.empty, row.answers
    for stage in ("examples", "tuning", "families"):  # these apply to every layer (feature vis: 2 steps, "failed")
        assert row.answers[stage]["values"] > 0, (stage, row.answers[stage])
    assert row.answers["circuits"]["values"] + sum(n for reason, n in row.answers["circuits"].items()
                                                   if reason.startswith("the linear path")) > 0
