"""Synthetic-stimulus tuning: how each unit responds to controlled stimuli.

A bank of stimuli (``atlas.data.stimuli``), drawn in a disc the size of the layer's
receptive field at the centre of the image, is shown to the model; the unit at the
centre of the feature map responds. From those responses each unit gets:

- its tuning over each stimulus kind's parameters (orientation curves for curves,
  lines, edges, gratings and high-low frequency boundaries; frequency for gratings;
  hue pairs for color edges; colors for spots and fields), and its preferred
  stimulus of each kind;
- summary numbers: preferred orientation and orientation selectivity (for its
  strongest oriented kind), curve-vs-line preference, preferred spatial frequency,
  color opponency (color edges against luminance edges) and centre-surround
  preference (a spot against the same color over the whole field).

**Joint tuning** (when dataset examples were swept): each unit's top examples are
rotated through 360 degrees about the point where it fired, and every unit of the
layer responds at that point. Where a family tiles orientation, the response hands
over from unit to unit as the image turns ("Curve Detectors", Cammarata et al.).

Pure functions (``stimulus_bank``, ``summarize``, ``rotations``, ``joint_tuning``) do
the science; ``run`` stores one artifact per layer.
"""

from __future__ import annotations

import math

from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atlas.artifacts import Examples, Tuning, write
from atlas.data.bank import (CURVED, ORIENTED, PERIODIC_180, STRAIGHT, Bank, field_centre, resultant, spot_scales,
                             stimulus_bank)
from atlas.images import save_webp, to_uint8
from atlas.models import LoadedModel
from atlas.nn.capture import capture, layer_inputs
from atlas.nn.response import Response, as_read, layer_response
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, layer_receptive_field, model_identity

STAGE = "tuning"
FORMAT = 4  # 4: responses as the network reads them


