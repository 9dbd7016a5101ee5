"""The boards' consoles fed to the workbench: each read while its app runs, reported in batches.

A board's console is read only when the workbench asks for it: not while the board is in
download or DFU mode (the ROM's own CDC port speaks the serial bootloader, not the app) and
never across a flash (the port is closed before the flash starts). Lines are not kept here:
they go out in batches, the first line of a burst at once and the rest at most every
:data:`BATCH_S` per board, so that many boards printing fast cost a front end a bounded number
of redraws; a front end keeps what it wants (the app, a scrollback). Panic backtraces are
decoded into function and file:line lines from the project's ELF, when there is one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..consoles.health import Health, Note, RunState
from ..consoles.lines import Line
from ..consoles.ports import (
    ActionDone,
    Back,
    ConsoleEvent,
    Gone,
    PortAction,
    PortError,
    Reader,
    Refused,
)
from ..errors import InputError
from ..files.backtrace import Symbols
from ..loops import Worker

BATCH_S = 0.2
TAIL_LINES = 2
"""The last lines a view carries (what a panel shows)."""
_RATE_WINDOW_S = 2.0
RECHECK_S = 1.0
"""How often a quiet console's state is read again (it may have become silent)."""
FAST_LINES_S = 10.0
"""From this rate on, a view says how fast the app prints."""


@dataclass(frozen=True)
class ConsoleView:
    """A board's console as a front end shows it."""

    device: str | None = None
    """The port open now; None while the console is not there."""
    state: RunState = RunState.UNKNOWN
    detail: str = ""
    """Why, short: a panic's reason, the refusal quoted."""
    note: Note | None = None
    """Trouble the app got over (a panic it rebooted from, a task-watchdog warning), until the
    user looks (:meth:`ConsoleFeed.seen`)."""
    said: str = ""
    """The state in a person's words, with its detail and note, as read when the view was made."""
    elf: str = ""
    """The running build as its start-up named it: its ELF's SHA-256, first digits ("": not said
    since the last reset)."""
    tail: tuple[Line, ...] = ()
    lines: int = 0
    """Lines read since the workbench started reading this board."""
    rate: float = 0.0
    """Lines per second lately."""
    problem: str = ""
    """Why the port is there but cannot be opened (another program holds it, permission)."""
    hint: str = ""
    """What to do about the problem."""

    @property
    def open(self) -> bool:
        return self.device is not None

    @property
    def rate_words(self) -> str:
        """The rate in words when the app prints fast enough for it to matter (a flood)."""
        return f"{self.rate:.0f} lines/s" if self.rate >= FAST_LINES_S else ""

    @property
    def warned(self) -> bool:
        """The app runs, with trouble behind it the user has not looked at."""
        return self.note is not None and self.state in (RunState.RUNNING, RunState.BOOTING)

    @property
    def words(self) -> str:
        """The board's state in a few words: "app running · panicked 40 s ago (LoadProhibited)",
        "crashing at boot: assert failed in startup.c:298", "console gone"."""
        if self.problem:
            return self.problem
        if self.device is None:
            return "console gone" if self.lines else "no console yet"
        if self.state is RunState.UNKNOWN:
            return "app: no output yet"
        said = self.said or self.state.value
        return f"app {said}" if self.state in _APP_STATES else said


_APP_STATES = frozenset({RunState.BOOTING, RunState.RUNNING, RunState.PANICKED, RunState.SILENT})
"""States said of the app ("app running"); the others are the board's ("cannot boot: …")."""

Deliver = Callable[[str, ConsoleView, tuple[Line, ...]], None]
"""(port path, the console now, the lines since the last batch) — always on one thread."""


@dataclass
class _Console:
    reader: Reader
    health: Health = field(default_factory=Health)
    view: ConsoleView = ConsoleView()
    pending: list[Line] = field(default_factory=list)
    dirty: bool = False
    counts: deque[tuple[float, int]] = field(default_factory=deque)
    """(when, lines) of the recent batches, for the rate."""
    printed: int = 0
    """Lines of the running app since the last batch: a boot's burst (the ROM's, the
    bootloader's, start-up's 20 to 40 lines at once) is no flood."""


