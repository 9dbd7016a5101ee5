"""What a virtual board's application prints, through a pseudo-terminal any serial monitor opens.

A board whose app runs (RESET without BOOT, or an ``app`` board plugged in) prints the ROM's
banner, the 2nd-stage bootloader's and ESP-IDF's start-up, naming the image it runs, then one
line a second (:func:`story_line`). A board told to misbehave (:data:`APPS`) prints what real
boards print then (tests/core/consoles/logs/README.md): a panic report, an assert at start-up,
the bootloader's refusal, the ROM's ``invalid header``, a brownout, each followed by the reset
it causes and the next boot with that reset's reason; or a sketch's own lines, or nothing
after start-up. The ROM's lines are the chips' own (``ESP-ROM:esp32s2-rc4-20191025``,
``ESP-ROM:esp32s3-20210327``); the app's information is ESP-IDF's, from the image's own
esp_app_desc_t (``ELF file SHA256:  3e4a2b1c0d9e8f7a...`` tells which build runs). Its port
holds the output until a host opens it (:class:`Firmware`).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import os
import select
import threading
import time
from collections.abc import Iterable, Iterator

from ..chips import Chip
from ..files.espimage import AppDesc, read_image

SUPPORTED = hasattr(os, "openpty") and hasattr(select, "poll")
"""Pseudo-terminals exist on Linux and macOS; on Windows virtual boards have no console."""
LINE_INTERVAL_S = 1.0
SETTLE_S = 0.3
CHATTY_LINES_S = 100
"""How fast a chatty app prints (the spec word ``chatty``: a console's benchmark)."""
HELD_LINES = 1000
_TICK_S = 0.05


def story_line(n: int) -> tuple[str, str]:
    """The app's ``n``-th line after start-up (its level and text): a thermometer that reads a
    sensor once a second. A user can follow it: a warning that says what is not set up, a
    failure that mends itself on the next line, debug and verbose lines now and then; short
    enough for a panel's line at 80 columns."""
    if n == 0:
        return "\x1b[0;32mI", "app: sensor ready (BME280)"
    if n == 1:
        return "\x1b[0;33mW", "app: no Wi-Fi set; readings kept here"
    if n % 30 == 17:
        return "\x1b[0;31mE", "app: sensor timeout; retrying"
    if n % 30 == 18:
        return "\x1b[0;32mI", "app: sensor back"
    if n % 10 == 5:
        return "D", f"app: heap {180_000 - n % 7 * 64} B free"
    if n % 30 == 9:
        return "V", f"app: sensor raw 0x{0x6B00 + n * 37 % 256:04x}"
    return "\x1b[0;32mI", f"app: temperature {21 + (n * 7 % 11 - 5) / 10:.1f} °C"


def app_info(app: bytes | None) -> AppDesc:
    """What the app says of itself at start-up: its image's esp_app_desc_t. For bytes without
    one (the tests' random images, or nothing flashed), a stand-in whose ELF SHA-256 is the
    image's own, so that which image runs can still be told (a real app always has one)."""
    image = read_image(app or b"", app=True)
    if image is not None and image.app is not None:
        return image.app
    return AppDesc(
        "unknown", "1", "v5.3", "Jan  1 2026", "00:00:00", hashlib.sha256(app or b"").digest()
    )


APPS = (
    "idf", "panic-once", "arduino", "panic", "bootassert", "refuse", "blank", "brownout", "quiet"
)  # fmt: skip
"""What a virtual board's firmware does (the spec words of :mod:`espdfu.sim.spec`): ``idf``, an
ESP-IDF app that logs a line a second; ``panic-once``, the same app panicking once,
:data:`PANIC_ONCE_AT` lines after its start, and running on after the reboot; ``arduino``, a
sketch that prints its own lines and none of ESP-IDF's; ``panic``, an app that panics in
``app_main`` and reboots; ``bootassert``, ESP-IDF's start-up failing an assert at every boot;
``refuse``, a 2nd-stage bootloader that refuses the app and resets; ``blank``, a flash the ROM
finds no bootloader in, until its watchdog resets the chip; ``brownout``, an app whose power
dips as it starts its radio; ``quiet``, an app that logs nothing after its start-up."""
TROUBLES = ("panic", "bootassert", "refuse", "blank", "brownout")
"""The firmwares that never get to run: each boot ends in a reset, over and over."""
PANIC_ONCE_AT = 25
"""The line of ``panic-once``'s story a panic takes the place of: late enough to read as the
panic of an app that ran (not a crash at boot), soon enough for someone trying the demo."""
REBOOT_S = 1.0
"""From a boot's last line to the reset after it (the screenshots make it long: one boot)."""

_ROMS = {
    "esp32s2": ("ESP-ROM:esp32s2-rc4-20191025", "Build:Oct 25 2019"),
    "esp32s3": ("ESP-ROM:esp32s3-20210327", "Build:Mar 27 2021"),
}
POWERON = "0x1 (POWERON)"
_NEXT_RESET = {
    "panic": "0xc (RTC_SW_CPU_RST)",  # esp_restart after the panic's "Rebooting..."
    "panic-once": "0xc (RTC_SW_CPU_RST)",
    "bootassert": "0xc (RTC_SW_CPU_RST)",
    "refuse": "0x3 (RTC_SW_SYS_RST)",  # bootloader_reset() after "No bootable app partitions"
    "blank": "0x7 (TG0WDT_SYS_RST)",  # the ROM's watchdog
    "brownout": "0x3 (RTC_SW_SYS_RST)",  # ESP-IDF's brownout handler restarts by software
}
"""The reason the ROM prints at the boot after each trouble (tests/core/consoles/logs/README.md)."""
_LOADS = {  # the 2nd-stage bootloader's segments and entry point, as ESP-IDF v5.3 builds them
    "esp32s2": ("load:0x3ffe6100,len:0x17a4", "load:0x4004b000,len:0xc70",
                "load:0x4004f000,len:0x2dd8", "entry 0x4004b1ec"),
    "esp32s3": ("load:0x3fce2810,len:0x178c", "load:0x403c8700,len:0x4",
                "load:0x403c8704,len:0xcb8", "load:0x403cb700,len:0x2db0", "entry 0x403c8928"),
}  # fmt: skip
_GREEN, _RED, _END = "\x1b[0;32m", "\x1b[0;31m", "\x1b[0m"


def _info(ms: int, text: str) -> str:
    return f"{_GREEN}I ({ms}) {text}{_END}"


def _error(ms: int, text: str) -> str:
    return f"{_RED}E ({ms}) {text}{_END}"


def rom_lines(chip: Chip, reset: str = POWERON, *, loads: bool = True) -> list[str]:
    """The ROM's lines at a reset for ``reset`` (``0xc (RTC_SW_CPU_RST)``), up to its hand-over
    to the 2nd-stage bootloader (``loads``; else up to where it looks for it)."""
    banner, build = _ROMS.get(chip.name, (f"ESP-ROM:{chip.name}", "Build:Jan  1 2020"))
    lines = [banner, build, f"rst:{reset},boot:0x8 (SPI_FAST_FLASH_BOOT)"]
    if reset != POWERON:
        lines.append("Saved PC:0x40049a7e")  # printed after every reset but power-on
    if loads:
        lines += ["SPIWP:0xee", "mode:DIO, clock div:1", *_LOADS.get(chip.name, ())]
    return lines


_DOWNLOAD_BOOT = {"esp32s2": "DOWNLOAD(USB/UART0/1/SPI)", "esp32s3": "DOWNLOAD(USB/UART0)"}
"""The strapping the ROM names when GPIO0 was low at reset (tests/core/consoles/logs/README.md)."""


def download_lines(chip: Chip) -> list[str]:
    """The ROM's lines on its UART as it starts in download mode (GPIO0 low at reset)."""
    banner, build = _ROMS.get(chip.name, (f"ESP-ROM:{chip.name}", "Build:Jan  1 2020"))
    boot = _DOWNLOAD_BOOT.get(chip.name, "DOWNLOAD(USB/UART0)")
    return [banner, build, f"rst:{POWERON},boot:0x0 ({boot})", "waiting for download"]


def bootloader_lines(chip: Chip, version: str = "v5.3") -> list[str]:
    """The 2nd-stage bootloader up to where it checks the factory app's image."""
    return [
        _info(24, f"boot: ESP-IDF {version} 2nd stage bootloader"),
        _info(25, "boot: compile time Dec  7 2026 10:00:00"),
        _info(27, "boot: chip revision: v0.0"),
        _info(31, f"boot.{chip.name}: SPI Speed      : 80MHz"),
        _info(36, f"boot.{chip.name}: SPI Mode       : DIO"),
        _info(41, f"boot.{chip.name}: SPI Flash Size : 4MB"),
        _info(46, "boot: Partition Table:"),
        _info(50, "boot: ## Label            Usage          Type ST Offset   Length"),
        _info(57, "boot:  0 nvs              WiFi data        01 02 00009000 00006000"),
        _info(65, "boot:  1 phy_init         RF data          01 01 0000f000 00001000"),
        _info(72, "boot:  2 factory          factory app      00 00 00010000 00100000"),
        _info(80, "boot: End of partition table"),
        _info(85, "esp_image: segment 0: paddr=00010020 vaddr=3f000020 size=0a4f0h ( 42224) map"),
    ]


def boot_lines(chip: Chip, app: bytes | None, reset: str = POWERON) -> list[str]:
    """What the board prints from RESET to app_main: the ROM's, the bootloader's and ESP-IDF's
    start-up lines, its application information as ESP-IDF v5.x prints it (esp_app_desc.c),
    from the image's own esp_app_desc_t."""
    desc = app_info(app)
    return [  # the bootloader's first and last lines only: a real one prints some 25 more,
        # which a panel would show as a flood (`· 20 lines/s`) for the 2 s after each boot
        *rom_lines(chip, reset),
        *bootloader_lines(chip)[:1],
        _info(120, "boot: Loaded app from partition at offset 0x10000"),
        _info(287, "app_init: Application information:"),
        _info(290, f"app_init: Project name:     {desc.project}"),
        _info(293, f"app_init: App version:      {desc.version}"),
        _info(296, f"app_init: Compile time:     {desc.date} {desc.time}"),
        _info(299, f"app_init: ELF file SHA256:  {desc.elf_prefix}..."),
        _info(302, f"app_init: ESP-IDF:          {desc.idf_version}"),
        _info(305, "main_task: Started on CPU0"),
        _info(310, "main_task: Calling app_main()"),
    ]


PANIC_LINES = [
    "Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.",
    "PC      : 0x40081234  PS      : 0x00060030  A0      : 0x800d1234  A1      : 0x3ffb0000",
    "EXCVADDR: 0x00000000",
    "",
    "Backtrace: 0x40081234:0x3ffb0000 0x400d1234:0x3ffb0020 0x40085678:0x3ffb0040",
    "",
    "ELF file SHA256: 2f8a6e41c0d95b73",
    "",
    "Rebooting...",
]
ASSERT_LINES = [
    _error(113, "spi_flash: Detected size(4096k) smaller than the size in the binary image "
           "header(8192k). Probe failed."),
    "",
    "assert failed: do_core_init startup.c:298 (flash_ret == ESP_OK)",
    "",
    "Backtrace: 0x40375a36:0x3fceb1d0 0x4037b5f1:0x3fceb1f0 0x40381a71:0x3fceb210",
    "",
    "ELF file SHA256: 5d07c2b83e6a1f94",
    "",
    "Rebooting...",
]  # fmt: skip
REFUSAL_LINES = [
    _error(93, "esp_image: Segment 0 0x3f000020-0x3f00a510 invalid: bad load address range"),
    _error(99, "boot: Factory app partition is not bootable"),
    _error(104, "boot: No bootable app partitions in the partition table"),
]


def bootloader_refusal(chip: Chip, app: bytes | None) -> list[str]:
    """What ESP-IDF's 2nd-stage bootloader prints refusing the flashed app, or [] when it boots
    it: another chip's image (bootloader_common_loader.c, tag ``boot_comm``), a corrupt one (the
    first fault :func:`~espdfu.files.espimage.read_image` finds, in esp_image_format.c's words
    where it has them), then bootloader_utility.c's two lines. Bytes that are no image at all
    (the tests' random stand-ins for an app) are booted: the simulator's assumption, where a
    real bootloader says ``invalid magic byte (nothing flashed here?)``."""
    image = read_image(app or b"", app=True)
    if image is None:
        return []
    if image.chip_id != chip.image_id:
        found = f"mismatch chip ID, expected {chip.image_id}, found {image.chip_id}"
        cause = _error(91, f"boot_comm: {found}")
    elif image.problems:
        cause = _error(93, f"esp_image: {image.problems[0]}")
    else:
        return []
    return [cause, *REFUSAL_LINES[1:]]


BROWNOUT_LINES = [
    _info(1000, "app: starting Wi-Fi"),
    "",
    "E BOD: Brownout detector was triggered",
]
ARDUINO_BANNER = ["", "Weather station 1.4 (sketch {project})", "arduino-esp32 v3.0.7"]


def arduino_line(n: int) -> str:
    """A sketch's ``n``-th line: Serial.printf, no ESP-IDF prefix."""
    if n % 10 == 9:
        return f"free heap: {250_000 - n % 7 * 128} bytes"
    return f"temperature: {21 + (n * 7 % 11 - 5) / 10:.1f} C, humidity: {40 + n * 3 % 9} %"


class Tty:
    """A console's pseudo-terminal: what a host opens (:attr:`port`), and the lines waiting
    to go out to it.

    ``holds``: like a USB CDC stack with a transmit buffer, what the app prints waits until a
    host has had the port open for :data:`SETTLE_S` (which covers pyserial's flush of the input
    at open), at most :data:`HELD_LINES` lines. That a real USB console holds its start-up
    output for a host is an assumption. Without ``holds``, a UART through a bridge: what is
    printed while no host has the port open is lost.
    """

    def __init__(self, *, holds: bool) -> None:
        import tty  # POSIX only, as pseudo-terminals are: see SUPPORTED

        self._master, slave = os.openpty()
        tty.setraw(slave)  # bytes as written: no echo, no newline translation
        self.port = os.ttyname(slave)
        """The serial port to open (/dev/pts/N)."""
        os.close(slave)  # from now on the master sees POLLHUP while no host has it open
        os.set_blocking(self._master, False)
        self._poller = select.poll()
        self._poller.register(self._master, select.POLLHUP)
        self._holds = holds
        self._held: collections.deque[bytes] = collections.deque(maxlen=HELD_LINES)
        self._open_since: float | None = None
        self._lock = threading.Lock()

    def print(self, line: str) -> None:
        self._held.append(line.encode() + b"\r\n")

    def send(self, now: float) -> None:
        """What is held goes out (when ``holds``, once a host has had the port open for
        SETTLE_S); without a host, a UART's is lost."""
        with self._lock:
            if any(mask & select.POLLHUP for _, mask in self._poller.poll(0)):
                self._open_since = None
                if not self._holds:
                    self._held.clear()
                return
            if self._open_since is None:
                self._open_since = now
            if self._holds and now - self._open_since < SETTLE_S:
                return
            while self._held:
                try:
                    os.write(self._master, self._held[0])
                except BlockingIOError:  # the host reads slower than the app prints: held
                    return
                except OSError:
                    return
                self._held.popleft()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            os.close(self._master)


class Script:
    """What a board's firmware prints from a reset on, line by line with the time until the
    next, boot after boot: what :class:`Firmware` prints, and the real-USB tests' emulated
    boards through their bridges. ``kind`` is one of :data:`APPS`; an image the bootloader
    refuses is refused whatever the app would do."""

    def __init__(
        self, chip: Chip, app: bytes | None, kind: str = "idf", interval_s: float = LINE_INTERVAL_S
    ) -> None:
        if kind not in APPS:
            raise ValueError(f"no virtual firmware {kind!r}: one of {', '.join(APPS)}")
        self._refusal = bootloader_refusal(chip, app) or REFUSAL_LINES
        if kind not in TROUBLES and self._refusal is not REFUSAL_LINES:
            kind = "refuse"
        self._chip, self._app, self._kind = chip, app, kind
        self._interval_s = interval_s

    def __iter__(self) -> Iterator[tuple[str, float]]:
        """Each line the firmware prints, with the time until the next: boot after boot."""
        reset, kind = POWERON, self._kind  # RESET pressed, or plugged in
        while True:
            yield from self._boot(kind, reset)
            if kind == "panic-once":
                kind = "idf"  # after the panic's reboot it runs on
            elif kind not in TROUBLES:
                return
            reset = _NEXT_RESET[self._kind]

    def _boot(self, kind: str, reset: str) -> Iterator[tuple[str, float]]:
        """One boot, from the ROM's banner for ``reset``; for trouble, up to the next reset."""
        chip = self._chip
        if kind == "blank":  # the ROM finds no bootloader: it tries and tries, then its watchdog
            yield from _at_once(rom_lines(chip, reset, loads=False))
            yield from (("invalid header: 0xffffffff", 0.05) for _ in range(7))
            yield "invalid header: 0xffffffff", REBOOT_S
            return
        if kind == "arduino":  # the bootloader's and the app's log level is below info
            yield from _at_once(rom_lines(chip, reset))
            project = app_info(self._app).project
            yield from _at_once(line.format(project=project) for line in ARDUINO_BANNER)
            for n in itertools.count():
                yield arduino_line(n), self._interval_s
        if kind == "refuse":
            yield from _at_once([*rom_lines(chip, reset), *bootloader_lines(chip)])
            yield from _ending(self._refusal)
            return
        if kind == "bootassert":
            yield from _at_once([*rom_lines(chip, reset), *bootloader_lines(chip, "v4.4.6")])
            yield from _ending(ASSERT_LINES)
            return
        yield from _at_once(boot_lines(chip, self._app, reset))
        if kind == "quiet":
            return
        if kind in ("panic", "brownout"):
            yield from _ending(PANIC_LINES if kind == "panic" else BROWNOUT_LINES)
            return
        for n in itertools.count():
            if kind == "panic-once" and n == PANIC_ONCE_AT:
                yield from _ending(PANIC_LINES)
                return
            level, text = story_line(n)
            yield f"{level} ({1000 + n * 1000}) {text}\x1b[0m", self._interval_s


class Firmware:
    """The app running: a thread that prints its lines to a :class:`Tty` until stopped; the
    app's own USB console (a new one each run, gone when it stops) unless ``tty`` is given
    (a UART through a bridge, there whatever the chip does)."""

    def __init__(
        self,
        chip: Chip,
        app: bytes | None,
        *,
        kind: str = "idf",
        chatty: bool = False,
        tty: Tty | None = None,
    ) -> None:
        interval_s = 1 / CHATTY_LINES_S if chatty else LINE_INTERVAL_S
        self._script = Script(chip, app, kind, interval_s)
        self._own_tty = tty is None
        self.tty = tty or Tty(holds=True)
        self.port = self.tty.port
        """The serial port to open (/dev/pts/N)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="virtual-firmware")
        self._thread.start()

    def stop(self) -> None:
        """Power off, a reset or download mode: the app stops, and its own USB console goes
        away with it (a bridge's stays)."""
        self._stop.set()
        self._thread.join()
        if self._own_tty:
            self.tty.close()

    def _run(self) -> None:
        script = iter(self._script)
        due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            while due <= now:
                step = next(script, None)
                if step is None:  # it prints no more (and the loop waits for ever)
                    due = float("inf")
                    break
                line, pause = step
                self.tty.print(line)
                due += pause
            self.tty.send(now)
            self._stop.wait(_TICK_S)


def _at_once(lines: Iterable[str]) -> Iterator[tuple[str, float]]:
    return ((line, 0.0) for line in lines)


def _ending(lines: list[str]) -> Iterator[tuple[str, float]]:
    """A boot's last lines: then :data:`REBOOT_S` until the reset."""
    yield from _at_once(lines[:-1])
    yield lines[-1], REBOOT_S