def respond(model: LoadedModel, layer: str, bank: Bank, units: Sequence[int], device: torch.device,
            batch: int = 64, response: Response | None = None) -> np.ndarray:
    """The centre unit's responses: (stimuli, units), read through ``response`` (as the
    network reads the layer: ``atlas.nn.response``) when given. A convolution computes
    its centre position only (``conv_centre``), from its input."""
    index = torch.tensor(list(units), device=device)
    module = model.module.get_submodule(layer)
    centre_only = isinstance(module, nn.Conv2d) and module.padding_mode == "zeros" \
        and not isinstance(module.padding, str)
    out = []
    with torch.no_grad():
        for start in range(0, len(bank.images), batch):
            x = model.normalize(torch.from_numpy(np.stack(bank.images[start:start + batch])).to(device))
            if centre_only:
                acts = conv_centre(module, layer_inputs(model.module, x, layer)[0], index)
            else:
                acts = capture(model.module, x, [layer])[layer].index_select(1, index)
            acts = as_read(response, acts, index)
            if acts.dim() == 4:
                acts = acts[:, :, acts.shape[2] // 2, acts.shape[3] // 2]
            out.append(acts.float().cpu().numpy())
    return np.concatenate(out)


def conv_centre(conv: nn.Conv2d, x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """``conv(x)[:, channels]`` at the centre position of its output only, (N, U, 1, 1):
    a convolution of the one input window that position sees (zero padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    height, width = x.shape[-2:]
    cy = ((height + 2 * ph - dh * (kh - 1) - 1) // sh + 1) // 2
    cx = ((width + 2 * pw - dw * (kw - 1) - 1) // sw + 1) // 2
    window = F.pad(x, (pw, pw, ph, ph))[:, :, cy * sh:cy * sh + dh * (kh - 1) + 1, cx * sw:cx * sw + dw * (kw - 1) + 1]
    if conv.groups == 1:  # only the channels asked for
        bias = None if conv.bias is None else conv.bias[channels]
        return F.conv2d(window, conv.weight[channels], bias, dilation=conv.dilation)
    return F.conv2d(window, conv.weight, conv.bias, dilation=conv.dilation, groups=conv.groups)[:, channels]


def _orientation_curve(responses: np.ndarray, params: list[dict], rows: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Max response per orientation (over the kind's other parameters): (angles, (angles, units))."""
    angles = sorted({params[i]["orientation"] for i in rows})
    curve = np.stack([responses[[i for i in rows if params[i]["orientation"] == a]].max(0) for a in angles])
    return angles, curve


def _contrast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (|a| + |b|): +1 when only a drives the unit, -1 when only b does."""
    return (a - b) / np.clip(np.abs(a) + np.abs(b), 1e-12, None)


def summarize(responses: np.ndarray, bank: Bank) -> list[dict[str, Any]]:
    """Per unit: preferred stimulus of each kind, tuning curves and summary numbers."""
    params = bank.params
    kinds = sorted({p["kind"] for p in params})
    best = {kind: responses[bank.kind(kind)].max(0) for kind in kinds}
    best_index = {kind: bank.kind(kind)[responses[bank.kind(kind)].argmax(0)] for kind in kinds}
    oriented = list(ORIENTED)
    curves = {kind: _orientation_curve(responses, params, bank.kind(kind)) for kind in oriented}
    grating_rows = bank.kind("grating")
    frequencies = sorted({params[i]["frequency"] for i in grating_rows})
    frequency_curve = np.stack([responses[[i for i in grating_rows if params[i]["frequency"] == f]].max(0)
                                for f in frequencies])
    summaries = []
    for u in range(responses.shape[1]):
        strongest = max(oriented, key=lambda kind: best[kind][u])
        angles, curve = curves[strongest]
        preferred, selectivity = resultant(curve[:, u:u + 1], angles, 180 if strongest in PERIODIC_180 else 360)
        straight = max(STRAIGHT, key=lambda kind: best[kind][u])
        straight_selectivity = resultant(curves[straight][1][:, u:u + 1], curves[straight][0],
                                          180 if straight in PERIODIC_180 else 360)[1]
        bulge = max(CURVED, key=lambda kind: best[kind][u])
        bulge_deg, bulge_selectivity = resultant(curves[bulge][1][:, u:u + 1], curves[bulge][0], 360)
        summaries.append({
            "best_kind": max(kinds, key=lambda kind: best[kind][u]),
            "preferred": {kind: {**params[int(best_index[kind][u])], "index": int(best_index[kind][u]),
                                 "response": round(float(best[kind][u]), 5)} for kind in kinds},
            "orientation_kind": strongest,
            "orientation_deg": round(float(preferred[0]), 1),
            "orientation_selectivity": round(float(selectivity[0]), 4),
            # The same for its strongest straight kind: the orientation of a linear filter.
            "straight_kind": straight,
            "straight_selectivity": round(float(straight_selectivity[0]), 4),
            # ... and for its strongest curved kind: the way a curve bulges.
            "bulge_kind": bulge,
            "bulge_deg": round(float(bulge_deg[0]), 1),
            "bulge_selectivity": round(float(bulge_selectivity[0]), 4),
            "curve_vs_line": round(float(_contrast(best["curve"][u], best["line"][u])), 4),
            "frequency_preference": frequencies[int(frequency_curve[:, u].argmax())],
            "color_opponency": round(float(_contrast(best["color_edge"][u], best["edge"][u])), 4),
            "center_surround": round(float(_contrast(best["blob"][u], best["field"][u])), 4),
            "curves": {kind: {"angles": curves[kind][0], "response": curves[kind][1][:, u].round(5).tolist()}
                       for kind in oriented},
        })
    return summaries


def joint_angles(step: int) -> tuple[int, ...]:
    """The turns joint tuning shows, in degrees: 0, step, 2 step, ... below 360."""
    return tuple(range(0, 360, step))


JOINT_ANGLES = joint_angles(15)  # the default ``[tuning] joint_step``


def rotations(image: torch.Tensor, centre: tuple[float, float], angles: Sequence[float]) -> torch.Tensor:
    """An image (3, H, W) rotated counter-clockwise by each angle about ``centre`` (y, x),
    in pixels; corners revealed by the turn repeat the border. (len(angles), 3, H, W)."""
    _, h, w = image.shape
    radians = -torch.deg2rad(torch.tensor(list(angles), dtype=torch.float32))  # y points down in images
    cos, sin = torch.cos(radians), torch.sin(radians)
    # Output -> input coordinates in [-1, 1] (align_corners=False): rotate about the centre.
    cy, cx = (2 * (centre[0] + 0.5) / h - 1), (2 * (centre[1] + 0.5) / w - 1)
    aspect = w / h
    theta = torch.zeros(len(angles), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin / aspect
    theta[:, 1, 0], theta[:, 1, 1] = -sin * aspect, cos
    theta[:, 0, 2] = cx - cos * cx - sin / aspect * cy
    theta[:, 1, 2] = cy + sin * aspect * cx - cos * cy
    grid = torch.nn.functional.affine_grid(theta, [len(angles), 3, h, w], align_corners=False)
    return torch.nn.functional.grid_sample(image.expand(len(angles), -1, -1, -1), grid.to(image.device),
                                           padding_mode="border", align_corners=False)


# Joint tuning's working memory: turned examples kept for the units that share them, and
# each unit's curves over the layer (units x angles x units, 9.6 GB for 10,000 units).
JOINT_MEMORY = 1 << 30


def joint_curves(model: LoadedModel, layer: str, units: Sequence[int], examples: dict[int, list[tuple]],
                 device: torch.device, response: Response | None = None, angles: Sequence[float] = JOINT_ANGLES,
                 memory: int = JOINT_MEMORY) -> Iterator[tuple[int, np.ndarray]]:
    """For each unit, the responses of every unit of ``units`` at the point where it fired,
    as its top examples turn: (unit, (angles, units)), the mean over its examples, one
    unit at a time.

    Every unit of the layer is read at each turned example, so an example two units share
    (the same pixels array, fired at the same place) is turned and shown once, as long as
    the examples kept for later units fit in ``memory`` bytes; past that it is shown again."""
    index = torch.tensor(list(units), device=device)
    place = lambda pixels, at, centre: (id(pixels), *at, *centre)  # noqa: E731
    uses = Counter(place(*example) for found in examples.values() for example in found)
    shown: dict[tuple, np.ndarray] = {}  # kept until its last use
    kept = 0
    with torch.no_grad():
        for unit, found in examples.items():
            curves = []
            for pixels, (y, x), (fy, fx) in found:
                seen = place(pixels, (y, x), (fy, fx))
                uses[seen] -= 1
                curve = shown.get(seen)
                if curve is None:
                    image = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float().div(255).to(device)
                    turned = rotations(image, (fy, fx), angles)
                    acts = as_read(response, capture(model.module, model.normalize(turned), [layer])[layer]
                                   .index_select(1, index), index)
                    curve = acts[:, :, y, x].float().cpu().numpy()
                    if uses[seen] and kept + curve.nbytes <= memory:
                        shown[seen] = curve
                        kept += curve.nbytes
                elif not uses[seen]:
                    del shown[seen]
                    kept -= curve.nbytes
                curves.append(curve)
            if curves:
                yield unit, np.mean(curves, axis=0)


def joint_tuning(model: LoadedModel, layer: str, units: Sequence[int], examples: dict[int, list[tuple]],
                 device: torch.device, response: Response | None = None, angles: Sequence[float] = JOINT_ANGLES,
                 memory: int = JOINT_MEMORY) -> dict[int, dict[str, list]]:
    """Each unit's joint tuning from ``joint_curves``: its own response as its examples turn
    ("self"), and at each angle the unit that answers most ("takeover", with its response),
    every unit compared to its own largest rotated response over all the curves.

    That scale needs every curve before any takeover: the curves are kept when they fit in
    ``memory`` bytes, and otherwise computed twice (the scale first, then the takeovers),
    so memory stays linear in the layer's width and the answer is the same."""
    curves = lambda: joint_curves(model, layer, units, examples, device, response, angles, memory)  # noqa: E731
    fits = len(examples) * len(angles) * len(units) * 4 <= memory
    found = list(curves()) if fits else None
    scale = np.full(len(units), -np.inf, dtype=np.float32)
    for _, curve in found if found is not None else curves():
        # A unit that is not finite owns no angle (it has no answer).
        np.nan_to_num(curve, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        np.maximum(scale, curve.max(0), out=scale)
    scale = np.clip(scale, 1e-6, None)  # units answer on different scales: each to its own largest
    rows = {unit: row for row, unit in enumerate(units)}
    out = {}
    for unit, curve in found if found is not None else curves():
        normalised = np.nan_to_num(curve, nan=0.0, posinf=0.0, neginf=0.0) / scale
        out[unit] = {"angles": list(angles), "self": normalised[:, rows[unit]].round(4).tolist(),
                     "takeover": [int(units[i]) for i in normalised.argmax(1)],
                     "takeover_response": normalised.max(1).round(4).tolist()}
    return out


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    with ctx.progress(len(layers), f"{model.name}: tuning") as bar:
        for layer in layers:
            if not layer.spatial:
                bar.update(1)
                continue  # stimuli need a spatial layer
            examples_key = (ctx.artifacts.get(layer.name, {}).get("examples") or [None])[0]
            field_ = layer_receptive_field(ctx, model, layer.name)
            # Spots at the effective scale change the bank: only those layers' keys name it.
            small = spot_scales(model.input_size, max(field_.size_y, field_.size_x), round(field_.effective, 2))[1:]
            key = artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model), layer=layer.name,
                               units=layer.units, input_size=model.input_size, examples=examples_key,
                               joint=[joint_angles(ctx.config.tuning.joint_step), ctx.config.tuning.joint_examples],
                               **({"spots": small} if small else {}))
            keys[layer.name] = [key]
            if ctx.needs(STAGE, key, cost=len(layer.units)):
                _compute(ctx, model, layer, key, examples_key)
            bar.update(1)
    return ctx.recorded(STAGE, model.name, keys)


def _top_examples(ctx: StageContext, model: LoadedModel, layer: LayerInfo, examples_key: str | None,
                  field_) -> dict[int, list[tuple]]:
    """Each unit's top examples as (pixels, feature-map position, input-pixel centre); an
    image several units share is loaded once (one array: ``joint_tuning`` turns it once)."""
    count = ctx.config.tuning.joint_examples
    if examples_key is None or ctx.dataset is None or count == 0:
        return {}
    data = ctx.store.read(Examples, examples_key).json()
    loaded: dict[str, np.ndarray | None] = {}
    found: dict[int, list[tuple]] = {}
    for unit, summary in data["units"].items():
        for ex in summary["top"][:count]:
            if ex["image"] not in loaded:
                loaded[ex["image"]] = ctx.dataset.load(ex["image"], model.input_size)
            pixels = loaded[ex["image"]]
            if pixels is not None:
                top, left, bottom, right = field_.box(ex["y"], ex["x"])
                found.setdefault(int(unit), []).append(
                    (pixels, (ex["y"], ex["x"]), ((top + bottom - 1) / 2, (left + right - 1) / 2)))
    return found


def _compute(ctx: StageContext, model: LoadedModel, layer: LayerInfo, key: str, examples_key: str | None) -> None:
    field_ = layer_receptive_field(ctx, model, layer.name)
    centre = field_centre(field_, model.input_size)
    bank = stimulus_bank(model.input_size, max(field_.size_y, field_.size_x), centre, round(field_.effective, 2))
    response = layer_response(model, layer.name, ctx.device)  # a batch norm of negative scale flips a unit
    responses = respond(model, layer.name, bank, layer.units, ctx.device, response=response)
    reasons = no_answers(responses)
    responses = np.nan_to_num(responses, nan=0.0, posinf=0.0, neginf=0.0)  # a unit that is not finite: no answer
    summaries = summarize(responses, bank)
    angles = joint_angles(ctx.config.tuning.joint_step)
    joint = joint_tuning(model, layer.name, layer.units,
                         _top_examples(ctx, model, layer, examples_key, field_), ctx.device, response, angles)
    for row, unit in enumerate(layer.units):
        if unit in joint:
            summaries[row]["joint"] = joint[unit]
    for summary, reason in zip(summaries, reasons):
        if reason:
            summary["no_answer"] = reason
    silent = all("no_answer" in s for s in summaries)
    preferred = sorted({p["index"] for s in summaries for p in s["preferred"].values()})
    with ctx.store.writing(STAGE, key) as folder:
        for index in preferred:  # only the stimuli some unit prefers: the pages show those
            save_webp(to_uint8(bank.images[index].transpose(1, 2, 0)), folder / Tuning.stimulus(index), size=64)
        np.save(folder / Tuning.RESPONSES, responses.astype(np.float32))
        write(folder, Tuning(units={str(u): s for u, s in zip(layer.units, summaries)}, stimuli=bank.params,
                             extent=max(field_.size_y, field_.size_x), effective=round(field_.effective, 2),
                             centre=list(centre), no_answer=summaries[0]["no_answer"] if silent else None))
    if silent:
        ctx.no_answer(STAGE, f"{model.name} {layer.name}", summaries[0]["no_answer"])
    else:
        ctx.unanswered(STAGE, f"{model.name} {layer.name}", {u: r for u, r in zip(layer.units, reasons) if r})


def no_answers(responses: np.ndarray) -> list[str | None]:
    """Per unit (a column of ``responses``), why its tuning is no answer, or None: its
    responses are not all finite, or the same for every stimulus."""
    found: list[str | None] = []
    for column in responses.T:
        if not np.isfinite(column).all():
            found.append("its responses to the stimuli are not finite")
        elif column.max() - column.min() <= 1e-6 * max(float(np.abs(column).max()), 1e-12):
            found.append("it gives the same response to every stimulus")
        else:
            found.append(None)
    return found


PASSES = 1.0  # forward passes (to the layer) per stimulus or turned example
# Seconds per pixel of a stimulus drawn or an example turned: 0.36 ms an image at 64 px (the
# zoo), 5.3 ms at 224 (the null's 18 banks for EfficientNet-Lite0 took 76 s).
COST_PER_PIXEL = 1.0e-7
BANK = 798  # stimuli in the bank, whatever the field's size
# Units' strongest examples share places: a layer's top examples fall on about this many places
# an image, so k examples of each of U units are P (1 - exp(-U k / P)) distinct ones, P this
# times the images, each turned once (fitted on the whole EfficientNet-Lite0 over 300
# photographs: 29 of the stem's 32, 172 of 192 in _blocks.11, 827 of the head's 1,280; the
# estimate 32, 180, 861).
PLACES_PER_IMAGE = 5


def distinct_examples(units: int, each: int, images: int) -> float:
    """How many distinct examples ``each`` of ``units`` units' strongest are, about."""
    pool = PLACES_PER_IMAGE * images
    return pool * -math.expm1(-units * each / pool) if pool else 0.0


def drawing_seconds(m: Measured) -> float:
    """Seconds to draw one stimulus or turn one example at the model's input size."""
    size = m.model.input_size if m.model is not None else 64
    return COST_PER_PIXEL * size * size


def cost(m: Measured) -> Cost:
    settings = m.config.tuning
    angles = len(joint_angles(settings.joint_step))
    shown = {layer.name: BANK + angles * distinct_examples(m.units[layer.name], settings.joint_examples, m.images)
             for layer in m.spatial}
    return Cost([n * (m.shown(name) * PASSES + drawing_seconds(m)) for name, n in shown.items()],
                f"{sum(shown.values()):.0f} stimuli and turned examples x "
                f"{max(m.shown_to.values(), default=m.forward) * 1e3:.2f} ms or less (a forward pass to the layer)")
