"""A virtual board's app and its console: a real pseudo-terminal read as any serial port."""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Iterator

import pytest
import serial

from espdfu.consoles.health import Health, RunState
from espdfu.consoles.lines import Line
from espdfu.consoles.ports import Back, ConsoleEvent, Gone, Reader, Refused, console_finder
from espdfu.flashing.flasher import flash
from espdfu.usb.transport import Usb
from tests.helpers.boardworld import image, image_files, world


class Console:
    """A reader of one virtual board's console, its events in a queue."""

    def __init__(self, usb: Usb, path: str) -> None:
        self.events: queue.Queue[ConsoleEvent] = queue.Queue()
        self.looks: queue.Queue[None] = queue.Queue()
        """One item each time the reader looks for the console (to open it)."""
        find = console_finder(path, usb)

        def look() -> str | None:
            self.looks.put(None)
            return find()

        self.reader = Reader(self.events.put, look)
        self.reader.start()

    def until(self, wanted: type[ConsoleEvent] | str, seconds: float = 10.0) -> list[ConsoleEvent]:
        """Events up to the first of type ``wanted`` (or the first line holding it)."""
        seen: list[ConsoleEvent] = []
        while True:
            try:
                event = self.events.get(timeout=seconds)
            except queue.Empty:
                raise AssertionError(f"no {wanted!r} within {seconds} s after {seen}") from None
            seen.append(event)
            if isinstance(wanted, str):
                if isinstance(event, Line) and wanted in event.text:
                    return seen
            elif isinstance(event, wanted):
                return seen


@pytest.fixture
def consoles() -> Iterator[list[Console]]:
    made: list[Console] = []
    yield made
    for console in made:
        console.reader.stop()


def test_after_a_flash_and_reset_the_new_image_runs_and_says_which_it_is(
    consoles: list[Console],
) -> None:
    w = world("esp32s2")
    (path,) = w.paths
    board = w.board(path)
    files = image_files(seed=7)
    assert flash(w.usb, path, image(files=files)).ok
    assert board.console_port is None  # DFU mode: no app runs
    console = Console(w.usb, path)
    consoles.append(console)
    board.press_reset()
    seen = console.until("App image SHA256")
    app = next(file for file in files if file.name not in ("bootloader.bin", "partition-table.bin"))
    assert isinstance(seen[0], Back)
    lines = [event.text for event in seen if isinstance(event, Line)]
    assert lines[0] == "ESP-ROM:esp32s2-rc4-20191025"
    assert lines[-1].endswith(f"App image SHA256: {hashlib.sha256(app.data).hexdigest()}")
    console.until("app: sensor ready")  # then a line at each level, one a second


def test_download_mode_takes_the_console_away_and_the_reader_says_so(
    consoles: list[Console],
) -> None:
    w = world("esp32s2-app")
    (path,) = w.paths
    console = Console(w.usb, path)
    consoles.append(console)
    console.until(Back)
    w.board(path).press_reset(boot=True)
    console.until(Gone)
    assert w.board(path).console_port is None


def test_a_panicking_app_reboots_in_a_loop_with_its_backtrace(consoles: list[Console]) -> None:
    w = world("esp32s3-app:panic")
    (path,) = w.paths
    console = Console(w.usb, path)
    consoles.append(console)
    health = Health()
    events: list[ConsoleEvent] = []
    while health.state is not RunState.CRASHING:
        events += console.until("Rebooting...")
        for event in events:
            if isinstance(event, Line):
                health.see(event)
        events.clear()
    assert health.panic[0].text.startswith("Guru Meditation Error")
    assert health.panic[-1].backtrace == (0x40081234, 0x400D1234, 0x40085678)


def test_a_chatty_app_prints_every_line_in_order(consoles: list[Console]) -> None:
    """Its pace, a hundredth of a second a line, is measured on the real clock by
    benchmarks/bench_console.py."""
    w = world("esp32s2-app:chatty")
    (path,) = w.paths
    assert w.board(path).chatty
    console = Console(w.usb, path)
    consoles.append(console)
    console.until("app: sensor ready")
    lines = [e for e in console.until("(201000)") if isinstance(e, Line)]  # 200 lines later
    stamps = [int(line.text.split("(", 1)[1].split(")", 1)[0]) for line in lines]
    assert stamps == [1000 + n * 1000 for n in range(1, 201)]


def test_a_console_another_program_holds_is_said_once_then_read_when_freed(
    consoles: list[Console],
) -> None:
    w = world("esp32s2-app")
    (path,) = w.paths
    port = w.board(path).console_port
    assert port is not None
    with serial.Serial(port, exclusive=True):
        console = Console(w.usb, path)
        consoles.append(console)
        (refused,) = console.until(Refused)
        assert isinstance(refused, Refused)
        assert "in use by another program" in refused.error.message
        for _ in range(1 + 3):  # the look refused, then three more: it keeps trying...
            console.looks.get(timeout=10)
    assert [type(event) for event in console.until(Back)] == [Back]  # ...without saying it again
