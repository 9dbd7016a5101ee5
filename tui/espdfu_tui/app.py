"""The Textual application: it shows the workbench and sends it the user's intents.

All flashing, watching and building happens in the core's workbench on its own threads; its
events arrive here as messages of their own names (:mod:`espdfu_tui.messages`) and their
handlers, on the UI thread, render what the events carry: a board's view, the summary, a log
line. Nothing here asks the workbench back for its state: a key sends an intent ("flash this
board", "cancel the flash of this board", "toggle auto-flash") that the workbench decides on,
from one thread of its own, in order, since some touch the disk (a label saved, a build
started): the UI thread never blocks and never takes the model's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import ClassVar

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from espdfu import __version__
from espdfu.bench.build import BuildState
from espdfu.bench.views import BenchEvent, BoardView, Summary
from espdfu.bench.workbench import Workbench
from espdfu.config import state_dir
from espdfu.flashing.stopping import STOP_SIGNALS, signal_exit_code, stopped_line

from .console_screen import ConsoleScreen, Scrollback
from .grid import BoardGrid
from .messages import (
    BoardChanged,
    BoardRemoved,
    ConsoleOutput,
    Logged,
    SummaryChanged,
    message_for,
)
from .panels import BoardPanel
from .screens import ConfirmScreen, HelpScreen, LabelScreen
from .status import StatusBar

LOG_LINES = 2000
_TERMINAL_FD = 2
"""Textual draws on stderr."""
_LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
AGE_REFRESH_S = 1.0
"""How often the "12 s ago" texts are looked at; a line is redrawn only when its text changed."""
_SAYS_WHY = ("build", "build_flash", "flash", "flash_whole", "flash_all", "console")
"""Commands that, run while greyed out, say in the log why they cannot act."""
_OVER_CONSOLE = ("build", "build_flash", "help", "quit")
"""The app's commands a console screen keeps (build and watch the new app come up)."""


