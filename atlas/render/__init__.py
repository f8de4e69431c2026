"""Render the static site from the store: never imports torch, never runs a model.

``render_site`` gathers every page model first (``pages.build_site``), renders
every page to a string, and only then writes: into a fresh folder beside the
output that replaces the old site in one rename, so a failed render leaves the
previous site untouched. Jinja runs with autoescape on and StrictUndefined, since
model, layer, class and file names are untrusted text.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image

from atlas.config import Config
from atlas.errors import AtlasError
from atlas.names import slug
from atlas.render import charts
from atlas.render.pages import SiteModel, build_site, catalog, search_index
from atlas.render.urls import relative_url
from atlas.store import Store

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SITE_MARKER = ".atlas-site"  # marks a folder Atlas made, so it may be replaced


@dataclass
class RenderReport:
    out: Path
    pages: int
    files: int
    seconds: float


def render_site(config: Config, out: Path | None = None) -> RenderReport:
    """Render the atlas of ``config`` from its last sweep into ``out`` (default: site.out)."""
    start = time.perf_counter()
    store = Store(config.resolve(config.sweep.cache))
    plan = store.read_plan(config.sweep_digest())
    if plan is None:
        raise AtlasError(f"{config.source}: no sweep of this config in {store.root} yet; "
                         "run `atlas sweep` (or `atlas build`) first")
    try:
        site = build_site(plan, store)
    except FileNotFoundError as e:  # the plan names an artifact someone deleted
        raise AtlasError(f"{config.source}: the store {store.root} lacks {e.filename}; "
                         "run `atlas sweep` (or `atlas build`) to recompute it") from None
    pages = render_pages(site, config.site.title)
    out = Path(out) if out is not None else config.resolve(config.site.out)
    data = {
        "catalog.json": json.dumps(catalog(site), indent=1),
        # The search index is a script that sets a global, so search works from file:// (no fetch).
        "search-index.js": f"window.ATLAS_INDEX = {json.dumps(search_index(site), separators=(',', ':'))};\n",
    }
    _write_site(out, {**pages, **data}, site)
    report = RenderReport(out, len(pages), len(pages) + len(data) + len(site.copies), time.perf_counter() - start)
    log.info("rendered %d pages into %s in %.1fs", report.pages, out, report.seconds)
    return report


def render_pages(site: SiteModel, title: str) -> dict[str, str]:
    """Every page of the site: {site path: html}."""
    env = _environment()
    pages: dict[str, str] = {}

    def page(template: str, path: str, crumbs: list[tuple[str, str]], **context: Any) -> None:
        uses_charts = any(value for key, value in context.items() if key.endswith(("chart", "charts")))
        pages[path] = env.get_template(template).render(
            page=path, site_title=title, crumbs=crumbs, uses_charts=uses_charts, **context)

    home = ("Atlas", "index.html")
    margin = site.universality.margin if site.universality else None
    page("index.html", "index.html", [], site=site)
    if site.universality:
        page("universality.html", site.universality.url, [home, ("universality", site.universality.url)],
             site=site, universality=site.universality,
             similarity_charts=[charts.layer_similarity(pair) for pair in site.universality.cka])
    for model in site.models:
        model_crumbs = [home, (model.name, model.url)]
        page("model.html", model.url, model_crumbs, model=model)
        if model.criteria:
            page("families.html", model.families_url, model_crumbs + [("families", model.families_url)], model=model)
        for layer in model.layers:
            layer_crumbs = model_crumbs + [(layer.name, layer.url)]
            for family in layer.families:
                page("family.html", family.url, layer_crumbs + [(family.name, family.url)],
                     model=model, layer=layer, family=family,
                     joint_chart=charts.joint_tuning(family.representative),
                     scatter_chart=charts.handwritten_scatter(family))
            page("layer.html", layer.url, layer_crumbs, model=model, layer=layer,
                 chart=charts.layer_activations(layer))
            for unit in layer.units:
                unit_crumbs = layer_crumbs + [(f"unit {unit.index}", unit.url)]
                page("unit.html", unit.url, unit_crumbs, margin=margin,
                     model=model, layer=layer, unit=unit, chart=charts.activation_histogram(unit),
                     tuning_chart=charts.orientation_tuning(unit), joint_chart=charts.joint_tuning(unit))
                if unit.circuit_url:
                    page("circuit.html", unit.circuit_url, unit_crumbs + [("circuit", unit.circuit_url)],
                         model=model, layer=layer, unit=unit)
    return pages


def _abs_max(values: list) -> float:
    """The largest magnitude in nested lists (weight maps, grids of them): a color scale."""
    return max((_abs_max(v) if isinstance(v, list) else abs(v) for v in values), default=0.0)


def _weight_png(weights: list[list[float]], scale: float) -> str:
    """A weight map as a data-URI PNG, one pixel per position: white at zero, red for
    excitation and blue for inhibition at full strength when ``|w| == scale``."""
    w = np.asarray(weights, dtype=np.float32)
    strength = np.clip(np.abs(w) / scale, 0, 1) if scale else np.zeros_like(w)
    fade = (255 * (1 - strength)).astype(np.uint8)
    full = np.full_like(fade, 255)
    rgb = np.where((w > 0)[..., None], np.stack([full, fade, fade], -1), np.stack([fade, fade, full], -1))
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, "PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _environment() -> jinja2.Environment:
    if not TEMPLATES.is_dir():
        raise AtlasError(f"templates not found at {TEMPLATES}; install Atlas from a checkout (pip install -e .)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["url"] = jinja2.pass_context(lambda ctx, target: relative_url(target, ctx["page"]))
    env.filters["abs_max"] = _abs_max
    env.filters["weight_png"] = _weight_png
    env.filters["slug"] = slug
    return env


def _write_site(out: Path, files: dict[str, str], site: SiteModel) -> None:
    """Write the whole site beside ``out``, then swap it in."""
    if out.exists() and any(out.iterdir()) and not (out / SITE_MARKER).exists():
        raise AtlasError(f"site.out: {out} exists and was not made by Atlas; "
                         "refusing to replace it (choose another folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-"))
    try:
        shutil.copytree(TEMPLATES / "static", building / "static")
        for path, text in files.items():
            target = building / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for path, source in site.copies.items():
            target = building / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        (building / ".nojekyll").touch()  # GitHub Pages: serve files as they are
        (building / SITE_MARKER).touch()
        _swap(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _swap(new: Path, out: Path) -> None:
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
