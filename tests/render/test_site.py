import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from atlas.config import load_config
from atlas.data.bank import stimulus_bank
from atlas.errors import AtlasError
from atlas.render import render_site
from atlas.render.catalog import read_catalog
from atlas.render.urls import relative_url
from tests.conftest import REPO
from tests.tiny_models import TWIN_ORDER


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def figures_of(html: str) -> dict:
    """A page's figures as static/figures.js reads them (atlas/render/figures.py)."""
    return json.loads(re.search(r'<script type="application/json" id="figures">(.*?)</script>', html, re.S).group(1))


def charts_of(site: Path, html: str) -> list[dict]:
    """A page's charts as whole Vega-Lite specs, put together as static/atlas.js does:
    the template from static/charts.js, the page's merge patch, its columns as rows."""
    templates = json.loads((site / "static" / "charts.js").read_text().partition("=")[2].strip().rstrip(";"))

    def merged(target, patch):
        if not isinstance(patch, dict):
            return patch
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merged(out.get(key), value)
        return out

    specs = []
    for text in re.findall(r'<script type="application/json" class="vega-spec">(.*?)</script>', html, re.S):
        found = json.loads(text)
        if "s" in found:
            specs.append(found["s"])
            continue
        spec = merged(templates[found["t"]], found["p"])
        columns = found.get("c")
        rows = found["v"] if "v" in found else [dict(zip(columns, values)) for values in zip(*columns.values())]
        specs.append({**spec, "data": {"values": rows}})
    return specs


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_page_type_exists_at_its_permalink(built_site):
    model = "color-script-alert-1-script-net"
    for path in ["index.html", f"models/{model}/index.html", f"models/{model}/conv1/index.html",
                 f"models/{model}/conv1/0-15/0.html", f"models/{model}/conv2/0-15/1.html", "catalog.json"]:
        assert (built_site / path).is_file(), path
    families = sorted(built_site.glob(f"models/{model}/*/families/*.html"))
    assert families and (built_site / f"models/{model}/families.html").is_file()
    circuits = sorted(built_site.glob(f"models/{model}/*/*/circuits/*.html"))
    assert len(circuits) == 6  # every unit: conv2's read conv1, conv1's are read by conv2
    assert (built_site / "universality.html").is_file() and (built_site / "superposition.html").is_file()
    assert (built_site / f"models/{model}/polysemanticity.html").is_file()
    # model, families, 2 layers and their activation atlases, 6 units, families, circuits, polysemanticity;
    # the twin model has as many
    assert len(sorted(built_site.glob(f"models/{model}/*/atlas.html"))) == 2
    per_model = 1 + 1 + 2 * 2 + 6 + len(families) + len(circuits) + 1
    dictionary = 1 + 8  # ColorNet's conv1 dictionary: its page and one per feature (2 x 4 units)
    assert len(_pages(built_site)) == 1 + 1 + 1 + 2 * per_model + dictionary
    unit = next(built_site.glob("models/*/conv1/0-15/1.html")).read_text()
    assert unit.count('class="variant"') == 6  # neuron, negative, 4 diversity images
    figures = figures_of(unit)
    assert 'data-figure="quantiles"' in unit and len(figures["quantiles"]) == 10  # one row per tenth of the range
    assert "Synthetic stimuli" in unit and len(figures["stimuli"]) == 9  # one per stimulus kind
    assert "Joint tuning" in unit and unit.count('class="vega-spec"') == 3  # histogram, orientation, joint
    layer = next(built_site.glob("models/*/conv1/index.html")).read_text()
    figures = figures_of(layer)
    grid = figures["grid"]  # [index, href, picture, what, failed, dead, top example's crop]
    assert 'data-grid-show="examples"' in layer and [t[0] for t in grid] == [0, 1, 2, 3]
    sheets = [figures["sprites"][t[6][0]] for t in grid]  # a crop: [sheet, tile], a sheet: [src, tiles]
    assert [src for src, _ in sheets] == [f"0-15/img/crops-{t[0]}.webp" for t in grid]
    assert all(t[6][1] == 0 for t in grid) and all(tiles >= 1 for _, tiles in sheets)
    shown = [t for t in grid if t[3] == "fv"]  # a thumbnail beside the unit's page is named by 1
    layer_folder = next(built_site.glob("models/*/conv1/index.html")).parent
    assert shown and all(t[2] == 1 for t in shown)
    assert all((layer_folder / t[1]).parent.joinpath(figures["thumb"].format(t[0])).is_file() for t in shown)


