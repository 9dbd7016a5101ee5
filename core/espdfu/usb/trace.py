"""A flash's USB requests, their answers and the flasher's decisions, as JSON lines.

What ``dfu-util -v -v -v`` prints, kept for a bug report from a board no test has seen: every
control transfer of the flash (request, wValue, wIndex, length, the data's first bytes, the
answer, how long it took, how it failed), the descriptors read, and each decision (the DETACH
wait, the transfer size, the erase allowances, the poll waits, retries). A flash gets a
:class:`TraceSink` (``FlashOptions.trace``); without one nothing is wrapped, timed or written,
so tracing costs nothing when off.

The format (docs/cli.md, "espdfu trace"), one JSON object a line:

- every line: ``t`` (seconds since the trace began, to the microsecond), ``event``, and
  ``board`` (the USB port path) on every line but the first, so that the lines of boards
  flashed at once can share a file;
- the first line: ``{"t": 0, "event": "trace", "format": 1, "espdfu": VERSION, "started":
  ISO-8601 UTC}``;
- ``"event": "request"``: ``request`` (the DFU request's name, or the standard request's),
  ``type`` (bmRequestType), ``code`` (bRequest), ``value``, ``index``, ``length`` (wLength),
  ``timeout_ms``, ``data`` (the first 16 bytes sent, hex) and ``data_len``, ``answer`` (the
  bytes received, hex, for a device-to-host request), ``ms`` (the request's time), and
  ``error`` ("Stalled: ...") when it failed;
- every other event names a decision or what was seen, with its own fields (``board``:
  the descriptors; ``detach``, ``back``, ``transfer_size``, ``erase_allowance``,
  ``poll_wait``, ``attempt``, ``failed``, ``result``, …).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from ..errors import EspdfuError, InputError
from .protocol import ProtocolError, Request, StatusReply

FORMAT = 1
DATA_SHOWN = 16
"""Of the data a request sends, the bytes a trace keeps (the length is always kept)."""
KEEP_TRACES = 30
"""Trace files a :class:`TraceFolder` keeps: the newest, the others are deleted."""

Control = Callable[[int, int, int, int, "bytes | memoryview", int, int], bytes]
"""(request type, request, value, index, data out, length, timeout ms) → data in: a transport's
control transfer (:mod:`espdfu.usb.transport`)."""

_STANDARD = {0x00: "GET_STATUS", 0x06: "GET_DESCRIPTOR"}
_CLASS = 0x20


class BoardTrace:
    """The lines of one board's flash: where they go, with the board's port path on each."""

    def __init__(self, writer: _Writer, board: str, owned: bool) -> None:
        self._writer = writer
        self.board = board
        self._owned = owned

    def event(self, event: str, **fields: Any) -> None:
        """A decision or something seen, with what it was decided on."""
        self._writer.write({"event": event, "board": self.board, **fields}, flush=True)

    def traced(self, control: Control) -> Control:
        """``control`` with every transfer it makes written down, answer or failure."""
        clock, write, board = time.perf_counter, self._writer.write, self.board

        def control_traced(
            request_type: int, request: int, value: int, index: int, data: bytes | memoryview,
            length: int, timeout: int,
        ) -> bytes:  # fmt: skip
            line: dict[str, Any] = {
                "event": "request", "board": board, "request": _name(request_type, request),
                "type": request_type, "code": request, "value": value, "index": index,
                "length": length, "timeout_ms": timeout,
            }  # fmt: skip
            if data:
                line["data"] = bytes(data[:DATA_SHOWN]).hex()
                line["data_len"] = len(data)
            start = clock()
            try:
                answer = control(request_type, request, value, index, data, length, timeout)
            except Exception as error:
                line["ms"] = round((clock() - start) * 1000, 3)
                line["error"] = f"{type(error).__name__}: {error}"
                write(line, flush=True)
                raise
            line["ms"] = round((clock() - start) * 1000, 3)
            if request_type & 0x80:
                line["answer"] = answer.hex()
            write(line, flush=False)
            return answer

        return control_traced

    def close(self) -> None:
        if self._owned:
            self._writer.close()


class TraceSink(Protocol):
    """Where traced flashes write: :class:`TraceFile` or :class:`TraceFolder`."""

    @property
    def where(self) -> str:
        """Where the traces go, in words for the log."""

    def open(self, board: str) -> BoardTrace:
        """The trace of one flash of the board at port path ``board`` (closed when it ends);
        raises :class:`~espdfu.errors.EspdfuError` when it cannot be written."""


class TraceFile:
    """One file for every board of a command (``espdfu flash --trace FILE``): each line names
    its board, and lines from boards flashed at once are whole, never interleaved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = _Writer.create(path)

    @property
    def where(self) -> str:
        return str(self.path)

    def open(self, board: str) -> BoardTrace:
        return BoardTrace(self._writer, board, owned=False)

    def close(self) -> None:
        self._writer.close()


class TraceFolder:
    """A file for each flash in ``folder`` (the app's setting), the newest ``keep`` kept."""

    def __init__(self, folder: Path, keep: int = KEEP_TRACES) -> None:
        self.folder = folder
        self.keep = keep
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"{self.folder} (a file per flash, the newest {self.keep} kept)"

    def open(self, board: str) -> BoardTrace:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise EspdfuError(
                    f"The flash was not traced: cannot create {self.folder} "
                    f"({error.strerror or error})."
                ) from None
            writer = _Writer.create(self.folder / f"{stamp}-{board}.jsonl")
            for old in trace_files(self.folder)[self.keep :]:
                old.unlink(missing_ok=True)
        return BoardTrace(writer, board, owned=True)


