"""Feature families: every swept unit gets one, named or discovered.

"An Overview of Early Vision in InceptionV1" sorted units into families by hand.
Here each **named family** is a symbol, a definition and a list of conditions on
numbers the other stages measured (``metrics``): tuning summaries, the first
layer's kernel statistics. A condition is a threshold with a soft margin: it
scores 0.5 exactly at the threshold and 1 at ``width`` beyond it, so a family's
score (the least of its conditions' scores) reads as a confidence. A unit joins the
family with the highest score if that is at least 0.5, else "other". A condition
on a metric the unit lacks (no kernel statistics beyond the first layer) is
skipped. ``FAMILIES`` is the one place the criteria live; the site prints them.

What holds on networks nobody tuned the criteria to (``atlas.stages.families.groundtruth`` and
``benchmarks/families_groundtruth.py`` measure it): a contrast of two responses too
weak to matter (``FLOOR``) is no evidence, not +1 or -1; contours are judged among
single contours; a first layer's kernel fits count only beyond their surrogate
null (``atlas.stages.weights.kernels``); a layer is offered only the families its field can show
(``possible_families``); dead units (``dead_units``: kernels or responses at
numerical noise, or never active on data) are in no family; and every unit keeps
its runner-up, "borderline" when it is close.

**Discovered families** (``discovery``, beside this module): the layer's units are
clustered by their response signatures over the stimulus bank (average-linkage
clustering on correlation, cut at ``CLUSTER_CORRELATION``). A cluster of at least
``MIN_MEMBERS`` units, most of them "other", is a family nobody named: ``X1``, ``X2``, ... per layer, described
by the stimuli that drive its members most and the labels of their top dataset
examples.

Members are ordered by what varies within a family: orientation for oriented
families (as the Distill articles lay out curve detectors), hue for color
families, confidence otherwise.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from atlas.data import stimuli
from atlas.data.bank import PERIODIC_180, resultant
from atlas.stages.families.handwritten import MATCH

CONFIDENT = 0.5  # a family's score from which a unit joins it
BORDERLINE = 0.15  # a runner-up within this of the winner's score: the unit is "A or B"
FLOOR = 0.2  # a contrast of two responses both below this share of the unit's peak is no evidence
KERNEL_EVIDENCE = 0.25  # a kernel fit is evidence when it closes this share of the gap from its null to 1 ...
UNINFORMATIVE_NULL = 0.9  # ... and means nothing when random kernels of its size and smoothness fit this well
DEAD = 1e-4  # a unit whose responses (or kernel) are below this share of the layer's median is dead
CONTOURS = ("line", "curve", "edge", "curved_edge")  # single contours, judged among themselves
THIN = 4.0  # cycles of its preferred grating across its field: a line or a texture beyond, a Gabor below


@dataclass(frozen=True)
class Condition:
    """A threshold on one metric. A metric not measured for the unit (kernel statistics
    beyond the first layer) skips the condition; one measured without evidence (None:
    both responses of a contrast under ``FLOOR`` of the peak) fails a requirement
    (``low``) and skips a veto (``high``)."""

    metric: str
    low: float | None = None  # the metric must be at least this ...
    high: float | None = None  # ... or at most this
    width: float = 0.15  # the soft margin
    layers: str = "all"  # "first": only where kernels are measured; "later": only beyond the first layer

    def margin(self, metrics: dict[str, float | None], first_layer: bool = False) -> float | None:
        """How far beyond the threshold the metric is, in soft widths (negative: short
        of it; -1 where a required metric has no evidence), or None: skipped."""
        if self.metric not in metrics or self.layers == ("later" if first_layer else "first"):
            return None
        value = metrics[self.metric]
        if value is None:
            return -1.0 if self.low is not None else None
        return (value - self.low if self.low is not None else self.high - value) / self.width

    def score(self, metrics: dict[str, float | None], first_layer: bool = False) -> float | None:
        margin = self.margin(metrics, first_layer)
        return None if margin is None else float(np.clip(0.5 + 0.5 * margin, 0.0, 1.0))

    def text(self) -> str:
        rule = f"{self.metric} ≥ {self.low:g}" if self.low is not None else f"{self.metric} ≤ {self.high:g}"
        return rule + {"all": "", "first": " (first layer)", "later": " (beyond the first layer)"}[self.layers]


@dataclass(frozen=True)
class Family:
    symbol: str
    name: str
    definition: str
    conditions: tuple[Condition, ...]
    order_by: str = "confidence"  # "orientation", "hue" or "confidence"
    handwritten: str | None = None  # the detector atlas.stages.families.handwritten builds for it
    first_layer: bool = True  # whether a first layer's kernel (a linear filter of the image) can be one
    min_extent: float = 0.0  # the receptive field (pixels) the family's stimuli need
    hue_from: str = "color_edge"  # ordered by hue: the stimulus kind whose preferred one gives its hue
    # Stricter kinds of the family, (name, conditions added to the family's): what the
    # criteria do not require but a unit of that kind shows beyond chance (a complex
    # Gabor's indifference to where a grating's bars fall). The test against the null
    # (``atlas.stages.families.chance``) weighs a unit's evidence as the family or as one of its kinds,
    # whichever is stronger, and the null units get the same choice.
    variants: tuple[tuple[str, tuple[Condition, ...]], ...] = ()

    def condition_sets(self) -> list[tuple[str | None, tuple[Condition, ...]]]:
        """(variant name, conditions): the family's own (None), then each variant's."""
        return [(None, self.conditions)] + [(name, self.conditions + extra) for name, extra in self.variants]

    def margins(self, metrics: dict[str, float | None], first_layer: bool = False) -> list[float]:
        """Each condition's margin (soft widths) that applies here."""
        return [m for m in (c.margin(metrics, first_layer) for c in self.conditions) if m is not None]

    def score(self, metrics: dict[str, float | None], first_layer: bool = False) -> float:
        margins = self.margins(metrics, first_layer)
        return float(np.clip(0.5 + 0.5 * min(margins), 0.0, 1.0)) if margins else 0.0

    def possible(self, first_layer: bool, extent: float) -> bool:
        return (self.first_layer or not first_layer) and extent >= self.min_extent


