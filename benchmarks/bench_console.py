"""The cost of showing consoles: four boards whose apps print 100 lines a second each.

The real `espdfu-tui --demo --sim 'esp32s2-app:chatty*4'` in a pseudo-terminal of 100x30 (each
board's app prints through its own pseudo-terminal from the start, 400 lines a second in all),
and, to compare, the same four boards printing a line a second. Figures, over a window once
start-up is done:

- terminal bytes per second: what an SSH session would carry inside its encryption (bench_ssh
  gives the wire's overhead on top);
- the app's CPU share (user + system of its process) and its resident memory;
- the same with the first board's whole console open (``m``): every line written to the screen;
- a scrollback's memory: 10,000 lines (one board's, full) measured with tracemalloc;
- a chatty app's pace as its console's reader hears it: 200 lines should take about 2 s.
"""

from __future__ import annotations

import queue
import tempfile
import time
import tracemalloc

from espdfu.consoles.lines import Line, parse
from espdfu.consoles.ports import ConsoleEvent, Reader, console_finder
from espdfu.sim import SimBus, TimeModel, virtual_usb
from espdfu_tui.console_screen import SCROLLBACK_LINES, Scrollback
from ptyapp import PtyApp
from run import Row, Section, markdown_table

KB = 1000
BUDGET = 30 * KB
"""The terminal budget of four boards flashing (bench_ssh, bench_app): no flood may cost more."""
CHATTY = "esp32s2-app*4:chatty"
CALM = "esp32s2-app*4"


def _run(spec: str, console: bool, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        env = {"ESPDFU_CONFIG_DIR": folder, "TERM": "xterm-256color"}
        app = PtyApp.start(["--demo", "--sim", spec], env, (100, 30))
        try:
            app.wait_for(b"1-1.4")
            app.wait_for(b"app running")
            if console:
                app.press(b"m")
                app.wait_for(b"Pause")
            time.sleep(2.0)  # start-up work done, the rate window full
            cpu, start = app.cpu_seconds(), time.perf_counter()
            time.sleep(seconds)
            end = time.perf_counter()
            return {
                "bytes/s": app.bytes_between(start, end) / (end - start),
                "cpu": (app.cpu_seconds() - cpu) / (end - start),
                "rss MB": app.rss_bytes() / 1e6,
            }
        finally:
            app.stop()


def _scrollback_bytes() -> float:
    """Bytes a full scrollback holds: 10,000 ESP-IDF log lines of a typical length."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    scrollback = Scrollback()
    for n in range(0, SCROLLBACK_LINES, 100):
        scrollback.add(
            tuple(
                parse(f"I ({1000 + i * 10}) sensor_task: reading {i}: temperature 23.{i % 10} C", i)
                for i in range(n, n + 100)
            )
        )
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(scrollback.lines) == SCROLLBACK_LINES
    return used


def _chatty_pace_s() -> float:
    """Seconds from a chatty app's "tick 0" to the 200th line after it, as the reader hears them."""
    bus = SimBus.from_spec("esp32s2-app:chatty", time=TimeModel.instant())
    (path,) = bus.boards
    events: queue.Queue[ConsoleEvent] = queue.Queue()
    reader = Reader(events.put, console_finder(path, virtual_usb(bus)))
    reader.start()
    first: float | None = None
    try:
        while True:
            event = events.get(timeout=30)
            if not isinstance(event, Line):
                continue
            if "app: tick 0" in event.text:
                first = event.at
            elif first is not None and "(201000)" in event.text:
                return event.at - first
    finally:
        reader.stop()
        bus.unplug(path)


def run(quick: bool) -> Section:
    seconds = 5.0 if quick else 15.0
    runs = {
        "4 boards, 1 line/s each, panels": _run(CALM, False, seconds),
        "4 boards, 100 lines/s each, panels": _run(CHATTY, False, seconds),
        "4 boards, 100 lines/s each, one whole console open": _run(CHATTY, True, seconds),
    }
    scrollback = _scrollback_bytes()
    pace = _chatty_pace_s()
    table = markdown_table(
        ["", "terminal bytes/s", "app CPU", "app RSS"],
        [
            [
                name,
                f"{f['bytes/s']:,.0f}",
                f"{f['cpu']:.1%}",
                f"{f['rss MB']:.0f} MB",
            ]
            for name, f in runs.items()
        ],
    )
    body = f"""\
The real `espdfu-tui --demo` in a pseudo-terminal of 100x30 on virtual boards whose apps print
from the start (`--sim '{CALM}'`, then `'{CHATTY}'`), measured over {seconds:.0f} s after 2 s
of settling; the last row with the first board's whole console open (`m`). A panel shows its
board's last line and state, redrawn for its console at most twice a second whatever the
rate; the console screen draws new lines at most four times a second, all that came since at
once. The app's process runs the virtual boards too (their apps' threads and pseudo-terminals):
its CPU figure includes them. A full scrollback ({SCROLLBACK_LINES:,} lines
of about 60 characters, one board's) holds {scrollback / 1e6:.1f} MB
({scrollback / SCROLLBACK_LINES:.0f} bytes a line).

{table}"""
    chatty = runs["4 boards, 100 lines/s each, panels"]
    whole = runs["4 boards, 100 lines/s each, one whole console open"]
    rows = [
        Row(
            "terminal, 4 consoles at 100 lines/s, panels",
            f"{chatty['bytes/s'] / KB:.1f} KB/s",
            "≤ 30 KB/s",
            chatty["bytes/s"] <= BUDGET,
        ),
        Row(
            "terminal, the same, one whole console open",
            f"{whole['bytes/s'] / KB:.1f} KB/s",
            "≤ 30 KB/s",
            whole["bytes/s"] <= BUDGET,
        ),
        Row("app CPU, 4 consoles at 100 lines/s", f"{chatty['cpu']:.1%}"),
        Row("scrollback, 10,000 lines", f"{scrollback / 1e6:.1f} MB a board"),
        Row("a chatty app's 200 lines, as read", f"{pace:.2f} s", "1 to 10 s", 1 < pace < 10),
    ]
    return Section("Consoles", body, rows)