def test_every_relative_link_resolves_and_none_is_absolute_or_external(built_site):
    checked = 0
    for page in _pages(built_site):
        for link in _parse(page).links:
            if link.startswith("data:image/"):
                continue  # an inline image (weight maps): part of the page, not a request
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, f"{page}: external link {link}"
            assert not link.startswith("/"), f"{page}: root-absolute link {link}"
            if not parts.path:  # a place on the same page (an atlas cell's row)
                assert f'id="{parts.fragment}"' in page.read_text(), f"{page}: no #{parts.fragment}"
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page}: broken link {link}"
            assert built_site.resolve() in target.parents, f"{page}: link leaves the site {link}"
            checked += 1
    assert checked > 100
    # (An SVG's xmlns and a chart's $schema are names, not requests: only stylesheets and scripts are read.)
    css_and_js = "".join(p.read_text() for pattern in ("*.css", "*.js") for p in (built_site / "static").glob(pattern))
    css_and_js = re.sub(r'"\$schema":"https://vega\.github\.io/[^"]*"|"http://www\.w3\.org/2000/svg"', "", css_and_js)
    assert not re.search(r"https?://|url\(\s*['\"]?/", css_and_js)


def test_names_with_html_are_shown_as_text(built_site):
    index = built_site / "index.html"
    html = index.read_text()
    assert "<script>alert(1)</script>" not in html and "<b>atlas</b>" not in html
    assert "color &lt;script&gt;alert(1)&lt;/script&gt; net" in html
    assert "color <script>alert(1)</script> net" in "".join(_parse(index).text)
    unit = next(built_site.glob("models/*/conv1/0-15/2.html")).read_text()
    assert "<b>grey</b>" not in unit  # a dataset file name is untrusted too
    for page in _pages(built_site):
        assert "<script>alert" not in page.read_text()


def test_catalog_lists_models_layers_and_units_with_their_content(built_site):
    index = json.loads((built_site / "catalog.json").read_text())  # each layer's units in a file of its own
    layer = index["models"][0]["layers"][0]
    assert "units" not in layer and layer["units_url"] == layer["url"].replace("index.html", "units.json")
    packed = json.loads((built_site / layer["units_url"]).read_text())  # rows of fields, paths from the layer
    assert len(packed["units"]) == layer["unit_count"] == 4 and packed["fields"][:2] == ["index", "url"]
    assert packed["units"][1][:2] == [1, "0-15/1.html"]
    catalog = read_catalog(built_site)
    model, twin = catalog["models"]
    assert twin["name"] == "twin"
    assert model["name"] == "color <script>alert(1)</script> net"
    assert model["arch"] == "tests.tiny_models:make_color_net"
    conv1, conv2 = model["layers"]
    assert (conv1["name"], [u["index"] for u in conv1["units"]]) == ("conv1", [0, 1, 2, 3])
    unit = conv1["units"][0]
    for field in ("url", "featurevis", "weights"):
        assert (built_site / unit[field]).is_file()
    assert isinstance(unit["featurevis_activation"], float)
    variants = unit["featurevis_variants"]
    assert sorted(variants) == ["diversity-0", "diversity-1", "diversity-2", "diversity-3", "negative", "neuron"]
    assert all((built_site / v["src"]).is_file() for v in variants.values())
    # Each a tile of the unit's sprite, "path#tile": its crops stacked in one image, each crop once.
    assert unit["examples"] == [f"{unit['url'].rpartition('/')[0]}/img/crops-0.webp#{i}" for i in range(3)]
    with Image.open(built_site / unit["examples"][0].partition("#")[0]) as sprite:
        assert sprite.size[0] == 64 and sprite.size[1] % 64 == 0 and sprite.size[1] >= 3 * 64
    assert unit["example_values"][0] == pytest.approx(1.0)  # the red image, for R - G
    assert len(unit["activation_quantiles"]) == 11 and unit["fraction_active"] == pytest.approx(0.4)
    assert conv2["units"][0]["weights"] is None  # not an RGB layer
    # conv2's unit 0 reads ReLU outputs with only negative weights: it can never fire.
    # Its optimisation cannot raise it, and the catalog says so instead of showing it as a feature.
    never = conv2["units"][0]
    assert never["dead"] and never["examples"] == []
    assert never["featurevis_failed"] and never["featurevis_activation"] == never["featurevis_start"] == 0
    assert not unit["dead"] and "ReLU" in unit["featurevis_objective"]
    # Six steps (the tiny config) do not beat uniform noise on R - G: flagged, not shown as a feature.
    assert unit["featurevis_failed"] == (unit["featurevis_activation"] <= unit["featurevis_random"])
    page = (built_site / never["url"]).read_text()
    assert "Feature visualization failed." in page and "Dead unit" in page
    tuning = {u["index"]: u["tuning"] for u in conv1["units"]}
    assert tuning[0]["color_opponency"] > 0.5  # unit 0 = R - G: color edges, not luminance edges
    # Unit 3 = mean(R, G, B): luminance. A 1 px field sees an edge through its centre as the
    # two sides' mean, so its spots, not edges, say so.
    preferred = {u["index"]: u["preferred"] for u in conv1["units"]}
    assert preferred[3]["blob"]["color"] == "white"


