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
    demo.wait_for(lambda s: s.count("press RESET to run the new firmware") == 4, "flashes")
    # The demo taps RESET for the user: the three ESP32-S2 in ROM mode and the app board run
    # their new apps, whose consoles the panels show; the app board is named by the chip its
    # DFU mode showed. (A panel shows its console's last line up to 0.5 s after its state.)
    done = demo.wait_for(
        lambda s: (
            len(re.findall(r"esp32s2 · app\s", s)) == 4
            and "esp32s2 · app (DFU runtime)" in s
            and s.count("app running") == 4
            and re.search(r"[IWEDV] \(\d+\) ", s) is not None
        ),
        "the new apps running, with their consoles' lines",
    )
    assert "Demo: RESET tapped on" in done
    assert "the dfu.bin is for esp32s2" in done  # the ESP32-S3: not flashed, and why
    assert "build OK" in done
    demo.run("send-keys", "-t", "app", "q")
    demo.wait_for(lambda s: "EXIT=0" in s, "a clean exit")


def test_the_screen_fits_80_by_24(start_demo: Callable[[int, int], Tmux]) -> None:
    demo = start_demo(80, 24)
    screen = demo.wait_for(lambda s: "─ 1-2.1 " in s and "q Quit" in s, "the narrow layout")
    lines = screen.splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    assert "espdfu-demo · esp32s2 · build: idle" in screen
    assert "b Build" in screen and "q Quit" in screen
