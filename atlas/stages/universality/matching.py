"""From two models' unit-by-unit correlations to matches, best buddies and matched sets
(pure: the universality stage computes the correlations and stores this summary)."""

from __future__ import annotations

from typing import Any

import numpy as np

MARGIN = 0.1  # a match counts when its correlation beats the unit's best random-network match by this much
MAX_SETS = 24  # matched sets kept for the universality page


def best_buddies(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Mutual best matches in a score matrix (a, b): (i, j, score) where j is i's best
    and i is j's best."""
    if scores.size == 0:
        return []
    best_for_row, best_for_column = scores.argmax(1), scores.argmax(0)
    return [(i, int(j), float(scores[i, j])) for i, j in enumerate(best_for_row) if best_for_column[j] == i]


def _directed(pair: dict[str, Any], flip: bool) -> dict[str, Any]:
    """A pair seen from one side: 'left' is a (or b when flipped)."""
    left, right = (pair["b"], pair["a"]) if flip else (pair["a"], pair["b"])
    scores, chance = {}, {}
    for (field, la, lb), value in pair["arrays"].items():
        key = (lb, la) if flip else (la, lb)
        if field == "scores":
            scores[key] = value.T if flip else value
        elif field == ("chance_b" if flip else "chance_a"):
            chance[key] = value
    return {"left": left, "right": right, "scores": scores, "chance": chance}


def best_matches(view: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """For each layer of the left model, each unit's best match over all layers of the
    right model: {layer: [{"layer", "index", "score", "chance"}] per unit in order}.
    ``chance`` is the unit's best correlation with the right model's random twin."""
    out: dict[str, list[dict[str, Any]]] = {}
    for la in view["left"]["layers"]:
        candidates = [(lb, view["scores"][la["name"], lb["name"]]) for lb in view["right"]["layers"]]
        chance = np.max([view["chance"][la["name"], lb["name"]] for lb in view["right"]["layers"]], axis=0)
        units = []
        for row, index in enumerate(la["units"]):
            layer, scores = max(candidates, key=lambda c: float(c[1][row].max(initial=-1.0)))
            column = int(scores[row].argmax())
            units.append({"index": index, "layer": layer["name"], "unit": layer["units"][column],
                          "score": round(float(scores[row, column]), 4), "chance": round(float(chance[row]), 4)})
        out[la["name"]] = units
    return out


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Matches per unit (best first, one per other model), best buddies, matched sets,
    each unit's chance level and the CKA matrices, from every pair's correlations."""
    matches: dict[str, dict[str, dict[str, list]]] = {}  # model -> layer -> unit -> matches
    best: dict[tuple[str, str, int, str], tuple[str, int, float, bool]] = {}  # unit, other model -> its best
    for pair in pairs:
        for flip in (False, True):
            view = _directed(pair, flip)
            left, right = view["left"]["model"], view["right"]["model"]
            for layer, units in best_matches(view).items():
                for m in units:
                    beats = m["score"] >= m["chance"] + MARGIN
                    best[left, layer, m["index"], right] = (m["layer"], m["unit"], m["score"], beats)
                    matches.setdefault(left, {}).setdefault(layer, {}).setdefault(str(m["index"]), []).append({
                        "model": right, "layer": m["layer"], "index": m["unit"], "score": m["score"],
                        "chance": m["chance"], "above_chance": beats})
    buddies = []
    for (model, layer, index, other), (olayer, oindex, score, beats) in best.items():
        back = best.get((other, olayer, oindex, model))
        if back is not None and back[:2] == (layer, index):
            buddy = beats and back[3]
            for m in matches[model][layer][str(index)]:
                if m["model"] == other:
                    m["buddy"] = True
            if buddy and (model, layer, index) < (other, olayer, oindex):
                buddies.append(((model, layer, index), (other, olayer, oindex), score, back[2]))
    for layers in matches.values():
        for units in layers.values():
            for found in units.values():
                found.sort(key=lambda m: -m["score"])
                for m in found:
                    m.setdefault("buddy", False)
    return {
        "margin": MARGIN,
        "matches": matches,
        "sets": matched_sets(buddies),
        "cka": [{"a": p["a"]["model"], "b": p["b"]["model"],
                 "layers_a": [l["name"] for l in p["a"]["layers"]], "layers_b": [l["name"] for l in p["b"]["layers"]],
                 "trained": p["cka_trained"], "random": p["cka_random_b"]} for p in pairs],
    }


def matched_sets(buddies: list[tuple[tuple, tuple, float, float]]) -> list[dict[str, Any]]:
    """Connected groups of best buddies (above chance) with at most one unit per model,
    the largest and most strongly correlated first."""
    parent: dict[tuple, tuple] = {}

    def root(node: tuple) -> tuple:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for u, v, _, _ in buddies:
        parent[root(u)] = root(v)
    groups: dict[tuple, dict[str, Any]] = {}
    for u, v, s, t in buddies:
        group = groups.setdefault(root(u), {"units": set(), "scores": []})
        group["units"].update((u, v))
        group["scores"].append((s + t) / 2)
    sets = []
    for group in groups.values():
        models = [unit[0] for unit in group["units"]]
        if len(set(models)) != len(models):
            continue  # two units of one model: not one feature matched across models
        sets.append({"units": [{"model": m, "layer": l, "index": i} for m, l, i in sorted(group["units"])],
                     "score": round(float(np.mean(group["scores"])), 4)})
    sets.sort(key=lambda s: (-len(s["units"]), -s["score"]))
    return sets[:MAX_SETS]
