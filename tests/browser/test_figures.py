"""Figures that must read at a glance on any network: the periodic table of a model
with many families and long layer names, and the built tiny atlas's circuit diagrams,
weight maps and activation atlas, at a laptop's width and a phone's."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from atlas.render import TEMPLATES, _environment
from atlas.render.model import Family, Layer, Model, Unit

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

LAYERS = ("_conv_stem", "_blocks.2", "_blocks.12._project_conv", "features.denseblock4.denselayer16.conv2")
NAMED, DISCOVERED = 16, 3


def wide_model() -> Model:
    """Named families F0..F15 and discovered X1..X3 in every layer, one member each."""
    criteria = [{"symbol": f"F{i}", "name": f"Family number {i} with a long name", "definition": "d"}
                for i in range(NAMED)]
    layers = []
    for name in LAYERS:
        base = f"models/m/{name}"
        units = [Unit(index=i, url=f"{base}/{i}.html") for i in range(NAMED + DISCOVERED)]

        def family(symbol: str, title: str, kind: str, unit: Unit) -> Family:
            return Family(symbol=symbol, name=title, layer=name, kind=kind, description="",
                          url=f"{base}/families/{symbol}.html", members=[unit], share=1 / len(units),
                          representative=unit, order_by="confidence", evidence=[], confidence=0.8)

        families = [family(c["symbol"], c["name"], "named", units[i]) for i, c in enumerate(criteria)]
        families += [family(f"X{k}", f"Unnamed X{k}", "discovered", units[NAMED + k - 1]) for k in range(1, 4)]
        layers.append(Layer(name=name, url=f"{base}/index.html", shape=[len(units), 8, 8], units=units,
                            families=families))
    return Model(name="m", slug="m", url="models/m/index.html", arch="a", weights="w", digest="d", input_size=64,
                 layers=layers, criteria=criteria)


@pytest.fixture(scope="module")
def model_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wide")
    shutil.copytree(TEMPLATES / "static", out / "static")
    model = wide_model()
    page = out / model.url
    page.parent.mkdir(parents=True)
    page.write_text(_environment().get_template("model.html").render(
        page=model.url, site_title="wide", crumbs=[], uses_charts=False, model=model))
    return page


LAYOUT = """() => {
  const lines = el => {  // the distinct line boxes of its text
    const range = document.createRange();
    range.selectNodeContents(el);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  };
  const table = document.querySelector("table.periodic");
  const rows = [...table.querySelectorAll("tbody th[scope=row] code")];
  const heads = [...table.querySelectorAll("thead th")];
  const first = table.querySelector("tbody td .element").getBoundingClientRect();
  table.scrollLeft = table.scrollWidth;  // scrolled to the last column
  const last = heads[heads.length - 1].getBoundingClientRect();
  const sticky = table.querySelector("tbody th[scope=row]").getBoundingClientRect();
  return {
    page: document.documentElement.scrollWidth, viewport: innerWidth,
    rows: rows.map(el => [el.textContent, lines(el)]),
    heads: heads.map(el => [el.textContent.trim(), lines(el)]),
    first_left: first.left, last_right: last.right, sticky_left: sticky.left, sticky_right: sticky.right,
    columns: heads.length,
  };
}"""


@pytest.mark.parametrize("width", [1280, 375])
def test_the_periodic_table_reads_with_many_families_and_long_layer_names(browser_page, model_page, width):
    browser_page.set_viewport_size({"width": width, "height": 900})
    browser_page.goto(model_page.as_uri(), wait_until="load")
    found = browser_page.evaluate(LAYOUT)
    assert found["page"] <= found["viewport"], "the page itself scrolls sideways"
    assert found["columns"] == 1 + NAMED + 1  # the layer, each named family, the discovered ones
    for name, lines in found["rows"]:  # wraps only between a name's parts, never letter by letter
        assert name in LAYERS and lines <= len(name.replace("_", ".").strip(".").split(".")) + name.count("_"), name
    for text, lines in found["heads"]:  # a column header wraps by word
        assert lines <= len(text.split()), text
    assert found["first_left"] < found["viewport"] / 2, "the layer column leaves no room for the families"
    assert found["last_right"] <= found["viewport"], "the last column cannot be scrolled into view"
    assert found["sticky_left"] >= 0 and found["sticky_right"] <= found["viewport"] / 2, \
        "the layer names scroll out of view with the families"


@pytest.fixture(scope="module")
def browser_page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_page()
        browser.close()


SIZES = """selectors => {
  const size = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const found = {page: document.documentElement.scrollWidth, viewport: innerWidth};
  for (const [name, selector] of Object.entries(selectors)) {
    found[name] = [...document.querySelectorAll(selector)].map(size);
  }
  return found;
}"""


@pytest.mark.parametrize("width", [1280, 375])
def test_a_circuit_diagram_draws_its_weights_large_enough_to_read(browser_page, built_site, width):
    """Every weight map is at least 96 px a side (a 3x3 kernel's taps 32 px each), the
    unit itself larger; on a phone the diagram scrolls in place, not the page."""
    browser_page.set_viewport_size({"width": width, "height": 900})
    page = next(built_site.glob("models/color*/conv2/0-15/circuits/0.html"))
    browser_page.goto(page.as_uri(), wait_until="load")
    found = browser_page.evaluate(SIZES, {"maps": "svg.circuit-diagram image.pixelated",
                                          "centre": "svg.circuit-diagram .centre > :is(image, rect)",
                                          "rows": ".edges img.weight-map"})
    assert found["page"] <= found["viewport"], "the page itself scrolls sideways"
    assert found["maps"] and found["rows"] and len(found["centre"]) == 1
    if width == 1280:
        assert all(w >= 96 and h >= 96 for w, h in found["maps"] + found["rows"]), found
        assert all(w >= 160 for w, _ in found["centre"]), found["centre"]
    centre = browser_page.locator("svg.circuit-diagram .centre > :is(image, rect)").bounding_box()
    assert 0 <= centre["x"] + centre["width"] / 2 <= width, "the unit starts out of view"


def test_hovering_an_edge_picks_it_out(browser_page, built_site):
    browser_page.set_viewport_size({"width": 1280, "height": 900})
    page = next(built_site.glob("models/color*/conv2/0-15/circuits/0.html"))
    browser_page.goto(page.as_uri(), wait_until="load")
    edges = browser_page.locator("svg.circuit-diagram a.edge")
    assert edges.count() >= 2
    opacity = "els => els.map(el => Number(getComputedStyle(el).opacity))"
    assert min(edges.evaluate_all(opacity)) == 1
    edges.nth(0).locator("rect.frame").hover()
    browser_page.wait_for_timeout(250)  # the fade's transition
    faded = edges.evaluate_all(opacity)
    assert faded[0] == 1 and max(faded[1:]) < 0.5, faded
    edges.nth(1).focus()  # the keyboard picks one out the same way
    browser_page.mouse.move(0, 0)
    browser_page.wait_for_timeout(250)
    focused = edges.evaluate_all(opacity)
    assert focused[1] == 1 and focused[0] < 0.5, focused


@pytest.fixture(scope="module")
def family_page(tmp_path_factory) -> Path:
    """A curve family built from a line family of 8 members each: an 8 x 8 grid of 5 x 5 weights."""
    out = tmp_path_factory.mktemp("family")
    shutil.copytree(TEMPLATES / "static", out / "static")
    model = wide_model()
    before, after = model.layers[1], model.layers[2]
    lines, curves = before.families[0], after.families[1]
    lines.members, curves.members = before.units[:8], after.units[:8]
    for unit in curves.members:
        unit.family, unit.family_confidence = curves, 0.8
    maps = np.random.default_rng(0).normal(size=(8, 8, 5, 5)).astype(np.float32)
    curves.circuits_from.append({"source": lines.symbol, "source_name": lines.name, "strength": 0.4,
                                 "equivariance": 0.8, "rows": curves.members, "columns": lines.members,
                                 "maps": maps, "source_url": lines.url})
    page = out / curves.url
    page.parent.mkdir(parents=True)
    page.write_text(_environment().get_template("family.html").render(
        page=curves.url, site_title="family", crumbs=[], uses_charts=False, model=model, layer=after, family=curves,
        joint_chart=None, scatter_chart=None, tuning_chart=None))
    return page


@pytest.mark.parametrize("width", [1280, 375])
def test_a_family_to_family_grid_draws_readable_weights(browser_page, family_page, width):
    browser_page.set_viewport_size({"width": width, "height": 900})
    browser_page.goto(family_page.as_uri(), wait_until="load")
    found = browser_page.evaluate(SIZES, {"maps": "table.weight-grid img.weight-map"})
    assert len(found["maps"]) == 64 and all(w >= 96 and h >= 96 for w, h in found["maps"]), found["maps"][:3]
    assert found["page"] <= found["viewport"], "the page itself scrolls sideways"


def test_the_activation_atlas_map_is_readable_and_zooms(browser_page, built_site):
    browser_page.set_viewport_size({"width": 1280, "height": 900})
    browser_page.goto(next(built_site.glob("models/color*/conv1/atlas.html")).as_uri(), wait_until="load")
    found = browser_page.evaluate(SIZES, {"cells": ".atlas-map .atlas-cell"})
    assert found["cells"] and all(w >= 64 and h >= 64 for w, h in found["cells"]), found
    browser_page.locator("[data-atlas-zoom]").fill("128")  # zoomed in
    found = browser_page.evaluate(SIZES, {"cells": ".atlas-map .atlas-cell"})
    assert all(w >= 127 for w, _ in found["cells"]), found
    assert found["page"] <= found["viewport"]


def test_what_figures_js_draws_is_what_the_store_holds(browser_page, built_site):
    """The circuit page's weight maps, drawn in the browser from the page's data, are the
    pixels ``weightmaps.weight_png`` draws from the same weights; a unit page's crops,
    windows onto its sprite, each show their own tile."""
    import base64
    import io
    import json
    import re

    from PIL import Image

    from atlas.render.weightmaps import weight_png

    page = next(built_site.glob("models/color*/conv2/0-15/circuits/1.html"))
    browser_page.goto(page.as_uri(), wait_until="load")
    data = json.loads(re.search(r'id="figures">(.*?)</script>', page.read_text(), re.S).group(1))
    drawn = browser_page.locator("[data-row=inputs] img.weight-map").evaluate_all("els => els.map(el => el.src)")
    edges = [data["edges"][i] for i in data["rows"]["inputs"]]
    scale = max(e[4][0] for e in edges)
    assert len(drawn) == len(edges) == 4

    def pixels(uri: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))).convert("RGB"))

    for uri, edge in zip(drawn, edges):
        largest, width, taps = edge[4]
        weights = np.reshape(np.asarray(taps) / 1000 * largest, (-1, width))
        assert np.array_equal(pixels(uri), pixels(weight_png(weights, scale)))

    unit = next(built_site.glob("models/color*/conv1/0-15/0.html"))
    browser_page.set_viewport_size({"width": 1280, "height": 4000})
    browser_page.goto(unit.as_uri(), wait_until="networkidle")
    windows = browser_page.locator("[data-figure=examples] .window")
    assert windows.count() == 3
    sprite = np.asarray(Image.open(unit.parent / "img" / "crops-0.webp").convert("RGB")).astype(int)
    for i in range(3):
        shot = np.asarray(Image.open(io.BytesIO(windows.nth(i).screenshot())).convert("RGB").resize((64, 64))).astype(int)
        distances = [np.abs(shot - sprite[t * 64:(t + 1) * 64]).mean() for t in range(sprite.shape[0] // 64)]
        assert int(np.argmin(distances)) == i and distances[i] < 12, distances  # the window shows its own tile


def test_a_layer_of_a_thousand_units_loads_under_a_megabyte_before_scrolling(browser_page, tmp_path):
    """1,024 units, each thumbnail noise (the costliest image to encode, ~4 KB): the page,
    its scripts and the thumbnails it shows before any scrolling weigh under 1 MB (the
    chart bundle waits for its chart, below the grid); scrolled down, the rest arrive."""
    from urllib.parse import unquote, urlsplit

    from PIL import Image

    from atlas.render import IMAGE_NAMES, charts
    from atlas.render.figures import layer_figures

    shutil.copytree(TEMPLATES / "static", tmp_path / "static")
    base = "models/m/wide"
    rng = np.random.default_rng(0)
    units = []
    for i in range(1024):
        folder = f"{base}/{i // 16 * 16}-{i // 16 * 16 + 15}"
        thumb = tmp_path / folder / "img" / f"fv-{i}-thumb.webp"
        thumb.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(thumb, "WEBP", quality=90)
        units.append(Unit(index=i, url=f"{folder}/{i}.html", featurevis_thumb=f"{folder}/img/fv-{i}-thumb.webp",
                          featurevis_activation=float(rng.random())))
    layer = Layer(name="wide", url=f"{base}/index.html", shape=[1024, 7, 7], units=units)
    model = Model(name="m", slug="m", url="models/m/index.html", arch="a", weights="w", digest="d", input_size=64,
                  layers=[layer])
    chart = charts.layer_activations(layer)
    (tmp_path / "static" / "charts.js").write_text(charts.script([chart]))
    (tmp_path / IMAGE_NAMES).parent.mkdir(exist_ok=True)
    (tmp_path / IMAGE_NAMES).write_text("window.ATLAS_IMAGES = {};\n")
    page = tmp_path / layer.url
    page.write_text(_environment().get_template("layer.html").render(
        page=layer.url, site_title="wide", crumbs=[], uses_charts=True, model=model, layer=layer, chart=chart,
        comparison_chart=None, drawn=lambda: layer_figures(layer, layer.url)))

    loaded: list[str] = []
    browser = browser_page.context.browser.new_page()  # its own, to watch its requests
    browser.on("request", lambda request: loaded.append(request.url))
    browser.set_viewport_size({"width": 1280, "height": 900})
    browser.goto(page.as_uri(), wait_until="load")
    browser.wait_for_timeout(1000)

    def weight() -> int:
        return sum((tmp_path / unquote(urlsplit(url).path)[len(str(tmp_path)) + 1:]).stat().st_size
                   for url in set(loaded) if url.startswith("file://"))

    first = weight()
    shown = len([u for u in set(loaded) if u.endswith("-thumb.webp")])
    assert browser.locator("#unit-grid .tile").count() == 1024
    assert not any("vega-bundle" in u for u in loaded)
    assert 50 <= shown < 400 and first <= 1_000_000, (shown, first)
    browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    browser.locator(".vega-chart svg").wait_for(timeout=15000)  # the chart, and its bundle, once near
    browser.wait_for_timeout(500)
    assert len([u for u in set(loaded) if u.endswith("-thumb.webp")]) > shown
    browser.close()
