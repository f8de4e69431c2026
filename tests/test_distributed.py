"""Sharded sweeps under torchrun, on the CPU with gloo: the store a 2-rank sweep leaves
is the one a single process leaves, byte for byte (artifacts, manifests and plan),
and so is the store of a 2-rank sweep whose rank 1 is killed, finished by 3 ranks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas.distributed import Shard
from tests.conftest import REPO, TINY_CONFIG, TWIN_MODEL, make_images, write_config

# Every process computes with one thread, as torchrun's workers do (OMP_NUM_THREADS=1),
# so that the single-process reference computes in the same order.
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
# Two models (universality), a dictionary (its features are swept after a sync), every stage.
CONFIG = TINY_CONFIG.replace("input_size = 16\n", "input_size = 16\ndictionary = [\"conv1\"]\n", 1) + TWIN_MODEL


def project(folder: Path, images: Path) -> Path:
    folder.mkdir()
    (folder / "images").symlink_to(images)  # one set of files: the dataset digest reads modification times
    write_config(folder, CONFIG)
    return folder


def store_files(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*"))
            if p.is_file() and p.parts[len(cache.parts)] in ("objects", "manifests", "plans")}


def torchrun(folder: Path, ranks: int, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc-per-node={ranks}", "-m", "atlas", "sweep", "-v"], cwd=folder, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)


def single(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "atlas", "sweep"], cwd=folder, env=ENV, check=True,
                   capture_output=True, timeout=300)


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
                frontier.append(int(stat.parent.name))
    return found


def rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((int(v[5:]) for v in environ if v.startswith(b"RANK=")), None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path_factory.mktemp("sharded")
    make_images(root / "images")
    folder = project(root / "single", root / "images")
    single(folder)
    return root, store_files(folder / "cache")


def test_two_ranks_share_the_work_and_leave_the_single_process_store(reference):
    root, expected = reference
    folder = project(root / "two", root / "images")
    run = torchrun(folder, 2)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert store_files(folder / "cache") == expected
    counts = {int(rank): (int(done), int(needed)) for rank, done, needed in
              re.findall(r"atlas\[(\d)\]: rank \d of 2 computed (\d+) of the (\d+) artifacts", err)}
    assert set(counts) == {0, 1}
    (needed,) = {n for _, n in counts.values()}
    assert counts[0][0] + counts[1][0] == needed  # every artifact made once, by one rank
    assert min(counts[0][0], counts[1][0]) >= needed // 4  # and both ranks did a share


def test_a_killed_rank_leaves_finished_work_that_three_ranks_resume(reference):
    root, expected = reference
    folder = project(root / "killed", root / "images")
    run = torchrun(folder, 2)
    objects = folder / "cache" / "objects"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None:
        finished = [p for p in objects.glob("*/*") if (p / ".complete").exists()] if objects.exists() else []
        if len(finished) >= 6:  # past the first model's first stages
            break
        time.sleep(0.05)
    victim = next((pid for pid in children(run.pid) if rank_of(pid) == 1), None)
    assert run.poll() is None and victim is not None, "the sweep ended before a rank could be killed"
    os.kill(victim, signal.SIGKILL)
    run.communicate(timeout=120)
    assert run.returncode != 0  # torchrun ends the other rank too
    partial = store_files(folder / "cache")
    assert 0 < len(partial) < len(expected)
    assert all(expected.get(name) == data for name, data in partial.items() if name.startswith("objects/"))
    rerun = torchrun(folder, 3)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert store_files(folder / "cache") == expected


def test_one_process_claims_every_needed_artifact():
    shard = Shard()
    assert [shard.claim(n, cost=c) for n, c in [(True, 3), (False, 1), (True, 1)]] == [True, False, True]
    assert (shard.computed, shard.needed) == (2, 2)


def test_ranks_agree_on_owners_balanced_by_cost(monkeypatch):
    """Every rank computes the same owners from the same asks: the least loaded rank so
    far, ties to the lowest (the agreement itself is an all-reduce, here an identity, as
    every rank found the same)."""
    monkeypatch.setattr("torch.distributed.all_reduce", lambda tensor, op=None: None)
    claims = {}
    for rank in (0, 1):
        shard = Shard(rank=rank, world=2)
        claims[rank] = [shard.claim(True, cost) for cost in (4, 1, 1, 1, 1, 1)]
        shard.sync()
        claims[rank].append(shard.claim(True, 1))  # after a sync, the load so far still counts: 5 | 4
    assert claims[0] == [True, False, False, False, False, True, False]
    assert claims[1] == [not c for c in claims[0]]
