"""The core/UI split, checked at run time, and the one test command the README gives.

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

# Runs in a fresh interpreter: imports the given modules (or, for "*", every module
# of espdfu except __main__) and prints which modules of the UI packages got loaded.
PROBE = """
import importlib, json, pkgutil, sys
ui = set(json.loads(sys.argv[1]))
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
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in ui)))
"""


def loaded_ui_modules(*modules: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(UI_PACKAGES), *modules],
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
    assert loaded_ui_modules(*modules) == []


def test_the_probe_sees_the_ui_when_it_is_loaded() -> None:
    """The check above can fail: importing the app does load Textual."""
    loaded = loaded_ui_modules("espdfu_tui.app")
    assert "textual" in loaded
    assert "espdfu_tui" in loaded


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
