"""The app over SSH: the bytes a network carries, through a real sshd on loopback.

The system's sshd on a free loopback port (tests/helpers/sshloop.py: throw-away keys, its own
sshd_config); `ssh -t` runs the real `espdfu-tui --demo` there, in a tmux pane of 100x30, with
the virtual boards in real time, as bench_app runs it. ssh connects to a relay in front of sshd
that counts the bytes each way: encrypted, framed, what the network carries. Figures:

- wire, 4 boards flashing: both directions, 4 s in the middle of the four downloads, as
  bench_app measures the app's terminal output (≤ 30 KB/s);
- wire, idle: the app showing its boards, nothing happening;
- ssh connection: connect, key exchange, public-key login, run `true`, close; and ssh started
  → the app's first frame on the screen.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import Row, Section, markdown_table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the SSH loop lives with the tests
    sys.path.insert(0, str(ROOT))

from tests.helpers.sshloop import SshLoop, unavailable  # noqa: E402
from tests.helpers.tmux import Tmux  # noqa: E402

KB = 1000
GOAL = 30 * KB
FLASH_WINDOW_S = 4.0
DEADLINE_S = 60.0


def _wait_for(tmux: Tmux, *markers: str) -> tuple[float, str]:
    """time.perf_counter() when one of ``markers`` was first seen on the pane, and which."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        screen = tmux.screen()
        for marker in markers:
            if marker in screen:
                return time.perf_counter(), marker
        time.sleep(0.02)
    raise RuntimeError(f"the app never showed {markers}; the screen:\n{tmux.screen()}")


def _measure(folder: Path, quick: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    with SshLoop(folder / "ssh") as loop:
        connections = []
        for _ in range(3 if quick else 10):
            start = time.perf_counter()
            subprocess.run(loop.ssh("true", tty=False), check=True, timeout=DEADLINE_S)
            connections.append(time.perf_counter() - start)
        figures["connection s"] = statistics.median(connections)
        figures["connection bytes"] = sum(loop.relay.bytes_between(0, time.perf_counter())) / len(
            connections
        )
        tmux = Tmux(str(shutil.which("tmux")), folder / "tmux.sock")
        screen_bytes = folder / "screen.bytes"
        env = {
            "ESPDFU_SIM_TIME": "1",
            "ESPDFU_DEMO_BUILD_S": "0.5",
            "ESPDFU_CONFIG_DIR": str(folder / "config"),
        }
        start = time.perf_counter()
        tmux.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "100", "-y", "30",
            f"stty cols 100 rows 30; {loop.app(env, '--demo')}; echo EXIT=$?; sleep 30",
        )  # fmt: skip
        try:
            # what ssh writes to its terminal: the app's output, decrypted
            tmux.run("pipe-pane", "-O", "-t", "app", f"cat >> {screen_bytes}")
            figures["first frame s"] = _wait_for(tmux, "1-2.1")[0] - start
            time.sleep(2.0)  # let start-up work finish
            seconds = 5.0 if quick else 15.0
            start = time.perf_counter()
            time.sleep(seconds)
            figures["idle down"], figures["idle up"] = (
                size / seconds for size in loop.relay.bytes_between(start, time.perf_counter())
            )
            tmux.run("send-keys", "-t", "app", "x")
            _wait_for(tmux, "flashing")
            start, screen_start = time.perf_counter(), screen_bytes.stat().st_size
            time.sleep(FLASH_WINDOW_S)  # 4 boards in the middle of a 120 KB download (about 7 s)
            end = time.perf_counter()
            figures["screen"] = (screen_bytes.stat().st_size - screen_start) / (end - start)
            figures["flashing down"], figures["flashing up"] = (
                size / (end - start) for size in loop.relay.bytes_between(start, end)
            )
            tmux.run("send-keys", "-t", "app", "q")
            if _wait_for(tmux, "Quit and abort it?", "EXIT=0")[1] != "EXIT=0":  # still flashing
                tmux.run("send-keys", "-t", "app", "y")
                _wait_for(tmux, "EXIT=0")
        finally:
            subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10)
    return figures


def run(quick: bool) -> Section:
    title = "The app over SSH"
    reason = "tmux is not installed" if shutil.which("tmux") is None else unavailable()
    if reason is not None:
        return Section(title, f"Not run: {reason}.")
    with tempfile.TemporaryDirectory() as folder:
        f = _measure(Path(folder), quick)  # the figures
    flashing = f["flashing down"] + f["flashing up"]
    idle = f["idle down"] + f["idle up"]
    table = markdown_table(
        ["Bytes per second", "Server → client", "Client → server", "Both"],
        [
            ["wire, idle", f"{f['idle down']:,.0f}", f"{f['idle up']:,.0f}", f"{idle:,.0f}"],
            [
                "wire, 4 boards flashing",
                f"{f['flashing down']:,.0f}",
                f"{f['flashing up']:,.0f}",
                f"{flashing:,.0f}",
            ],
            ["terminal, 4 boards flashing", f"{f['screen']:,.0f}", "", ""],
        ],
    )
    body = f"""\
The real `espdfu-tui --demo` over `ssh -t` to the system's sshd on loopback, through a relay
that counts the bytes each way (encrypted: what a network carries; no compression, ssh's
default), in a tmux pane of 100x30 (TERM=xterm-256color): idle, then `x` pressed (4 boards
flashing in real time). "Terminal" is what ssh wrote to its terminal in the same
{FLASH_WINDOW_S:.0f} s (the app's output, decrypted): the wire carries
{flashing / f["screen"]:.2f}× that. One ssh connection (key exchange, login with an Ed25519
key, `true` run by the login shell) carries {f["connection bytes"]:,.0f} bytes.

{table}"""
    rows = [
        Row(
            "wire over SSH, 4 boards flashing",
            f"{flashing / KB:.1f} KB/s",
            "≤ 30 KB/s",
            flashing <= GOAL,
        ),
        Row("wire over SSH, idle", f"{idle:.0f} B/s"),
        Row("ssh connection setup, median", f"{f['connection s'] * 1000:.0f} ms"),
        Row("ssh started → app's first frame", f"{f['first frame s']:.2f} s"),
    ]
    return Section(title, body, rows)