def test_families_reach_the_catalog_the_periodic_table_and_their_pages(built_site):
    catalog = read_catalog(built_site)
    conv1 = catalog["models"][0]["layers"][0]
    units = {u["index"]: u for u in conv1["units"]}
    # R - G and G - R answer color edges only: color contrast; B and the mean do not.
    assert [units[i]["family_symbol"] for i in range(4)] == ["Cc", "Cc", "Ot", "Ot"]
    assert units[0]["family"] == "Color contrast" and units[0]["family_confidence"] >= 0.9
    assert units[0]["preferred"]["color_edge"]["near"] in ("red", "magenta", "yellow")
    assert sum(f["count"] for f in conv1["families"]) == len(conv1["units"])
    model_page = next(built_site.glob("models/*/index.html"))
    table = re.search(r'<table class="periodic">(.*?)</table>', model_page.read_text(), re.S).group(1)
    links = re.findall(r'class="element[^"]*" href="([^"]+)"', table)
    assert len(links) == 3  # conv1: Cc and Ot; conv2: Ot
    assert all((model_page.parent / link).resolve().is_file() for link in links)
    family = (built_site / conv1["families"][0]["url"]).read_text()
    assert family.count('class="verdict-') == 7 and "handwritten circuit" in family
    members = figures_of(family)["members"]  # [tile..., top example's crop, [orientation, confidence, runner-up]]
    assert [m[0] for m in members] == [0, 1] and [m[1] for m in members] == ["../0-15/0.html", "../0-15/1.html"]
    assert [m[7][1] for m in members] == [round(units[i]["family_confidence"], 2) for i in (0, 1)]
    # The color-opponent matched filter is correlated with R - G and G - R on stimuli and on their examples.
    assert re.search(r"\(stimuli -?[\d.]+, data -?[\d.]+\)", family)
    # Each argument has its figure: here the unit against its detector, one point per stimulus.
    assert family.count('class="figure-cell"') == 7 and "against its handwritten detector" in family
    scatter = charts_of(built_site, family)[-1]
    assert len(scatter["data"]["values"]) == len(stimulus_bank(16, 8.0).params)  # the whole stimulus bank
    criteria = (model_page.parent / "families.html").read_text()
    assert all(f'id="{symbol}"' in criteria for symbol in ("Ga", "Cc", "Cs", "Bw", "Ln", "Cv", "Hl", "Tx", "Ot"))
    unit_page = (built_site / units[0]["url"]).read_text()
    assert 'class="symbol-badge">Cc</span>' in unit_page


