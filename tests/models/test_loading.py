import os
import urllib.error

import pytest
import torch
import torchvision

from atlas.config import ModelConfig
from atlas.errors import AtlasError
from atlas.models import load_model, weights_digest
from atlas.models.loading import IMAGENET_MEAN, IMAGENET_STD, INCEPTIONV1_MEAN, INCEPTIONV1_STD
from tests.tiny_models import ColorNet


def spec(arch: str, weights: str = "none", **kwargs) -> ModelConfig:
    return ModelConfig(name="m", arch=arch, layers=("x",), weights=weights, **kwargs)


def test_torchvision_random_init_is_seeded_and_frozen():
    a = load_model(spec("torchvision:resnet18"), seed=1)
    b = load_model(spec("torchvision:resnet18"), seed=1)
    c = load_model(spec("torchvision:resnet18"), seed=2)
    assert a.digest == b.digest != c.digest
    assert not a.module.training and not any(p.requires_grad for p in a.module.parameters())
    assert (a.mean, a.std, a.input_size) == (IMAGENET_MEAN, IMAGENET_STD, 224)


def test_torchvision_state_dict_path_relative_to_the_config(tmp_path):
    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "mine.pt")
    loaded = load_model(spec("torchvision:resnet18", "mine.pt"), root=tmp_path, seed=99)
    assert loaded.digest == weights_digest(source.eval())


def test_torchvision_named_weights_load_from_the_hub_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    source = torchvision.models.resnet18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / os.path.basename(url))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download a file that is in the cache")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    loaded = load_model(spec("torchvision:resnet18", "IMAGENET1K_V1"))
    assert loaded.digest == weights_digest(source.eval())


def test_a_vision_transformer_takes_another_input_size_with_its_own_weights(tmp_path):
    """Its position embeddings are interpolated to the new grid of patches; the class
    token's and every other weight are the ones given."""
    source = torchvision.models.vit_b_32()
    torch.save(source.state_dict(), tmp_path / "vit.pt")
    loaded = load_model(spec("torchvision:vit_b_32", "vit.pt", input_size=96), root=tmp_path)
    module = loaded.module
    assert loaded.input_size == module.image_size == 96
    assert module.encoder.pos_embedding.shape == (1, 1 + 3 * 3, 768)  # a class token, 3 x 3 patches
    assert torch.equal(module.encoder.pos_embedding[0, 0], source.encoder.pos_embedding[0, 0])
    assert torch.equal(module.conv_proj.weight, source.conv_proj.weight)
    assert module(torch.zeros(1, 3, 96, 96)).shape == (1, 1000)
    with pytest.raises(AtlasError, match="input_size: vit_b_32 cuts 32 px patches; 100 is not a multiple"):
        load_model(spec("torchvision:vit_b_32", input_size=100), key="models[0].")


def test_torchvision_named_weights_offline_say_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(AtlasError) as error:
        load_model(spec("torchvision:resnet18", "IMAGENET1K_V1"), key="models[2]")
    message = str(error.value)
    assert message.startswith("models[2].weights: could not download the weights resnet18 IMAGENET1K_V1")
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message


@pytest.mark.parametrize("arch, weights, message", [
    ("torchvision:resnet81", "none", "models[0].arch: torchvision has no classification model 'resnet81' (did you mean"),
    ("torchvision:resnet18", "missing.pt", "models[0].weights: 'missing.pt' is not a file ("),
    ("lucent:inception", "none", "models[0].arch: lucent has no model 'inception'"),
    ("resnet18", "none", "models[0].arch: 'resnet18' is not SOURCE:NAME"),
    ("no_such_package.mod:make", "none", "models[0].arch: cannot import 'no_such_package.mod'"),
    ("tests.tiny_models:make_nothing", "none", "models[0].arch: 'tests.tiny_models' has no attribute 'make_nothing'"),
    ("tests.tiny_models:make_not_a_model", "none", "models[0].arch: tests.tiny_models:make_not_a_model returned str"),
])
def test_bad_model_specs_name_the_key(tmp_path, arch, weights, message):
    with pytest.raises(AtlasError) as error:
        load_model(spec(arch, weights), root=tmp_path)
    assert str(error.value).startswith(message)


def test_lucent_inceptionv1_has_the_papers_layers_and_preprocessing(tmp_path):
    model = load_model(spec("lucent:inceptionv1"), seed=0)
    names = dict(model.module.named_modules())
    assert {"conv2d0", "conv2d2", "mixed3a", "mixed4b", "mixed5b"} <= set(names)
    assert model.input_size == 224
    # Lucid's InceptionV1 wants pixels in [-117, 138]: 0 -> -117, 1 -> 138.
    x = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1).expand(1, 3, 2, 1)
    assert model.normalize(x)[0, 0, :, 0].tolist() == pytest.approx([-117.0, 138.0], abs=1e-3)
    assert (model.mean, model.std) == (INCEPTIONV1_MEAN, INCEPTIONV1_STD)
    torch.save(model.module.state_dict(), tmp_path / "v1.pt")
    again = load_model(spec("lucent:inceptionv1", str(tmp_path / "v1.pt")), seed=5)
    assert again.digest == model.digest


def test_import_path_factory_with_weights_and_default_preprocessing(tmp_path):
    source = ColorNet()
    with torch.no_grad():
        source.conv2.weight.mul_(2)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "color.pt")  # a checkpoint layout
    model = load_model(spec("tests.tiny_models:make_color_net", "color.pt", input_size=16), root=tmp_path)
    assert model.digest == weights_digest(source)
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(model.normalize(x), x)  # RGB in [0, 1] unless mean/std are given
    assert model.input_size == 16
    custom = load_model(spec("tests.tiny_models:make_color_net", mean=(0.5,) * 3, std=(0.5,) * 3))
    assert custom.normalize(torch.ones(1, 3, 1, 1)).flatten().tolist() == [1.0, 1.0, 1.0]


def test_state_dict_that_does_not_fit_is_a_clear_error(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(AtlasError, match=r"models\[0\].weights: .*resnet.pt does not fit the architecture: size mismatch for conv1.weight"):
        load_model(spec("tests.tiny_models:make_color_net", "resnet.pt"), root=tmp_path)
    state = ColorNet().state_dict()
    del state["conv2.bias"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(AtlasError, match=r"partial.pt does not fit the architecture: missing \['conv2.bias'\]"):
        load_model(spec("tests.tiny_models:make_color_net", "partial.pt"), root=tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(AtlasError, match=r"junk.pt is not a readable state dict"):
        load_model(spec("tests.tiny_models:make_color_net", "junk.pt"), root=tmp_path)
