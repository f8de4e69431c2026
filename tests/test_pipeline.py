import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas.config import load_config
from atlas.errors import AtlasError
from atlas.pipeline import sweep
from atlas.stages import examples, featurevis
from atlas.store import Store
from tests.conftest import REPO, make_images, write_config


def _artifacts(cache: Path) -> dict[str, bytes]:
    """Every file of every finished artifact, by path relative to objects/."""
    objects = cache / "objects"
    return {str(p.relative_to(objects)): p.read_bytes() for p in sorted(objects.rglob("*")) if p.is_file()}


def test_sweep_finds_exact_dataset_examples_and_skips_corrupt_files(tiny_project):
    plan = sweep(load_config(tiny_project / "atlas.toml")).to_json()
    assert plan["data"]["count"] == 5
    assert list(plan["data"]["skipped"]) == ["cool/broken.jpg"]
    (model,) = plan["models"]
    conv1 = model["layers"][0]
    assert conv1["shape"] == [4, 16, 16] and conv1["units"] == [0, 1, 2, 3]
    store = Store(tiny_project / "cache")
    data = json.loads((store.path("examples", conv1["artifacts"]["examples"][0]) / "data.json").read_text())
    names = {int(i): image["name"] for i, image in data["images"].items()}
    unit0 = data["units"]["0"]
    red = unit0["top"][0]  # unit 0 = R - G: the red image, at its brightest pixel
    assert names[red["image"]] == "warm/red.png"
    assert red["value"] == pytest.approx(1.0) and (red["y"], red["x"]) == (3, 12)
    assert red["box"] == [3, 12, 4, 13]  # conv1 is 1x1: its receptive field is that one pixel
    assert (store.path("examples", conv1["artifacts"]["examples"][0]) / red["crop"]).is_file()
    assert [names[e["image"]] for e in data["units"]["2"]["top"]][:1] == ["cool/blue.png"]  # unit 2 = B
    assert data["units"]["1"]["top"][0]["value"] == pytest.approx(200 / 255)  # G - R of green
    assert len(unit0["top"]) == 3  # examples.top
    # R - G > 0 only in the red and orange images, everywhere in them: 2 of 5 images' positions.
    assert unit0["fraction_active"] == pytest.approx(0.4)
    quantiles = unit0["activation_quantiles"]
    # Values are as the network reads them: conv1's ReLU follows, so R - G of green (-200/255) counts as 0.
    assert quantiles[0] == 0.0 and quantiles[-1] == pytest.approx(1.0, abs=1e-5)
    assert data["response"] == "the ReLU that follows this linear layer" and not data["unrectified"]
    assert sum(len(group) for group in unit0["quantiles"]) == 5  # each of the 5 images, once
    assert unit0["quantiles"][0][0]["value"] == pytest.approx(1.0)  # strongest tenth first
    conv2 = json.loads((store.path("examples", model["layers"][1]["artifacts"]["examples"][0]) / "data.json").read_text())
    assert conv2["receptive_field"] == {"size": [3, 3], "stride": [1.0, 1.0]}  # 1x1 then 3x3
    # Weights exist for the RGB layer only.
    assert len(conv1["artifacts"]["weights"]) == 1 and "weights" not in model["layers"][1]["artifacts"]


def test_second_sweep_does_no_work(tiny_project, monkeypatch):
    config = load_config(tiny_project / "atlas.toml")
    first = sweep(config)
    before = _artifacts(tiny_project / "cache")
    calls = []
    monkeypatch.setattr(featurevis, "render_units", lambda *a, **k: calls.append("featurevis"))
    monkeypatch.setattr(examples, "_sweep_dataset", lambda *a, **k: calls.append("examples"))
    assert sweep(config) == first
    assert calls == [] and _artifacts(tiny_project / "cache") == before


