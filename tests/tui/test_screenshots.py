"""docs/screenshots/make.py makes every picture, each of the state it names; the committed ones
are there. What a picture shows is read from its SVG's text, not compared byte for byte."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "docs" / "screenshots"
SVG = "{http://www.w3.org/2000/svg}"
EXPECTED: dict[str, tuple[str, ...]] = {
    "idle.svg": (
        "espdfu-tui",
        "espdfu-demo · esp32s2",
        "build/dfu.bin: 70 KB, esp32s2",
        "1-1.1",
        "esp32s2 · ROM download",
        "ready",
        "the dfu.bin is for esp32s2",
    ),
    "flashing.svg": ("flashing", "%", "the dfu.bin is for esp32s2"),
    "failed.svg": ("failed: device vanished", "Replug the board and flash again"),
    "help.svg": ("Keys", "Flash the whole dfu.bin, not only the changes", "Setup", "Project:"),
    "apps.svg": ("esp32s2 · app", "running espdfu-demo build 1 · verified", ") app: "),
    "console.svg": (
        "1-1.1 · /dev/",
        "ESP-ROM:esp32s2",
        "Project name:     espdfu-demo",
        "ELF file SHA256:  ",
        "p Pause",
        "s Save",
    ),
    "trouble.svg": (
        "crashing at boot: LoadProhibited",
        "crashing at boot: assert failed",
        'cannot boot: "Segment 0',
        'cannot boot: "invalid header: 0xffffffff"',
        "power trouble: Brownout detector",
        "E BOD: Brownout detector was triggered",
    ),
}


def screen_lines(svg: Path) -> list[str]:
    """The terminal's lines as the SVG draws them (one <text> per run of one style)."""
    tree = ET.parse(svg)  # raises for anything that is not well-formed XML
    assert tree.getroot().tag == f"{SVG}svg"
    rows: dict[float, list[str]] = defaultdict(list)
    for text in tree.getroot().iter(f"{SVG}text"):
        if text.get("y") is not None and text.text:
            rows[float(text.get("y", 0))].append(text.text.replace("\xa0", " "))
    return ["".join(parts) for _, parts in sorted(rows.items())]


def check(svg: Path) -> list[str]:
    lines = screen_lines(svg)
    shown = "\n".join(lines)
    for text in EXPECTED[svg.name]:
        assert text in shown, f"{svg.name} does not show {text!r}:\n{shown}"
    return lines


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("screenshots")
    done = subprocess.run(
        [sys.executable, str(FOLDER / "make.py"), str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / name) for name in sorted(EXPECTED)]
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_script_makes_the_picture(made: Path, name: str) -> None:
    check(made / name)


def test_the_flashing_picture_has_four_bars_part_way(made: Path) -> None:
    shown = "\n".join(check(made / "flashing.svg"))
    percents = [int(p) for p in re.findall(r"flashing (\d+)%", shown)]
    assert len(percents) == 4, shown
    assert all(0 < p < 100 for p in percents)
    assert len(set(percents)) == 4  # each board stopped at its own block


def test_the_apps_picture_shows_four_new_apps_running(made: Path) -> None:
    shown = "\n".join(check(made / "apps.svg"))
    assert shown.count("running espdfu-demo build 1 · verified") == 4
    lines = re.findall(r"[IWEDV] \(\d+\) app: [^│┃]*", shown)
    assert len(lines) == 4 and len(set(lines)) == 1, lines  # their apps keep step


def test_the_help_picture_is_the_help_over_the_boards(made: Path) -> None:
    shown = "\n".join(check(made / "help.svg"))
    assert "Command palette (every command by name)" in shown
    assert "1-1.1" in shown  # the panels, dimmed behind it


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_committed_picture_is_there(name: str) -> None:
    check(FOLDER / name)
