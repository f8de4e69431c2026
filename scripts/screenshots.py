"""Screenshots of the main page types of a built atlas, and what each page weighs.

Drives Debian's Chromium (``apt-get install chromium``) through Playwright, from
file://. Writes ``docs/screenshots/<type>.webp`` (light theme; ``--dark`` for the dark
one) and prints, per page type, the bytes the browser loads: the HTML, and everything
it requests (images, stylesheet, scripts, the chart bundle).

Run:  python scripts/screenshots.py [--site site] [--out docs/screenshots] [--dark]
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image
from playwright.sync_api import sync_playwright

# One page of each type in the default atlas: (name, path under the site, viewport height).
PAGES = [
    ("index", "index.html", 1100),
    ("model", "models/inception/index.html", 1000),
    ("layer", "models/inception/mixed3b/index.html", 900),
    ("family", "models/inception/mixed3b/families/Cv.html", 1300),
    ("unit", "models/inception/mixed3b/12.html", 1500),
    ("circuit", "models/inception/mixed3b/circuits/12.html", 1000),
    ("universality", "universality.html", 1400),
    ("polysemanticity", "models/inception/polysemanticity.html", 1300),
    ("dictionary", "models/inception/mixed3b-dictionary/index.html", 900),
    ("superposition", "superposition.html", 1300),
]
WIDTH = 1200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=Path("site"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--dark", action="store_true", help="the dark theme (files get a -dark suffix)")
    args = parser.parse_args()
    site = args.site.resolve()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'page':<14} {'requests':>8} {'KB':>8}  path")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": WIDTH, "height": 900},
                                      color_scheme="dark" if args.dark else "light")
        for name, path, height in PAGES:
            if not (site / path).is_file():
                print(f"{name:<14} (no {path} in {site})")
                continue
            page = context.new_page()
            page.set_viewport_size({"width": WIDTH, "height": height})
            loaded: list[str] = []
            page.on("request", lambda request: loaded.append(request.url))
            page.goto((site / path).as_uri(), wait_until="load")
            page.wait_for_timeout(1500)  # charts draw after load
            # Lazy images below the fold are not requested until scrolled to: weigh what a reader sees first.
            weight = sum((Path(unquote(urlsplit(url).path))).stat().st_size
                         for url in set(loaded) if url.startswith("file://"))
            print(f"{name:<14} {len(set(loaded)):>8} {weight / 1024:>8.0f}  {path}")
            png = page.screenshot(full_page=False)
            suffix = "-dark" if args.dark else ""
            Image.open(io.BytesIO(png)).save(args.out / f"{name}{suffix}.webp", quality=80)
            page.close()
        browser.close()


if __name__ == "__main__":
    main()
