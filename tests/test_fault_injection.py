"""Fault injection over whole builds (slow: `python -m pytest -m slow tests/test_fault_injection.py`).

Builds of the tiny atlas are killed (``kill -9``) and interrupted (SIGINT to the
whole process group, as a terminal's Ctrl-C) at seeded random moments, then resumed;
every result must equal an uninterrupted build, byte for byte. Full disks and
read-only folders are real (a tmpfs of a few hundred kilobytes, a read-only bind
mount) where this machine lets the tests mount, and skipped where it does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, make_images, write_config
from tests.test_faults import site_files
from tests.test_pipeline import _artifacts

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
STAGES = "sweep.stages=['featurevis','weights','examples','tuning','circuits','families','polysemanticity']"
SETS = ["--set", STAGES, "--set", "featurevis.steps=60", "--set", "featurevis.workers=2"]
RUNS = 12


def build(folder: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "atlas.cli", "build", *SETS, *extra], cwd=folder, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)


def project(folder: Path) -> Path:
    """The tiny atlas; every project's images are copies of one set, modification
    times included (the dataset's digest, part of the keys, reads them)."""
    images = folder.parent / "images-template"
    if not images.exists():
        make_images(images)
    shutil.copytree(images, folder / "images")
    write_config(folder)
    return folder


def result(folder: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    return _artifacts(folder / "cache"), site_files(folder / "site")


def test_kill_9_and_ctrl_c_at_random_moments_resume_to_the_uninterrupted_build(tmp_path):
    reference = project(tmp_path / "reference")
    start = time.monotonic()
    done = build(reference)
    assert done.wait(timeout=600) == 0, done.stderr.read()
    duration = time.monotonic() - start
    expected = result(reference)
    rng = random.Random(0)
    counts = {"runs": 0, "faults": 0, "equal": 0, "interrupt exits": 0}
    for run in range(RUNS):
        folder = project(tmp_path / f"run-{run}")
        kind = (signal.SIGKILL, signal.SIGINT)[run % 2]
        moments = sorted(rng.uniform(0.5, duration) for _ in range(rng.randint(1, 3)))
        for moment in moments:  # one or more faults in this run, each followed by a resume
            process = build(folder)
            time.sleep(moment)
            if process.poll() is None:
                counts["faults"] += 1
                os.killpg(process.pid, kind)
                sent = time.monotonic()
                out, err = process.communicate(timeout=30)
                if kind == signal.SIGINT:
                    assert time.monotonic() - sent < 10, "Ctrl-C took more than ten seconds"
                    if process.returncode == 130:
                        assert "interrupted: finished work is kept" in err
                        counts["interrupt exits"] += 1
                    else:  # it had finished, and Python's exit left the signal its default action
                        assert "built" in out and process.returncode in (0, -signal.SIGINT), (process.returncode, err)
            else:
                process.communicate()
            _no_stray_processes(process.pid)
        final = build(folder)
        _, err = final.communicate(timeout=600)
        assert final.returncode == 0, err
        counts["runs"] += 1
        counts["equal"] += result(folder) == expected
        assert result(folder) == expected, f"run {run} ({kind.name} at {moments}): {_differences(result(folder), expected)}"
        assert not list((folder / "cache" / "tmp").iterdir())
        assert not [p for p in folder.iterdir() if p.name.startswith(".site.")]
    print(f"\nfault injection: {counts}, uninterrupted build {duration:.1f} s")
    assert counts["faults"] >= RUNS


def _differences(got, expected) -> list[str]:
    return [f"{part}: {name}" for part, a, b in zip(("store", "site"), got, expected)
            for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)][:12]


def _no_stray_processes(group: int) -> None:
    """Nothing of the build's process group (forked workers included) lives on."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(group, signal.SIGKILL)
    pytest.fail("processes of a killed build were still running five seconds later")


@contextlib.contextmanager
def mounted(folder: Path, *options: str):
    """A mount for the test, or a skip where this machine does not allow one."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", *options, str(folder)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here ({made.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_real_full_disk_under_the_site_or_the_cache_is_one_line_and_nothing_half_written(tmp_path):
    folder = project(tmp_path / "p")
    with mounted(tmp_path / "tiny", "-t", "tmpfs", "-o", "size=400k", "tmpfs") as tiny:
        process = build(folder, "--set", f"site.out='{tiny / 'site'}'")
        _, err = process.communicate(timeout=600)
        assert process.returncode == 2, err
        (line,) = err.strip().splitlines()[-1:]
        assert line.startswith(f"error: {tiny}: no space left on its device while writing the site") and " free)" in line
        assert list(tiny.iterdir()) == []  # neither a site nor a half-built one
        finished = _artifacts(folder / "cache")  # the sweep's work is kept
        assert finished
        process = build(folder, "--set", f"sweep.cache='{tiny / 'cache'}'", "--set", f"site.out='{tmp_path / 's'}'")
        _, err = process.communicate(timeout=600)
        assert process.returncode == 2, err
        (line,) = err.strip().splitlines()[-1:]  # the cache, or the folder of its manifests or plans
        assert line.startswith(f"error: {tiny / 'cache'}") and "no space left on its device while writing" in line
        assert not list((tiny / "cache" / "tmp").iterdir())
        objects = tiny / "cache" / "objects"
        for artifact in (objects.glob("*/*") if objects.exists() else []):
            assert (artifact / ".complete").exists()  # only whole artifacts


def test_read_only_folders_are_refused_before_any_work(tmp_path):
    folder = project(tmp_path / "p")
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    with _read_only_bind(frozen, tmp_path / "empty"):
        for key, value in (("site.out", frozen / "site"), ("sweep.cache", frozen / "cache")):
            process = build(folder, "--set", f"{key}='{value}'")
            _, err = process.communicate(timeout=600)
            assert process.returncode == 2, err
            assert f"error: {key}: cannot write {frozen} (a read-only file system)" in err.strip().splitlines()[-1]
            assert not (folder / "cache" / "objects").exists() or key == "site.out"


@contextlib.contextmanager
def _read_only_bind(target: Path, source: Path):
    source.mkdir(exist_ok=True)
    with mounted(target, "--bind", str(source)):
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({remount.stderr.strip()})")
        yield


def test_corrupt_and_huge_images_in_the_dataset_are_skipped_and_named(tmp_path):
    folder = project(tmp_path / "p")
    images = folder / "images" / "bad"
    images.mkdir()
    good = folder / "images" / "warm" / "red.png"
    (images / "truncated.png").write_bytes(good.read_bytes()[:60])
    (images / "empty.jpg").write_bytes(b"")
    (images / "page.png").write_text("<html>not an image</html>")
    Image.fromarray(np.zeros((1, 1), np.uint8)).resize((9000, 9000)).save(images / "huge.png")  # 81 Mpx, small file
    process = build(folder)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert "unreadable images skipped" in err
    catalog = (folder / "site" / "catalog.json").read_text()
    for name in ("truncated.png", "empty.jpg", "page.png", "huge.png"):
        assert f"bad/{name}" not in catalog  # never shown as an example
    (plan,) = (folder / "cache" / "plans").glob("*.json")
    skipped = json.loads(plan.read_text())["data"]["skipped"]
    assert {"bad/truncated.png", "bad/empty.jpg", "bad/page.png", "bad/huge.png"} <= set(skipped)
    assert "more than the 64,000,000 Atlas reads" in skipped["bad/huge.png"]


def test_a_torchvision_resnet18_with_layers_inside_blocks_builds_with_every_stage(tmp_path):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pt")
    write_config(tmp_path, """
        [data]
        images = "world"
        limit = 48
        [sweep]
        cache = "cache"
        batch_size = 16
        [featurevis]
        steps = 8
        size = 32
        objectives = ["channel"]
        [dictionary]
        steps = 40
        samples = 2048
        [superposition]
        steps = 50
        [[models]]
        name = "resnet18"
        arch = "torchvision:resnet18"
        weights = "resnet18.pt"
        input_size = 96
        units = 4
        layers = ["layer1.0.conv1", "layer1.1.bn2", "layer2.0.downsample.0"]
        dictionary = ["layer1.1.bn2"]
    """)
    stages = "sweep.stages=['featurevis','weights','examples','tuning','circuits','families','polysemanticity'," \
             "'dictionary','superposition']"
    process = subprocess.run([sys.executable, "-m", "atlas.cli", "build", "--set", stages], cwd=tmp_path, env=ENV,
                             capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "site" / "index.html").is_file()
