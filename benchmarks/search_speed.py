"""Search as you type over a whole model's units, in Debian's Chromium.

A synthetic site: one page (the real template and scripts) and a search index of N
units (the real entries' shape: "model · layer · unit i · symbol family · also in ...",
over layers of 64 to 2,048 units, a third with a family, a tenth with a match), as
``atlas.render.catalog.search_index`` writes them. For each N, it types queries one key
at a time, as a reader does, and times each keystroke from the key to the results
list drawn (the search runs in the input handler), after the index has loaded.
Prints, per N: the index's size, its load, and the median and slowest keystroke.

Run:  python benchmarks/search_speed.py [--sizes 15000 50000 150000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERIES = ["resnet layer5 unit 1499", "curve", "mixed4b cv 37", "also in inception"]
FAMILIES = [("Cv", "Curve"), ("Cc", "Color contrast"), ("Hl", "High-low frequency"), ("Bw", "Black and white")]


def synthetic_index(units: int) -> list[list[str]]:
    """``units`` search entries over layers of growing width, in three models."""
    entries, widths, n = [], [64, 128, 256, 512, 1024, 2048], 0
    while n < units:
        for model in ("inception", "resnet", "efficientnet"):
            for layer, width in enumerate(widths):
                name = f"layer{layer}" if model == "resnet" else f"mixed{layer}b"
                entries.append(["layer", f"{model} · {name} · {width} units", f"models/{model}/{name}/index.html"])
                for i in range(width):
                    if n == units:
                        return entries
                    text = f"{model} · {name} · unit {i}"
                    if i % 3 == 0:
                        symbol, family = FAMILIES[i % len(FAMILIES)]
                        text += f" · {symbol} {family}"
                    if i % 10 == 0:
                        text += f" · also in inception mixed4a {i // 2}"
                    entries.append(["unit", text, f"models/{model}/{name}/{i // 16 * 16}-{i // 16 * 16 + 15}/{i}.html"])
                    n += 1
    return entries


def synthetic_site(folder: Path, units: int) -> Path:
    """A one-page site with the real header, scripts and a ``units``-entry index; its page."""
    from atlas.render import TEMPLATES, _environment

    shutil.copytree(TEMPLATES / "static", folder / "static", dirs_exist_ok=True)
    index = synthetic_index(units)
    (folder / "search-index.js").write_text(f"window.ATLAS_INDEX = {json.dumps(index, separators=(',', ':'))};\n")
    page = folder / "index.html"
    page.write_text(_environment().get_template("base.html").render(page="index.html", site_title="search",
                                                                    crumbs=[], uses_charts=False))
    return page


TIME_KEYS = """async (query) => {
  const input = document.getElementById("search");
  input.focus();
  input.value = "";
  const times = [];
  for (const ch of query) {
    input.value += ch;
    const start = performance.now();
    input.dispatchEvent(new Event("input"));
    times.push(performance.now() - start);
    await new Promise(r => setTimeout(r, 0));
  }
  const first = document.querySelector("#search-results a");
  return {times, first: first ? first.textContent : null};
}"""


def time_search(page, site_page: Path, queries: list[str]) -> dict:
    """Load the page, load the index (timed), then type each query: every keystroke's ms."""
    page.goto(site_page.as_uri(), wait_until="load")
    load_ms = page.evaluate("""() => new Promise(done => {
      const start = performance.now();
      const input = document.getElementById("search");
      input.dispatchEvent(new Event("focus"));
      const wait = () => window.ATLAS_INDEX ? done(performance.now() - start) : setTimeout(wait, 1);
      wait();
    })""")
    keys, firsts = [], {}
    for query in queries:
        found = page.evaluate(TIME_KEYS, query)
        keys += found["times"]
        firsts[query] = found["first"]
    return {"load_ms": load_ms, "keys_ms": sorted(keys), "first": firsts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[15000, 50000, 150000])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"{'units':>7} {'index KB':>9} {'load ms':>8} {'median key ms':>14} {'slowest key ms':>15}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        for units in args.sizes:
            with tempfile.TemporaryDirectory() as folder:
                site_page = synthetic_site(Path(folder), units)
                page = browser.new_page()
                found = time_search(page, site_page, QUERIES)
                page.close()
                size = (Path(folder) / "search-index.js").stat().st_size / 1024
            keys = found["keys_ms"]
            print(f"{units:>7} {size:>9.0f} {found['load_ms']:>8.0f} {keys[len(keys) // 2]:>14.1f} {keys[-1]:>15.1f}")
        browser.close()


if __name__ == "__main__":
    main()