ORIENTED = Condition("orientation_selectivity", low=0.3)
# Following the family's handwritten detector over the whole bank (``handwritten.Matches``):
# what random units that merely prefer the family's stimulus rarely do.
MATCHES = {symbol: Condition(metric, low=0.0, width=0.2) for symbol, metric in MATCH.items()}
FAMILIES = (
    Family("Ga", "Gabor", "Oriented edge or grating detectors: at one orientation, luminance more than color. "
           "Beyond the first layer an edge or a grating drives them most, at least as much as a thin line, the "
           "curved twin of their contour no more, with few cycles of the grating across the field. In a first "
           "layer (where a thin line's filter is a Gabor too) an edge, a line or a grating drives them most, and "
           "the kernel fits a Gabor better than random kernels of its size and smoothness, and better than a "
           "center-surround.",
           (Condition("share_edge_or_grating", low=0.9, width=0.05, layers="later"),
            Condition("share_straight", low=0.8, width=0.05, layers="first"), ORIENTED,
            # Luminance more than color; a first layer's kernel noise and tint (as trained ones
            # have) color its responses a little, and its kernel tells it from color contrast.
            Condition("color_opponency", high=0.1, layers="later"),
            Condition("color_opponency", high=0.3, layers="first"),
            # In a first layer a thin line's filter is a Gabor: lines are not told apart there.
            Condition("edge_or_grating_vs_line", low=0.0, width=0.1, layers="later"),
            Condition("own_curvature", high=0.2, layers="later"),
            Condition("thinness", high=1.0, width=0.25, layers="later"),
            Condition("gabor_excess", low=KERNEL_EVIDENCE), Condition("dog_vs_gabor", high=0.0, width=0.1),
            MATCHES["Ga"]), "orientation", "template",
           variants=(("band-pass", (Condition("grating_vs_edge", low=0.0, width=0.1),)),
                     ("complex", (Condition("phase_invariance", low=0.5, width=0.25),
                                  Condition("grating_vs_edge", low=0.0, width=0.1))))),
    Family("Cc", "Color contrast", "A boundary between two hues drives them more than any luminance edge; beyond "
           "the first layer a colored spot no more than the same color everywhere. In a first layer the kernel is chromatic "
           "along an opponent axis (red against green, blue against yellow), fits a Gabor better than "
           "random kernels do, and better than a center-surround.",
           (Condition("color_opponency", low=0.15), Condition("center_surround", high=0.3, layers="later"),
            Condition("color_fraction", low=0.3), Condition("axis_opponency", low=0.3),
            Condition("gabor_excess", low=KERNEL_EVIDENCE),
            Condition("dog_vs_gabor", high=0.0, width=0.1), MATCHES["Cc"]), "hue", "template"),
    Family("Cs", "Color center-surround", "A colored spot drives them, the same color over the whole field "
           "much less, and a hue more than white or black. In a first layer the kernel is chromatic and fits a "
           "difference of Gaussians better than random kernels do, and better than a Gabor.",
           (Condition("share_spot", low=0.5), Condition("center_surround", low=0.3),
            Condition("achromatic", high=-0.1), Condition("color_fraction", low=0.3),
            Condition("axis_opponency", low=0.3),
            Condition("dog_excess", low=KERNEL_EVIDENCE), Condition("dog_vs_gabor", low=0.0, width=0.1),
            MATCHES["Cs"]), "hue", "template", hue_from="blob"),
    Family("Bw", "Black and white", "A spot or a field drives them at least a quarter as hard as anything, white or "
           "black more than any hue, luminance edges more than color edges, and they are untuned to orientation. "
           "In a first layer, where stimuli a few pixels wide are too coarse to measure orientation, the kernel "
           "fits a difference of Gaussians better than random kernels do, and better than a Gabor.",
           (Condition("share_spot", low=0.25, width=0.1, layers="later"), Condition("achromatic", low=0.3),
            Condition("color_opponency", high=-0.2), Condition("orientation_selectivity", high=0.3, layers="later"),
            Condition("dog_excess", low=KERNEL_EVIDENCE), Condition("dog_vs_gabor", low=0.0, width=0.1))),
    Family("Ln", "Line", "Among single contours a straight thin line drives them about as much as anything, a "
           "thin curve no more than it, at one orientation; a grating not much more than the line.",
           (Condition("contour_line", low=0.8, width=0.1), Condition("curve_vs_line", high=0.1, width=0.1), ORIENTED,
            Condition("line_vs_grating", low=-0.3), Condition("thinness", low=0.7, width=0.2), MATCHES["Ln"]),
           "orientation", "line", first_layer=False, min_extent=7),
    Family("Cv", "Curve", "Among single contours a curve drives them most, clearly more than the straight "
           "contour of its kind (a thin curve than a thin line, a disc's boundary than a straight edge), "
           "bulging towards one orientation.",
           (Condition("contour_curve", low=0.9, width=0.05), Condition("curvature", low=0.15, width=0.1),
            Condition("bulge_selectivity", low=0.2, width=0.1), MATCHES["Cv"]),
           "orientation", "curve", first_layer=False, min_extent=9),
    Family("Hl", "High-low frequency", "A boundary between fine texture and a flat region drives them most, more "
           "than a plain edge, at one orientation.",
           (Condition("share_high_low", low=0.9, width=0.05), Condition("high_low_vs_edge", low=0.15),
            Condition("high_low_selectivity", low=0.2)), "orientation", first_layer=False, min_extent=15),
    Family("Tx", "Texture / hatch", "A repeating grating drives them most, clearly more than a single edge or line, "
           "at one orientation, wherever its stripes fall (at every phase), with many stripes across the field.",
           (Condition("share_grating", low=0.9, width=0.05), Condition("grating_vs_edge", low=0.3), ORIENTED,
            Condition("thinness", low=1.0, width=0.25), Condition("phase_invariance", low=0.5)),
           "orientation",
           first_layer=False, min_extent=9),
)
DETECTORS = {f.symbol: f.handwritten for f in FAMILIES if f.handwritten}  # symbol -> its detector's kind
OTHER = Family("Ot", "Other", "No named family's criteria hold, and no discovered family claims them.", ())