def trace_files(folder: Path) -> list[Path]:
    """The trace files in ``folder``, newest first (none when it does not exist)."""
    try:
        found = [path for path in folder.iterdir() if path.suffix == ".jsonl"]
    except OSError:
        return []
    return sorted(found, key=lambda path: path.name, reverse=True)


class _Writer:
    """One trace file: its lines written whole under a lock, timed from its first line."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._lock = threading.Lock()
        self._start = time.perf_counter()
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.write({"event": "trace", "format": FORMAT, "espdfu": _version(), "started": started})

    @classmethod
    def create(cls, path: Path) -> _Writer:
        try:
            file = path.open("w", encoding="utf-8")  # closed by close()
        except OSError as error:
            raise InputError(
                f"Cannot write the trace to {path}: {error.strerror or error}.",
                "Name a file in a folder you can write to.",
            ) from None
        return cls(file)

    def write(self, line: dict[str, Any], flush: bool = True) -> None:
        text = json.dumps({"t": round(time.perf_counter() - self._start, 6), **line})
        with self._lock:
            if self._file.closed:
                return
            self._file.write(text + "\n")
            if flush:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _version() -> str:
    """espdfu's version as installed (this package does not import the top one's API).
    importlib.metadata is imported here, when a trace starts: it costs every command 14 ms
    (half a second in an emulated guest)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("espdfu")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _name(request_type: int, request: int) -> str:
    if request_type & 0x60 == _CLASS:
        try:
            return Request(request).name
        except ValueError:
            return f"class request {request}"
    return _STANDARD.get(request, f"request {request}")


# --- reading a trace --------------------------------------------------------------------------


def read_trace(path: Path) -> Iterator[dict[str, Any]]:
    """The lines of the trace at ``path``; an :class:`InputError` names the first bad one."""
    try:
        with path.open(encoding="utf-8") as file:
            for number, text in enumerate(file, 1):
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    line = None
                if not isinstance(line, dict) or "event" not in line or "t" not in line:
                    raise InputError(
                        f"{path}, line {number}: this is not a line of an espdfu trace.",
                        "Give the file `espdfu flash --trace FILE` wrote.",
                    )
                yield line
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not text"
        raise InputError(f"Cannot read the trace {path}: {reason or error}.") from None


def readable(lines: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Each line of a trace as a person reads it: time, board, then what happened."""
    for line in lines:
        event = line["event"]
        head = f"{line['t']:10.6f} {line.get('board', ''):<8}"
        if event == "request":
            yield f"{head} {_request_text(line)}"
        elif event == "trace":
            yield f"{head} trace of espdfu {line.get('espdfu')}, started {line.get('started')}"
        else:
            fields = {k: v for k, v in line.items() if k not in ("t", "board", "event")}
            first, *more = _fields(event, fields, " " * (len(head) + 1))
            yield f"{head} {first}"
            yield from more


def _request_text(line: dict[str, Any]) -> str:
    """``DNLOAD wValue=3 wIndex=0 wLength=64 [e9 03 …] → 0.21 ms ok``."""
    data = line.get("data")
    sent = (
        f" [{_spaced(data)}{' …' if line.get('data_len', 0) > DATA_SHOWN else ''}]" if data else ""
    )
    text = (
        f"{line['request']:<14} bmRequestType=0x{line['type']:02x} wValue={line['value']} "
        f"wIndex={line['index']} wLength={line['length']}{sent}"
    )
    outcome = line.get("error") or "ok"
    answer = line.get("answer")
    if answer is not None:
        outcome = f"{outcome} ← [{_spaced(answer)}]{_status_text(line['request'], answer)}"
    return f"{text} → {line['ms']:.3f} ms {outcome}"


def _status_text(request: str, answer: str) -> str:
    """A GETSTATUS answer decoded: `` OK dfuDNLOAD-IDLE poll 0 ms``."""
    if request != Request.GETSTATUS.name:
        return ""
    try:
        reply = StatusReply.decode(bytes.fromhex(answer))
    except (ProtocolError, ValueError):
        return " (not a status)"
    return f" {reply.status.label} {reply.state.label} poll {reply.poll_timeout_ms} ms"


def _spaced(hex_text: str) -> str:
    return " ".join(hex_text[i : i + 2] for i in range(0, len(hex_text), 2))


def _fields(name: str, fields: dict[str, Any], indent: str) -> Iterator[str]:
    """``name: key=value …`` on one line, each table (descriptors, an interface) on its own
    line below, indented."""
    tables = {key: value for key, value in fields.items() if _is_table(value)}
    plain = " ".join(f"{key}={_value(value)}" for key, value in fields.items() if key not in tables)
    yield f"{name}: {plain}" if plain else name
    for key, value in tables.items():
        rows = value if isinstance(value, list) else [value]
        for number, row in enumerate(rows):
            label = f"{key} {number}" if isinstance(value, list) else key
            yield from (indent + text for text in _fields(label, row, "  "))


def _is_table(value: object) -> bool:
    """A dict, or a list of them (an interface each): shown on lines of their own."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(item, dict) for item in value)
    return isinstance(value, dict)


def _value(value: object) -> str:
    return value if isinstance(value, str) and value and " " not in value else json.dumps(value)
