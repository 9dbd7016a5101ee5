"""A virtual board's app and its console: a real pseudo-terminal read as any serial port."""

from __future__ import annotations

import hashlib
import queue
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import serial

from espdfu.consoles.health import SILENT_S, Health, RunState
from espdfu.consoles.lines import Line
from espdfu.consoles.ports import Back, ConsoleEvent, Gone, Reader, Refused, console_finder
from espdfu.files.dfufile import FlashFile
from espdfu.files.espimage import write_image
from espdfu.flashing.flasher import FlashOptions, flash
from espdfu.sim import VirtualBoard
from espdfu.usb.transport import Usb
from tests.helpers.boardworld import image, image_files, world

APP = write_image(0x0002, [(0x3F000020, bytes(range(256)) * 4)], entry=0x40080000)
CORRUPT = APP[:300] + bytes([APP[300] ^ 1]) + APP[301:]
S3_APP = write_image(0x0009, [(0x3F000020, bytes(range(256)) * 4)], entry=0x40080000)


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
    seen = console.until("ELF file SHA256")
    app = next(file for file in files if file.name not in ("bootloader.bin", "partition-table.bin"))
    assert isinstance(seen[0], Back)
    lines = [event.text for event in seen if isinstance(event, Line)]
    assert lines[0] == "ESP-ROM:esp32s2-rc4-20191025"
    elf = hashlib.sha256(app.data).hexdigest()[:16]  # random bytes: the image's own SHA-256
    assert lines[-1].endswith(f"app_init: ELF file SHA256:  {elf}...")
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


def plugged(spec: str, consoles: list[Console]) -> tuple[Console, VirtualBoard]:
    """The console of the one board ``spec`` names, plugged in, and the board."""
    w = world(spec)
    (path,) = w.paths
    console = Console(w.usb, path)
    consoles.append(console)
    return console, w.board(path)


def lines_in(events: list[ConsoleEvent]) -> list[Line]:
    return [event for event in events if isinstance(event, Line)]


def feed(health: Health, events: list[ConsoleEvent]) -> list[Line]:
    """The lines among ``events``, each read by ``health``."""
    lines = lines_in(events)
    for line in lines:
        health.see(line)
    return lines


def read(console: Console, health: Health, until: RunState, seconds: float = 15.0) -> list[Line]:
    """Feed the console's lines to ``health`` until it reads ``until``; the lines."""
    lines: list[Line] = []
    deadline = time.monotonic() + seconds
    while health.state is not until:
        left = deadline - time.monotonic()
        try:
            event = console.events.get(timeout=max(left, 0.0))
        except queue.Empty:
            raise AssertionError(f"not {until.value} but {health.state.value}: {lines}") from None
        if isinstance(event, Line):
            health.see(event)
            lines.append(event)
    return lines


def reasons(health: Health) -> list[str | None]:
    return [reset.name for reset in health.resets]


@pytest.mark.parametrize(
    ("spec", "state", "detail", "reason"),
    [
        ("esp32s3-app:panic", RunState.CRASHING, "LoadProhibited", "RTC_SW_CPU_RST"),
        ("esp32s2-app:bootassert", RunState.CRASHING, "startup.c:298", "RTC_SW_CPU_RST"),
        ("esp32s3-app:refuse", RunState.CANNOT_BOOT, "bad load address range", "RTC_SW_SYS_RST"),
        ("esp32s2-app:blank", RunState.CANNOT_BOOT, "invalid header: 0xffffffff", "TG0WDT_SYS_RST"),
        ("esp32s3-app:brownout", RunState.POWER, "Brownout detector was trig", "RTC_SW_SYS_RST"),
    ],
)  # fmt: skip
def test_a_firmware_in_trouble_reads_so_and_boots_again_with_the_reason_real_chips_print(
    consoles: list[Console], spec: str, state: RunState, detail: str, reason: str
) -> None:
    console, _ = plugged(spec, consoles)
    health = Health()
    read(console, health, state)
    assert detail in health.reading().words
    assert reasons(health) == ["POWERON"]  # plugged in
    for boot in (2, 3):  # the reset it causes, and again
        feed(health, console.until("rst:") + console.until(detail))
        assert len(health.resets) == boot
    assert reasons(health) == ["POWERON", reason, reason]
    assert health.state is state and detail in health.reading().words
    assert health.resets[-1].download is False
    assert detail in health.reading().words


