"""Every benchmark and script still imports (and the shell script parses): none rots
unnoticed when the code it uses moves. Importing runs no benchmark: each runs under
``if __name__ == "__main__"``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO

PYTHON = sorted([*(REPO / "benchmarks").glob("*.py"), *(REPO / "scripts").glob("*.py")])


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_it_imports_and_runs_nothing_on_import(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))  # benchmarks import each other by name
    spec = importlib.util.spec_from_file_location(f"_checked_{path.stem.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
    assert '__name__ == "__main__"' in path.read_text()


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