def _contrast(a: float, b: float, peak: float) -> float | None:
    """(a - b) / (a + b) of two responses (rectified), or None when both are under
    ``FLOOR`` of the unit's peak: two near-zero numbers are no evidence either way."""
    a, b = max(a, 0.0), max(b, 0.0)
    if max(a, b) < FLOOR * peak or peak <= 0:
        return None
    return (a - b) / (a + b)


def _phase_invariance(preferred: dict[str, Any], responses: np.ndarray, params: list[dict]) -> float:
    """The weakest response over the phases of the unit's best grating over the strongest:
    a texture unit answers a texture wherever its stripes fall, a simple edge unit does not."""
    same = [i for i, p in enumerate(params) if p["kind"] == "grating" and p["orientation"] == preferred["orientation"]
            and p["frequency"] == preferred["frequency"]]
    values = np.clip(responses[same], 0, None)
    return float(values.min() / values.max()) if values.max() > 0 else 0.0


def _excess(r2: float, null: float) -> float:
    """How much of the gap from the null's fit to a perfect fit a kernel's fit closes."""
    return (r2 - null) / max(1 - null, 1e-6)


def metrics(summary: dict[str, Any], responses: np.ndarray, params: list[dict],
            kernel: dict[str, float] | None = None, extent: float | None = None,
            matches: dict[str, float | None] | None = None) -> dict[str, float | None]:
    """The numbers the criteria read, for one unit: its tuning summary, its
    responses to the stimulus bank (one per stimulus), in the first layer its
    kernel statistics, the width of its receptive field (``extent``, pixels) and how
    well it follows each family's detector (``matches``: ``handwritten.Matches``).
    None: measured, but no evidence either way."""
    best = {kind: max(p["response"], 0.0) for kind, p in summary["preferred"].items()}
    peak = max(best.values())
    scale = max(peak, 1e-12)
    # Spots and fields on grey (a spot on another hue has a luminance contrast of its own).
    spots = [(i, p["color"]) for i, p in enumerate(params) if p["kind"] in ("blob", "field") and "surround" not in p]
    achromatic = float(responses[[i for i, color in spots if color in ("white", "black")]].max())
    hued = float(responses[[i for i, color in spots if color in stimuli.HUES]].max())
    contour_peak = max(best.get(kind, 0.0) for kind in CONTOURS)
    contours_count = contour_peak >= FLOOR * peak and peak > 0
    out: dict[str, float | None] = {f"share_{kind}": value / scale for kind, value in best.items()}
    out.update({
        "peak": peak,
        "share_edge_or_grating": max(out["share_edge"], out["share_grating"]),
        "share_spot": max(out["share_blob"], out["share_field"]),
        "share_straight": max(out["share_edge"], out["share_grating"], out["share_line"]),
        "contour_line": best["line"] / contour_peak if contours_count else None,
        "contour_curve": max(best["curve"], best["curved_edge"]) / contour_peak if contours_count else None,
        # Straight kinds say how oriented a filter is; a curve's bulge is another kind of orientation.
        "orientation_selectivity": summary["straight_selectivity"],
        "bulge_selectivity": summary["bulge_selectivity"],
        "curve_vs_line": _contrast(best["curve"], best["line"], peak),
        "curved_vs_edge": _contrast(best["curved_edge"], best["edge"], peak),
        "color_opponency": _contrast(best["color_edge"], best["edge"], peak),
        "center_surround": _contrast(best["blob"], best["field"], peak),
        "achromatic": _contrast(achromatic, hued, peak),
        "high_low_vs_edge": _contrast(best["high_low"], best["edge"], peak),
        "grating_vs_edge": _contrast(best["grating"], max(best["edge"], best["line"]), peak),
        "edge_or_grating_vs_line": _contrast(max(best["edge"], best["grating"]), best["line"], peak),
        "line_vs_grating": _contrast(best["line"], best["grating"], peak),
        "high_low_selectivity": float(resultant(np.asarray(summary["curves"]["high_low"]["response"])[:, None],
                                                summary["curves"]["high_low"]["angles"], 360)[1][0]),
        "phase_invariance": _phase_invariance(summary["preferred"]["grating"], responses, params),
    })
    if extent:  # how thin the unit's structure is against its field
        # A line's preferred grating has many cycles across its field, a Gabor's few; a small field
        # holds few cycles of even the finest grating: "thin" is then most of what it holds.
        finest = max(p["frequency"] for p in params if p["kind"] == "grating")
        out["thinness"] = summary["frequency_preference"] * extent / min(THIN, 0.8 * finest * extent)
    curved = [v for v in (out["curve_vs_line"], out["curved_vs_edge"]) if v is not None]
    out["curvature"] = max(curved) if curved else None  # either kind of contour, against its straight twin
    # The curvature of the kind of contour that drives the unit more: thin strokes or edges.
    thin = max(best["curve"], best["line"]) >= max(best["curved_edge"], best["edge"])
    out["own_curvature"] = out["curve_vs_line"] if thin else out["curved_vs_edge"]
    out.update(matches or {})
    if kernel:
        out["color_fraction"] = kernel["color_fraction"]
        if "axis_opponency" in kernel:
            out["axis_opponency"] = kernel["axis_opponency"]
        excess = {}
        for fit in ("gabor", "dog"):
            if f"{fit}_null" in kernel and kernel[f"{fit}_null"] < UNINFORMATIVE_NULL:
                excess[fit] = out[f"{fit}_excess"] = _excess(kernel[f"{fit}_r2"], kernel[f"{fit}_null"])
        if len(excess) == 2:  # which shape describes the kernel better
            out["dog_vs_gabor"] = excess["dog"] - excess["gabor"]
    return {k: None if v is None else round(float(v), 4) for k, v in out.items()}


