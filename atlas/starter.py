"""``atlas init``: a commented starter ``atlas.toml``, so that an installed Atlas needs no checkout.

Without an architecture the starter sweeps one model of the embedded zoo on the embedded
world (offline, minutes on a CPU). With one (``torchvision:resnet18``, ``package.module:factory``)
it probes the model once at its input size and proposes layers at spread depths: the
shallowest level of the module tree that has enough spatial layers, leaving out norms,
pools and dropouts, whose units repeat their neighbours'.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from atlas.errors import AtlasError

# Layers not proposed, by their type's name: norms, pools, dropouts (not Conv2dNormActivation).
SKIPPED = re.compile(r"(Norm|Pool|Dropout)(\dd)?$|^(Identity|Flatten)$")


def propose_layers(records: list[dict], count: int) -> tuple[list[str], list[str]]:
    """``count`` layers spread over depth from ``describe_layers`` records, and the
    candidates they were chosen among (for the starter's comment)."""
    spatial = [r for r in records if r["shape"] is not None and len(r["shape"]) == 3 and r["shape"][1] >= 2
               and not SKIPPED.search(r["type"])]
    if not spatial:
        raise AtlasError("the model has no layer with a spatial output (channels × height × width) to sweep")
    by_depth: dict[int, list[str]] = {}
    for record in spatial:
        by_depth.setdefault(record["name"].count("."), []).append(record["name"])
    level = next((names for _, names in sorted(by_depth.items()) if len(names) > count),
                 max(by_depth.values(), key=len))
    if len(level) <= count:
        return level, level
    # Spread over the level, skipping the very first (the stem, whose units the pixels explain).
    picks = [level[round(1 + i * (len(level) - 2) / max(count - 1, 1))] for i in range(count)]
    return list(dict.fromkeys(picks)), level


def starter_config(arch: str | None = None, weights: str = "none", images: str | None = None,
                   count: int = 3) -> str:
    """The text of a starter ``atlas.toml``."""
    if arch is None:
        model = ('name = "resnet"\narch = "zoo:resnet"            # a small ResNet of the embedded zoo\n'
                 'weights = "trained"           # its weights ship with Atlas\n'
                 'layers = ["conv1", "layer1", "layer2", "layer3"]')
        source = images or "world"
    else:
        chosen, level = _layers_of(arch, count)
        quoted = ", ".join(map(_quoted, chosen))
        others = ", ".join(level)
        model = (f'name = {_quoted(_name_of(arch))}\narch = {_quoted(arch)}\n'
                 f'{_commented(f"weights = {_quoted(weights)}", "none (random), a weights name, or a .pt path")}\n'
                 f'# Layers at spread depths; `atlas layers {arch}` lists them all; this level has:\n'
                 f'# {others}\nlayers = [{quoted}]\nunits = 64                    # the first 64 units of each layer')
        source = images or "photos"
    return f"""\
# A starter atlas: edit it, then `atlas plan` (time estimate) and `atlas build`.
# Every key is documented in the README, "Configuration reference".

[site]
title = "My atlas"
out = "site"                  # the static website (replaced by each render)

[data]
{_commented(f'images = {_quoted(source)}', '"world" (embedded scenes) or a folder of images, one subfolder per class')}
limit = 2000                  # at most this many images

[sweep]
device = "auto"               # cuda when there is one
cache = ".atlas-cache"        # every measurement, reused by the next build
# stages = [...]              # default: every per-unit stage; see `atlas plan`

[featurevis]
steps = 128                   # 512 on a GPU
size = 64

[[models]]
{model}
"""


def write_starter(folder: Path, text: str) -> Path:
    path = folder / "atlas.toml"
    if path.exists():
        raise AtlasError(f"{path} exists; remove it or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _layers_of(arch: str, count: int) -> tuple[list[str], list[str]]:
    import torch

    from atlas.config import ModelConfig
    from atlas.models import load_model
    from atlas.nn.capture import describe_layers

    model = load_model(ModelConfig(name=arch, arch=arch, layers=()), root=Path.cwd(), key="")
    probe = torch.zeros(1, 3, model.input_size, model.input_size)
    return propose_layers(describe_layers(model.module, model.normalize(probe)), count)


def _quoted(text: str) -> str:  # a TOML basic string (JSON's escapes are TOML's)
    return json.dumps(text, ensure_ascii=False)


def _commented(line: str, comment: str) -> str:
    return f"{line:<29} # {comment}"


def _name_of(arch: str) -> str:
    return arch.rsplit(":", 1)[-1].rsplit(".", 1)[-1] or "model"
