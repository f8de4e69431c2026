"""The seven arguments of "Zoom In" as a scorecard for one family in one layer.

Each argument gets a verdict, ``strong``, ``weak`` or ``missing``, from a number
the other stages measured, with the rule written next to it (the site shows both):

1. feature visualization: the share of members whose channel image, averaged over
   the whole image, drives them at least as hard as a typical dataset image does
   at its strongest position (the median of the per-image maxima);
2. dataset examples: the share of members that fire on data and do so selectively
   (active at no more than half of all positions);
3. synthetic examples: the members' median confidence (for a discovered family:
   how well they fit the cluster);
4. joint tuning: for oriented families, where a member's response falls as its top
   examples rotate, how often another member of the family takes over;
5. feature implementation: removing each member's strongest inputs (the circuits
   stage's edit) drops its response by more than removing as many random inputs:
   the median of the difference between the two drops;
6. feature use: the share of members that are among the ``USED_TOP`` strongest
   inputs of some unit of the next swept layer;
7. handwritten circuit: the median correlation between each member and a
   detector with hand-set weights (``atlas.stages.families.handwritten``) built for it, over the
   stimulus bank and over the member's dataset examples (``Handwritten`` builds
   the detectors and gathers both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from atlas import artifacts
from atlas.data import stimuli
from atlas.data.bank import tuning_bank
from atlas.models import LoadedModel
from atlas.stages import LayerInfo, StageContext, layer_receptive_field
from atlas.stages.families import handwritten
from atlas.stages.families.handwritten import correlation
from atlas.stages.families.taxonomy import DETECTORS

ARGUMENTS = tuple(artifacts.ARGUMENTS.values())  # in "Zoom In"'s order
STRONG_SHARE, WEAK_SHARE = 0.75, 0.25  # arguments 1 and 2: the share of members for "strong" and "weak"
STRONG_CONFIDENCE = 0.75  # argument 3
STRONG_TAKEOVER, WEAK_TAKEOVER = 0.5, 0.1  # argument 4
STRONG_EDIT, WEAK_EDIT = 0.3, 0.1  # argument 5: drop from the top inputs minus drop from random ones
USED_TOP = 3  # argument 6: "used" = among a downstream unit's strongest inputs ...
STRONG_USE = 0.5  # ... for at least this share of members
STRONG_CORRELATION, WEAK_CORRELATION = 0.6, 0.3  # argument 7


def _verdict(value: float | None, strong: float, weak: float, rule: str, higher: bool = True) -> dict[str, Any]:
    if value is None:
        return {"verdict": "missing", "value": None, "rule": rule}
    sign = 1 if higher else -1
    verdict = "strong" if sign * value >= sign * strong else "weak" if sign * value >= sign * weak else "missing"
    return {"verdict": verdict, "value": round(float(value), 3), "rule": rule}


@dataclass(frozen=True)
class NullEvidence:
    """What the layer's null says about a family (``atlas.stages.families.chance``): its members'
    p-values against the null units, and the 95th percentile of the null units'
    correlation with their own handwritten detector (None: no null unit to compare)."""

    p: list[float]
    match_p95: float | None = None


STRONG_P, WEAK_P = 0.01, 0.05  # argument 3 against the null: the members' median p-value


def scorecard(members: Sequence[int], *, oriented: bool, confidence: dict[int, float],
              featurevis: dict[int, float], examples: dict[int, dict[str, Any]], joint: dict[int, dict[str, Any]],
              handwritten: dict[int, tuple[float | None, float | None]] | None,
              edits: dict[int, dict[str, Any]] | None = None, used: set[int] | None = None,
              null: NullEvidence | None = None) -> list[dict[str, Any]]:
    """Every argument's verdict for a family with ``members``, in the paper's order.
    With the layer's ``null``, "strong" means beyond it: synthetic examples are judged
    by the members' p-values against the null units, the handwritten circuit must also
    beat the null units' own detectors, and an argument the null was not measured on
    (feature visualization, dataset examples, joint tuning, circuits) is at most weak."""
    card = _rules(members, oriented, confidence, featurevis, examples, joint, handwritten, edits, used)
    if null is not None:
        card["synthetic examples"] = _verdict(
            float(np.median(null.p)) if null.p else None, STRONG_P, WEAK_P, higher=False,
            rule=f"the members' median p-value against the null's units (each criterion against theirs): strong "
                 f"below {STRONG_P}, weak below {WEAK_P}")
        hand = card["handwritten circuit"]
        if hand["verdict"] == "strong" and null.match_p95 is not None and (hand["stimuli"] or 0) <= null.match_p95:
            hand["verdict"] = "weak"
        if null.match_p95 is not None:
            hand["rule"] += f"; strong only beyond the null units' own ({null.match_p95:.2f} at their 95th percentile)"
        for argument in ("feature visualization", "dataset examples", "joint tuning", "feature implementation",
                         "feature use"):
            if card[argument]["verdict"] == "strong":
                card[argument]["verdict"] = "weak"
            card[argument]["rule"] += "; not measured on the null, so at most weak"
    return [{"argument": argument, **card[argument]} for argument in ARGUMENTS]


def _rules(members: Sequence[int], oriented: bool, confidence: dict[int, float], featurevis: dict[int, float],
           examples: dict[int, dict[str, Any]], joint: dict[int, dict[str, Any]],
           handwritten: dict[int, tuple[float | None, float | None]] | None,
           edits: dict[int, dict[str, Any]] | None, used: set[int] | None) -> dict[str, dict[str, Any]]:
    """Every argument's verdict by its own rule alone."""
    card: dict[str, dict[str, Any]] = {}

    def share(test: Callable[[int], bool], have: dict) -> float | None:
        known = [u for u in members if u in have]
        return sum(map(test, known)) / len(known) if known else None

    def top(u: int) -> float:
        return examples[u]["top"][0]["value"] if examples.get(u, {}).get("top") else 0.0

    def typical(u: int) -> float:
        quantiles = examples.get(u, {}).get("activation_quantiles") or [float("inf")]
        return quantiles[len(quantiles) // 2]

    card["feature visualization"] = _verdict(
        share(lambda u: featurevis[u] >= typical(u), featurevis), STRONG_SHARE, WEAK_SHARE,
        "the share of members whose visualization, averaged over the image, drives them as hard as a typical "
        f"dataset image does at its strongest position: strong from {STRONG_SHARE:.0%}, weak from {WEAK_SHARE:.0%}")
    card["dataset examples"] = _verdict(
        share(lambda u: top(u) > 0 and examples[u]["fraction_active"] <= 0.5,
              {u: e for u, e in examples.items() if e.get("fraction_active") is not None}), STRONG_SHARE, WEAK_SHARE,
        "the share of members that fire on data, at no more than half of all positions (no answer in a signed "
        f"layer that no activation follows: it has no threshold): strong from {STRONG_SHARE:.0%}, weak from "
        f"{WEAK_SHARE:.0%}")
    card["synthetic examples"] = _verdict(
        float(np.median([confidence[u] for u in members])) if members else None, STRONG_CONFIDENCE, 0.5,
        f"the members' median confidence: strong from {STRONG_CONFIDENCE}, weak from 0.5")
    takeovers = [_takeover(joint[u], u, set(members)) for u in members if oriented and u in joint]
    takeovers = [t for t in takeovers if t is not None]
    card["joint tuning"] = _verdict(
        float(np.median(takeovers)) if takeovers and len(members) > 1 else None, STRONG_TAKEOVER, WEAK_TAKEOVER,
        "for oriented families: as a member's top examples rotate and its response falls, the share of angles "
        f"at which another member takes over: strong from {STRONG_TAKEOVER}, weak from {WEAK_TAKEOVER}")
    margins = [edits[u]["drop_top"] - edits[u]["drop_random"] for u in members if edits and u in edits]
    card["feature implementation"] = _verdict(
        float(np.median(margins)) if margins else None, STRONG_EDIT, WEAK_EDIT,
        "removing each member's strongest inputs (zeroed in the network) cuts its response more than removing "
        f"as many random inputs: the median difference of the two drops, strong from {STRONG_EDIT}, weak from "
        f"{WEAK_EDIT} (missing without an upstream swept layer)")
    card["feature use"] = _verdict(
        sum(u in used for u in members) / len(members) if used is not None and members else None, STRONG_USE, 0.1,
        f"the share of members among the {USED_TOP} strongest inputs of some unit of the next swept layer: strong "
        f"from {STRONG_USE:.0%}, weak from 10% (missing without a downstream swept layer)")
    card["handwritten circuit"] = _handwritten_verdict(handwritten, members)
    return card


def _takeover(joint: dict[str, Any], unit: int, members: set[int]) -> float | None:
    fallen = [i for i, value in enumerate(joint["self"]) if value < 0.5]
    if not fallen:
        return None
    return sum(joint["takeover"][i] in members - {unit} for i in fallen) / len(fallen)


def _handwritten_verdict(handwritten: dict[int, tuple[float | None, float | None]] | None,
                         members: Sequence[int]) -> dict[str, Any]:
    rule = (f"median correlation with a hand-set detector, on stimuli and on data (the lower of the two): "
            f"strong from {STRONG_CORRELATION}, weak from {WEAK_CORRELATION}")
    if not handwritten:
        return {"verdict": "missing", "value": None, "rule": "no handwritten circuit for this family yet"}
    stimuli = [handwritten[u][0] for u in members if u in handwritten and handwritten[u][0] is not None]
    data = [handwritten[u][1] for u in members if u in handwritten and handwritten[u][1] is not None]
    medians = [float(np.median(values)) for values in (stimuli, data) if values]
    result = _verdict(min(medians) if medians else None, STRONG_CORRELATION, WEAK_CORRELATION, rule)
    result["stimuli"] = round(float(np.median(stimuli)), 3) if stimuli else None
    result["data"] = round(float(np.median(data)), 3) if data else None
    return result


class Handwritten:
    """Builds each member's hand-set detector and correlates it with the member, on
    the stimulus bank and on its dataset examples (``examples``: the examples
    artifact's data, or None; ``images``: loaded dataset images, shared across layers)."""

    def __init__(self, ctx: StageContext, model: LoadedModel, layer: LayerInfo, tuning: dict, responses: np.ndarray,
                 examples: dict[str, Any] | None, images: dict[int, np.ndarray | None], bank=None):
        self.ctx, self.model, self.layer, self.tuning, self.responses = ctx, model, layer, tuning, responses
        self.examples = examples if ctx.dataset is not None else None
        self._images = images
        self._bank = bank
        self._matches: handwritten.Matches | None = None

    @property
    def bank(self):
        """The tuning stage's stimulus bank, redrawn (it is a pure function of size and extent)."""
        if self._bank is None:
            self._bank = tuning_bank(self.model.input_size, self.tuning)
        return self._bank

    @property
    def matches(self) -> handwritten.Matches:
        """The layer's handwritten detectors over the bank (``handwritten.Matches``)."""
        if self._matches is None:
            self._matches = handwritten.Matches(self.bank, self.tuning["extent"], DETECTORS)
        return self._matches

    def detector(self, symbol: str, unit: int) -> tuple[handwritten.Detector, np.ndarray]:
        """The detector the unit follows best (of those its family allows) and the
        unit's responses to the bank."""
        responses = self.responses[:, self.layer.units.index(unit)]
        preferred = self.tuning["units"][str(unit)]["preferred"]
        return self.matches.detector(symbol, preferred, responses), responses

    def correlations(self, symbol: str, members: Sequence[int]) -> dict[int, tuple[float | None, float | None]]:
        """Per member: (correlation on the stimulus bank, correlation on its dataset examples)."""
        out = {}
        for u in members:
            detector, unit = self.detector(symbol, u)
            rectified = unit.min() >= 0  # a unit that never goes negative has a rectifier: so does its detector
            on_stimuli = correlation(_rectify(handwritten.respond(detector, self.matches.stimuli), rectified), unit)
            out[u] = (on_stimuli, self._on_data(detector, u, rectified))
        return out

    def scatter(self, symbol: str, unit: int) -> dict[str, list[float]]:
        """The unit's and its detector's responses to every stimulus: the argument's figure."""
        detector, responses = self.detector(symbol, unit)
        found = _rectify(handwritten.respond(detector, self.matches.stimuli), responses.min() >= 0)
        return {"detector": np.round(found, 4).tolist(), "unit": np.round(responses, 4).tolist()}

    def _on_data(self, detector: handwritten.Detector, unit: int, rectified: bool) -> float | None:
        """Correlation over the unit's dataset examples, each recentred on where the unit looked."""
        if self.examples is None:
            return None
        field = layer_receptive_field(self.ctx, self.model, self.layer.name)
        summary = self.examples["units"][str(unit)]
        seen, crops, values = set(), [], []
        for ex in summary["top"] + [e for group in summary["quantiles"] for e in group]:
            where = (ex["image"], ex["y"], ex["x"])
            pixels = None if where in seen else self._load(ex["image"])
            seen.add(where)
            if pixels is not None:
                centre = (ex["y"] * field.stride_y + field.offset_y + field.size_y / 2,
                          ex["x"] * field.stride_x + field.offset_x + field.size_x / 2)
                crops.append(_recentred(pixels, centre))
                values.append(ex["value"])
        if len(crops) < 3:
            return None
        return correlation(_rectify(handwritten.respond(detector, torch.from_numpy(np.stack(crops))), rectified),
                           values)

    def _load(self, image: int) -> np.ndarray | None:
        if image not in self._images:
            self._images[image] = self.ctx.dataset.load(image, self.model.input_size)
        return self._images[image]


def _rectify(response: torch.Tensor, rectified: bool) -> np.ndarray:
    return (response.clamp_min(0) if rectified else response).numpy()


def _recentred(pixels: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The image (H, W, 3) uint8 shifted so that ``centre`` (row, column; the unit's
    receptive-field centre, anywhere: a deep unit's may lie off the image) is the image
    centre, grey where it runs out: (3, H, W) in [0, 1]."""
    size = pixels.shape[0]
    out = np.full((3, size, size), stimuli.GREY, dtype=np.float32)
    dy, dx = (int(round(size - c)) - size // 2 for c in centre)
    ys, xs = slice(max(0, -dy), min(size, size - dy)), slice(max(0, -dx), min(size, size - dx))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[:, ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx] = pixels[ys, xs].transpose(2, 0, 1) / 255.0
    return out