def classify(unit_metrics: dict[str, float | None], possible: Sequence[Family] = FAMILIES,
             first_layer: bool = False) -> tuple[str, float, dict[str, float]]:
    """(family symbol, confidence, the score of every family ``possible`` here) for one unit."""
    scores = {f.symbol: round(f.score(unit_metrics, first_layer), 4) for f in possible}
    if unit_metrics["peak"] <= 0 or not scores:  # nothing in the bank drives it
        return OTHER.symbol, 1.0, scores
    symbol = max(scores, key=scores.get)
    if scores[symbol] >= CONFIDENT:
        return symbol, scores[symbol], scores
    return OTHER.symbol, round(1 - scores[symbol], 4), scores


def runner_up(scores: dict[str, float], symbol: str) -> tuple[str | None, float | None]:
    """The best-scoring family other than ``symbol``, and its score."""
    others = {s: v for s, v in scores.items() if s != symbol}
    if not others:
        return None, None
    best = max(others, key=others.get)
    return best, others[best]


def possible_families(first_layer: bool, extent: float) -> list[Family]:
    """The named families a layer can show: a first layer's units are linear filters of
    the image (no lines or curves beyond a Gabor's), and a family needs a receptive
    field that holds its stimuli."""
    return [f for f in FAMILIES if f.possible(first_layer, extent)]


