"""The GPU benchmark runs where no GPU is: ``benchmarks/gpu_sweep.py --device cpu --quick``."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_gpu_sweep_benchmark_runs_on_the_cpu_and_prints_its_figures():
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_sweep.py"), "--device", "cpu", "--quick"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"Atlas [\d.]+ units/s, lucent [\d.]+ units/s: [\d.]+x", run.stdout)
    row = re.search(r"^inception3a\s+(\d+)\s+(\d+)\s+([\d.]+)", run.stdout, re.M)
    assert row and int(row[1]) == 256 and int(row[2]) >= 1  # every channel, in batches the device chose
