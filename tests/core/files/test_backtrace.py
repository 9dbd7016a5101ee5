"""Panic backtraces decoded from the project's ELF, without a toolchain: a small ELF (the ``elf``
fixture) puts its functions at the addresses a virtual board's panic prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from espdfu.consoles.lines import parse
from espdfu.errors import InputError
from espdfu.files.backtrace import Symbols, project_elf
from espdfu.sim.firmware import PANIC_LINES

FUNCTION_LINES = (range(1, 4), range(5, 9), range(10, 13))
"""The source lines of sensor_read, app_main and _start."""


def test_each_backtrace_address_is_named_with_its_function_and_line(elf: Path) -> None:
    backtrace = next(parse(line, 0).backtrace for line in PANIC_LINES if "Backtrace" in line)
    places = [Symbols(elf).lookup(pc) for pc in backtrace]
    assert [(place.function, Path(place.file or "").name) for place in places] == [
        ("sensor_read", "app.c"), ("app_main", "app.c"), ("_start", "app.c")
    ]  # fmt: skip
    # Each line within its function (which one depends on the compiler's code):
    assert all(place.line in lines for place, lines in zip(places, FUNCTION_LINES, strict=True))
    assert str(places[0]) == f"0x40081234: sensor_read at {places[0].file}:{places[0].line}"


def test_an_address_outside_the_program_is_unknown(elf: Path) -> None:
    place = Symbols(elf).lookup(0x1000)
    assert (place.function, place.file, str(place)) == (None, None, "0x00001000: ??")


def test_a_file_that_is_not_an_elf_is_refused_in_words(tmp_path: Path) -> None:
    bad = tmp_path / "app.elf"
    bad.write_bytes(b"not an elf")
    with pytest.raises(InputError, match="cannot be read as an ELF file"):
        Symbols(bad)


def test_the_projects_elf_is_the_one_project_description_names(elf: Path, tmp_path: Path) -> None:
    assert project_elf(tmp_path) is None
    (tmp_path / "project_description.json").write_text(json.dumps({"app_elf": "gone.elf"}))
    assert project_elf(tmp_path) is None
    (tmp_path / "app.elf").write_bytes(elf.read_bytes())
    (tmp_path / "project_description.json").write_text(json.dumps({"app_elf": "app.elf"}))
    assert project_elf(tmp_path) == tmp_path / "app.elf"


def test_monitor_prints_the_decoded_backtrace_under_it(elf: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "espdfu", "monitor", "--sim", "esp32s2-app:panic", "--all",
         "--until", "Backtrace", "--elf", str(elf), "--timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "Backtrace: 0x40081234" in line)
    assert re.fullmatch(
        rf"1-1\.1    0x40081234: sensor_read at {re.escape(str(elf.parent))}/app\.c:[123]",
        lines[at + 1],
    )
    assert lines[at + 3].startswith("1-1.1    0x40085678: _start at ")
