"""SIGINT, SIGTERM and SIGHUP during flashes and builds: the real programs, real signals.

What must hold: running flashes are aborted (each board left ready to flash) or finished, the
build's process group is gone, the terminal is given back as it was, the exit code is
128 + the signal's number and one line says what was stopped.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espdfu.sim import TimeModel
from espdfu_tui.panels import BoardPanel
from tests.conftest import require_tool
from tests.helpers.harness import make_app, until
from tests.helpers.tmux import Tmux

DEADLINE_S = 30.0
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
APP = Path(sys.executable).parent / "espdfu-tui"
S2 = "1-1.1"
SLOW_BUILD = """#!/bin/sh
echo $$ > "{pid_file}"
echo "[1/2] Building a slow thing"
sleep 120
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "ESPDFU_SIM_TIME": "1",  # real-board speed: a flash lasts seconds, long enough to stop
        "ESPDFU_DEMO_BUILD_S": "0.3",
        "ESPDFU_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
    }


def _slow_build(tmp_path: Path) -> tuple[str, Path]:
    """A build command that writes its pid to a file, then takes two minutes."""
    script, pid_file = tmp_path / "slow-build.sh", tmp_path / "build.pid"
    script.write_text(SLOW_BUILD.format(pid_file=pid_file))
    script.chmod(0o755)
    return str(script), pid_file


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + DEADLINE_S
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


class Pane(Tmux):
    """The demo in a tmux pane that falls back to a shell once the app ends."""

    def app_pid(self) -> int:
        shell = self.run("list-panes", "-t", "app", "-F", "#{pane_pid}").strip()
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def terminal_is_restored(self) -> None:
        assert self.run("display", "-p", "-t", "app", "#{alternate_on}").strip() == "0"
        self.run(
            "send-keys", "-t", "app", "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo", "Enter"
        )
        self.wait_for(lambda s: "icanon\necho" in s, "stty showing icanon and echo")


@pytest.fixture
def start_pane(tmp_path: Path) -> Iterator[Callable[..., Pane]]:
    pane = Pane(require_tool("tmux"), tmp_path / "tmux.sock")

    def start(*args: str) -> Pane:
        exports = " ".join(f"{key}={value}" for key, value in _env(tmp_path).items())
        pane.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "160", "-y", "30",
            f"stty cols 160 rows 30; cd {tmp_path} && env {exports} {APP} --demo {' '.join(args)}; "
            "echo EXIT=$?; exec sh",
        )  # fmt: skip
        pane.wait_for(lambda s: "─ 1-2.1 " in s and "press b to build" in s, "the panels")
        return pane

    yield start
    subprocess.run([*pane.base, "kill-server"], capture_output=True, timeout=10, check=False)


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_signal_while_flashing_aborts_the_flashes_and_gives_the_terminal_back(
    start_pane: Callable[..., Pane], signum: signal.Signals
) -> None:
    pane = start_pane()
    pane.run("send-keys", "-t", "app", "x")
    # "DFU": the boards are seen back on the bus since their detach, so their flashes are known
    pane.wait_for(lambda s: s.count("· DFU") >= 4 and s.count("flashing ") >= 4, "four downloads")
    os.kill(pane.app_pid(), signum)
    screen = pane.wait_for(lambda s: "EXIT=" in s, "the exit")
    assert f"EXIT={128 + signum}" in screen
    assert (
        f"espdfu-tui: stopped by {signum.name}: 4 flashes aborted, boards left ready to flash "
        "(1-1.1, 1-1.2, 1-1.3, 1-2.1)." in screen
    )
    assert "Traceback" not in screen
    pane.terminal_is_restored()


def test_sigterm_while_building_ends_the_builds_process_group(
    tmp_path: Path, start_pane: Callable[..., Pane]
) -> None:
    command, pid_file = _slow_build(tmp_path)
    pane = start_pane("--build-cmd", command)
    pane.run("send-keys", "-t", "app", "b")
    build = _wait_for_pid(pid_file)
    pane.wait_for(lambda s: "Building a slow thing" in s, "the build's output")
    os.kill(pane.app_pid(), signal.SIGTERM)
    screen = pane.wait_for(lambda s: "EXIT=" in s, "the exit")
    assert "EXIT=143" in screen
    assert "espdfu-tui: stopped by SIGTERM: the build was stopped." in screen
    assert _gone(build)
    pane.terminal_is_restored()


def _on_a_terminal(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """The demo on a pseudo-terminal this test owns, as sshd owns one per session."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(
        [str(APP), "--demo", *args],
        cwd=tmp_path,
        env={**os.environ, **_env(tmp_path)},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # its controlling terminal
    )
    os.close(slave)
    return process, master


class Screen:
    """Everything the app wrote to the terminal, read as it comes."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.data = bytearray()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the terminal was hung up
                return
            if not chunk:
                return
            self.data.extend(chunk)

    def wait_for(self, words: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while words.encode() not in self.data:
            assert time.monotonic() < deadline, f"{words!r} never appeared"
            time.sleep(0.05)


@pytest.mark.parametrize("during", ["flash", "build"])
def test_a_dropped_terminal_ends_the_app(tmp_path: Path, during: str) -> None:
    """The SSH session drops: the terminal hangs up under the app (SIGHUP, then EIO on every
    write). The app must stop the work and end, 129, not hang on its dead screen."""
    command, pid_file = _slow_build(tmp_path)
    process, master = _on_a_terminal(
        tmp_path, *(["--build-cmd", command] if during == "build" else [])
    )
    try:
        screen = Screen(master)
        screen.wait_for("press b to build")
        if during == "flash":
            os.write(master, b"x")
            screen.wait_for("flashing")
        else:
            os.write(master, b"b")
            build = _wait_for_pid(pid_file)
    finally:
        os.close(master)  # the hang-up
    assert process.wait(timeout=DEADLINE_S) == 128 + signal.SIGHUP
    if during == "build":
        assert _gone(build)


async def test_sigterm_in_process_takes_the_same_way_as_q(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path, spec="esp32s2", time=TimeModel.realistic())
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        await pilot.press("x")

        def downloading() -> bool:
            view = app.workbench.boards()[S2]
            return view.present and view.state.startswith("flashing ")

        await until(pilot, downloading, "a download")
        os.kill(os.getpid(), signal.SIGTERM)
        await until(pilot, lambda: not app.is_running, "the exit")
    assert app.return_code == 143
    assert app.stop_report == (
        "stopped by SIGTERM: 1 flash aborted, board left ready to flash (1-1.1)."
    )
    assert bus.board(S2).downloads_completed == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers go with the app
