"""Shared fixtures: tiny configs, image folders and a swept tiny atlas."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = """
[site]
title = "Tiny <b>atlas</b>"

[data]
images = "images"
limit = 100

[sweep]
cache = "cache"
batch_size = 4

[featurevis]
steps = 6
size = 32
batch = 2
thumbnail = 16

[examples]
top = 3

[dictionary]
expansion = 2
steps = 50
samples = 2048

[superposition]
steps = 100

[[models]]
name = "color <script>alert(1)</script> net"
arch = "tests.tiny_models:make_color_net"
layers = ["conv1", "conv2"]
input_size = 16
"""


ATLAS_SETTINGS = """
[atlas]
points = 48
grid = 3
min_count = 2
"""


TWIN_MODEL = """
[[models]]
name = "twin"
arch = "tests.tiny_models:make_twin_color_net"
layers = ["conv1", "conv2"]
input_size = 16
"""


def write_config(folder: Path, text: str = TINY_CONFIG, name: str = "atlas.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def make_images(folder: Path) -> dict[str, np.ndarray]:
    """Solid-color images in class subfolders, plus a corrupt file.

    Returns the pixels of each image by name. The reddest image has one brighter
    red pixel, so the position of a unit's maximum is known too.
    """
    colors = {
        "warm/red.png": (230, 20, 20), "warm/orange.png": (230, 140, 20),
        "cool/green.png": (20, 220, 30), "cool/blue.png": (20, 30, 240),
        "cool/<b>grey</b>.png": (128, 128, 128),
    }
    made = {}
    for name, rgb in colors.items():
        pixels = np.zeros((16, 16, 3), np.uint8) + np.array(rgb, np.uint8)
        if name == "warm/red.png":
            pixels[3, 12] = (255, 0, 0)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        made[name] = pixels
    (folder / "cool" / "broken.jpg").write_bytes(b"this is not a jpeg")
    return made


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """A folder with atlas.toml (the tiny ColorNet atlas) and its images."""
    make_images(tmp_path / "images")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The tiny atlas, swept and rendered once for all rendering tests."""
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.render import render_site

    root = tmp_path_factory.mktemp("built")
    make_images(root / "images")
    # ColorNet's conv1 is also taken apart by a sparse dictionary (8 features), and every
    # layer gets an activation atlas (a stage not in the defaults).
    from atlas import registry

    stages = ", ".join(f'"{name}"' for name in (*registry.defaults(), "atlas"))
    text = TINY_CONFIG.replace("input_size = 16\n", "input_size = 16\ndictionary = [\"conv1\"]\n", 1).replace(
        "batch_size = 4\n", f"batch_size = 4\nstages = [{stages}]\n", 1) + ATLAS_SETTINGS
    config = load_config(write_config(root, text + TWIN_MODEL))
    sweep(config)
    return render_site(config).out
