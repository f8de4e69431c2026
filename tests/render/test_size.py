"""The site's size against GitHub Pages' limits and Atlas's folder budget."""

from __future__ import annotations

from atlas.render.size import FOLDER_FILES, PAGES_FILE, measure


def _sparse(path, size):  # a file of ``size`` bytes that takes no disk
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


def test_a_small_site_fits_and_its_largest_file_and_fullest_folder_are_named(tmp_path):
    _sparse(tmp_path / "index.html", 1000)
    _sparse(tmp_path / "models" / "m" / "img" / "a.webp", 3000)
    for i in range(3):
        _sparse(tmp_path / "models" / "m" / "img" / f"{i}.webp", 10)
    (tmp_path / "models" / "link.html").symlink_to(tmp_path / "index.html")  # not counted twice
    size = measure(tmp_path, units=2)
    assert (size.bytes, size.files) == (4030, 5)
    assert size.largest_file == ("models/m/img/a.webp", 3000)
    assert size.largest_folder == ("models/m/img", 3030) and size.fullest_folder == ("models/m/img", 4)
    assert size.problems() == [] and not size.crowded()
    assert "fits GitHub Pages" in size.report() and "2.0 KB per unit" in size.report()


def test_a_file_over_100_mb_a_site_over_1_gb_and_a_crowded_folder_are_said(tmp_path):
    _sparse(tmp_path / "catalog.json", PAGES_FILE + 1)
    for i in range(10):
        _sparse(tmp_path / "data" / f"{i}.js", 100 << 20)
    for i in range(FOLDER_FILES + 1):
        _sparse(tmp_path / "img" / f"{i}.webp", 1)
    size = measure(tmp_path)
    problems = size.problems()
    assert any("over 1 GB" in p for p in problems) and any("catalog.json" in p and "100 MB" in p for p in problems)
    assert size.crowded() and size.fullest_folder == ("img", FOLDER_FILES + 1)
    assert "does not fit GitHub Pages" in size.report() and "img/ holds over" in size.report()


def test_the_plan_says_how_big_the_site_will_be():
    from atlas.render.size import PER_UNIT, estimate

    small = estimate({"m/conv1": 8, "m/conv2": 16})
    assert "for 24 units" in small and "it would fit GitHub Pages" in small and "crowded" not in small
    big = estimate({"m/a": 1024, "m/b": 30_000})  # about 1.2 GB
    assert "it would not fit GitHub Pages" in big
    assert estimate({"m/a": 1}).startswith(f"site: about {PER_UNIT / 1024:.1f} KB")