def label_units(units: Sequence[int], summaries: dict[int, dict[str, Any]], responses: np.ndarray,
                params: list[dict], kernels: dict[int, dict[str, float]] | None, extent: float,
                effective: float | None = None,
                matches: dict[int, dict[str, float | None]] | None = None) -> dict[int, dict[str, Any]]:
    """Every unit's named family (or "other"), confidence, scores and metrics, from its
    tuning (``responses``: stimuli x units, in ``units`` order), in a first layer
    (``kernels`` given) its kernel statistics, and the layer's receptive field: its
    full ``extent`` and its ``effective`` diameter (pixels)."""
    possible = possible_families(kernels is not None, extent)
    per_unit = {}
    for row, u in enumerate(units):
        m = metrics(summaries[u], responses[:, row], params, (kernels or {}).get(u), effective or extent,
                    (matches or {}).get(u))
        symbol, confidence, scores = classify(m, possible, kernels is not None)
        second, second_score = runner_up(scores, symbol)
        per_unit[u] = {"family": symbol, "confidence": confidence, "scores": scores, "metrics": m,
                       "second": second, "second_score": second_score,
                       "borderline": second is not None and second_score >= CONFIDENT - BORDERLINE
                       and second_score >= scores.get(symbol, 0.0) - BORDERLINE,
                       "orientation_deg": summaries[u]["orientation_deg"],
                       "orientation_period": 180 if summaries[u]["orientation_kind"] in PERIODIC_180 else 360}
    return per_unit


def hue_of(summary: dict[str, Any], symbol: str) -> float:
    """The hue (0..360) a color unit prefers: the near side of its best color edge, or its
    best spot (the family's ``hue_from``)."""
    preferred = summary["preferred"][next(f.hue_from for f in FAMILIES if f.symbol == symbol)]
    name = preferred.get("near") or preferred.get("color")
    if name not in stimuli.HUES:
        return 0.0
    return round(colorsys.rgb_to_hsv(*stimuli.HUES[name])[0] * 360, 1)


def order_members(symbol: str, units: Sequence[int], summaries: dict[int, dict], confidence: dict[int, float],
                  order_by: str) -> list[int]:
    if order_by == "orientation":
        return sorted(units, key=lambda u: (summaries[u]["orientation_deg"], u))
    if order_by == "hue":
        return sorted(units, key=lambda u: (hue_of(summaries[u], symbol), u))
    return sorted(units, key=lambda u: (-confidence[u], u))


