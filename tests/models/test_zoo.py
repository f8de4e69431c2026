import pytest
import torch

from atlas.config import ModelConfig
from atlas.errors import AtlasError
from atlas.models import load_model, zoo
from atlas.nn.capture import capture
from atlas.train import evaluate, generate


def spec(name: str, weights: str = "none") -> ModelConfig:
    return ModelConfig(name=name, arch=f"zoo:{name}", layers=(), weights=weights)


@pytest.mark.parametrize("name, layers", [
    ("inception", {"conv2d0": (32, 32, 32), "mixed3a": (112, 16, 16), "mixed3b": (144, 16, 16), "mixed4a": (208, 8, 8)}),
    ("resnet", {"conv1": (32, 32, 32), "layer1": (32, 16, 16), "layer2": (64, 8, 8), "layer3": (128, 4, 4)}),
    ("alexnet", {"conv1": (48, 32, 32), "conv2": (64, 16, 16), "conv3": (96, 8, 8), "conv5": (64, 8, 8)}),
])
def test_zoo_architectures_have_their_named_layers(name, layers):
    model = load_model(spec(name))
    assert (model.input_size, model.mean, model.std) == (64, zoo.WORLD_MEAN, zoo.WORLD_STD)
    acts = capture(model.module, torch.zeros(2, 3, 64, 64), list(layers))
    assert {layer: tuple(a.shape[1:]) for layer, a in acts.items()} == layers


def test_missing_trained_weights_say_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(AtlasError, match=r"models\[0\].weights: no trained weights for zoo:resnet .* `atlas train resnet`"):
        load_model(spec("resnet", "trained"))
    with pytest.raises(AtlasError, match=r"the zoo has no model 'resnett' \(did you mean resnet\?\)"):
        load_model(spec("resnett"))


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_committed_weights_solve_their_task_on_held_out_scenes(name):
    model = load_model(spec(name, "trained"))
    images, labels = generate(0, "test", 300)
    assert evaluate(model.module, images, labels, zoo.ZOO[name].task) >= 0.9
