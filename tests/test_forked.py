import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from atlas import forked

# A parent that shares slow work among two forked children, each writing its pid first.
PARENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from atlas.forked import map_forked

    folder = Path(sys.argv[1])

    def work(item):
        import os
        (folder / f"child-{os.getpid()}").touch()
        time.sleep(60)

    print("ready", flush=True)
    map_forked(work, [1, 2, 3, 4], 2)
""")


def test_results_come_back_in_order_from_one_thread_children():
    threads = torch.get_num_threads()
    results = forked.map_forked(lambda item: (os.getpid(), torch.get_num_threads(), item * 2), [1, 2, 3], 2,
                                initializer=functools.partial(torch.set_num_threads, 1))
    assert [doubled for _, _, doubled in results] == [2, 4, 6]
    assert all(pid != os.getpid() and count == 1 for pid, count, _ in results)
    assert torch.get_num_threads() == threads and forked._FORKED == []


def test_a_child_ignores_ctrl_c_so_only_the_parent_decides():
    def interrupted(item):
        os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C reaches the whole process group
        return item + 1
    assert forked.map_forked(interrupted, [1, 2], 2) == [2, 3]


def _start(folder: Path) -> subprocess.Popen:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(folder)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "ready"
    return parent


def _children(folder: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in folder.glob("child-*")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended; only its parent's wait is missing
        return stat.read().split(")")[-1].split()[0] != "Z"


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children dying with the parent is Linux's prctl")
@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05, 0.2, 1.0])
def test_ctrl_c_at_any_moment_ends_parent_and_children_within_seconds(tmp_path, delay):
    parent = _start(tmp_path)
    time.sleep(delay)  # from before the pool exists to while its children work
    parent.send_signal(signal.SIGINT)
    for child in _children(tmp_path):
        os.kill(child, signal.SIGINT)  # a terminal sends it to the children too
    parent.wait(timeout=10)
    assert parent.returncode != 0
    assert _gone_within(_children(tmp_path), 5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children dying with the parent is Linux's prctl")
def test_children_do_not_outlive_a_parent_killed_with_kill_9(tmp_path):
    parent = _start(tmp_path)
    deadline = time.monotonic() + 10
    while len(_children(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    parent.kill()
    parent.wait(timeout=5)
    assert len(_children(tmp_path)) == 2 and _gone_within(_children(tmp_path), 2)
