"""``atlas plan``: estimates from times measured on the device, and the wall time on N
ranks by the rule the ranks claim artifacts by."""

from __future__ import annotations

import pytest
import torch

from atlas.config import load_config
from atlas.plan import Phase, estimate, wall_seconds


def test_wall_time_follows_the_claim_rule_and_waits_at_every_stage():
    stages = [Phase("m", "featurevis", [4, 1, 1, 1, 1, 1], ""), Phase("m", "tuning", [2, 2, 2], "")]
    assert wall_seconds(stages, 1) == 15
    # 4 | 1+1+1+1, then the tie goes to rank 0: 5 | 4; then, from those loads, 2 | 2+2
    assert wall_seconds(stages, 2) == 5 + 4
    assert wall_seconds(stages, 8) == 4 + 2  # no stage is shorter than its largest artifact


def test_estimate_has_every_configured_stage_and_grows_with_the_work(tiny_project):
    config = load_config(tiny_project / "atlas.toml", ["featurevis.steps=20"])
    cpu = torch.device("cpu")
    phases = estimate(config, cpu).phases
    assert [p.stage for p in phases] == ["featurevis", "weights", "examples", "tuning", "circuits", "null", "families",
                                         "polysemanticity", "superposition"]
    featurevis = phases[0]
    assert len(featurevis.items) == 2 and all(s > 0 for s in featurevis.items)  # one chunk per layer
    longer = estimate(load_config(tiny_project / "atlas.toml", ["featurevis.steps=2000"]), cpu).phases[0]
    # 100x the steps: at least a few times the time (the rest is the fixed cost per batch,
    # which dominates a model this small; the slope is measured, so noisy)
    assert longer.seconds > 3 * featurevis.seconds
    assert wall_seconds(phases, 2) <= sum(p.seconds for p in phases)


def test_plan_command_prints_stages_total_and_ranks(tiny_project, monkeypatch):
    from click.testing import CliRunner

    from atlas.cli import main

    monkeypatch.chdir(tiny_project)
    result = CliRunner().invoke(main, ["plan", "--set", "featurevis.steps=20", "--ranks", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "by stage (cpu): featurevis" in result.output and "total:" in result.output
    assert "on 3 ranks: about" in result.output and "on 8 ranks" not in result.output
    assert "site: about" in result.output and "for 6 units" in result.output  # before any work
    assert "it would fit GitHub Pages" in result.output and "on one H100: about" in result.output
    assert not (tiny_project / "cache" / "objects").exists()  # nothing was swept


def test_the_h100_estimate_is_the_work_in_flops_at_a_share_of_its_peak():
    from torch import nn

    from atlas.models import LoadedModel
    from atlas.plan import GPU_SHARE, H100_PEAK, Estimate, forward_flops

    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    model = LoadedModel("m", "test", conv.eval(), (0.0,) * 3, (1.0,) * 3, 8, "d")
    assert forward_flops(model, ["0"], torch.device("cpu")) == 2 * 3 * 3 * 3 * 4 * 8 * 8  # a multiply-add per tap
    found = Estimate([Phase("a", "featurevis", [60.0, 40.0], ""), Phase(None, "universality", [10.0], "")], {},
                     {"a": 1e11, "b": 3e11})
    # Model a's 100 s here at 1e11 FLOP/s; the atlas-scope 10 s at the models' mean rate.
    assert found.on_h100() == (100 * 1e11 + 10 * 2e11) / (H100_PEAK * GPU_SHARE)


def test_plan_is_one_loop_over_the_registry_and_says_what_it_cannot_estimate(tiny_project, monkeypatch):
    """Every stage of the sweep gets a phase from the ``cost`` beside its ``run`` (the
    activation atlas included); a stage without one is listed as not estimated."""
    from atlas import registry

    config = load_config(tiny_project / "atlas.toml", ["featurevis.steps=2", "sweep.stages=['examples', 'atlas']",
                                                       "atlas.points=32", "atlas.grid=2"])
    phases = estimate(config, torch.device("cpu")).phases
    assert [p.stage for p in phases] == ["examples", "atlas"]
    atlas_phase = phases[1]
    assert len(atlas_phase.items) == 2 and all(s > 0 for s in atlas_phase.items)  # one per layer
    assert "32 vectors laid out" in atlas_phase.detail

    costless = registry.Stage("examples", "model", lambda ctx, model, layers: {})  # its module has no cost
    monkeypatch.setattr(registry, "STAGES", [costless if s.name == "examples" else s for s in registry.STAGES])
    phases = estimate(config, torch.device("cpu")).phases
    assert phases[0].stage == "examples" and phases[0].items == [] and "not estimated" in phases[0].detail


def test_null_cost_runs_each_network_only_as_deep_as_the_layers_that_still_need_it(tiny_project):
    """A narrow layer needs more null networks than a wide one; the networks past the
    wide layer's count are calibrated only up to the narrow layer (hand-set times)."""
    from atlas.stages import LayerInfo, Measured, null, tuning

    config = load_config(tiny_project / "atlas.toml", ["null.units=64", "null.twins=16", "null.images=10"])
    narrow, wide = LayerInfo("a", (8, 4, 4), tuple(range(8))), LayerInfo("b", (64, 2, 2), tuple(range(64)))
    assert (null.networks_for(8, 64, 16), null.networks_for(64, 64, 16)) == (8, 2)
    measured = Measured(config, torch.device("cpu"), images=100, layers=[narrow, wide], build=1.0,
                        forward=0.5, forward_to={"a": 0.1, "b": 0.5}, shown_to={"a": 0.01, "b": 0.02})
    items = null.cost(measured).items
    drawn = tuning.BANK * tuning.drawing_seconds(measured)  # each layer's bank, drawn once
    shown_a, shown_b = drawn + 8 * tuning.BANK * 0.01, drawn + 2 * tuning.BANK * 0.02
    # Networks 0 and 1 serve both layers: built, calibrated on 10 images to b, shared.
    # Networks 2 to 7 serve a alone, calibrated to a.
    assert items[0] == pytest.approx(shown_a + 2 * (1.0 + 10 * 0.5) / 2 + 6 * (1.0 + 10 * 0.1))
    assert items[1] == pytest.approx(shown_b + 2 * (1.0 + 10 * 0.5) / 2)