def test_every_label_says_what_the_null_gives(built_site):
    catalog = read_catalog(built_site)
    conv1 = catalog["models"][0]["layers"][0]
    units = {u["index"]: u for u in conv1["units"]}
    # ColorNet's factory hand-sets its weights: its null is each layer drawn again by its default init.
    assert conv1["null"]["kind"] == "untrained twin" and "every layer" in conv1["null"]["why"]
    assert conv1["null"]["units"] >= 32 and conv1["null"]["networks"] >= 2
    test = units[0]["family_test"]
    assert test["family"] == "Cc" and test["passed"] and test["p"] <= test["q"] <= 0.05
    assert test["null"]["meets"] <= conv1["null"]["units"]
    # The mean and blue units meet no family's criteria: no claim, nothing tested.
    assert units[3]["family_test"]["criteria"] is None and not units[3]["family_test"]["passed"]
    family = next(f for f in conv1["families"] if f["symbol"] == "Cc")
    assert family["null"]["units"] == conv1["null"]["units"] and family["null"]["passed"] <= family["null"]["meets"]
    model_page = next(built_site.glob("models/*/index.html")).read_text()
    assert re.search(r'class="null-line">null \d+/\d+</span>', model_page)
    assert "Beyond chance:" in (built_site / units[0]["url"]).read_text()
    assert "Against chance." in (built_site / family["url"]).read_text()


def test_circuits_give_each_unit_its_inputs_and_uses_with_their_weights(built_site):
    catalog = read_catalog(built_site)
    conv1, conv2 = catalog["models"][0]["layers"]
    # conv2's kernel is linspace(-1, 1) over (2, 4, 3, 3): unit 1's strongest weight is +1 from
    # conv1 unit 3, unit 0's is -1 from conv1 unit 0 (it has no positive weight at all).
    assert conv2["units"][1]["inputs"][0] == {"layer": "conv1", "index": 3, "weight": 1.0}
    assert conv2["units"][0]["inputs"][0] == {"layer": "conv1", "index": 0, "weight": -1.0}
    assert all(e["weight"] < 0 for e in conv2["units"][0]["inputs"])
    assert conv1["units"][3]["outputs"][0] == {"layer": "conv2", "index": 1, "weight": 1.0}
    assert conv1["units"][0]["inputs"] == [] and conv2["units"][0]["outputs"] == []  # no swept layer beyond
    assert conv2["units"][1]["circuit"] == {"source": "conv1", "linearised": ["relu"], "no_answer": None,
                                            "inputs": [3, 2, 1, 0], "inhibitory": []}  # all positive
    assert conv1["units"][0]["circuit"] is None  # no swept layer before it
    page = (built_site / conv2["units"][1]["url"].replace("/1.html", "/circuits/1.html")).read_text()
    assert "On the path from <code>conv1</code>: ReLU taken as the identity." in page
    assert "An edit that tests the reading" in page
    figures = figures_of(page)
    edges = [figures["edges"][i] for i in figures["rows"]["inputs"]]  # [layer, tile, family, weight, map]
    assert [(figures["layers"][e[0]][0], e[1][0]) for e in edges] == [("conv1", 3), ("conv1", 2), ("conv1", 1), ("conv1", 0)]
    maps = [np.reshape(np.asarray(m[2]) / 1000 * m[0], (-1, m[1])) for m in (e[4] for e in edges)]
    assert [m.shape for m in maps] == [(3, 3)] * 4  # four 3x3 maps: the kernel itself, conv1 being 1x1
    assert max(np.abs(m).max() for m in maps) == pytest.approx(1.0)  # linspace(-1, 1)'s end, drawn at full red


