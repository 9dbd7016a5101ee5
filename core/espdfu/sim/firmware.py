"""What a virtual board's application prints, through a pseudo-terminal any serial monitor opens.

A board whose app runs (RESET without BOOT, or an ``app`` board plugged in) prints the ROM's
banner and ESP-IDF's start-up, naming the image it runs, then one line a second
(:func:`story_line`); a board told to panic prints ESP-IDF's panic report and reboots, over
and over. The ROM banners are the chips' own (``ESP-ROM:esp32s2-rc4-20191025``,
``ESP-ROM:esp32s3-20210327``); the line ``App image SHA256`` is the simulator's, so that a
test can tell which image runs. Its port holds the output until a host opens it (:class:`Firmware`).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import select
import threading
import time
from collections.abc import Iterator

from ..chips import Chip
from ..files.idfbuild import APP_DESC_AT, APP_DESC_MAGIC

_ROM_BANNERS = {"esp32s2": "ESP-ROM:esp32s2-rc4-20191025", "esp32s3": "ESP-ROM:esp32s3-20210327"}
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


def project_name(app: bytes) -> str:
    """The project name from the app's esp_app_desc_t (ESP-IDF's esp_app_format.h), if any."""
    desc = app[APP_DESC_AT : APP_DESC_AT + 80]
    if len(desc) < 80 or int.from_bytes(desc[:4], "little") != APP_DESC_MAGIC:
        return "unknown"
    return desc[48:80].split(b"\0")[0].decode("ascii", "replace") or "unknown"


def boot_lines(chip: Chip, app: bytes | None) -> list[str]:
    """What the board prints from RESET to app_main."""
    image = hashlib.sha256(app).hexdigest() if app else "none (nothing flashed)"
    return [
        _ROM_BANNERS.get(chip.name, f"ESP-ROM:{chip.name}"),
        "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
        "\x1b[0;32mI (25) boot: ESP-IDF v5.3 2nd stage bootloader\x1b[0m",
        f"\x1b[0;32mI (290) app_init: Project name:     {project_name(app or b'')}\x1b[0m",
        f"\x1b[0;32mI (295) app_init: App image SHA256: {image}\x1b[0m",
        "\x1b[0;32mI (310) main_task: Calling app_main()\x1b[0m",
    ]


PANIC_LINES = [
    "Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.",
    "PC      : 0x40081234  PS      : 0x00060030  A0      : 0x800d1234  A1      : 0x3ffb0000",
    "EXCVADDR: 0x00000000",
    "Backtrace: 0x40081234:0x3ffb0000 0x400d1234:0x3ffb0020 0x40085678:0x3ffb0040",
    "Rebooting...",
]


class Firmware:
    """The app's console: a pseudo-terminal, and a thread that prints to it until stopped.

    Like a USB CDC stack with a transmit buffer, it holds what the app prints until a host has
    the port open (for :data:`SETTLE_S`, which covers pyserial's flush of the input at open),
    and keeps at most :data:`HELD_LINES` lines meanwhile. That a real USB console holds its
    start-up output for a host is an assumption; a UART console loses it.
    """

    def __init__(
        self, chip: Chip, app: bytes | None, *, panic: bool = False, chatty: bool = False
    ) -> None:
        self._boot = boot_lines(chip, app)
        self._panic = panic
        self._interval_s = 1 / CHATTY_LINES_S if chatty else LINE_INTERVAL_S
        import tty  # POSIX only, as pseudo-terminals are: see SUPPORTED

        self._master, slave = os.openpty()
        tty.setraw(slave)  # bytes as written: no echo, no newline translation
        self.port = os.ttyname(slave)
        """The serial port to open (/dev/pts/N)."""
        os.close(slave)  # from now on the master sees POLLHUP while no host has it open
        os.set_blocking(self._master, False)
        self._poller = select.poll()
        self._poller.register(self._master, select.POLLHUP)
        self._held: collections.deque[bytes] = collections.deque(maxlen=HELD_LINES)
        self._open_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="virtual-firmware")
        self._thread.start()

    def stop(self) -> None:
        """Power off (or download mode): the port goes away, as a USB console does."""
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            os.close(self._master)

    def _run(self) -> None:
        script = self._script()
        due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            while due <= now:
                line, pause = next(script)
                self._held.append(line.encode() + b"\r\n")
                due += pause
            self._send(now)
            self._stop.wait(_TICK_S)

    def _script(self) -> Iterator[tuple[str, float]]:
        """Each line the app prints, with the time until the next."""
        n = 0
        while True:
            yield from ((line, 0.0) for line in self._boot)
            if self._panic:
                yield from ((line, 0.0) for line in PANIC_LINES[:-1])
                yield PANIC_LINES[-1], LINE_INTERVAL_S
                continue
            while True:
                level, text = story_line(n)
                yield f"{level} ({1000 + n * 1000}) {text.format(n=n)}\x1b[0m", self._interval_s
                n += 1

    def _send(self, now: float) -> None:
        """What is held goes out once a host has had the port open for SETTLE_S."""
        if any(mask & select.POLLHUP for _, mask in self._poller.poll(0)):
            self._open_since = None
            return
        if self._open_since is None:
            self._open_since = now
        if now - self._open_since < SETTLE_S:
            return
        while self._held:
            try:
                os.write(self._master, self._held[0])
            except BlockingIOError:  # the host reads slower than the app prints: held
                return
            except OSError:
                return
            self._held.popleft()
