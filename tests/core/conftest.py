"""Fixtures shared by the core tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing, require_tool

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"


@pytest.fixture
def vectors() -> Path:
    """ESP-IDF's own mkdfu test vectors, read from ../shared beside the checkout."""
    if not (VECTORS / "README.md").is_file():
        reason = f"the shared reference vectors are not beside this checkout ({VECTORS})"
        missing(reason)
    return VECTORS


SOURCE = """\
int sensor_read(int *p) {
    return *p;
}

int app_main(void) {
    int *p = 0;
    return sensor_read(p) + 1;
}

void _start(void) {
    app_main();
}
"""
LINKER_SCRIPT = """\
SECTIONS
{
  .text.sensor 0x40081230 : { *(.text.sensor_read) }
  .text.main 0x400d1230 : { *(.text.app_main) }
  .text.start 0x40085670 : { *(.text._start) }
}
"""
"""Each function a few bytes before the address the virtual panic names in it
(espdfu.sim.firmware.PANIC_LINES); the ``elf`` fixture builds it."""


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    folder = tmp_path_factory.mktemp("elf")
    (folder / "app.c").write_text(SOURCE)
    (folder / "app.ld").write_text(LINKER_SCRIPT)
    subprocess.run(
        [gcc, "-g", "-O0", "-ffunction-sections", "-nostdlib", "-static", "-no-pie",
         "-T", "app.ld", "-o", "app.elf", "app.c"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return folder / "app.elf"
