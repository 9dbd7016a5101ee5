"""The app as users feel it: reaction to a rebuild and to a plug, idle cost, bandwidth, start.

- rebuild → first DNLOAD: a new dfu.bin renamed into the build folder, until the first block
  reaches an armed board (in DFU mode, as after a first flash) with auto-flash on. ≤ 300 ms.
- plug → panel: a virtual board plugged in, until its panel is on the app's screen. ≤ 1 s.
- idle: the real `espdfu-tui` with 8 boards, in a pseudo-terminal, doing nothing: CPU share of
  one core (≤ 2 %) and resident memory (≤ 120 MB).
- bandwidth: bytes written to the terminal per second while 4 boards flash (≤ 30 KB/s): what
  an SSH connection carries.
- start → first frame: from starting `espdfu-tui --demo` to its screen drawn (≤ 1.5 s).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.workbench import Workbench
from espdfu.demo.project import make_demo_project
from espdfu.files import dfufile
from espdfu.flashing.flasher import FlashOptions
from espdfu.sim import BoardKind, SimBus, TimeModel, VirtualBoard, virtual_usb
from espdfu.usb.protocol import Request
from espdfu_tui.app import EspdfuApp
from espdfu_tui.panels import BoardPanel
from ptyapp import PtyApp
from run import Row, Section, markdown_table

KIB = 1024


def _rebuild_to_first_block(repeats: int) -> list[float]:
    """Seconds from the rename of a new dfu.bin to the board's first DNLOAD, each time."""
    with tempfile.TemporaryDirectory() as folder:
        build_dir = Path(folder) / "build"
        build_dir.mkdir()
        bus = SimBus.from_spec("esp32s2-dfu", time=TimeModel.realistic())
        board = next(iter(bus.boards.values()))
        workbench = Workbench(
            virtual_usb(bus, "virtual boards"),
            WorkbenchSettings(build_dir=build_dir, auto_flash=True, flash=FlashOptions()),
        )
        idle = threading.Event()
        workbench.start(lambda event: None if workbench.busy else idle.set())
        rng = random.Random(7)
        delays = []
        for _ in range(repeats):
            image = dfufile.pack(
                [dfufile.FlashFile(0x10000, "app.bin", rng.randbytes(4 * KIB))], pid=2
            )
            (build_dir / "dfu.tmp").write_bytes(image)
            before = board.requests[Request.DNLOAD]
            start = time.perf_counter()
            (build_dir / "dfu.tmp").replace(build_dir / "dfu.bin")
            while board.requests[Request.DNLOAD] == before:
                if time.perf_counter() - start > 10:
                    raise RuntimeError("the new dfu.bin never reached the board")
                time.sleep(0.0005)
            delays.append(time.perf_counter() - start)
            deadline = time.monotonic() + 30
            while workbench.busy and time.monotonic() < deadline:
                time.sleep(0.01)
        workbench.stop()
        return delays


