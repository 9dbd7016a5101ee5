"""A board's panel: what it is, what it is doing, how the last flash went, what to do next."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from espdfu.bench.views import BoardView
from espdfu.consoles.health import RunState
from espdfu.flashing.flasher import Phase
from espdfu.usb.boards import Mode
from espdfu.usb.protocol import Ending

from .console_screen import styled

CONSOLE_REDRAW_S = 0.5
"""The most often a panel is redrawn for its console alone: two lines a second stay readable."""
PANEL_WIDTH = 38
"""The narrowest a panel may be: two fit side by side in 80 columns."""


def fitted(width: int, *forms: str) -> str:
    """The first of ``forms`` (the fullest first) that fits ``width`` columns; else the last,
    cut after a whole word with "…". A width of 0 (not laid out yet) takes the first."""
    for form in forms:
        if width <= 0 or len(form) <= width:
            return form
    last = forms[-1]
    cut = last[: max(width - 1, 0)]
    if " " in cut.strip():
        cut = cut.rstrip()[: cut.rstrip().rfind(" ")]
    return f"{cut.rstrip(' :;,(')}…"


def in_brief(hint: str, width: int) -> str:
    """A hint in a panel's line: whole, or its first sentence, without its asides, or what it
    says before its colon or semicolon. Hints begin with what to do (their whole sentence is in
    the log), so what is cut is the why, never the what to do."""
    sentence = hint.split(". ", 1)[0].rstrip(".")
    plain = re.sub(r" \([^)]*\)", "", sentence)
    return fitted(width, hint, sentence, plain, re.split(r"[:;] ", plain, maxsplit=1)[0])


def joined(width: int, must: str, *extras: str) -> str:
    """``must`` and as many of ``extras`` (the least wanted last) as fit, joined by " · "."""
    parts = [must, *filter(None, extras)]
    while len(parts) > 1 and len(" · ".join(parts)) > width > 0:
        parts.pop()
    return fitted(width, " · ".join(parts))


def ago(when: float, now: float) -> str:
    """``4 s ago``, ``20 s ago``, ``3 min ago``, ``2 h ago``: coarser as it gets older, so that
    the once-a-second look redraws rarely (bytes over SSH)."""
    seconds = max(0, int(now - when))
    if seconds < 10:
        return f"{seconds} s ago"
    if seconds < 60:
        return f"{seconds // 10 * 10} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


class BoardPanel(Widget, can_focus=True):
    """A board: what it is, what it is doing, how the last flash went, what to do next."""

    def __init__(self, view: BoardView, now: float) -> None:
        super().__init__(id=panel_id(view.path), classes="panel")
        self.view = view
        self.now = now
        """The time the "12 s ago" is counted to (the app's clock, when it last looked)."""
        self._drawn_at = float("-inf")
        """When the panel was last drawn (time.monotonic())."""
        self._later: Timer | None = None
        """The redraw of a console change that came too soon after the last one."""

    def compose(self) -> ComposeResult:
        yield Static(id="what")
        yield Static(id="state")
        yield ProgressBar(total=1, show_eta=False, id="bar")
        yield Static(id="after")

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()  # each line is worded for the width it has

    @property
    def _width(self) -> int:
        """Columns a line has (0 until the panel is laid out)."""
        return self.content_size.width

    def refresh_age(self, now: float) -> None:
        """The "12 s ago" of the last result, the only text that changes by itself: the line
        is redrawn only when its words change (bytes over SSH)."""
        self.now = now
        if self._later is not None:
            return  # a redraw of the whole view is due: its state line and colour go together
        state = self.query_one("#state", Static)
        line = self._state_line()
        if str(state.content) != line:
            state.update(line, layout=False)

    def show(self, view: BoardView, now: float) -> None:
        """Draw ``view``; new console lines alone at most every :data:`CONSOLE_REDRAW_S` (an
        app printing fast would otherwise redraw the panel with every batch); a change of what
        the board is (its state, a panic) at once."""
        lines_only = _new_lines_only(self.view, view)
        self.view, self.now = view, now
        wait = self._drawn_at + CONSOLE_REDRAW_S - time.monotonic()
        if lines_only and wait > 0:
            if self._later is None:
                self._later = self.set_timer(wait, self.refresh_view)
            return
        self.refresh_view()

    def refresh_view(self) -> None:
        if self._later is not None:
            self._later.stop()
            self._later = None
        self._drawn_at = time.monotonic()
        view = self.view
        board = view.board
        if self.border_title != view.title:
            self.border_title = view.title
        subtitle = "armed" if view.armed else ""
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle
        self.set_class(view.armed, "armed")
        self.set_class(view.flashing, "flashing")
        app = view.running_app and not view.flashing
        flash_failed = view.last is not None and not view.last.ok and not view.cancelled
        troubled = app and view.troubled
        self.set_class((flash_failed and not view.flashing and not app) or troubled, "failed")
        self.set_class(app and view.warned, "warned")  # it runs, with a panic behind it
        self.set_class(not app and (not view.present or not board.flashable), "inactive")
        what = f"{board.chip_name} · {view.mode_words}"
        self._update(
            "#what",
            fitted(self._width, f"{board.path} · {what}", what)
            if view.label
            else fitted(self._width, what),
        )
        self._update("#state", self._state_line())
        bar = self.query_one("#bar", ProgressBar)
        progress = view.progress
        bar.display = progress is not None and progress.phase in (
            Phase.DOWNLOADING,
            Phase.ERASING,
            Phase.MANIFESTING,
            Phase.BUSY,
        )
        if progress is not None:
            bar.update(total=max(progress.total, 1), progress=progress.done)
        self.query_one("#after", Static).display = not bar.display
        self._update("#after", self._after_line())

    def keys_depend_on(self) -> tuple[bool, ...]:
        """What of the board the app's keys depend on (see ``EspdfuApp.check_action``)."""
        view = self.view
        return (view.fits, view.flashing, view.console is not None)

    def _update(self, selector: str, content: str | Text) -> None:
        """Only a line whose content changed is redrawn (bytes over SSH)."""
        static = self.query_one(selector, Static)
        if static.content != content:
            static.update(content, layout=False)  # one line, whatever it says (CSS)

    def _state_line(self) -> str:
        """The state whole, then what fits of its details (the rate goes first, then the ETA)."""
        view = self.view
        width = self._width
        console = view.console
        if console is not None and view.running_app and not view.flashing:
            check = view.check
            if check is not None and console.state is RunState.RUNNING and not console.note:
                # "running espdfu-demo build 3 · verified · flashed 14 s ago"
                since = f"flashed {ago(view.last_at, self.now)}" if view.last_at else ""
                return joined(width, fitted(width, *check.forms), since)
            words = console.words  # "app running · panicked 7 s ago (LoadProhibited)"
            return joined(
                width, fitted(width, words, words.removeprefix("app ")), console.rate_words
            )
        text = view.state
        if view.last is not None and view.last_at is not None and text == view.last_state:
            age = ago(view.last_at, self.now)
            if view.last.ok:
                text = f"{text} {age}"
            else:
                text = f"{text}, {age}" if view.cancelled else f"{text} ({age})"
        progress = view.progress
        if progress is not None and progress.phase in (Phase.ERASING, Phase.BUSY):
            return fitted(width, text)  # what it waits for, and how long; the ETA comes back
        if progress is not None:
            if progress.attempt > 1:
                text += f" (try {progress.attempt})"
            eta = None
            if progress.eta_s is not None and progress.done < progress.total:
                eta = f"ETA {progress.eta_s:.0f} s"
            rate = f"{progress.rate / 1024:.0f} KB/s" if progress.rate else None
            return joined(width, text, eta or "", rate or "")
        if view.present and view.board.flashable and not view.fits and view.artifact_chip:
            return joined(width, text, f"the dfu.bin is for {view.artifact_chip}")
        return fitted(width, text)

    def _after_line(self) -> str | Text:
        """The app's last line while it runs (cut at the end, as a terminal would); else what
        to do next, if anything, worded to fit."""
        view = self.view
        width = self._width
        last = view.last
        if view.flashing:
            return ""
        if view.console is not None and view.console.problem and not view.present:
            return in_brief(view.console.hint, width)
        if view.console is not None and view.running_app:
            tail = view.console.tail
            if tail:
                return styled(tail[-1])
            return "(nothing printed yet)"
        if view.away:
            return fitted(
                width, "looked for at the same USB port a moment", "looked for at the same port"
            )
        if view.cancelled and last is not None and last.error is not None:
            return in_brief(last.error.hint or "the board is ready to flash again", width)
        if last is not None and not last.ok:
            return in_brief(last.next_step, width)
        if last is not None and last.ending is Ending.IDLE and view.board.mode is Mode.DFU:
            if view.bridged:
                return fitted(width, "its UART bridge resets it to run", "reset by its bridge")
            return fitted(width, "press RESET to run the new firmware", "press RESET to run it")
        return in_brief(view.board.hint, width)


def _new_lines_only(old: BoardView, new: BoardView) -> bool:
    """``new`` differs from ``old`` only in its console's lines and their rate."""
    if old.console is None or new.console is None:
        return old == new
    lines = replace(
        old.console, tail=new.console.tail, lines=new.console.lines, rate=new.console.rate
    )
    return replace(old, console=lines) == new


def panel_id(path: str) -> str:
    """A widget id for a port path ("1-1.2" → "board-1-1_2")."""
    return "board-" + path.replace(".", "_")
