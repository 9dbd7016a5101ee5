"""The core/UI split and the simulator's seam, checked at run time, the one test command the
README gives, and the scripts it and CI run.

import-linter checks the imports statically (`lint-imports`, the contract in
pyproject.toml); this checks what actually ends up loaded, which also catches
imports done by name at run time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI_PACKAGES = ("textual", "espdfu_tui", "rich")
TEST_COMMAND = "bash .ci/test"

SIMULATOR = ("espdfu.sim",)
BELOW_THE_ENTRY_POINTS = (
    "espdfu.bench.workbench",
    "espdfu.flashing.station",
    "espdfu.consoles.ports",
    "espdfu.usb.hotplug",
    "espdfu.files.idfbuild",
)
"""What the app and ``espdfu watch`` run on: none of it may name the virtual boards, which come
in through the same seams as real ones (a pyusb backend, serial ports)."""

# Runs in a fresh interpreter: imports the given modules (or, for "*", every module
# of espdfu except __main__) and prints which modules of the given packages got loaded.
PROBE = """
import importlib, json, pkgutil, sys
packages = json.loads(sys.argv[1])
names = sys.argv[2:]
if names == ["*"]:
    import espdfu
    names = ["espdfu"] + [
        m.name
        for m in pkgutil.walk_packages(espdfu.__path__, "espdfu.")
        if m.name.rsplit(".", 1)[-1] != "__main__"
    ]
for name in names:
    importlib.import_module(name)
print(json.dumps(sorted(
    m for m in sys.modules if any(m == p or m.startswith(p + ".") for p in packages)
)))
"""


def loaded_modules(packages: tuple[str, ...], *modules: str) -> list[str]:
    """The modules of ``packages`` that importing ``modules`` loads, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(packages), *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize(
    "modules",
    [("espdfu",), ("espdfu", "espdfu.cli"), ("*",)],
    ids=["espdfu", "espdfu.cli", "every-core-module"],
)
def test_core_does_not_load_the_ui(modules: tuple[str, ...]) -> None:
    assert loaded_modules(UI_PACKAGES, *modules) == []


def test_the_probe_sees_the_ui_when_it_is_loaded() -> None:
    """The check above can fail: importing the app does load Textual."""
    loaded = loaded_modules(UI_PACKAGES, "espdfu_tui.app")
    assert "textual" in loaded
    assert "espdfu_tui" in loaded


def test_only_the_entry_points_load_the_simulator() -> None:
    assert loaded_modules(SIMULATOR, *BELOW_THE_ENTRY_POINTS) == []
    # The probe can see it: the demo's finger presses virtual boards, and loads them.
    assert "espdfu.sim" in loaded_modules(SIMULATOR, "espdfu.demo.finger")


def readme_code_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block.strip() for block in re.findall(r"```[^\n]*\n(.*?)```", readme, re.DOTALL)]


def test_readme_gives_the_test_command() -> None:
    assert TEST_COMMAND in readme_code_blocks()


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert any(line.endswith(f" {TEST_COMMAND}") for line in commands)
    # ... and it is the last command, so that pytest's summary closes the CI log.
    assert commands[-1].endswith(f" {TEST_COMMAND}")


SCRIPTS = [
    *sorted(path for path in (ROOT / ".ci").iterdir() if path.suffix != ".txt"),
    ROOT / "tests" / "realusb" / "setup.sh",
]
"""What people and CI run: the README's test command, CI's, the real-USB set-up."""


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_the_scripts_are_programs(path: Path) -> None:
    """Each says its interpreter and runs by its name (``./.ci/test`` as ``bash .ci/test``)."""
    assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    assert path.stat().st_mode & 0o111 == 0o111, f"{path.name} is not executable"
