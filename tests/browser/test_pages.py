"""The built tiny atlas in a real browser: Debian's Chromium driven by Playwright, from
file:// and from a local server under a sub-path (as GitHub Pages serves a project).

Needs the ``chromium`` package (``.ci/run`` installs it) and Playwright for Python
(the ``dev`` extra); never a downloaded browser.
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections import deque
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

BASE = "/atlas/"  # a project's path on GitHub Pages
PAGE_TYPES = {  # one page of each type, by a glob under the site
    "index": "index.html", "universality": "universality.html", "model": "models/color*/index.html",
    "criteria": "models/color*/families.html", "layer": "models/color*/conv1/index.html",
    "family": "models/color*/conv1/families/*.html", "unit": "models/color*/conv1/0-15/0.html",
    "circuit": "models/color*/conv2/0-15/circuits/0.html", "superposition": "superposition.html",
    "polysemanticity": "models/color*/polysemanticity.html", "dictionary": "models/color*/conv1-dictionary/index.html",
    "feature": "models/color*/conv1-dictionary/0-15/0.html", "activation atlas": "models/color*/conv1/atlas.html",
}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(built_site):
    """The site served at http://127.0.0.1:PORT/atlas/ by `atlas serve`'s handler."""
    from atlas.cli import _handler

    class Quiet(_handler(built_site, BASE)):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}{BASE}"
    httpd.shutdown()


def _roots(built_site: Path, server: str) -> dict[str, str]:
    return {"file": built_site.resolve().as_uri() + "/", "http": server}


def _page_paths(site: Path) -> dict[str, str]:
    paths = {}
    for kind, pattern in PAGE_TYPES.items():
        found = sorted(site.glob(pattern))
        assert found, f"no {kind} page ({pattern})"
        paths[kind] = found[0].relative_to(site).as_posix()
    return paths


class Visit:
    """A page opened with every console error, failed request and request outside the site recorded."""

    def __init__(self, browser, root: str, path: str):
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("request", lambda r: None if r.url.startswith(root) or r.url.startswith("data:")
                     else self.outside.append(r.url))
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.goto(root + path, wait_until="load")

    def close(self) -> None:
        self.page.close()


@pytest.mark.parametrize("where", ["file", "http"])
def test_every_page_type_loads_cleanly_and_draws_its_charts(browser, built_site, server, where):
    root = _roots(built_site, server)[where]
    for kind, path in _page_paths(built_site).items():
        visit = Visit(browser, root, path)
        charts = visit.page.locator("figure.chart")
        for i in range(charts.count()):  # every inline spec becomes an SVG drawn by the vendored bundle,
            charts.nth(i).scroll_into_view_if_needed()  # loaded as the first chart nears the screen
            charts.nth(i).locator(".vega-chart svg").wait_for(timeout=15000)
        if charts.count():
            assert "Chart failed" not in visit.page.content()
        assert visit.errors == [], f"{kind} ({where}): console errors {visit.errors}"
        assert visit.failed == [], f"{kind} ({where}): failed requests {visit.failed}"
        assert visit.outside == [], f"{kind} ({where}): requests outside the site {visit.outside}"
        visit.close()
    charts = Visit(browser, root, _page_paths(built_site)["unit"])
    assert charts.page.locator("script.vega-spec").count() >= 2  # the unit page does have charts
    charts.close()


def test_every_link_of_every_page_resolves_under_a_sub_path(browser, built_site, server):
    """Crawl the served site from its index: every link answers 200 and stays under the base."""
    request = browser.new_context().request
    seen, queue, checked = {server + "index.html"}, deque([server + "index.html"]), 0
    while queue:
        url = queue.popleft()
        response = request.get(url)
        assert response.status == 200, f"{url}: {response.status}"
        checked += 1
        if not url.endswith(".html"):
            continue
        for link in _links(response.text()):
            if link.startswith("data:image/"):
                continue  # inline weight maps
            target = urljoin(url, link).split("#")[0]
            assert target.startswith(server), f"{url}: link {link} leaves the site"
            if target not in seen:
                seen.add(target)
                queue.append(target)
    pages = {p.relative_to(built_site).as_posix() for p in built_site.rglob("*.html")}
    crawled = {urlsplit(u).path[len(BASE):] for u in seen if u.endswith(".html")}
    assert crawled == pages  # every page is reachable from the index
    assert checked > 100


def _links(html: str) -> list[str]:
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("href", "src") and v)

    Parser().feed(html)
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_accessibility_violations(browser, built_site, scheme):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    context = browser.new_context(color_scheme=scheme)
    root = _roots(built_site, "")["file"]
    for kind, path in _page_paths(built_site).items():
        page = context.new_page()
        page.goto(root + path, wait_until="load")
        violations = [f"{v['id']} ({v['impact']}, {len(v['nodes'])} nodes)" for v in axe.run(page).response["violations"]
                      if v["impact"] in ("serious", "critical")]
        assert violations == [], f"{kind} ({scheme}): {violations}"
        page.close()
    context.close()


