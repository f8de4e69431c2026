from pathlib import Path

import pytest

from atlas.config import STAGES, load_config
from atlas.errors import ConfigError
from tests.conftest import write_config

MINIMAL = """
[[models]]
name = "net"
arch = "torchvision:resnet18"
layers = ["layer1"]
"""


def test_minimal_config_gets_defaults_and_paths_relative_to_the_file(tmp_path, monkeypatch):
    path = write_config(tmp_path, MINIMAL)
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.models[0].layers == ("layer1",)
    assert config.models[0].weights == "none" and config.models[0].units is None
    # every stage but the activation atlas (its images cost as much as a layer's units'), in order
    assert config.sweep.stages == tuple(s for s in STAGES if s != "atlas") and config.sweep.device == "auto"
    assert config.featurevis.steps == 512 and config.featurevis.size == 128
    assert config.data is None
    assert config.resolve(config.sweep.cache) == tmp_path.resolve() / ".atlas-cache"
    assert config.resolve(config.site.out) == tmp_path.resolve() / "site"


def test_every_documented_key_is_read(tmp_path):
    path = write_config(tmp_path, """
        [site]
        title = "My atlas"
        out = "public"
        [data]
        images = "pics"
        limit = 10
        [sweep]
        device = "cpu"
        seed = 3
        cache = "c"
        stages = ["weights"]
        [featurevis]
        steps = 64
        size = 96
        [[models]]
        name = "m"
        arch = "pkg.mod:factory"
        weights = "w.pt"
        layers = ["a", "b.c"]
        units = 16
        mean = [0.5, 0.5, 0.5]
        std = [0.25, 0.25, 0.25]
        input_size = 64
    """)
    config = load_config(path)
    assert config.site.title == "My atlas" and config.site.out == Path("public")
    assert config.data.images == "pics" and config.data.limit == 10
    assert (config.sweep.device, config.sweep.seed, config.sweep.stages) == ("cpu", 3, ("weights",))
    assert (config.featurevis.steps, config.featurevis.size) == (64, 96)
    model = config.models[0]
    assert model.layers == ("a", "b.c") and model.units == 16 and model.input_size == 64
    assert model.mean == (0.5, 0.5, 0.5) and model.std == (0.25, 0.25, 0.25)


@pytest.mark.parametrize("text, message", [
    (MINIMAL.replace("layers", "layer"), "atlas.toml: models[0].layer: unknown key (did you mean 'layers'?)"),
    (MINIMAL + "[featurevis]\nsteps = 'many'\n",
     "atlas.toml: featurevis.steps: expected an integer, got a string (\"many\")"),
    (MINIMAL + "[sweep]\nseed = 1.5\n", "atlas.toml: sweep.seed: expected an integer, got a number (1.5)"),
    (MINIMAL.replace('arch = "torchvision:resnet18"', ""), "atlas.toml: models[0].arch: missing required key"),
    (MINIMAL.replace('["layer1"]', '"layer1"'), "atlas.toml: models[0].layers: expected a list"),
    (MINIMAL + "[sweep]\nstages = ['featurevis', 'exampels']\n",
     "atlas.toml: sweep.stages[1]: unknown stage 'exampels' (did you mean 'examples'?)"),
    (MINIMAL + "[sweep]\ndevice = 'tpu'\n", "atlas.toml: sweep.device: must be one of auto, cpu, cuda"),
    (MINIMAL + "[data]\nlimit = 5\n", "atlas.toml: data.images: missing required key"),
    (MINIMAL + "[sit]\ntitle = 'x'\n", "atlas.toml: sit: unknown key (did you mean 'site'?)"),
    ("", "atlas.toml: models: missing required key"),
    (MINIMAL + MINIMAL, "atlas.toml: models[1].name: 'net' clashes with 'net'"),
    (MINIMAL.replace('layers = ["layer1"]', 'layers = ["layer1"]\nmean = [0.5]'),
     "atlas.toml: models[0].mean: give three values"),
    ("title = 'x'\n" + MINIMAL, "atlas.toml: title: unknown key"),
    (MINIMAL.replace('layers = ["layer1"]', 'layers = ["layer1"]\ndictionary = ["layer2"]'),
     "atlas.toml: models[0].dictionary[0]: 'layer2' is not one of the model's layers (layer1)"),
    (MINIMAL + "[dictionary]\nexpansion = 0\n", "atlas.toml: dictionary.expansion: must be at least 1"),
    (MINIMAL + "[superposition]\nsteps = 0\n", "atlas.toml: superposition.steps: must be at least 1"),
])
def test_bad_config_names_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, text))
    assert str(error.value).startswith(message)


def test_invalid_toml_and_missing_file_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"atlas.toml: not valid TOML"):
        load_config(write_config(tmp_path, "[[models]\n"))
    with pytest.raises(ConfigError, match=r"nope.toml: config file not found"):
        load_config(tmp_path / "nope.toml")


def test_overrides_are_parsed_as_toml_and_validated(tmp_path):
    path = write_config(tmp_path, MINIMAL)
    config = load_config(path, ["featurevis.steps=64", "models[0].units=4", "sweep.device=cpu",
                                "sweep.stages=['weights']", 'site.title="A <b> title"'])
    assert config.featurevis.steps == 64 and config.models[0].units == 4
    assert config.sweep.device == "cpu" and config.sweep.stages == ("weights",)
    assert config.site.title == "A <b> title"
    with pytest.raises(ConfigError, match=r"^--set featurevis.stepz=3: featurevis.stepz: unknown key \(did you mean 'steps'\?\)"):
        load_config(path, ["featurevis.stepz=3"])
    with pytest.raises(ConfigError, match=r"featurevis.steps: expected an integer"):
        load_config(path, ["featurevis.steps=lots"])
    with pytest.raises(ConfigError, match=r"models\[3\]: no such list item"):
        load_config(path, ["models[3].units=4"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_config(path, ["featurevis.steps"])


def test_sweep_digest_ignores_the_site_and_the_device(tmp_path):
    path = write_config(tmp_path, MINIMAL)
    base = load_config(path).sweep_digest()
    assert load_config(path, ["site.title='other'", "sweep.device=cpu"]).sweep_digest() == base
    # Speed settings do not change results, so a render without them finds the sweep made with them.
    speed = ["sweep.batch_size=7", "featurevis.batch=3", "featurevis.workers=1"]
    assert load_config(path, speed).sweep_digest() == base
    assert load_config(path, ["featurevis.steps=3"]).sweep_digest() != base


def test_a_section_added_later_leaves_the_digest_of_its_defaults_alone(tmp_path):
    from atlas.config import _plain

    path = write_config(tmp_path)
    config = load_config(path)
    assert "tuning" not in _plain(config, results_only=True)  # sweeps cached before it existed stay found
    assert load_config(path, ["tuning.joint_step=30"]).sweep_digest() != config.sweep_digest()
