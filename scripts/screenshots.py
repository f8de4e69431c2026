"""Screenshots of every page type of a built atlas, and what each page weighs.

Drives Debian's Chromium (``apt-get install chromium``) through Playwright, from
file://. By default writes the README's set: ``docs/screenshots/<type>.webp``, light,
1280 px wide. ``--all`` writes every page type at 1280 and 375 px in both themes,
``<out>/<type>-<width>[-dark].webp`` (``--out``, default ``screenshots/``), to look
through before a change lands. It prints, per page type, the bytes the browser loads
before scrolling: the HTML, and everything it requests (images, stylesheet, scripts,
the chart bundle).

Another atlas's pages: ``--page TYPE=PATH`` (repeatable) replaces the list, and
``--prefix`` names the files, e.g. the periodic table of the EfficientNet-Lite0 atlas:

    python scripts/screenshots.py --site configs/site-efficientnet-lite0 --prefix efficientnet- \
        --page model=models/efficientnet-lite0/index.html

Run:  python scripts/screenshots.py [--site site] [--out DIR] [--all] [--dark]
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image
from playwright.sync_api import sync_playwright

# One page of each type in the default atlas: (type, path under the site, viewport height at 1280 px).
PAGES = [
    ("index", "index.html", 1100),
    ("model", "models/inception/index.html", 1000),
    ("criteria", "models/inception/families.html", 1000),
    ("layer", "models/inception/mixed3b/index.html", 900),
    ("family", "models/inception/mixed3b/families/Cv.html", 1300),
    ("unit", "models/inception/mixed3b/0-15/12.html", 1500),
    ("circuit", "models/inception/mixed3b/0-15/circuits/12.html", 1120),
    ("atlas", "models/inception/mixed3b/atlas.html", 1100),
    ("universality", "universality.html", 1400),
    ("polysemanticity", "models/inception/polysemanticity.html", 1300),
    ("dictionary", "models/inception/mixed3b-dictionary/index.html", 900),
    ("feature", "models/inception/mixed3b-dictionary/0-15/0.html", 1300),
    ("superposition", "superposition.html", 1300),
]
WIDTHS = (1280, 375)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=Path("site"))
    parser.add_argument("--out", type=Path, default=None, help="default: docs/screenshots, or screenshots with --all")
    parser.add_argument("--all", action="store_true", help="every page type at 1280 and 375 px in both themes")
    parser.add_argument("--dark", action="store_true", help="the dark theme (files get a -dark suffix)")
    parser.add_argument("--page", action="append", default=[], metavar="TYPE=PATH", help="shoot these pages instead")
    parser.add_argument("--prefix", default="", help="put before each file's name")
    args = parser.parse_args()
    site = args.site.resolve()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    out = args.out or Path("screenshots" if args.all else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    pages = [(name, path, 1300) for name, _, path in (p.partition("=") for p in args.page)] or PAGES
    shots = [(width, dark) for width in WIDTHS for dark in (False, True)] if args.all else [(WIDTHS[0], args.dark)]
    print(f"{'page':<16} {'width':>5} {'theme':>5} {'requests':>8} {'KB':>8}  path")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for width, dark in shots:
            context = browser.new_context(viewport={"width": width, "height": 900},
                                          color_scheme="dark" if dark else "light")
            for name, path, height in pages:
                if not (site / path).is_file():
                    print(f"{name:<16} (no {path} in {site})")
                    continue
                png, requests, weight = shoot(context, site / path, width, height if width == WIDTHS[0] else 1400)
                theme = "dark" if dark else "light"
                print(f"{name:<16} {width:>5} {theme:>5} {requests:>8} {weight / 1024:>8.0f}  {path}")
                suffix = (f"-{width}" if args.all else "") + ("-dark" if dark else "")
                Image.open(io.BytesIO(png)).save(out / f"{args.prefix}{name}{suffix}.webp", quality=80)
            context.close()
        browser.close()


def shoot(context, page_file: Path, width: int, height: int) -> tuple[bytes, int, int]:
    """A page's screenshot at width x height, with the requests made and bytes loaded before scrolling."""
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    page.goto(page_file.as_uri(), wait_until="load")
    page.wait_for_timeout(1500)  # charts draw after load
    # Lazy images below the fold are not requested until scrolled to: weigh what a reader sees first.
    weight = sum(Path(unquote(urlsplit(url).path)).stat().st_size for url in set(loaded) if url.startswith("file://"))
    png = page.screenshot(full_page=False)
    page.close()
    return png, len(set(loaded)), weight


if __name__ == "__main__":
    main()