class ConsoleFeed:
    """One :class:`~espdfu.consoles.ports.Reader` per board being read, and one thread that hands
    their lines and changes to ``deliver`` in batches, in order."""

    def __init__(
        self,
        find: Callable[[str], Callable[[], str | None]],
        deliver: Deliver,
        *,
        elf: Callable[[], Path | None] = lambda: None,
        batch_s: float = BATCH_S,
    ) -> None:
        self._find = find
        self._deliver = deliver
        self._elf = elf
        self._symbols: tuple[Path, float, Symbols] | None = None
        self.batch_s = batch_s
        self._lock = threading.Lock()
        self._consoles: dict[str, _Console] = {}
        self._stopping: dict[str, Reader] = {}
        self._wake = threading.Event()
        self._pump = Worker(self._run, "espdfu-consoles")
        """Started with the first reader."""

    def read(self, path: str, on: bool) -> None:
        """Read the console of the board at ``path`` (it is looked for until it is there), or
        stop reading it. Never blocks: a reader told to stop closes its port by itself within
        a tenth of a second; :meth:`release` waits for that."""
        with self._lock:
            if self._pump.stopping or (path in self._consoles) == on:
                return
            if on:
                if (closing := self._stopping.pop(path, None)) is not None:
                    closing.stop()  # its port closed first: opened again, it would be "in use"
                reader = Reader(lambda event: self._on_event(path, event), self._find(path))
                self._consoles[path] = _Console(reader)
                reader.start()
                if not self._pump.started:
                    self._pump.start()
            else:
                reader = self._consoles.pop(path).reader
                reader.stop(wait=False)
                self._stopping[path] = reader

    def act(self, path: str, action: PortAction, done: ActionDone) -> None:
        """Do ``action`` with the console port of ``path`` between two reads, once it is open
        (:meth:`~espdfu.consoles.ports.Reader.act`); ``done`` is told how it went."""
        with self._lock:
            console = self._consoles.get(path)
        if console is None:
            done(PortError(f"The console of {path} is not read, so nothing was done with it."))
            return
        console.reader.act(action, done)

    def release(self, path: str) -> None:
        """Wait until the port of ``path`` is closed (before a flash, which must not share it)."""
        self.read(path, False)
        with self._lock:
            reader = self._stopping.pop(path, None)
        if reader is not None:
            reader.stop()

    def close(self) -> None:
        """Stop every reader and the batching thread; nothing is delivered once this returns."""
        with self._lock:
            self._pump.stop(wait=False)
            readers = [c.reader for c in self._consoles.values()] + list(self._stopping.values())
            self._consoles.clear()
            self._stopping.clear()
        self._wake.set()
        for reader in readers:
            reader.stop()
        self._pump.join()

    # --- on the readers' threads --------------------------------------------------------------

    def _on_event(self, path: str, event: ConsoleEvent) -> None:
        decoded = self._decode(event) if isinstance(event, Line) and event.backtrace else []
        with self._lock:
            console = self._consoles.get(path)
            if console is None:
                return
            view = console.view
            if isinstance(event, Line):
                if console.health.see(event) is RunState.RUNNING:
                    console.printed += 1
                console.pending += [event, *decoded]
            elif isinstance(event, Back):
                view = ConsoleView(device=event.device, lines=view.lines)
                console.health.reopened(event.at)  # a panic before the reset is still told
            elif isinstance(event, Gone):
                view = ConsoleView(lines=view.lines)
            elif isinstance(event, Refused):
                error = event.error
                view = ConsoleView(problem=error.message, hint=error.hint, lines=view.lines)
            console.view = view
            if not console.dirty:
                console.dirty = True
                self._wake.set()

    def _decode(self, line: Line) -> list[Line]:
        """The backtrace's places, one line each, from the project's ELF (none without one)."""
        symbols = self._load_symbols()
        if symbols is None:
            return []
        return [Line(f"  {symbols.lookup(pc)}", line.at, line.level, "backtrace") for pc in
                line.backtrace]  # fmt: skip

    def _load_symbols(self) -> Symbols | None:
        """The ELF's symbols, read again only when the build changed it."""
        elf = self._elf()
        try:
            stamp = elf.stat().st_mtime if elf is not None else None
        except OSError:
            stamp = None
        if elf is None or stamp is None:
            return None
        if self._symbols is None or self._symbols[:2] != (elf, stamp):
            try:
                self._symbols = (elf, stamp, Symbols(elf))
            except InputError:  # a broken ELF only means no decoding
                return None
        return self._symbols[2]

    # --- the batching thread ------------------------------------------------------------------

    def seen(self, path: str) -> None:
        """The user looked at the console of ``path``: the note of past trouble goes."""
        with self._lock:
            console = self._consoles.get(path)
            if console is None or console.health.note is None:
                return
            console.health.seen()
            console.dirty = True
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(RECHECK_S)  # no line for a while is news too: silent
            if self._pump.stopping:
                return
            self._wake.clear()
            for path, view, lines in self._take():
                self._deliver(path, view, lines)
            self._pump.wait(self.batch_s)  # what comes meanwhile goes out as one batch

    def _take(self) -> list[tuple[str, ConsoleView, tuple[Line, ...]]]:
        now = time.monotonic()
        batches = []
        with self._lock:
            for path, console in self._consoles.items():
                reading = console.health.reading(now)
                flood = console.view.rate >= FAST_LINES_S  # shown: it must fade when lines stop
                if not console.dirty and reading.state is console.view.state and not flood:
                    continue
                lines, console.pending, console.dirty = tuple(console.pending), [], False
                counts = console.counts
                counts.append((now, console.printed))
                console.printed = 0
                while counts and now - counts[0][0] > _RATE_WINDOW_S:
                    counts.popleft()
                tail = (console.view.tail + lines)[-TAIL_LINES:]
                console.view = ConsoleView(
                    device=console.view.device,
                    state=reading.state,
                    detail=reading.detail,
                    note=reading.note,
                    said=reading.words,
                    elf=reading.elf,
                    tail=tail,
                    lines=console.view.lines + len(lines),
                    rate=_rate(counts, now),
                    problem=console.view.problem,
                    hint=console.view.hint,
                )
                batches.append((path, console.view, lines))
        return batches


def _rate(counts: deque[tuple[float, int]], now: float) -> float:
    """The running app's lines per second over the last :data:`_RATE_WINDOW_S`."""
    return sum(n for at, n in counts if now - at <= _RATE_WINDOW_S) / _RATE_WINDOW_S