def test_an_app_that_panics_once_reads_running_with_the_panic_kept(
    consoles: list[Console],
) -> None:
    """``panic-once`` (the demo's app board): its story, a panic in place of line 25, the
    reboot, and the story again with no second panic. Read 100 lines a second (``chatty``),
    each line is timed here at one a second, as the app prints them."""
    console, _ = plugged("esp32s2-app:panic-once:chatty", consoles)
    health = Health()
    events = console.until("Rebooting...") + console.until("sensor ready")
    events += console.until("sensor back")  # the story's line 18, after the reboot
    lines = [replace(line, at=float(n)) for n, line in enumerate(lines_in(events))]
    for line in lines:
        health.see(line)
    texts = [line.text for line in lines]
    assert sum(text.startswith("Guru Meditation Error") for text in texts) == 1
    assert texts.index("Rebooting...") > texts.index("I (25000) app: temperature 20.8 °C")
    assert reasons(health) == ["POWERON", "RTC_SW_CPU_RST"]
    reading = health.reading(lines[-1].at + 5)
    assert reading.state is RunState.RUNNING
    assert reading.words.startswith("running · panicked") and "(LoadProhibited)" in reading.words


def test_a_sketch_prints_its_own_lines_and_reads_as_running(consoles: list[Console]) -> None:
    console, _ = plugged("esp32s3-app:arduino", consoles)
    health = Health()
    lines = read(console, health, RunState.RUNNING)
    texts = [line.text for line in lines]
    assert texts[:3] == ["ESP-ROM:esp32s3-20210327", "Build:Mar 27 2021",
                         "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)"]  # fmt: skip
    assert texts[-1].startswith("Weather station")
    assert not any(line.level for line in lines)  # no ESP-IDF log line: not the bootloader's
    feed(health, console.until("temperature: "))
    assert health.state is RunState.RUNNING and reasons(health) == ["POWERON"]


def test_an_app_that_logs_nothing_reads_silent_once_its_silence_is_long(
    consoles: list[Console],
) -> None:
    console, _ = plugged("esp32s2-app:quiet", consoles)
    health = Health()
    lines = feed(health, console.until("main_task: Calling app_main()"))
    assert health.state is RunState.RUNNING
    with pytest.raises(queue.Empty):  # and nothing after
        while True:
            event = console.events.get(timeout=1.5)
            assert not isinstance(event, Line), event
    last = lines[-1].at
    assert health.reading(last + SILENT_S - 1).state is RunState.RUNNING
    assert health.reading(last + SILENT_S).words == "silent for 30 s"


def test_a_reset_of_a_healthy_board_is_one_boot(consoles: list[Console]) -> None:
    console, board = plugged("esp32s3-app", consoles)
    console.until("app: sensor ready")
    board.press_reset()
    console.until(Gone)
    health = Health()
    lines = feed(health, console.until("app: no Wi-Fi set"))
    assert [(reset.code, reset.name) for reset in health.resets] == [(1, "POWERON")]
    assert health.state is RunState.RUNNING
    assert sum("ESP-ROM:" in line.text for line in lines) == 1
    texts = [line.text for line in lines]
    assert texts.index("entry 0x403c8928") < next(
        n for n, text in enumerate(texts) if "2nd stage bootloader" in text
    )


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


@pytest.mark.parametrize(
    ("app", "cause"),
    [
        (
            CORRUPT,
            "E (93) esp_image: Checksum failed. Calculated 0x",
        ),
        (S3_APP, "E (91) boot_comm: mismatch chip ID, expected 2, found 9"),
    ],
    ids=["a corrupt image", "another chip's image"],
)
def test_an_image_the_bootloader_refuses_does_not_boot_and_it_says_why(
    consoles: list[Console], app: bytes, cause: str
) -> None:
    """Flashed with --force: the virtual bootloader checks the image as ESP-IDF's does, says
    why in its words, and the reset it causes starts it over."""
    w = world("esp32s2")
    (path,) = w.paths
    files = [FlashFile(0x10000, "app.bin", app)]
    assert flash(w.usb, path, image(files=files), options=FlashOptions(force=True)).ok
    console = Console(w.usb, path)
    consoles.append(console)
    w.board(path).press_reset()
    health = Health()
    lines = read(console, health, RunState.CANNOT_BOOT)
    lines += lines_in(console.until("No bootable app partitions"))
    texts = [line.text for line in lines]
    assert any(text.startswith(cause) for text in texts), texts
    assert "E (104) boot: No bootable app partitions in the partition table" in texts
    assert cause.split(": ", 1)[1] in health.reading().words  # quoted: cannot boot: "…"
    assert not any("app_init" in text for text in texts)  # no app started
