"""Figures that must read at a glance on any network: the periodic table of a model
with many families and long layer names, at a laptop's width and a phone's."""

from __future__ import annotations

import shutil
from pathlib import Path

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