def test_force_recomputes(tiny_project, monkeypatch):
    # One worker: the patched renderer counts its calls in this process.
    config = load_config(tiny_project / "atlas.toml", ["sweep.stages=['featurevis']", "featurevis.workers=1"])
    sweep(config)
    calls = []
    original = featurevis.render_units
    monkeypatch.setattr(featurevis, "render_units", lambda *a, **k: calls.append(1) or original(*a, **k))
    sweep(config, force=True)
    assert len(calls) == 3  # conv1: 4 units in 2 batches of 2 (featurevis.batch); conv2: its 2 units in 1


def test_changing_a_stage_parameter_makes_new_artifacts_only_for_that_stage_and_its_readers(tiny_project):
    sweep(load_config(tiny_project / "atlas.toml"))
    first = set(_artifacts(tiny_project / "cache"))
    sweep(load_config(tiny_project / "atlas.toml", ["featurevis.steps=7"]))
    added = {path.split("/")[0] for path in set(_artifacts(tiny_project / "cache")) - first}
    # Families weigh the visualizations' activations as evidence; polysemanticity reads the diversity images.
    assert added == {"featurevis", "families", "polysemanticity"}
    sweep(load_config(tiny_project / "atlas.toml", ["featurevis.steps=8", "featurevis.objectives=['channel']"]))
    second = set(_artifacts(tiny_project / "cache"))
    sweep(load_config(tiny_project / "atlas.toml", ["featurevis.steps=9", "featurevis.objectives=['channel']"]))
    added = {path.split("/")[0] for path in set(_artifacts(tiny_project / "cache")) - second}
    assert added == {"featurevis", "families"}  # without diversity images, polysemanticity does not read them


def test_bad_layer_names_the_model_entry(tiny_project):
    config = load_config(tiny_project / "atlas.toml", ["models[0].layers=['conv1', 'convv2']"])
    with pytest.raises(AtlasError, match=r"models\[0\].layers: layer 'convv2' is not a module"):
        sweep(config)


def test_a_mistake_in_the_last_model_is_reported_before_any_work(tiny_project):
    text = (tiny_project / "atlas.toml").read_text()
    text += '\n[[models]]\nname = "second"\narch = "tests.tiny_models:make_color_net"\nlayers = ["conv7"]\n'
    (tiny_project / "atlas.toml").write_text(text)
    with pytest.raises(AtlasError, match=r"models\[1\].layers: layer 'conv7'"):
        sweep(load_config(tiny_project / "atlas.toml"))
    assert not (tiny_project / "cache" / "objects").exists()


def test_killed_sweep_resumes_to_the_same_result(tmp_path):
    """kill -9 in the middle of a sweep, rerun: the store equals an uninterrupted run's."""
    # Five layers, so five feature-vis chunks: enough to be killed between them.
    overrides = ["featurevis.steps=150", "sweep.stages=['featurevis','weights']", "featurevis.objectives=['channel']",
                 "models[0].layers=['conv1','relu','conv2','head.0','head']"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def project(name: str) -> Path:
        folder = tmp_path / name
        make_images(folder / "images")
        write_config(folder)
        return folder

    def command(folder: Path) -> list[str]:
        sets = [arg for o in overrides for arg in ("--set", o)]
        return [sys.executable, "-m", "atlas.cli", "sweep", "--config", str(folder / "atlas.toml"), *sets]

    interrupted = project("interrupted")
    process = subprocess.Popen(command(interrupted), env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = interrupted / "cache" / "manifests" / "featurevis.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and len(json.loads(manifest.read_text() or "{}")) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"the sweep ended (exit {process.returncode}) before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((interrupted / "cache" / "objects" / "featurevis").iterdir()))
    assert 2 <= done_before < 5

    subprocess.run(command(interrupted), env=env, cwd=tmp_path, check=True, capture_output=True)
    uninterrupted = project("uninterrupted")
    subprocess.run(command(uninterrupted), env=env, cwd=tmp_path, check=True, capture_output=True)

    assert _artifacts(interrupted / "cache") == _artifacts(uninterrupted / "cache")
    assert len(_artifacts(interrupted / "cache")) > 0
    assert not list((interrupted / "cache" / "tmp").iterdir())
