"""Bad input and a machine's faults: one line, exit 2, nothing lost or half-written.

The slow suite (tests/test_fault_injection.py) kills and interrupts whole builds at
random moments; these are the fast, exact cases.
"""

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import atlas.render
from atlas.cli import main
from atlas.errors import DiskFull
from atlas.files import write_atomic
from atlas.store import Store
from tests.conftest import REPO
from tests.test_pipeline import _artifacts

WEIGHTS_ONLY = ["--set", "sweep.stages=['weights']"]


def invoke(*args: str):
    """The CLI as a user runs it; an unexpected exception (a traceback) is exit 1."""
    return CliRunner().invoke(main, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def site_files(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, message", [
    (["--set", "models[x].units=3"], "--set models[x].units=3: models[x]: expected a key, or a key and a list index"),
    (["--set", "models[0].layers[0].x=3"], "models[0].layers[0]: is not a table"),
    (["--set", "featurevis.thumbnail=0"], "featurevis.thumbnail: must be at least 8 (got 0)"),
    (["--set", "featurevis.lr=inf"], "featurevis.lr: must be a finite number (got inf)"),
    (["--set", "featurevis.precision='fp16'"], "featurevis.precision: must be one of auto, fp32, bf16 (got 'fp16')"),
    (["--set", "featurevis.size=100000"], "featurevis.size: must be at most 4096"),
    (["--set", "models[0].input_size=100000"], "models[0].input_size: must be at most 8192"),
    (["--set", "models[0].std=[1, 0, 1]"], "models[0].std[1]: must be more than 0"),
    (["--set", "sweep.stages=['weights', 'weights']"], "sweep.stages[1]: 'weights' is listed twice"),
    (["--set", "sweep.cache='site/.atlas-cache'"], "sweep.cache: "),
    (["--set", "site.out='cache/site'"], "site.out: "),
    (["--set", "sweep.cache='a-file'"], "a-file is a file, not a folder"),
    (["--set", "site.out='a-file'"], "a-file is a file, not a folder"),
    (["--out", "a-file"], "site.out: "),
    (["--device", "tpu"], "--device: must be one of auto, cpu, cuda or cuda:N (got 'tpu')"),
    (["--set", "models[0].weights='missing.pt'"], "atlas.toml: models[0].weights: 'missing.pt' is not a file ("),
    (["--set", "models[0].layers=['conv9']"], "atlas.toml: models[0].layers: layer 'conv9' is not a module"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(tiny_project, monkeypatch, args, message):
    monkeypatch.chdir(tiny_project)
    (tiny_project / "a-file").write_text("not a folder")
    assert message in one_line_error(invoke("build", *args))
    assert not (tiny_project / "cache" / "objects").exists() and not (tiny_project / "site").exists()


def test_a_cache_inside_the_site_is_refused_and_never_deleted(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    assert invoke("build", *WEIGHTS_ONLY).exit_code == 0
    cache = tiny_project / "site" / ".atlas-cache"
    (tiny_project / "cache").rename(cache)  # as if the user had put it there
    before = _artifacts(cache)
    line = one_line_error(invoke("render", *WEIGHTS_ONLY, "--set", "sweep.cache='site/.atlas-cache'"))
    assert "is inside site.out" in line and _artifacts(cache) == before


def test_layers_with_a_bad_input_size_is_one_line():
    result = invoke("layers", "tests.tiny_models:make_color_net", "--input-size", "-5")
    assert result.exit_code == 2 and "-5 is not in the range 8<=x<=8192" in result.output


def test_a_full_disk_during_render_names_the_folder_and_keeps_the_old_site(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    assert invoke("build", *WEIGHTS_ONLY).exit_code == 0
    site = tiny_project / "site"
    before = site_files(site)
    write_text = atlas.render._write_text
    written = []

    def filling(target: Path, text: str) -> None:
        if len(written) >= 3:  # the disk fills after three pages (in any worker)
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(target)
        write_text(target, text)

    monkeypatch.setattr(atlas.render, "_write_text", filling)
    line = one_line_error(invoke("render", *WEIGHTS_ONLY))
    assert f"{tiny_project}: no space left on its device while writing the site site (it needed more than" in line
    assert " free)" in line and site_files(site) == before
    assert sorted(p.name for p in tiny_project.iterdir() if p.name.startswith(".site")) == []


def test_a_full_disk_in_the_store_leaves_no_half_artifact(tiny_project, monkeypatch):
    from atlas.stages import weights

    monkeypatch.chdir(tiny_project)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights, "save_webp", full)
    line = one_line_error(invoke("sweep", *WEIGHTS_ONLY))
    assert f"{tiny_project / 'cache'}: no space left on its device while writing a weights artifact" in line
    assert not (tiny_project / "cache" / "objects" / "weights").exists()
    assert not list((tiny_project / "cache" / "tmp").iterdir())
    with pytest.raises(DiskFull, match="while writing plan.json"):
        monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        write_atomic(tiny_project / "plan.json", "{}")
    assert not [p for p in tiny_project.iterdir() if p.name.startswith(".plan.json")]


def test_the_site_gets_the_umask_mode_or_keeps_the_old_sites(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    old = os.umask(0o022)
    try:
        assert invoke("build", *WEIGHTS_ONLY).exit_code == 0
        site = tiny_project / "site"
        assert stat.S_IMODE(site.stat().st_mode) == 0o755  # not mkdtemp's 0700
        artifact = next((tiny_project / "cache" / "objects" / "weights").iterdir())
        assert stat.S_IMODE(artifact.stat().st_mode) == 0o755
        site.chmod(0o750)
        assert invoke("render", *WEIGHTS_ONLY).exit_code == 0
        assert stat.S_IMODE(site.stat().st_mode) == 0o750
    finally:
        os.umask(old)


def test_what_a_killed_render_left_beside_the_site_is_removed(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    dead = 2 ** 22 + 12345  # above Linux's largest pid: no such process
    for name in (f".site.building-{dead}-abc", f".site.old-{dead}", ".site.building-1-live"):
        (tiny_project / name).mkdir()
        (tiny_project / name / "index.html").write_text("left over")
    assert invoke("build", *WEIGHTS_ONLY).exit_code == 0
    assert sorted(p.name for p in tiny_project.iterdir() if p.name.startswith(".site")) == [".site.building-1-live"]


def test_a_damaged_artifact_is_never_rendered_and_the_next_sweep_recomputes_it(tiny_project, monkeypatch, caplog):
    monkeypatch.chdir(tiny_project)
    assert invoke("build", "--set", "sweep.stages=['weights', 'examples']").exit_code == 0
    before = _artifacts(tiny_project / "cache")
    examples = next((tiny_project / "cache" / "objects" / "examples").iterdir())
    data = examples / "data.json"
    data.write_bytes(data.read_bytes()[:40])  # truncated
    line = one_line_error(invoke("render", "--set", "sweep.stages=['weights', 'examples']"))
    assert f"the examples artifact {examples} is damaged: data.json has 40 bytes" in line
    assert invoke("build", "--set", "sweep.stages=['weights', 'examples']").exit_code == 0
    assert _artifacts(tiny_project / "cache") == before
    next(examples.glob("*.webp")).unlink()  # a missing image
    assert "is missing" in one_line_error(invoke("render", "--set", "sweep.stages=['weights', 'examples']"))
    assert invoke("sweep", "--set", "sweep.stages=['weights', 'examples']").exit_code == 0
    assert _artifacts(tiny_project / "cache") == before


HOLD = """
import sys, time
from atlas.store import Store
with Store(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_waits_for_the_first_and_a_dead_ones_lock_is_taken_over(tiny_project):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tiny_project / "cache")], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    log = tiny_project / "second.log"
    with open(log, "w") as err:
        second = subprocess.Popen([sys.executable, "-m", "atlas.cli", "build", *WEIGHTS_ONLY], cwd=tiny_project,
                                  env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while "waiting" not in log.read_text() and time.monotonic() < deadline and second.poll() is None:
            time.sleep(0.1)
        assert second.poll() is None, log.read_text()
        assert f"another atlas sweep (pid {holder.pid}) is writing this cache; waiting" in log.read_text()
        assert not (tiny_project / "cache" / "objects").exists()  # it did no work meanwhile
        holder.send_signal(signal.SIGKILL)  # the holder dies: the kernel drops its lock
        assert second.wait(timeout=120) == 0, log.read_text()
        assert (tiny_project / "site" / "index.html").is_file()
    finally:
        for process in (holder, second):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_readers_do_not_need_the_lock(tiny_project, monkeypatch):
    monkeypatch.chdir(tiny_project)
    assert invoke("sweep", *WEIGHTS_ONLY).exit_code == 0
    with Store(tiny_project / "cache").lock():
        assert invoke("render", *WEIGHTS_ONLY).exit_code == 0
