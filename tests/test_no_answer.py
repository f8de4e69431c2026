"""No silent empties at the unit level: a unit whose numbers are constant, never above
zero or not finite gets "no answer" with the reason from every per-unit stage, in the
artifacts, on the page and in ``catalog.json``; and nothing stored holds a NaN."""

from __future__ import annotations

import json

import pytest

from atlas.render.catalog import read_catalog

STAGES = ["featurevis", "weights", "examples", "tuning", "null", "families", "polysemanticity"]


def test_units_without_an_answer_say_why_in_every_stage(tiny_project, caplog):
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.render import render_site
    from atlas.store import Store

    config = load_config(tiny_project / "atlas.toml", [
        "models[0].arch='tests.tiny_models:make_degenerate_net'", "models[0].layers=['conv1']",
        f"sweep.stages={STAGES}", "featurevis.objectives=['channel']"])
    sweep(config)
    site = render_site(config).out
    units = read_catalog(site)["models"][0]["layers"][0]["units"]
    by_index = {u["index"]: u for u in units}

    answered = by_index[0]
    assert not answered["dead"] and answered["weights"] and answered["examples"] and answered["tuning"]
    assert answered["polysemanticity"] is not None

    weights = {1: "all zero", 2: "all zero", 3: "not finite"}  # the kernel: the first reason a unit is dead
    examples = {1: "same activation", 2: "never active", 3: "not finite"}
    tuning = {1: "same response", 2: "same response", 3: "not finite"}
    polysemanticity = {1: "all equal", 2: "all equal", 3: "not finite"}
    store = Store(tiny_project / "cache")
    (examples_key,) = json.loads((tiny_project / "cache" / "manifests" / "examples.json").read_text())
    stored = json.loads((store.path("examples", examples_key) / "data.json").read_text())["units"]
    for index in (1, 2, 3):
        unit = by_index[index]
        assert unit["dead"] and weights[index] in unit["dead_reason"], (index, unit["dead_reason"])
        assert weights[index] in unit["weights_no_answer"] and unit["weights"] is None
        assert examples[index] in stored[str(index)]["dead"], (index, stored[str(index)]["dead"])
        assert tuning[index] in unit["tuning_no_answer"], (index, unit["tuning_no_answer"])
        assert polysemanticity[index] in unit["polysemanticity_no_answer"], index
        assert unit["polysemanticity"] is None and unit["family"] is None and not unit["examples"]
        assert unit["featurevis_failed"], index  # its image cannot raise it
    summary = next(r.message for r in caplog.records if r.message.startswith("no answer"))  # the sweep counts them
    for counted in ("weights units 3", "examples units 3", "tuning units 3", "polysemanticity units 3"):
        assert counted in summary, summary

    page = (site / by_index[3]["url"]).read_text()  # each stage's reason on the unit's page
    for reason in ("kernel is not finite", "responses are not finite (NaN or infinity)",
                   "responses to the stimuli are not finite", "Feature visualization failed"):
        assert reason in page, reason

    for path in (tiny_project / "cache" / "objects").rglob("*.json"):  # nothing stored as NaN (strict JSON parses)
        json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{path}: {name}"))