async def _plug_to_panel(repeats: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        project = make_demo_project(Path(folder))
        bus = SimBus.from_spec("esp32s2", time=TimeModel.instant())
        workbench = Workbench(
            virtual_usb(bus, "virtual boards"),
            WorkbenchSettings(build_dir=project.build_dir, project_dir=project.project_dir),
        )
        app = EspdfuApp(workbench, project="bench")
        delays = []
        async with app.run_test(size=(100, 30)) as pilot:
            for number in range(repeats):
                shown = len(app.query(BoardPanel))
                start = time.perf_counter()
                bus.plug(VirtualBoard("esp32s2", kind=BoardKind.ROM), path=f"2-{number + 1}")
                while len(app.query(BoardPanel)) == shown:
                    await pilot.pause(0.005)
                delays.append(time.perf_counter() - start)
        return delays


def _real_app(quick: bool) -> dict[str, float]:
    """Start, idle and bandwidth figures of the real program in a pseudo-terminal."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        env = {"ESPDFU_CONFIG_DIR": folder, "TERM": "xterm-256color", "ESPDFU_DEMO_BUILD_S": "0.5"}
        app = PtyApp.start(["--demo", "--sim", "esp32s2*8"], env, (100, 30))
        try:
            figures["first frame s"] = app.wait_for(b"1-2.4")
            time.sleep(2.0)  # let start-up work finish
            seconds = 5.0 if quick else 15.0
            cpu, wall = app.cpu_seconds(), time.perf_counter()
            time.sleep(seconds)
            figures["idle cpu share"] = (app.cpu_seconds() - cpu) / (time.perf_counter() - wall)
            figures["idle rss MB"] = app.rss_bytes() / 1e6
            now = time.perf_counter()
            figures["idle bytes/s"] = app.bytes_between(now - seconds, now) / seconds
        finally:
            app.stop()
        app = PtyApp.start(["--demo"], {**env, "ESPDFU_SIM_TIME": "1"}, (100, 30))
        try:
            app.wait_for(b"1-2.1")
            app.press(b"x")
            app.wait_for(b"flashing")
            start = time.perf_counter()
            time.sleep(4.0)  # 4 boards in the middle of a 120 KB download (about 7 s)
            end = time.perf_counter()
            figures["flashing bytes/s"] = app.bytes_between(start, end) / (end - start)
        finally:
            app.stop()
    return figures


def run(quick: bool) -> Section:
    repeats = 5 if quick else 15
    rebuild = _rebuild_to_first_block(repeats)
    plug = asyncio.run(_plug_to_panel(repeats))
    real = _real_app(quick)
    rebuild_ms = statistics.median(rebuild) * 1000
    plug_s = statistics.median(plug)
    table = markdown_table(
        ["Measurement", "Median", "Min", "Max"],
        [
            ["rename → first DNLOAD (ms)", *(f"{v * 1000:.0f}" for v in _stats(rebuild))],
            ["plug → panel (ms)", *(f"{v * 1000:.0f}" for v in _stats(plug))],
        ],
    )
    body = f"""\
Rebuild → first block: {repeats} new dfu.bin files (4 KiB apps) renamed into a watched build
folder, one virtual ESP32-S2 in DFU mode, armed, auto-flash on, realistic time model.
Plug → panel: {repeats} boards plugged into the simulator under the app (Textual's headless
driver), the monitor scanning every 0.5 s. The other figures come from the real `espdfu-tui`
in a pseudo-terminal of 100x30: `--demo --sim esp32s2*8` left idle, and `--demo` with `x`
pressed (4 boards flashing in real time). Bytes are what the app wrote to the terminal.

{table}"""
    rows = [
        Row("rename → first DNLOAD, median", f"{rebuild_ms:.0f} ms", "≤ 300 ms", rebuild_ms <= 300),
        Row("plug → panel shown, median", f"{plug_s * 1000:.0f} ms", "≤ 1000 ms", plug_s <= 1.0),
        Row(
            "idle CPU, 8 boards",
            f"{real['idle cpu share']:.2%}",
            "≤ 2 %",
            real["idle cpu share"] <= 0.02,
        ),
        Row(
            "idle memory (RSS)",
            f"{real['idle rss MB']:.0f} MB",
            "≤ 120 MB",
            real["idle rss MB"] <= 120,
        ),
        Row("terminal output, idle", f"{real['idle bytes/s']:.0f} B/s"),
        Row(
            "terminal output, 4 boards flashing",
            f"{real['flashing bytes/s'] / 1000:.1f} KB/s",
            "≤ 30 KB/s",
            real["flashing bytes/s"] <= 30_000,
        ),
        Row(
            "start → first frame",
            f"{real['first frame s']:.2f} s",
            "≤ 1.5 s",
            real["first frame s"] <= 1.5,
        ),
    ]
    return Section("The app", body, rows)


def _stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)