def test_the_theme_follows_the_system_and_the_toggle_persists(browser, built_site, server):
    unit = _page_paths(built_site)["unit"]
    context = browser.new_context(color_scheme="dark")
    page = context.new_page()
    page.goto(server + unit)
    background = "getComputedStyle(document.documentElement).backgroundColor"
    assert page.evaluate(background) == "rgb(19, 20, 21)"  # the system is dark, so is the page (--bg)
    page.click("#theme-toggle")  # choose light
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.locator("figure.chart").first.scroll_into_view_if_needed()  # charts draw as they near the screen
    page.wait_for_function("document.querySelectorAll('.vega-chart svg').length > 0")
    page.goto(server + "index.html")  # another page remembers the choice
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate(background) == "rgb(255, 255, 255)"
    page.goto(server + unit)
    page.locator("figure.chart").first.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('.vega-chart svg').length > 0")
    page.click("#theme-toggle")  # and back to dark: the charts are redrawn in the theme's colors
    page.wait_for_function("document.querySelectorAll('.vega-chart svg').length > 0")
    muted = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--muted').trim()")
    label = page.locator(".vega-chart svg .role-axis-label text").first
    assert label.get_attribute("fill") == muted
    context.close()


def test_keyboard_shortcuts_move_between_units_and_open_the_help(browser, built_site, server):
    page = browser.new_page()
    page.goto(server + _page_paths(built_site)["unit"])  # conv1 unit 0
    page.keyboard.press("n")
    page.wait_for_url("**/conv1/0-15/1.html")
    page.keyboard.press("n")
    page.wait_for_url("**/conv1/0-15/2.html")
    page.keyboard.press("p")
    page.wait_for_url("**/conv1/0-15/1.html")
    page.keyboard.press("?")
    assert page.evaluate("document.getElementById('keys-dialog').open")
    page.keyboard.press("Escape")
    assert not page.evaluate("document.getElementById('keys-dialog').open")
    page.close()


@pytest.mark.parametrize("where", ["file", "http"])
def test_search_finds_a_unit_and_opens_it(browser, built_site, server, where):
    root = _roots(built_site, server)[where]
    page = browser.new_page()
    page.goto(root + _page_paths(built_site)["layer"])  # from a page two folders deep
    page.keyboard.press("/")  # focuses the search box
    page.keyboard.type("twin conv1 unit 2")
    results = page.locator("#search-results a")
    results.first.wait_for()
    # The unit itself first (then, e.g., the unit that has it among its matches: "also in twin conv1 2").
    assert results.first.inner_text().startswith("twin · conv1 · unit 2")
    page.keyboard.press("Enter")
    page.wait_for_url("**/models/twin/conv1/0-15/2.html")
    page.fill("#search", "also in twin conv2 1")  # matches are searchable: the unit whose twin is conv2 unit 1
    page.locator("#search-results a").first.wait_for()
    texts = page.locator("#search-results a").all_inner_texts()
    assert any("· conv2 · unit 1" in text and text.endswith("also in twin conv2 1") for text in texts)
    page.close()


def test_layer_pages_step_through_layers_with_the_same_keys(browser, built_site, server):
    page = browser.new_page()
    page.goto(server + _page_paths(built_site)["layer"])  # conv1
    page.keyboard.press("n")
    page.wait_for_url("**/conv2/index.html")
    page.keyboard.press("p")
    page.wait_for_url("**/conv1/index.html")
    page.close()


def test_pages_fit_a_phone_screen(browser, built_site):
    """At 375 px wide nothing makes the page scroll sideways (wide tables scroll in place)."""
    context = browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True)
    root = _roots(built_site, "")["file"]
    for kind, path in _page_paths(built_site).items():
        page = context.new_page()
        page.goto(root + path, wait_until="load")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{kind}: {width} px wide on a 375 px screen"
        page.close()
    context.close()


def test_search_over_fifteen_thousand_units_answers_as_you_type(browser, tmp_path):
    """The search benchmark's site (``benchmarks/search_speed.py``: its figures are in the
    README): every keystroke's results are drawn well within a frame budget's reach and
    the unit asked for comes first. The bound is a guard against a quadratic search (the
    benchmark measures a median of 2 ms and a slowest key of 12 ms on this CPU)."""
    from benchmarks.search_speed import synthetic_site, time_search

    page = browser.new_page()
    found = time_search(page, synthetic_site(tmp_path, 15_000), ["resnet layer5 unit 1499", "mixed4b cv 372"])
    page.close()
    assert found["first"]["resnet layer5 unit 1499"].startswith("resnet · layer5 · unit 1499")
    assert found["first"]["mixed4b cv 372"] == "inception · mixed4b · unit 372 · Cv Curve"  # a family is searchable
    assert len(found["keys_ms"]) == 23 + 14 and max(found["keys_ms"]) < 250, found["keys_ms"][-5:]