class EspdfuApp(App[int]):
    """One live panel per board, the artifact and the build, and a log."""

    TITLE = "espdfu-tui"
    CSS_PATH = "app.tcss"
    # Not a ClassVar: Textual declares it on App as an instance attribute.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # noqa: RUF012
    """Screen classes by height: "-short" (under 30 lines) has a shorter log, so that three rows
    of panels fit in 24; "-tall" only ends it."""
    # Every binding has an id, so users can remap keys ([keys] in the config), and a tooltip:
    # what it does, in the help screen and the command palette.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "build", "Build", id="build",
                tooltip="Build (idf.py dfu, or your build command)"),
        Binding("x", "build_flash", "Build+flash", id="build_flash",
                tooltip="Build, then flash the armed boards"),
        Binding("f", "flash", "Flash", id="flash", tooltip="Flash the selected board"),
        Binding("F", "flash_all", "All", id="flash_all", key_display="F",
                tooltip="Flash every board that can take the dfu.bin"),
        Binding("e", "flash_whole", "Whole", id="flash_whole", show=False,
                tooltip="Flash the whole dfu.bin, not only the changes"),
        Binding("space", "arm", "Arm", id="arm",
                tooltip="Arm/disarm the selected board (auto-flash)"),
        Binding("w", "auto_flash", "Auto", id="auto_flash",
                tooltip="Auto-flash armed boards on rebuild: on/off"),
        Binding("c", "cancel", "Cancel", id="cancel",
                tooltip="Cancel the selected flash, or the build"),
        Binding("m", "console", "Console", id="console", show=False,
                tooltip="The selected board's console: scroll, pause, clear, save"),
        Binding("n", "label", "Label", id="label", show=False,
                tooltip="Label the selected board (kept by port)"),
        Binding("l", "log", "Log", id="log", show=False, tooltip="Show or hide the log"),
        Binding("question_mark", "help", "Help", id="help", key_display="?",
                tooltip="Help: the keys and the setup"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Quit (asks first while work runs)"),
        Binding("right", "move(1)", "Next board", show=False, id="next"),
        Binding("left", "move(-1)", "Previous board", show=False, id="previous"),
        Binding("down", "move_row(1)", "Board below", show=False, id="below"),
        Binding("up", "move_row(-1)", "Board above", show=False, id="above"),
    ]  # fmt: skip

    def __init__(
        self,
        workbench: Workbench,
        *,
        project: str,
        demo: bool = False,
        facts: Iterable[str] = (),
        keymap: dict[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.clock = clock
        """Now, for the "12 s ago" texts (the workbench's times are time.time())."""
        self.workbench = workbench
        self.project = project
        self.demo = demo
        self.facts = list(facts)
        self.keymap = keymap or {}
        self.sub_title = f"demo · {__version__}" if demo else __version__
        settings = workbench.settings  # what it was made with; resolved here: it reads the disk
        self.build_dir_shown = _short(settings.build_dir, settings.project_dir or Path.cwd())
        self.summary = Summary()
        """The summary as the workbench last reported it (its first event brings it)."""
        self._held_views: dict[str, BoardView] = {}
        """The boards' latest views while a console screen covers their panels."""
        self.scrollbacks: dict[str, Scrollback] = {}
        """Each board's console lines, kept whether or not its console screen is open."""
        self._commands: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        """What the keys ask of the workbench, for :meth:`_serve_workbench`; None ends it."""
        self.stopped = False
        self.leaving = False
        self.stop_signal: int | None = None
        self.stop_report: str | None = None
        """What quitting stopped, in one line, when it stopped anything or a signal came."""
        self.on_lost_terminal: Callable[[], object] = lambda: None
        """Clean-up for when the terminal hangs up, which ends the process at once."""

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        build_key = self.keymap.get("build", "b").split(",")[0]
        yield StatusBar(self.project, self.build_dir_shown, build_key)
        yield BoardGrid(id="boards")
        log = RichLog(id="log", max_lines=LOG_LINES, wrap=True, markup=False)
        log.can_focus = False  # tab selects boards only; the log scrolls with the mouse
        yield log
        # Without ctrl+p (the help lists it), c Cancel and q Quit both fit in 80 columns.
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        self.query_one(StatusBar).show(self.summary, self.clock())
        self._catch_stop_signals()
        self.set_interval(AGE_REFRESH_S, self.refresh_ages)
        self._serve_workbench()

    @work(thread=True, group="workbench")
    def _serve_workbench(self) -> None:
        """Start the workbench (it scans the bus and reads the dfu.bin there is), then hand
        it the commands in the order the keys gave them, until None comes."""
        self.workbench.start(self._relay)
        while (command := self._commands.get()) is not None:
            command()

    def _send(self, command: Callable[[], object]) -> None:
        self._commands.put(command)

    def refresh_ages(self) -> None:
        """Bring the "flashed 12 s ago" and the dfu.bin's age up to now."""
        if self._covered():
            return
        now = self.clock()
        with contextlib.suppress(NoMatches):  # the app may be closing
            self.query_one(StatusBar).show(self.summary, now)
        for panel in self.query(BoardPanel):
            with contextlib.suppress(NoMatches):  # a panel mounted but not yet composed
                panel.refresh_age(now)

    def _relay(self, event: BenchEvent) -> None:
        """Called on the workbench's threads."""
        message = message_for(event)
        if message is not None:
            self.post_message(message)

    # --- events from the workbench ------------------------------------------------------------
    # Flashes still report while the app closes, after its widgets are gone: NoMatches then.

    def on_board_changed(self, message: BoardChanged) -> None:
        screen = self._console_screen(message.view.path)
        if screen is not None:
            screen.show_view(message.view)
        if self._covered():  # drawn when the panels show again: a hidden redraw costs a frame
            self._held_views[message.view.path] = message.view
            return
        with contextlib.suppress(NoMatches):
            if self._show_board(message.view):
                self.refresh_bindings()

    def on_console_output(self, message: ConsoleOutput) -> None:
        self.scrollbacks.setdefault(message.path, Scrollback()).add(message.lines)
        screen = self._console_screen(message.path)
        if screen is not None:
            screen.more()

    def _covered(self) -> bool:
        """A console screen covers the panels."""
        return any(isinstance(screen, ConsoleScreen) for screen in self.screen_stack)

    def _show_held_views(self, _: object = None) -> None:
        views, self._held_views = self._held_views, {}
        for view in views.values():
            with contextlib.suppress(NoMatches):
                self._show_board(view)
        self.refresh_bindings()

    def _console_screen(self, path: str) -> ConsoleScreen | None:
        """The console screen of ``path``, if it is the one shown (none once the app closes)."""
        screen = self.screen_stack[-1] if self.screen_stack else None
        return screen if isinstance(screen, ConsoleScreen) and screen.path == path else None

    def on_board_removed(self, message: BoardRemoved) -> None:
        self._held_views.pop(message.path, None)
        with contextlib.suppress(NoMatches):
            self.query_one(BoardGrid).remove_board(message.path)
            self.refresh_bindings()

    def on_summary_changed(self, message: SummaryChanged) -> None:
        self.summary = message.summary
        with contextlib.suppress(NoMatches):
            self.query_one(StatusBar).show(message.summary, self.clock())
            self.refresh_bindings()

    def on_logged(self, message: Logged) -> None:
        self._write_log(message.text, message.source, message.level)

    def _write_log(self, text: str, source: str = "espdfu-tui", level: str = "info") -> None:
        style = _LEVEL_STYLES.get(level, "dim" if source == "build" else "")
        with contextlib.suppress(NoMatches):
            self.query_one("#log", RichLog).write(Text(text, style=style))

    def _show_board(self, view: BoardView) -> bool:
        """Show ``view``; whether what the keys depend on may have changed."""
        return self.query_one(BoardGrid).show(view, self.clock())

    # --- the selected board -------------------------------------------------------------------

    @property
    def selected(self) -> BoardPanel | None:
        focused = self.focused
        return focused if isinstance(focused, BoardPanel) else None

    def action_move(self, step: int) -> None:
        """Left or right on the grid as drawn; nothing past the row's ends."""
        self.query_one(BoardGrid).move(self.selected, step, 0)

    def action_move_row(self, step: int) -> None:
        """Up or down on the grid as drawn; nothing past its top or its last board below."""
        self.query_one(BoardGrid).move(self.selected, 0, step)

    # --- commands -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out what cannot be done now (None: shown, disabled); over a board's console,
        only building and the keys that leave are there (False: hidden)."""
        over_console = self.screen_stack and isinstance(self.screen_stack[-1], ConsoleScreen)
        if over_console and action not in _OVER_CONSOLE:
            return False
        building = self.summary.build.state is BuildState.RUNNING
        selected = self.selected
        if action in ("build", "build_flash"):
            return None if building else True
        if action in ("flash", "flash_whole"):
            if selected is None or selected.view.flashing:
                return None
            return True if selected.view.fits else None
        if action == "flash_all":
            return True if any(panel.view.fits for panel in self.query(BoardPanel)) else None
        if action in ("arm", "label"):
            return True if selected is not None else None
        if action == "console":
            if selected is None:
                return None
            path = selected.view.path
            return True if selected.view.console or path in self.scrollbacks else None
        if action == "cancel":  # shown only when there is something to cancel
            return building or (selected is not None and selected.view.flashing)
        return True

    def on_key(self, event: events.Key) -> None:
        """A greyed-out key that can say why it cannot act says so, instead of nothing.

        Runs before the bindings are looked at; an enabled binding is left to them.
        """
        active = self.screen.active_bindings.get(event.key)
        if active is None or active.enabled or active.node is not self:
            return
        if active.binding.action in _SAYS_WHY:
            event.prevent_default()  # the app's own binding check would only find it greyed
            event.stop()
            getattr(self, f"action_{active.binding.action}")()

    def action_help_quit(self) -> None:
        """Ctrl-C: not a way out, but a reminder of the app's own quit key (which asks first)."""
        keys = self.keymap.get("quit", "q").split(",")[0]
        self.notify(
            f"Press {keys} to quit (it asks first while a flash or a build runs).",
            title="Ctrl-C does not quit",
        )

    def action_build(self) -> None:
        self._send(self.workbench.build)

    def action_build_flash(self) -> None:
        self._send(partial(self.workbench.build, then_flash=True))

    def action_flash(self) -> None:
        if self.selected is not None:
            self._send(partial(self.workbench.flash, [self.selected.view.path]))

    def action_flash_whole(self) -> None:
        if self.selected is not None:
            self._send(partial(self.workbench.flash, [self.selected.view.path], whole=True))

    def action_flash_all(self) -> None:
        self._send(self.workbench.flash_all)

    def action_arm(self) -> None:
        if self.selected is not None:
            self._send(partial(self.workbench.set_armed, self.selected.view.path))

    def action_auto_flash(self) -> None:
        self._send(self.workbench.set_auto_flash)  # the workbench toggles its own

    def action_cancel(self) -> None:
        """The flash the selected panel shows, else the build: what the user saw running.
        (If that flash has just ended, the workbench says so; it never cancels the build
        instead.)"""
        selected = self.selected
        if selected is not None and selected.view.flashing:
            self._send(partial(self.workbench.cancel_flash, selected.view.path))
        else:
            self._send(self.workbench.cancel_build)

    def action_label(self) -> None:
        selected = self.selected
        if selected is None:
            return
        path = selected.view.path

        def save(label: str | None) -> None:
            if label is not None:
                self._send(partial(self.workbench.set_label, path, label))

        self.push_screen(LabelScreen(path, selected.view.label), save)

    def action_console(self) -> None:
        selected = self.selected
        if selected is None:
            return
        view = selected.view
        if view.console is None and view.path not in self.scrollbacks:
            self._write_log(
                f"{view.title}: no console to show: {view.console_wait}.", level="warning"
            )
            return
        scrollback = self.scrollbacks.setdefault(view.path, Scrollback())
        self._send(partial(self.workbench.console_seen, view.path))  # a panic noted: looked at
        screen = ConsoleScreen(
            view, scrollback, save_dir=state_dir() / "consoles", clock=self.clock
        )
        self.push_screen(screen, self._show_held_views)

    def action_log(self) -> None:
        log = self.query_one("#log")
        log.display = not log.display

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help(), self.facts))

    def key_help(self) -> list[tuple[str, str]]:
        """(key, what it does) for every command, with the user's remapped keys."""
        rows = []
        for binding in self._commands_bound():
            key = self.keymap.get(binding.id or "", binding.key_display or binding.key)
            rows.append((key, binding.tooltip))
        rows.append(("arrows, tab", "Select a board"))
        rows.append(("ctrl+p", "Command palette (every command by name)"))
        return rows

    async def action_quit(self) -> None:
        if not self.summary.busy:
            self._stop_and_exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._stop_and_exit()

        self.push_screen(ConfirmScreen("A flash or a build is running. Quit and abort it?"), answer)

    def _catch_stop_signals(self) -> None:
        """SIGINT, SIGTERM and SIGHUP (an SSH session dropped) leave the way ``q`` does.

        Left to their default, they would end the process at once: flashes cut off mid-way,
        the build's process group left running, the terminal left in the app's screen.
        """
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            # Windows' event loop takes no signal handlers; there Ctrl-C is a key anyway.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, self._on_stop_signal, signum)
        if hasattr(signal, "SIGHUP"):
            # Also at once, on this thread, even when it is stuck (the loop's handler above
            # still runs too: asyncio learns of the signal through its wake-up pipe).
            signal.signal(signal.SIGHUP, self._on_hang_up)

    def _on_hang_up(self, signum: int, frame: FrameType | None) -> None:
        """The terminal is gone: stop the work from here and end the process.

        Every write to a hung-up terminal fails; Textual's output thread ends on the first one,
        and the UI thread then blocks on the full output queue, so the loop's own handler
        would never run. With no terminal there is nothing to restore and nobody to tell.
        A ``kill -HUP`` with the terminal still there takes the usual way.
        """
        if os.isatty(_TERMINAL_FD):
            return
        self._stop_work()
        self.on_lost_terminal()
        os._exit(signal_exit_code(signum))

    def _on_stop_signal(self, signum: int) -> None:
        """Stop and leave without asking: nobody may be there to answer."""
        if self.stop_signal is None:
            self.stop_signal = signum
        self._stop_and_exit()

    def _stop_and_exit(self) -> None:
        if not self.leaving:
            self.leaving = True
            self._stop_then_exit()

    @work(thread=True, exit_on_error=False, group="quit")
    def _stop_then_exit(self) -> None:
        """Abort what runs (boards are left ready to flash), then leave: never a hung thread.

        The exit code is 0, or 128 + the signal's number when a signal stopped the app; what
        was stopped is kept in ``stop_report`` for a line once the app's screen is gone.
        """
        parts = self._stop_work()
        signum = self.stop_signal
        if parts or signum is not None:
            self.stop_report = stopped_line(signum, parts)
        code = 0 if signum is None else signal_exit_code(signum)
        self.call_from_thread(self.exit, code, code)

    def _stop_work(self) -> list[str]:
        """Stop the workbench once; how the work that ran ended (see ``stop_and_say``)."""
        if self.stopped:
            return []
        self.stopped = True
        self._commands.put(None)
        return self.workbench.stop()

    def on_unmount(self) -> None:
        self._stop_work()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every key's command, by name, in the command palette too."""
        bound = {binding.id: binding for binding in self._commands_bound()}
        for command in super().get_system_commands(screen):
            if command.title == "Quit":  # Textual's words say "as soon as possible": ours asks
                command = command._replace(help=bound["quit"].tooltip)
            yield command
        for binding in bound.values():
            if binding.id not in ("quit", "help"):
                yield SystemCommand(
                    binding.tooltip,
                    f"key: {self.keymap.get(binding.id or '', binding.key_display or binding.key)}",
                    lambda action=binding.action: self.run_action(action),
                )

    def _commands_bound(self) -> list[Binding]:
        """The bindings of the app's commands (those that say what they do)."""
        return [b for b in self.BINDINGS if isinstance(b, Binding) and b.tooltip]


def _short(path: Path, base: Path) -> str:
    """A path as short as it can be said: relative to ``base`` when inside it."""
    try:
        return str(path.resolve().relative_to(base.resolve())) or "."
    except ValueError:
        return str(path)
