"""A board's console: the app's scrollback of it, and the full screen that shows it.

The workbench hands the app each board's console lines in batches; the app keeps the last
:data:`SCROLLBACK_LINES` of each board (everything, for a save) whether or not the screen is
open, and the screen writes each batch at once (one redraw a batch, however many lines).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, RichLog, Static

from espdfu.bench.views import BoardView
from espdfu.consoles.lines import Level, Line
from espdfu.fsutil import atomic_write

FRAME_S = 0.25
"""The most often new lines are drawn: four times a second."""
SCROLLBACK_LINES = 10_000
"""Per board: about 2 MB of a chatty app's lines (docs/benchmarks.md measures it)."""

LEVEL_STYLES = {Level.ERROR: "red", Level.WARN: "yellow", Level.INFO: "green"}
"""ESP-IDF's own log colours (debug and verbose lines are plain)."""


def styled(line: Line) -> Text:
    """A line as ESP-IDF colours it; a decoded backtrace place in bold."""
    if line.tag == "backtrace":
        return Text(line.text, style="bold")
    return Text(line.text, style=LEVEL_STYLES.get(line.level, "") if line.level else "")


class Scrollback:
    """One board's last lines, and how many there have been (to know what a reader missed)."""

    def __init__(self, size: int = SCROLLBACK_LINES) -> None:
        self.lines: deque[Line] = deque(maxlen=size)
        self.total = 0

    def add(self, lines: tuple[Line, ...]) -> None:
        self.lines.extend(lines)
        self.total += len(lines)

    def since(self, seen: int) -> list[Line]:
        """The lines after the first ``seen`` ones (those still kept)."""
        missed = min(self.total - seen, len(self.lines))
        return list(self.lines)[len(self.lines) - missed :] if missed > 0 else []

    def clear(self) -> None:
        self.lines.clear()


class ConsoleScreen(Screen[None]):
    """The focused board's whole console: scroll it, pause it, clear it, save it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,m", "close", "Back", id="console_close"),
        Binding("p", "pause", "Pause", id="console_pause"),
        Binding("c", "clear", "Clear", id="console_clear"),
        Binding("s", "save", "Save", id="console_save"),
        # Before the log's own End (a scroll to where the end is now, animated, while lines
        # keep coming): here End means "follow again".
        Binding("end", "follow", "Follow", id="console_follow", show=False, priority=True),
    ]

    def __init__(
        self,
        view: BoardView,
        scrollback: Scrollback,
        *,
        save_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.view = view
        self.scrollback = scrollback
        self.save_dir = save_dir
        self.clock = clock
        self.paused = False
        self.following = True
        """New lines scroll the screen to its end: until the reader scrolls up, and again once
        they are back at the end (``End``)."""
        self.shown = 0
        """Of the scrollback's lines so far, how many are on the screen."""
        self._drawn_at = float("-inf")
        self._later: Timer | None = None

    @property
    def path(self) -> str:
        return self.view.path

    def compose(self) -> ComposeResult:
        yield Static(id="console-title")
        yield RichLog(
            id="console", max_lines=SCROLLBACK_LINES, wrap=True, markup=False, auto_scroll=False
        )
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        log = self.query_one(RichLog)
        log.focus()
        self.watch(log, "scroll_y", self._scrolled, init=False)
        self.catch_up()

    def _scrolled(self, before: float, now: float) -> None:
        """Up: the reader reads back, stop following; at the end again: follow."""
        if now < before:
            self.following = False
        elif self.query_one(RichLog).is_vertical_scroll_end:
            self.following = True

    def show_view(self, view: BoardView) -> None:
        """The board as it is now, for the title line (drawn with the next frame)."""
        self.view = view
        self.more()

    def more(self) -> None:
        """Something new to show: drawn at once, or with the next frame when the last one was
        drawn less than :data:`FRAME_S` ago (a flood scrolls a few times a second, each time
        by many lines, instead of redrawing the screen for every batch)."""
        wait = self._drawn_at + FRAME_S - time.monotonic()
        if wait <= 0:
            self.catch_up()
        elif self._later is None:
            self._later = self.set_timer(wait, self.catch_up)

    def catch_up(self) -> None:
        """Draw the title and the lines that came since the last frame (none while paused)."""
        if self._later is not None:
            self._later.stop()
            self._later = None
        self._drawn_at = time.monotonic()
        with self.app.batch_update():  # one frame for the lines, the scroll and the title
            if not self.paused:
                self._write(self.scrollback.since(self.shown))
                self.shown = self.scrollback.total
            title = self.query_one("#console-title", Static)
            words = self._title()
            if title.content != words:
                title.update(words, layout=False)  # one line, whatever it says (CSS)
            self.set_class(self.paused, "paused")

    def _write(self, lines: list[Line]) -> None:
        """Write ``lines``; the screen follows them to the end while :attr:`following` (a
        screen just opened is not laid out yet: the log scrolls once it is)."""
        log = self.query_one(RichLog)
        for index, line in enumerate(lines, 1):
            log.write(styled(line), scroll_end=self.following and index == len(lines))

    def _title(self) -> str:
        """The board, its port, its app's state (and rate, in a flood); paused: how much waits."""
        view, console = self.view, self.view.console
        parts = [view.title, view.state]
        if console is not None and console.device:
            parts.insert(1, console.device)
        if console is not None and console.rate_words:
            parts.append(console.rate_words)
        if self.paused:
            missed = self.scrollback.total - self.shown
            parts.append(
                f"PAUSED, {missed:,} new line{'' if missed == 1 else 's'} kept (p to go on)"
            )
        return " · ".join(parts)

    def action_close(self) -> None:
        self.dismiss()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.catch_up()

    def action_clear(self) -> None:
        """Clear the screen and the board's scrollback (a save after it starts from here)."""
        self.scrollback.clear()
        self.shown = self.scrollback.total
        self.query_one(RichLog).clear()
        self.catch_up()

    def action_follow(self) -> None:
        self.following = True
        self.query_one(RichLog).scroll_end(animate=False)

    def action_save(self) -> None:
        lines = list(self.scrollback.lines)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.view.title)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.clock()))
        target = self.save_dir / f"console-{name}-{stamp}.log"
        self._save(target, lines)

    @work(thread=True, group="console-save")
    def _save(self, target: Path, lines: list[Line]) -> None:
        text = "".join(f"{line.text}\n" for line in lines)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, text.encode())
        except OSError as error:
            self.app.call_from_thread(
                self.notify,
                f"{target} could not be written: {error.strerror or error}.",
                title="Not saved",
                severity="error",
            )
            return
        self.app.call_from_thread(
            self.notify, f"{len(lines):,} lines saved to {target}.", title="Saved"
        )
