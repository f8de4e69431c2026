"""The stage registry: the config's stage list derives from it, and a new per-unit
stage is one function and one registry entry (docs/architecture.md, "How to add a
stage"): this file is such a stage, swept and shown without other code."""

from __future__ import annotations


import pytest
import torch

from atlas import registry
from atlas.artifacts import Measures, write
from atlas.config import load_config
from atlas.errors import ConfigError
from atlas.nn.capture import capture
from atlas.pipeline import sweep
from atlas.registry import Stage
from atlas.render import render_site
from atlas.render.catalog import read_catalog
from atlas.stages import StageContext, artifact_key, model_identity

COLORS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


def pure_colors(ctx: StageContext, model, layer) -> list[str]:
    """A per-unit stage: each unit's output at the centre of a pure red, green and blue image."""
    key = artifact_key(stage="colors", model=model_identity(model), layer=layer.name, units=layer.units)
    with ctx.artifact("colors", key, model=model.name, layer=layer.name) as folder:
        if folder is not None:
            x = torch.tensor(list(COLORS.values())).view(3, 3, 1, 1).expand(3, 3, model.input_size, model.input_size)
            with torch.no_grad():
                out = capture(model.module, model.normalize(x), [layer.name])[layer.name]
            centre = out[:, :, out.shape[2] // 2, out.shape[3] // 2]
            write(folder, Measures(title="Pure colors", about="The unit's output on a whole image of one color.",
                                   units={str(u): {name: round(float(centre[i, u]), 4) for i, name in enumerate(COLORS)}
                                          for u in layer.units}))
    return [key]


@pytest.fixture
def colors_stage(monkeypatch):
    monkeypatch.setattr(registry, "STAGES", [*registry.STAGES, Stage("colors", "layer", pure_colors, measures=True,
                                                                      default=False)])


def test_a_per_unit_stage_in_the_registry_is_swept_cached_and_shown(tiny_project, colors_stage):
    config = load_config(tiny_project / "atlas.toml", ["sweep.stages=['colors']", "models[0].layers=['conv1']"])
    plan = sweep(config)
    (key,) = plan.models[0].layers[0].keys("colors")
    site = render_site(config).out

    # ColorNet's conv1 is R - G, G - R, B and the mean of RGB: the answers are exact.
    expected = {0: {"red": 1.0, "green": -1.0, "blue": 0.0}, 1: {"red": -1.0, "green": 1.0, "blue": 0.0},
                2: {"red": 0.0, "green": 0.0, "blue": 1.0}, 3: {"red": 0.3333, "green": 0.3333, "blue": 0.3333}}
    catalog = read_catalog(site)
    units = catalog["models"][0]["layers"][0]["units"]
    assert {u["index"]: u["measures"]["colors"] for u in units} == expected
    page = (site / units[0]["url"]).read_text()
    assert "Pure colors" in page and "<th scope=\"row\">green</th><td>-1</td>" in page

    # Cached like every stage: a second sweep finds the artifact and makes nothing.
    made = (config.resolve(config.sweep.cache) / "objects" / "colors" / key).stat().st_mtime_ns
    assert sweep(config) == plan
    assert (config.resolve(config.sweep.cache) / "objects" / "colors" / key).stat().st_mtime_ns == made


def test_the_config_knows_the_registry_stages_and_rejects_others(tiny_project, colors_stage):
    assert load_config(tiny_project / "atlas.toml", ["sweep.stages=['colors']"]).sweep.stages == ("colors",)
    with pytest.raises(ConfigError, match=r"sweep.stages\[0\]: unknown stage 'color'.*did you mean 'colors'"):
        load_config(tiny_project / "atlas.toml", ["sweep.stages=['color']"])


def test_every_stage_reads_only_stages_before_it(monkeypatch):
    registry.check()
    monkeypatch.setattr(registry, "STAGES", [Stage("a", "model", "x:y", reads=("b",)), Stage("b", "model", "x:y")])
    with pytest.raises(AssertionError, match="a reads"):
        registry.check()
