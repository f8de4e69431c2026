"""Atlas installed from its wheel, outside the checkout: `atlas init`, then a build that renders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from atlas.errors import AtlasError
from atlas.starter import propose_layers, starter_config, write_starter

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding Atlas installed from a wheel built from a copy of the sources."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "atlas", source / "atlas", ignore=shutil.ignore_patterns("__pycache__"))
    run("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source),
        cwd=root)
    wheel = next((root / "dist").glob("atlas-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "atlas/render/templates/unit.html" in names
    assert "atlas/render/templates/static/vendor/vega-bundle.min.js" in names
    assert "atlas/models/zoo_weights/resnet.pt" in names
    run("-m", "pip", "install", "--quiet", "--no-deps", "--target", str(root / "lib"), str(wheel), cwd=root)
    return root / "lib"


def test_a_wheel_install_outside_the_checkout_inits_builds_and_renders(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = run("-c", "import atlas; print(atlas.__file__)", cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(installed)  # not the checkout

    project = tmp_path / "project"
    run("-m", "atlas", "init", str(project), cwd=tmp_path, env=env)
    starter = tomllib.loads((project / "atlas.toml").read_text())
    assert starter["models"][0]["arch"] == "zoo:resnet"
    run("-m", "atlas", "build", "--set", "models[0].layers=['conv1']", "--set", "models[0].units=3",
        "--set", "data.limit=40", "--set", "featurevis.steps=4", "--set", "featurevis.size=32",
        "--set", 'sweep.stages=["featurevis", "examples"]', cwd=project, env=env)
    site = project / "site"
    unit = site / "models" / "resnet" / "conv1" / "0-15" / "0.html"
    assert "resnet" in (site / "index.html").read_text()
    assert "<img" in unit.read_text()  # its feature visualization
    assert (site / "static" / "vendor" / "vega-bundle.min.js").stat().st_size > 500_000


def test_init_writes_a_starter_that_loads_and_never_overwrites(tmp_path):
    from atlas.config import load_config

    path = write_starter(tmp_path, starter_config(images="my \"photos\""))
    config = load_config(path)
    assert [m.arch for m in config.models] == ["zoo:resnet"]
    assert config.data.images == 'my "photos"'
    with pytest.raises(AtlasError, match="exists"):
        write_starter(tmp_path, "x = 1\n")
    assert "zoo:resnet" in path.read_text()


def record(name: str, type_: str, shape: tuple | None) -> dict:
    return {"name": name, "type": type_, "shape": shape, "calls": 1}


def test_proposed_layers_spread_over_the_shallowest_level_with_enough_spatial_layers():
    records = [record("stem", "Conv2d", (8, 32, 32)), record("stem_bn", "BatchNorm2d", (8, 32, 32)),
               record("body", "Sequential", (64, 4, 4))]
    records += [record(f"body.{i}", "Conv2d" if i % 2 == 0 else "ReLU", (8 * (i + 1), 32 >> (i // 2), 32 >> (i // 2)))
                for i in range(8)]
    records += [record("pool", "AdaptiveAvgPool2d", (64, 1, 1)), record("fc", "Linear", (10,))]
    chosen, level = propose_layers(records, 3)
    assert level == [f"body.{i}" for i in range(8)]  # the top level has only stem and body
    assert chosen == ["body.1", "body.4", "body.7"]
    assert propose_layers(records, 20) == (level, level)
    with pytest.raises(AtlasError, match="spatial"):
        propose_layers([record("fc", "Linear", (10,))], 3)