def test_universality_links_each_unit_to_its_counterpart_in_the_twin(built_site):
    catalog = read_catalog(built_site)
    model, twin = catalog["models"]
    conv1 = {u["index"]: u["matches"] for u in model["layers"][0]["units"]}
    for index in (0, 1):  # R - G and G - R: the twin's conv1 unit j is the model's unit TWIN_ORDER[j]
        (match,) = conv1[index]
        assert (match["model"], match["layer"], match["index"]) == ("twin", "conv1", TWIN_ORDER.index(index))
        assert match["score"] == pytest.approx(1.0, abs=1e-3)
    # The mean of R, G and B: a random 1x1 convolution has a unit like it, so its twin is no evidence.
    assert conv1[3] == []
    for unit in twin["layers"][1]["units"]:  # conv2 computes the same in both
        assert [(m["layer"], m["index"]) for m in unit["matches"]] == [("conv2", unit["index"])]
    page = next(built_site.glob("models/color*/conv1/0-15/0.html"))
    html = page.read_text()
    assert "Also found in" in html and "best buddies" in html
    assert f'href="../../../twin/conv1/0-15/{TWIN_ORDER.index(0)}.html"' in html
    universality = (built_site / "universality.html").read_text()
    assert universality.count('class="vega-spec"') == 1  # one pair of models, one CKA chart
    matched = {(layer["name"], u["index"], m["index"]) for layer in model["layers"] for u in layer["units"] for m in u["matches"]}
    assert universality.count('class="match"') == 2 * len(matched)  # one set of two units per match
    assert "vega-bundle" in universality and 'href="universality.html"' in (built_site / "index.html").read_text()


def test_charts_are_inline_data_on_templates_the_site_holds_once(built_site):
    from atlas.render import charts
    from atlas.render.model import Layer, Unit

    layer = next(built_site.glob("models/*/conv1/index.html")).read_text()
    spec = charts_of(built_site, layer)[0]
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6") and spec["data"]["values"]
    assert '"$schema"' not in layer  # the template is in static/charts.js, not in the page
    # A chart made from a template, embedded and put back together, is the chart.
    units = [Unit(index=i, url=f"{i}.html", featurevis_activation=float(i) / 3, featurevis_failed=i == 2)
             for i in range(4)]
    made = charts.layer_activations(Layer(name="l", url="l/index.html", shape=[4, 2, 2], units=units))
    site = built_site.parent / "charts-site"
    (site / "static").mkdir(parents=True, exist_ok=True)
    (site / "static" / "charts.js").write_text(charts.script([made]))
    page = f'<script type="application/json" class="vega-spec">{json.dumps(charts.embedded(made))}</script>'
    assert charts_of(site, page) == [{k: v for k, v in made.items() if k != "usermeta"}]
    assert "static/vendor/vega-bundle.min.js" in layer
    assert (built_site / "static" / "vendor" / "vega-bundle.min.js").stat().st_size > 500_000


