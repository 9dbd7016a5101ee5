"""End to end: the real `espdfu-tui --demo` in tmux, driven by keys, read from the screen."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.helpers.tmux import Tmux


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[[int, int], Tmux]]:
    """Start `espdfu-tui --demo` in a terminal of the given size."""
    tmux = Tmux(require_tool("tmux"), tmp_path / "tmux.sock")
    app = Path(sys.executable).parent / "espdfu-tui"
    env = {
        "ESPDFU_SIM_TIME": "0.2",  # virtual boards five times faster than real ones
        "ESPDFU_DEMO_BUILD_S": "0.5",
        "ESPDFU_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
    }
    exports = " ".join(f"{key}={value}" for key, value in env.items())

    def start(width: int, height: int) -> Tmux:
        # stty: a detached pane's terminal may not have its size yet when the app starts
        tmux.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app",
            "-x", str(width), "-y", str(height),
            f"stty cols {width} rows {height}; cd {tmp_path} && env {exports} {app} --demo; "
            "echo EXIT=$?; sleep 30",
        )  # fmt: skip
        return tmux

    yield start
    subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10, check=False)


def test_x_builds_and_flashes_every_board_that_can_take_it(
    start_demo: Callable[[int, int], Tmux],
) -> None:
    demo = start_demo(100, 30)
    # The four boards in ROM download mode and the one running an app with a DFU runtime (whose
    # panel may come a frame after its line in the log)
    demo.wait_for(
        lambda s: (
            s.count("· ROM download") == 4
            and "─ 1-2.1 " in s
            and "· app (DFU runtime)" in s
            and "press b to build" in s
        ),
        "the panels",
    )
    demo.run("send-keys", "-t", "app", "x")
    # The first two boards are reset by their bridges, the others by the demo's finger: the
    # three ESP32-S2 in ROM mode and the app board run their new apps, whose consoles the panels
    # show; the app board is named by the chip its DFU mode showed. (A panel shows its
    # console's last line up to 0.5 s after its state.)
    done = demo.wait_for(
        lambda s: (
            len(re.findall(r"esp32s2 · app\s", s)) == 4
            and "esp32s2 · app (DFU runtime)" in s
            and s.count("running") == 4  # "running espdfu-demo build 1 · verified", or a note
            and re.search(r"[IWEDV] \(\d+\) ", s) is not None
        ),
        "the new apps running, with their consoles' lines",
    )
    assert "Demo: RESET tapped on" in done
    assert "the dfu.bin is for esp32s2" in done  # the ESP32-S3: not flashed, and why
    assert "build OK" in done
    demo.run("send-keys", "-t", "app", "q")
    demo.wait_for(lambda s: "EXIT=0" in s, "a clean exit")


_PANEL_LINE = re.compile(r"[│┃] (.*?) *[│┃]")
_CONSOLE_LINE = re.compile(r"[IWEDV] \(\d+\) |rst:0x|ESP-ROM:")
"""An app's console line (its log, or the ROM's at a boot), which a panel cuts at its end as a
terminal would."""


def cut_panel_lines(screen: str) -> list[str]:
    """The panels' lines that end cut ("…"), but for the apps' console lines."""
    lines = [part for row in screen.splitlines() for part in _PANEL_LINE.findall(row)]
    return [line for line in lines if "…" in line and not _CONSOLE_LINE.match(line)]


def test_at_80_by_24_every_panel_says_its_state_and_advice_whole(
    start_demo: Callable[[int, int], Tmux],
) -> None:
    """Two panels a row, three rows: each panel's board, state and advice whole, from the
    start through a round of flashes to the apps running (it read "(its console is open;
    nothing prin…" and "looked for at the same USB port a…")."""
    demo = start_demo(80, 24)
    seen: list[str] = []

    def shows(condition: Callable[[str], bool]) -> Callable[[str], bool]:
        def check(screen: str) -> bool:
            seen.append(screen)
            return condition(screen)

        return check

    start = demo.wait_for(shows(lambda s: "─ 1-2.1 " in s and "q Quit" in s), "the panels")
    lines = start.splitlines()
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert "espdfu-demo · esp32s2 · build: idle" in start
    assert lines[3].count("─ 1-1.") + lines[3].count("━ 1-1.") == 2  # two panels a row
    demo.run("send-keys", "-t", "app", "x")
    demo.wait_for(shows(lambda s: "flashing" in s), "the flashes")
    demo.wait_for(
        shows(lambda s: s.count("build 1 · verified") == 4 and "app: temperature" in s),
        "the new apps running",
    )
    states = {"ready", "flashing", "running build 1 · verified", "the dfu.bin is for esp32s2"}
    assert all(any(state in screen for screen in seen) for state in states)
    assert [line for screen in seen for line in cut_panel_lines(screen)] == []
