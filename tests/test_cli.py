import concurrent.futures
import contextlib
import http.client
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import _handler, _Server, main
from atlas.render.catalog import read_catalog


def run(*args, cwd=None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_build_end_to_end_then_rebuild_without_sweep_work(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    result = run("build", "--set", "featurevis.steps=4")
    assert result.exit_code == 0, result.output
    pages = len(list((tiny_project / "site").rglob("*.html")))
    assert f"built {pages} pages in" in result.output and pages > 1 + 1 + 1 + 2 + 6  # and family pages
    catalog = read_catalog(tiny_project / "site")
    units = [u for layer in catalog["models"][0]["layers"] for u in layer["units"]]
    assert len(units) == 6 and all((tiny_project / "site" / u["featurevis"]).is_file() for u in units)
    files = [p for p in (tiny_project / "site").rglob("*") if p.is_file()]  # the build ends with the site's size
    assert f"in {len(files):,} files" in result.output and "6 units" in result.output
    assert "it fits GitHub Pages (1 GB a site, 100 MB a file)" in result.output

    from atlas.stages import featurevis
    monkeypatch.setattr(featurevis, "render_units", lambda *a, **k: pytest.fail("swept again"))
    assert run("build", "--set", "featurevis.steps=4").exit_code == 0


def test_build_shows_each_model_as_it_finishes_and_ends_as_a_one_shot_render(tiny_project, monkeypatch):
    from atlas.render import render_site
    from tests.conftest import TWIN_MODEL
    from tests.test_faults import site_files

    monkeypatch.chdir(tiny_project)
    (tiny_project / "atlas.toml").write_text((tiny_project / "atlas.toml").read_text() + TWIN_MODEL)
    stages = "sweep.stages=['featurevis','weights','examples','universality']"
    seen = []

    def render_so_far(config, partial=False, **kwargs):
        report = render_site(config, partial=partial, **kwargs)
        seen.append((partial, (report.out / "index.html").read_text()))
        return report

    monkeypatch.setattr("atlas.render.render_site", render_so_far)
    result = run("build", "--set", stages, "--set", "featurevis.steps=4")
    assert result.exit_code == 0, result.output
    assert [partial for partial, _ in seen] == [True, True, False]  # after each model, then the whole
    first, second, final = (html for _, html in seen)
    assert "Not ready yet: model twin; universality across the models." in first
    assert 'http-equiv="refresh"' in first and "/twin/" not in first
    assert "Not ready yet: universality across the models." in second and "twin/index.html" in second
    assert "Still being swept" not in final and "refresh" not in final and "universality.html" in final
    built = site_files(tiny_project / "site")
    monkeypatch.setattr("atlas.render.render_site", render_site)
    assert run("render", "--set", stages, "--set", "featurevis.steps=4", "--out", "again").exit_code == 0
    assert site_files(tiny_project / "again") == built


def test_sweep_then_render_and_out_is_relative_to_the_working_directory(tiny_project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = str(tiny_project / "atlas.toml")
    assert run("sweep", "--config", config, "--set", "sweep.stages=['weights']").exit_code == 0
    result = run("render", "--config", config, "--set", "sweep.stages=['weights']", "--out", "here")
    assert result.exit_code == 0 and (tmp_path / "here" / "index.html").is_file()


def test_bad_config_exits_2_naming_the_key_and_writes_nothing(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    text = (tiny_project / "atlas.toml").read_text().replace("layers =", "layer =")
    (tiny_project / "atlas.toml").write_text(text)
    result = CliRunner().invoke(main, ["build"])
    assert result.exit_code == 2
    assert "error: atlas.toml: models[0].layer: unknown key (did you mean 'layers'?)" in result.output
    assert not (tiny_project / "site").exists() and not (tiny_project / "cache").exists()


def test_bad_layer_exits_2_and_leaves_no_site(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    result = CliRunner().invoke(main, ["build", "--set", "models[0].layers=['conv9']"])
    assert result.exit_code == 2 and "models[0].layers: layer 'conv9'" in result.output
    assert not (tiny_project / "site").exists()


def test_layers_lists_channels_and_output_sizes():
    result = run("layers", "tests.tiny_models:make_color_net", "--input-size", "16")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:]}
    assert rows["conv1"][1:] == ["Conv2d", "4", "4×16×16"]
    assert rows["conv2"][1:] == ["Conv2d", "2", "2×16×16"]
    bad = CliRunner().invoke(main, ["layers", "torchvision:resnet81"])
    assert bad.exit_code == 2 and "did you mean resnet18" in bad.output


def test_help_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys; from atlas.cli import main; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@contextlib.contextmanager
def serving(root: Path, base: str = "/"):
    server = _Server(("127.0.0.1", 0), _handler(root, base))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str, timeout: float = 20) -> tuple[int, str, bytes]:
    """(status, content type, body) from our own server on the loopback address."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_serve_answers_under_a_sub_path_like_github_pages(built_site):
    with serving(built_site, "/atlas") as port:
        status, _, body = get(port, "/atlas/index.html")
        assert status == 200 and b"Tiny &lt;b&gt;atlas&lt;/b&gt;" in body
        status, kind, body = get(port, "/atlas/catalog.json")
        assert status == 200 and kind == "application/json" and json.loads(body)["models"]
        assert get(port, "/index.html")[0] == 404


def test_serve_types_files_lists_no_folders_and_answers_a_burst(built_site):
    image = next(built_site.rglob("*.webp")).relative_to(built_site).as_posix()
    with serving(built_site) as port:
        assert get(port, f"/{image}")[:2] == (200, "image/webp")
        assert get(port, "/search-index.js")[:2] == (200, "text/javascript")
        assert get(port, "/static/")[0] == 404  # a folder without index.html: no listing
        assert get(port, "/")[0] == 200  # a folder with one: the page
        together = threading.Barrier(200)

        def one(_) -> int | str:  # all 200 connect at once; a full backlog leaves some unanswered for seconds
            together.wait()
            try:
                return get(port, "/catalog.json", timeout=2)[0]
            except OSError as e:
                return type(e).__name__
        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200


def test_serve_on_a_busy_port_is_a_clear_error(built_site):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        result = CliRunner().invoke(main, ["serve", "--config", str(built_site.parent / "atlas.toml"),
                                           "--port", str(busy.getsockname()[1])])
    finally:
        busy.close()
    assert result.exit_code == 2 and "--port: cannot listen on 127.0.0.1:" in result.output