def test_render_never_imports_torch(built_site, tmp_path):
    code = ("import sys; from atlas.render import render_site; from atlas.config import load_config; "
            f"render_site(load_config({str(built_site.parent / 'atlas.toml')!r}), out={str(tmp_path / 's')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lucent', 'torchvision')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "s" / "index.html").is_file()


def test_render_refuses_to_replace_a_folder_it_did_not_make(built_site, tmp_path):
    config = load_config(built_site.parent / "atlas.toml")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(AtlasError, match=r"site.out: .*mine exists and was not made by Atlas"):
        render_site(config, out=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    first = render_site(config, out=tmp_path / "site").out
    (first / "stale.html").write_text("old")
    render_site(config, out=first)  # re-rendering replaces the whole site
    assert not (first / "stale.html").exists() and (first / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_polysemanticity_dictionary_and_superposition_reach_the_site(built_site):
    catalog = read_catalog(built_site)
    model = catalog["models"][0]
    units = [unit for layer in model["layers"] for unit in layer["units"]]
    assert len(units) == 6 and all(0 <= unit["polysemanticity"] <= 1 for unit in units)
    # Every image's strongest place is clustered: 5 readable images, so 5 examples (fewer than 48),
    # in one or two clusters, each listing what lies under its examples as shares that add up to 1.
    sizes = [[c["size"] for c in unit["polysemanticity_clusters"]] for unit in units]
    assert [sum(s) for s in sizes] == [5] * 6 and {len(s) for s in sizes} <= {1, 2}
    shares = [sum(share for _, share in c["things"]) for u in units for c in u["polysemanticity_clusters"]]
    assert shares == pytest.approx([1.0] * len(shares), abs=0.01)
    # The tiny atlas makes 4 diversity images per unit: how much they disagree is evidence too.
    assert all(0 <= unit["polysemanticity_evidence"]["diversity"] <= 2 for unit in units)
    (dictionary,) = model["dictionaries"]
    assert dictionary["of"] == "conv1" and len(dictionary["units"]) == 8 and dictionary["shape"][0] == 8
    assert all(u["featurevis"] and u["examples"] and u["polysemanticity"] is not None for u in dictionary["units"])
    assert catalog["models"][1]["dictionaries"] == []
    feature = (built_site / dictionary["units"][0]["url"]).read_text()
    assert "<h1>Feature 0" in feature and "sparse dictionary learned over" in feature
    layer = (built_site / dictionary["url"]).read_text()
    assert "features active per position" in layer and layer.count('class="vega-spec"') == 2  # activations, comparison
    unit = (built_site / model["layers"][0]["units"][0]["url"]).read_text()
    assert "One meaning or several?" in unit and 'class="meaning"' in unit
    overview = (built_site / model["url"].replace("index.html", "polysemanticity.html")).read_text()
    assert "The most mixed units of" in overview and overview.count('class="vega-spec"') == 1
    toy = (built_site / "superposition.html").read_text()
    assert toy.count('class="vega-spec"') == 3 and toy.count("<tr><td>") == 10  # one row per sparsity


def test_rendering_in_parallel_writes_the_same_site(built_site, tmp_path):
    config = load_config(built_site.parent / "atlas.toml")
    serial = render_site(config, out=tmp_path / "one", workers=1).out
    parallel = render_site(config, out=tmp_path / "three", workers=3).out

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    one, three = files(serial), files(parallel)
    assert len(one) > 50 and one == three
    # Images are hard links into the store where they share a file system, not copies;
    # feature visualizations and stimuli are encoded again for the site (``images.recode``).
    store = built_site.parent / "cache"
    image = next(serial.glob("data/*/img-*.webp"))
    assert image.stat().st_nlink > 1 and store.stat().st_dev == image.stat().st_dev
    assert next(serial.glob("models/*/conv1/0-15/img/fv-0.webp")).stat().st_nlink == 1


def test_render_without_a_sweep_says_what_to_do(tmp_path):
    (tmp_path / "atlas.toml").write_text('[[models]]\nname = "m"\narch = "torchvision:resnet18"\nlayers = ["layer1"]\n')
    with pytest.raises(AtlasError, match=r"atlas.toml: no sweep of this config .* run `atlas sweep`"):
        render_site(load_config(tmp_path / "atlas.toml"))


def test_a_new_page_type_is_a_template_and_a_function(built_site, tmp_path, monkeypatch):
    from atlas import render

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "notes.html").write_text(
        '{% extends "base.html" %}{% block main %}<h1>Notes on unit {{ unit.index }}</h1>'
        '<a href="{{ unit.url | url }}">back</a>{% endblock %}')

    def notes(add, at):
        folder, _, name = at.unit.url.rpartition("/")
        add("notes.html", f"{folder}/notes/{name}", at.crumbs + [("notes", f"{folder}/notes/{name}")], unit=at.unit)

    monkeypatch.setattr(render, "TEMPLATE_FOLDERS", [*render.TEMPLATE_FOLDERS, templates])
    monkeypatch.setitem(render.PAGE_TYPES, "unit", [*render.PAGE_TYPES["unit"], notes])
    out = render_site(load_config(built_site.parent / "atlas.toml"), out=tmp_path / "site", workers=2).out
    pages = sorted(out.glob("models/*/conv1/0-15/notes/*.html"))
    assert pages and len(pages) == len(list(out.glob("models/*/conv1/0-15/[0-9]*.html")))
    page = pages[0].read_text()
    assert f"Notes on unit {pages[0].stem}</h1>" in page and f'href="../{pages[0].stem}.html"' in page
    assert 'aria-current="page">notes</span>' in page  # its breadcrumbs end with it


def test_a_share_too_small_to_round_to_a_percent_is_not_shown_as_none():
    from atlas.render import percent

    assert [percent(s) for s in (0.0, 1 / 320, 0.005, 0.21, 1.0)] == ["0%", "<1%", "<1%", "21%", "100%"]


def test_a_layer_of_any_width_keeps_its_folders_small():
    from collections import Counter

    from atlas.render.urls import UNITS_PER_FOLDER, dataset_image, unit_folder

    assert unit_folder("models/m/l", 15) == "models/m/l/0-15" and unit_folder("models/m/l", 16) == "models/m/l/16-31"
    assert dataset_image(512) == "data/500-999/img-512.webp"
    folders = Counter(unit_folder("models/m/l", unit) for unit in range(15_000))
    assert max(folders.values()) == UNITS_PER_FOLDER and len(folders) < 1000  # the layer's folder holds < 1,000
    assert max(Counter(dataset_image(i).rpartition("/")[0] for i in range(20_000)).values()) == 500


@pytest.mark.parametrize("target, page, expected", [
    ("index.html", "index.html", "index.html"),
    ("index.html", "models/m/conv1/3.html", "../../../index.html"),
    ("models/m/conv1/4.html", "models/m/conv1/3.html", "4.html"),
    ("models/m/conv1/img/fv-3.webp", "models/m/index.html", "conv1/img/fv-3.webp"),
    ("models/m/index.html#layers", "index.html", "models/m/index.html#layers"),
])
def test_relative_url(target, page, expected):
    assert relative_url(target, page) == expected


def test_relative_url_rejects_absolute_targets():
    for target in ("/index.html", "https://example.org/x.js", "//cdn/x.js"):
        with pytest.raises(ValueError):
            relative_url(target, "index.html")


def test_a_deleted_artifact_is_reported_and_rebuilt(tiny_project):
    import shutil

    from atlas.pipeline import sweep

    config = load_config(tiny_project / "atlas.toml", ["sweep.stages=['weights']"])
    sweep(config)
    (artifact,) = (tiny_project / "cache" / "objects" / "weights").iterdir()
    shutil.rmtree(artifact)
    with pytest.raises(AtlasError, match=r"the weights artifact .* is missing; run `atlas sweep`"):
        render_site(config)
    sweep(config)
    assert render_site(config).pages == 10


def test_the_search_index_is_a_script_listing_every_page_worth_finding(built_site):
    text = (built_site / "search-index.js").read_text()
    assert text.startswith("window.ATLAS_INDEX = ") and text.rstrip().endswith(";")
    entries = json.loads(text[len("window.ATLAS_INDEX = "):].rstrip().rstrip(";"))
    catalog = read_catalog(built_site)
    units = [u for m in catalog["models"] for layer in m["layers"] for u in layer["units"]]
    assert sorted(url for kind, _, url in entries if kind == "unit") == sorted(u["url"] for u in units)
    assert {kind for kind, _, _ in entries} == {"model", "layer", "family", "unit", "page"}
    assert all((built_site / url).is_file() for _, _, url in entries)
    twin_unit = next(text for kind, text, url in entries if url.endswith("models/twin/conv1/0-15/0.html"))
    assert "also in color" in twin_unit  # a unit's matches are part of what finds it


def test_every_image_declares_its_size_so_pages_do_not_jump(built_site):
    for page in _pages(built_site):
        html = page.read_text()
        for tag in re.findall(r"<img\b[^>]*>", html):
            assert re.search(r'\bwidth="\d+"', tag) and re.search(r'\bheight="\d+"', tag), f"{page}: {tag}"


def test_a_first_layer_says_which_families_it_cannot_show(built_site):
    catalog = read_catalog(built_site)
    conv1 = catalog["models"][0]["layers"][0]
    assert {"Line", "Curve", "Texture / hatch", "High-low frequency"} <= set(conv1["impossible_families"])
    page = built_site / conv1["url"]
    assert "Families this layer cannot show" in page.read_text()


def test_a_layer_with_an_activation_atlas_links_to_its_page_and_lists_it(built_site):
    catalog = read_catalog(built_site)
    layer = catalog["models"][0]["layers"][0]
    found = layer["activation_atlas"]
    assert found and found["method"] == "tsne" and found["cells"]
    assert sum(c["count"] for c in found["cells"]) <= found["points"] <= 48
    page = (built_site / found["url"]).read_text()
    assert (built_site / layer["url"]).read_text().count('href="atlas.html"') == 1
    for cell in found["cells"]:
        assert (built_site / cell["src"]).is_file()
        assert f'id="cell-{cell["row"]}-{cell["column"]}"' in page
        for unit in cell["units"]:
            assert f'href="0-15/{unit}.html"' in page  # the units carrying it, linked to their pages
