"""Render the static site from the store: never imports torch, never runs a model.

``render_site`` gathers every page model first (``pages.build_site``), lists every
page with its template context (``site_pages``), then renders and writes them, one
forked process per core, into a fresh folder beside the output that replaces the old
site in one rename, so a failed render leaves the previous site untouched. Jinja runs
with autoescape on and StrictUndefined, since model, layer, class and file names are
untrusted text.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2
import markupsafe

from atlas.artifacts import Plan
from atlas.config import Config
from atlas.errors import DISK_FULL, AtlasError, DiskFull, folder_size
from atlas.files import folder_mode
from atlas.forked import can_fork, map_forked
from atlas.images import recode, sprite
from atlas.names import slug
from atlas.render import charts, diagrams, weightmaps
from atlas.render.catalog import catalog_files, search_index
from atlas.render.figures import EVIDENCE_ROWS, circuit_figures, family_figures, layer_figures, unit_figures
from atlas.render.model import Layer, Model, SiteModel, Sprite, Unit
from atlas.render.overview import polysemantic_overview
from atlas.render.read import build_site
from atlas.render.size import SiteSize, measure
from atlas.render.urls import relative_url
from atlas.store import Store, alive

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"  # shipped in the wheel (package data)
SITE_MARKER = ".atlas-site"  # marks a folder Atlas made, so it may be replaced
IMAGE_NAMES = "data/images.js"


@dataclass
class RenderReport:
    out: Path
    pages: int
    files: int
    seconds: float
    size: SiteSize  # what was written, and whether GitHub Pages would publish it


def render_site(config: Config, out: Path | None = None, workers: int | None = None,
                partial: bool = False) -> RenderReport:
    """Render the atlas of ``config`` from its last sweep into ``out`` (default: site.out),
    in ``workers`` processes (default: one per available core). ``partial``: the sweep
    is under way, and the models its plan lacks yet are named on the index as not ready."""
    start = time.perf_counter()
    store = Store(config.resolve(config.sweep.cache))
    plan = store.read_plan(config.sweep_digest())
    if plan is None:
        raise AtlasError(f"{config.source}: no sweep of this config in {store.root} yet; "
                         "run `atlas sweep` (or `atlas build`) first")
    for stage, key in plan.artifacts():  # never render a damaged artifact as if it were whole
        damage = store.damage(stage, key)
        if damage is not None:
            raise AtlasError(f"{config.source}: the {stage} artifact {store.path(stage, key)} is "
                             f"{'missing' if damage == 'missing' else 'damaged: ' + damage}; "
                             "run `atlas sweep` (or `atlas build`) to recompute it")
    try:
        site = build_site(plan, store)
    except FileNotFoundError as e:  # the plan names an artifact someone deleted
        raise AtlasError(f"{config.source}: the store {store.root} lacks {e.filename}; "
                         "run `atlas sweep` (or `atlas build`) to recompute it") from None
    pending = _pending(config, plan) if partial else []
    pages = site_pages(site, config.site.title, pending)
    out = Path(out) if out is not None else config.resolve(config.site.out)
    data = {
        **catalog_files(site),
        # The search index is a script that sets a global, so search works from file:// (no fetch).
        "search-index.js": f"window.ATLAS_INDEX = {json.dumps(search_index(site), separators=(',', ':'))};\n",
        "static/charts.js": charts.script(spec for page in pages for spec in page.charts),
        # The names and labels of the dataset images pages show, once for the site (figures.js reads it).
        IMAGE_NAMES: f"window.ATLAS_IMAGES = {json.dumps(site.images, separators=(',', ':'))};\n",
    }
    _write_site(out, pages, data, site, workers or _cores())
    units = sum(len(layer.units) for model in site.models for layer in model.layers)
    files = len(pages) + len(data) + len(site.copies) + len(site.sprites) + len(site.recoded)
    report = RenderReport(out, len(pages), files, time.perf_counter() - start, measure(out, units))
    log.info("rendered %d pages into %s in %.1fs", report.pages, out, report.seconds)
    return report


def _pending(config: Config, plan: Plan) -> list[str]:
    """What the config asks for that the plan of a sweep under way lacks yet."""
    pending = [f"model {spec.name}" for spec in config.models if plan.model(spec.name) is None]
    if "universality" in config.sweep.stages and len(config.models) > 1 and "universality" not in plan.across:
        pending.append("universality across the models")
    if "superposition" in config.sweep.stages and "superposition" not in plan.across:
        pending.append("toy models of superposition")
    return pending


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Page:
    template: str
    path: str  # site path of the html file
    context: dict[str, Any]
    charts: list[dict[str, Any]]  # the Vega-Lite specs it draws


@dataclass
class Where:
    """Where in the site a page type is asked for its pages: the site, and the model,
    layer and unit being walked (None above their level), with the breadcrumbs to it."""

    site: SiteModel
    crumbs: list[tuple[str, str]]
    model: Model | None = None
    layer: Layer | None = None
    unit: Unit | None = None
    margin: float | None = None  # universality's margin, for unit pages
    pending: list[str] = field(default_factory=list)  # what the sweep under way lacks yet, for the index


Add = Callable[..., None]  # add(template, path, crumbs, figures=None, **context): one page
# A page whose images ``static/figures.js`` draws passes ``drawn``: a function giving their data (figures.py),
# called as the page is written.


def _site_level(add: Add, at: Where) -> None:
    site = at.site
    add("index.html", "index.html", [], site=site, pending=at.pending)
    home = at.crumbs[0]
    if site.superposition:
        experiments = {k: v for k, v in site.superposition.items() if isinstance(v, dict)}
        add("superposition.html", site.superposition_url, [home, ("superposition", site.superposition_url)],
            site=site, toy=site.superposition, figures={
                "phase_chart": charts.toy_phase(experiments),
                "geometry_chart": charts.toy_geometry(site.superposition["geometry"]),
                "capacity_chart": charts.toy_capacity(site.superposition["capacity"])})
    if site.universality:
        add("universality.html", site.universality.url, [home, ("universality", site.universality.url)],
            site=site, universality=site.universality,
            figures={"similarity_charts": [charts.layer_similarity(pair) for pair in site.universality.cka]})


def _model_level(add: Add, at: Where) -> None:
    model = at.model
    add("model.html", model.url, at.crumbs, model=model)
    if model.criteria:
        add("families.html", model.families_url, at.crumbs + [("families", model.families_url)], model=model)
    if model.polysemanticity_url:
        add("polysemanticity.html", model.polysemanticity_url,
            at.crumbs + [("polysemanticity", model.polysemanticity_url)], site=at.site, model=model,
            overview=polysemantic_overview(model), figures={"chart": charts.polysemanticity_by_layer(model)})


def _layer_level(add: Add, at: Where) -> None:
    model, layer = at.model, at.layer
    for family in layer.families:
        add("family.html", family.url, at.crumbs + [(family.name, family.url)], model=model, layer=layer,
            family=family, figures={"joint_chart": charts.joint_tuning(family.representative),
                                    "tuning_chart": charts.family_tuning(family),
                                    "scatter_chart": charts.handwritten_scatter(family)},
            drawn=lambda family=family: family_figures(family, family.url))
    of = next((x for x in model.layers if layer.dictionary and x.name == layer.dictionary["of"]), None)
    add("layer.html", layer.url, at.crumbs, model=model, layer=layer,
        figures={"chart": charts.layer_activations(layer),
                 "comparison_chart": charts.units_against_features(of, layer) if of else None},
        drawn=lambda: layer_figures(layer, layer.url))
    if layer.atlas:
        add("atlas.html", layer.atlas.url, at.crumbs + [("activation atlas", layer.atlas.url)],
            model=model, layer=layer, atlas=layer.atlas)


def _unit_level(add: Add, at: Where) -> None:
    model, layer, unit = at.model, at.layer, at.unit
    add("unit.html", unit.url, at.crumbs, margin=at.margin, model=model, layer=layer, unit=unit, figures={
        "chart": charts.activation_histogram(unit), "tuning_chart": charts.orientation_tuning(unit),
        "joint_chart": charts.joint_tuning(unit)}, drawn=lambda: unit_figures(unit, unit.url))
    if unit.circuit_url:
        diagram = diagrams.circuit_diagram(unit)  # SVG, no chart
        add("circuit.html", unit.circuit_url, at.crumbs + [("circuit", unit.circuit_url)],
            model=model, layer=layer, unit=unit, diagram=diagram,
            drawn=lambda: circuit_figures(unit, diagram, unit.circuit_url))


PAGE_TYPES: dict[str, list[Callable[[Add, Where], None]]] = {
    "site": [_site_level], "model": [_model_level], "layer": [_layer_level], "unit": [_unit_level]}
"""What pages each level of the site has: functions given ``add`` and the place walked
(``Where``), which call ``add`` once per page. A new page type is a template, a function
here (or appended from outside) and the URL its page model gives it."""
TEMPLATE_FOLDERS: list[Path] = [TEMPLATES]  # where templates are looked up, in order


def site_pages(site: SiteModel, title: str, pending: list[str] | None = None) -> list[Page]:
    """Every page of the site with what its template is given (charts included: cheap
    specs, so rendering is all that is left), walking ``PAGE_TYPES`` level by level;
    ``pending``: the models still being swept."""
    pages: list[Page] = []

    def add(template: str, path: str, crumbs: list[tuple[str, str]], figures: dict[str, Any] | None = None,
            **context: Any) -> None:
        """A page; its ``figures`` (template name -> a chart's Vega-Lite spec, a list of them,
        or None) are what make it load the chart bundle."""
        figures = figures or {}
        specs = [spec for found in figures.values() for spec in (found if isinstance(found, list) else [found])
                 if spec]
        pages.append(Page(template, path, dict(page=path, site_title=title, crumbs=crumbs,
                                               uses_charts=bool(specs), **figures, **context), specs))

    def level(name: str, at: Where) -> None:
        for make in PAGE_TYPES[name]:
            make(add, at)

    home = ("Atlas", "index.html")
    level("site", Where(site, [home], pending=pending or []))
    margin = site.universality.margin if site.universality else None
    for model in site.models:
        model_crumbs = [home, (model.name, model.url)]
        level("model", Where(site, model_crumbs, model))
        for layer in model.layers + model.dictionaries:
            layer_crumbs = model_crumbs + [(layer.name, layer.url)]
            level("layer", Where(site, layer_crumbs, model, layer))
            noun = "feature" if layer.dictionary else "unit"
            for unit in layer.units:
                level("unit", Where(site, layer_crumbs + [(f"{noun} {unit.index}", unit.url)], model, layer, unit,
                                    margin))
    return pages


def _write_share(folder: Path, pages: list[Page], images: list[Sprite | tuple[str, tuple[Path | str, int]]]) -> int:
    env = _environment()
    for p in pages:
        _write_text(folder / p.path, env.get_template(p.template).render(p.context))
    for found in images:
        if isinstance(found, Sprite):
            target = folder / found.path
            target.parent.mkdir(parents=True, exist_ok=True)
            sprite(found.sources, target, found.side)
        else:
            path, (source, quality) = found
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            recode(source, folder / path, quality)
    return len(pages)


def _write_parallel(folder: Path, pages: list[Page], images: list[Sprite | tuple[str, tuple[Path | str, int]]],
                    workers: int, meanwhile: Callable[[], None] = lambda: None) -> None:
    """Render and write ``pages`` and make ``images`` (sprites to stack; (site path, (store
    file, quality)) to encode for the site) in ``workers`` forked processes (each inherits
    the page models, so nothing is pickled but a number; each gets every ``workers``-th
    page and image, its part of every kind), running ``meanwhile`` in this process as they work;
    serially where fork is not available or one worker is asked for."""
    if workers <= 1 or len(pages) < 2 * workers or not can_fork():
        _write_share(folder, pages, images)
        meanwhile()
        return
    written = map_forked(lambda share: _write_share(folder, pages[share::workers], images[share::workers]),
                         range(workers), workers, meanwhile=meanwhile)
    assert sum(written) == len(pages)


def _write_text(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def breakable(name: str) -> markupsafe.Markup:
    """A layer name (escaped) that may wrap after a ``.`` or ``/`` and before an inner
    ``_``, never inside a part: ``_blocks.12._project_conv`` can break as ``_blocks.``
    ``12.`` ``_project`` ``_conv``."""
    escaped = str(markupsafe.escape(name))
    return markupsafe.Markup(re.sub(r"(?<=[./])(?=.)|(?<=[^._/])(?=_)", "<wbr>", escaped))


def percent(share: float) -> str:
    """A share as a whole percentage, and a share too small to round to one as "<1%"
    (one unit of 320 is there: "0%" would say it is not)."""
    return "<1%" if share > 0 and round(share * 100) == 0 else f"{share * 100:.0f}%"


def _environment() -> jinja2.Environment:
    if not TEMPLATES.is_dir():
        raise AtlasError(f"templates not found at {TEMPLATES}; reinstall Atlas (its package data is missing)")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_FOLDERS),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    # A page's data (figures, charts) as compact JSON: a tenth of a unit page's bytes were spaces.
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "separators": (",", ":")}
    env.filters["url"] = jinja2.pass_context(lambda ctx, target: relative_url(target, ctx["page"]))
    env.filters["abs_max"] = weightmaps.abs_max
    env.filters["weight_png"] = weightmaps.weight_png
    env.filters["slug"] = slug
    env.filters["number"] = lambda value, spec: "not finite" if value is None else spec % value  # stored None
    env.filters["breakable"] = breakable
    env.filters["chart"] = charts.embedded
    env.filters["percent"] = percent
    env.globals["image_names"] = IMAGE_NAMES
    env.globals["EVIDENCE_ROWS"] = EVIDENCE_ROWS
    return env


def _write_site(out: Path, pages: list[Page], data: dict[str, str], site: SiteModel, workers: int) -> None:
    """Write the whole site beside ``out``, then swap it in."""
    if out.exists() and any(out.iterdir()) and not (out / SITE_MARKER).exists():
        raise AtlasError(f"site.out: {out} exists and was not made by Atlas; "
                         "refusing to replace it (choose another folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out)
    building = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-{os.getpid()}-"))
    try:
        (building / "static").mkdir()
        for source in sorted((TEMPLATES / "static").rglob("*")):  # not copytree: it hides a full disk's OSError
            target = building / source.relative_to(TEMPLATES)
            if source.is_dir():
                target.mkdir()
            else:
                shutil.copyfile(source, target)

        def place_images() -> None:  # while the pages render: linking is system calls, not CPU
            made: set[Path] = set()
            for path, source in site.copies.items():
                target = building / path
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                _place(source, target)

        _write_parallel(building, pages, [*site.sprites.values(), *site.recoded.items()], workers,
                        meanwhile=place_images)
        for path, text in data.items():
            _write_text(building / path, text)
        (building / ".nojekyll").touch()  # GitHub Pages: serve files as they are
        (building / SITE_MARKER).touch()
        # mkdtemp's folder is private (0700): give it the old site's mode, or what mkdir would.
        os.chmod(building, out.stat().st_mode & 0o7777 if out.exists() else folder_mode())
        _swap(building, out)
    except OSError as e:
        if e.errno in DISK_FULL:
            raise DiskFull(out.parent, folder_size(building), f"the site {out.name}") from None
        raise
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _remove_abandoned(out: Path) -> None:
    """What renders that died left beside ``out`` (their pid is in the name and gone)."""
    for entry in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = entry.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-", 1)[0]
        if kind in ("building", "old") and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _place(source: Path | str, target: Path) -> None:
    """An image of the store in the site: a hard link where both are on one file system
    (store files are written once, by rename, and never changed in place), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _swap(new: Path, out: Path) -> None:
    if not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
