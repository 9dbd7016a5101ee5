"""A board's console output as lines: the bytes split, colour codes read as ESP-IDF log levels.

ESP-IDF's logging prints ``<colour>L (<time>) <tag>: <message><reset>``: L is E, W, I, D or V,
the colour red, brown, green or none (components/log, esp_log.h's LOG_FORMAT and LOG_COLOR_x),
the time milliseconds since boot or a wall-clock time. A panic's ``Backtrace: PC:SP …`` line
carries the program counters to decode. Nothing here blocks or reads a port: bytes in, lines
out (:mod:`espdfu.consoles.health` reads them).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_LINE = 4096
"""Characters kept of a line before it is cut: a console that never sends a newline (binary
garbage, a wrong baud rate) still yields lines, and memory stays bounded."""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOG = re.compile(r"^([EWIDV]) \((\d+|[\d:.]+)\) ([^:]*): ")
_BACKTRACE = re.compile(r"(0x[0-9a-fA-F]{8}):0x[0-9a-fA-F]{8}")


class Level(enum.Enum):
    """ESP-IDF's log levels, by the letter that starts a line."""

    ERROR = "E"
    WARN = "W"
    INFO = "I"
    DEBUG = "D"
    VERBOSE = "V"


@dataclass(frozen=True, slots=True)
class Line:
    """One console line, without its colour codes or line end."""

    text: str
    at: float
    """When its last byte arrived (the caller's clock)."""
    level: Level | None = None
    tag: str = ""
    cut: bool = False
    """The line went on past :data:`MAX_LINE` characters; the rest is the next line."""

    @property
    def backtrace(self) -> tuple[int, ...]:
        """The program counters of a ``Backtrace:`` line, outermost last."""
        if not self.text.startswith("Backtrace:"):
            return ()
        return tuple(int(pc, 16) for pc in _BACKTRACE.findall(self.text))


def parse(text: str, at: float, cut: bool = False) -> Line:
    """A line of text as the board printed it (colour codes and all)."""
    plain = _ANSI.sub("", text).replace("\x1b", "\ufffd")  # a lone ESC moves no cursor
    match = _LOG.match(plain)
    if match is None:
        return Line(plain, at, cut=cut)
    return Line(plain, at, Level(match[1]), match[3], cut)


@dataclass
class Splitter:
    """Bytes as they arrive → whole lines; a line is held until its newline (or MAX_LINE)."""

    _pending: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes, at: float) -> Iterator[Line]:
        self._pending += data
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                if len(self._pending) < MAX_LINE:
                    return
                chunk, self._pending = self._pending[:MAX_LINE], self._pending[MAX_LINE:]
                yield parse(_text(chunk), at, cut=True)
                continue
            if end > MAX_LINE:
                end = MAX_LINE
                chunk, self._pending = self._pending[:end], self._pending[end:]
                yield parse(_text(chunk), at, cut=True)
                continue
            chunk, self._pending = self._pending[:end], self._pending[end + 1 :]
            yield parse(_text(chunk), at)

    def flush(self, at: float) -> Iterator[Line]:
        """The part line left when the port closes (a board reset mid-line)."""
        if self._pending:
            chunk, self._pending = self._pending, bytearray()
            yield parse(_text(chunk), at)


def _text(chunk: bytes | bytearray) -> str:
    """Bytes as text: UTF-8 where it is, control characters other than tab shown as U+FFFD
    (ESC too, once :func:`parse` has taken the colour codes out), so that garbage never moves
    a terminal's cursor."""
    text = bytes(chunk).rstrip(b"\r").decode("utf-8", errors="replace")
    return text.translate(_CONTROLS)


_CONTROLS = dict.fromkeys(
    (*range(0x00, 0x09), *range(0x0A, 0x1B), *range(0x1C, 0x20), 0x7F), "\ufffd"
)
