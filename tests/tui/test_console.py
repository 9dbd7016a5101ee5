"""Each board's console in the app: the panel shows its app running, m the whole console."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import RichLog, Static

from espdfu.bench.views import BoardView
from espdfu.consoles.health import Note, RunState
from espdfu.consoles.lines import Line
from espdfu_tui.console_screen import ConsoleScreen
from espdfu_tui.panels import BoardPanel
from tests.helpers.harness import log_text, make_app, panel, panel_text, until

S2 = "1-1.1"
APP_LINE = re.compile(r"[IWEDV] \(\d+\) app: ")
"""A line the virtual app prints after its start-up (one a second)."""


def at_end(log: RichLog) -> bool:
    """Whether the log is scrolled to its end now (a call: checks before it do not narrow it)."""
    return bool(log.is_vertical_scroll_end)


def following(screen: ConsoleScreen) -> bool:
    return screen.following


def _shown(screen: ConsoleScreen) -> str:
    return "\n".join(str(line.text) for line in screen.query_one(RichLog).lines)


@pytest.fixture(autouse=True)
def _instant_demo_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    monkeypatch.chdir(tmp_path)  # where a saved console went (now never)
    monkeypatch.setenv("ESPDFU_STATE_DIR", str(tmp_path / "state"))


async def test_after_a_flash_and_reset_the_panel_shows_the_running_app(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path, spec="esp32s2")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: bool(app.query(f"#board-{S2.replace('.', '_')}")), "the panel")
        await pilot.press("x")
        await until(pilot, lambda: "press RESET" in panel_text(app, S2), "the flash")
        assert not app.check_action("console", ())  # no console read in DFU mode
        bus.board(S2).press_reset()
        # The panel shows the newest line: which one depends on when the host opened the port
        await until(pilot, lambda: APP_LINE.search(panel_text(app, S2)) is not None, "a line")
        text = panel_text(app, S2)
        # the build its start-up names (its ELF's SHA-256) is the one just flashed
        assert "esp32s2 · app" in text and "running espdfu-demo build 1 · verified" in text
        assert app.focused is panel(app, S2)  # the board stayed selected across its RESET
        assert log_text(app).count(f"{S2}: verified: it runs espdfu-demo build 1 (ELF ") == 1


async def test_m_opens_the_whole_console_to_pause_save_and_clear_it(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, spec="esp32s2-app")  # its app runs as it is plugged in
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "app running" in panel_text(app, S2), "the app's console")
        await pilot.press("m")
        assert isinstance(app.screen, ConsoleScreen)
        screen = app.screen
        await until(pilot, lambda: "app: sensor ready" in _shown(screen), "the lines so far")
        shown = _shown(screen)
        assert shown.startswith("ESP-ROM:esp32s2") and "ELF file SHA256:  " in shown
        assert not app.check_action("flash_all", ())  # the boards' keys are hidden here
        assert app.check_action("build", ())  # building is not: watch the new app come up

        await pilot.press("p")
        frozen = _shown(screen)
        scrollback = app.scrollbacks[S2]
        total = scrollback.total
        await until(pilot, lambda: scrollback.total > total, "a line while paused")
        assert _shown(screen) == frozen and "PAUSED, " in str(
            screen.query_one("#console-title", Static).content
        )
        await pilot.press("p")
        assert _shown(screen).startswith(frozen) and len(_shown(screen)) > len(frozen)

        await pilot.press("s")
        consoles = tmp_path / "state" / "consoles"
        await until(pilot, lambda: bool(list(consoles.glob("console-1-1.1-*.log"))), "the file")
        (saved,) = consoles.glob("console-1-1.1-*.log")
        assert not list(tmp_path.glob("console-*"))  # never the current folder
        said = [str(n.message) for n in app._notifications]
        assert any(f"saved to {saved}" in message for message in said)
        assert (
            saved.read_text().startswith("ESP-ROM:esp32s2")
            and "ELF file SHA256:  " in saved.read_text()
        )

        await pilot.press("c")
        assert _shown(screen) == "" and len(scrollback.lines) == 0
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]  # the panels' screen again
        assert app.focused is panel(app, S2)


async def test_a_panicking_app_is_shown_in_trouble(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, spec="esp32s2-app:panic")
    async with app.run_test(size=(100, 30)) as pilot:
        # It panics right after its start, at every boot: crashing at boot from the first
        # panic on (a panic of an app that ran a while would read "panicked"). Red.
        trouble = "crashing at boot: LoadProhibited"
        await until(pilot, lambda: trouble in panel_text(app, S2), "the panic")
        assert panel(app, S2).has_class("failed")
        await until(pilot, lambda: "LoadProhibited, 2 boots" in panel_text(app, S2), "a 2nd boot")


async def test_the_demo_app_panics_once_and_its_panel_keeps_it_until_its_console_is_opened(
    tmp_path: Path,
) -> None:
    """The demo's app board (``panic-once``): some 26 s after its start the app panics, reboots
    and runs again; its panel says so in the warning colour until its console is opened."""
    app, _ = make_app(tmp_path, spec="esp32s2-app:panic-once")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "sensor timeout" in panel_text(app, S2), "18 s of the app")
        noted = "running · panicked"
        await until(pilot, lambda: noted in panel_text(app, S2), "the panic, and the app again")
        board = panel(app, S2)
        assert board.has_class("warned") and not board.has_class("failed")
        assert "(LoadProhibited)" in panel_text(app, S2)  # the reason kept: "app " gave way
        assert log_text(app).count("1-1.1: app panicked: LoadProhibited.") == 1
        assert app.focused is board
        await pilot.press("m")
        assert isinstance(app.screen, ConsoleScreen)
        await pilot.press("escape")
        await until(pilot, lambda: "panicked" not in panel_text(app, S2), "the panic looked at")
        assert not board.has_class("warned") and "app running" in panel_text(app, S2)


async def test_a_noted_panic_is_in_the_warning_colour_and_trouble_in_red(tmp_path: Path) -> None:
    """A running app with a panic behind it is "warned" (the warning colour), not red; a board
    that cannot boot is red ("failed"). The view is set on the panel directly: the virtual app
    does not panic once and run on."""
    app, _ = make_app(tmp_path, spec="esp32s2-app")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "app running" in panel_text(app, S2), "the app's console")
        board = panel(app, S2)
        view, console = board.view, board.view.console
        assert console is not None and not board.has_class("warned")
        note = Note("panicked", "LoadProhibited", 0.0)
        said = "running · panicked 40 s ago (LoadProhibited)"
        board.view = replace(view, console=replace(console, note=note, said=said))
        board.refresh_view()
        assert board.has_class("warned") and not board.has_class("failed")
        # what fits of it at 100 columns: "app " gives way to the panic's reason
        assert "running · panicked 40 s ago (LoadProhibited)" in panel_text(app, S2)
        refused = 'cannot boot: "invalid header: 0xffffffff"'
        trouble = replace(console, state=RunState.CANNOT_BOOT, said=refused)
        board.view = replace(view, console=trouble)
        board.refresh_view()
        assert board.has_class("failed") and not board.has_class("warned")
        assert 'cannot boot: "invalid header' in panel_text(app, S2)


class _OnePanel(App[None]):
    """A panel alone, drawn only by the test (in the app, the workbench redraws it too)."""

    def __init__(self, view: BoardView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield BoardPanel(self.view, 0.0)


async def test_trouble_is_drawn_at_once_with_its_colour_and_new_lines_alone_wait(
    tmp_path: Path,
) -> None:
    """Console lines alone are drawn at most twice a second; a change of state is drawn at
    once, its words and its colour together (CI saw "crashing at boot" in a panel not yet red:
    the crash came within half a second of a line and waited, and the once-a-second look at the
    "ago" drew its words without its colour)."""
    app, _ = make_app(tmp_path, spec="esp32s2-app")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "app running" in panel_text(app, S2), "the app's console")
        view = panel(app, S2).view
    console = view.console
    assert console is not None
    alone = _OnePanel(view)
    async with alone.run_test(size=(60, 8)) as alone_pilot:
        board = alone.query_one(BoardPanel)

        def text() -> str:
            return "\n".join(str(static.content) for static in board.query(Static))

        board.refresh_view()  # drawn just now: what comes next is too soon for new lines
        line = Line("a line", 0.0)
        board.show(replace(view, console=replace(console, tail=(*console.tail, line))), 0.0)
        assert "a line" not in text()  # waits
        crash = replace(console, state=RunState.CRASHING, said="crashing at boot: Oops")
        board.show(replace(view, console=crash), 0.0)
        assert board.has_class("failed") and "crashing at boot: Oops" in text()
        board.show(replace(view, console=replace(crash, tail=(line,))), 0.0)
        assert "a line" not in text()  # drawn just now, at the crash: it waits
        board.refresh_age(0.0)
        await until(alone_pilot, lambda: "a line" in text(), "the redraw due")
        assert board.has_class("failed") and "crashing at boot: Oops" in text()


async def test_the_console_opens_at_its_newest_line_and_follows_until_the_reader_scrolls_up(
    tmp_path: Path,
) -> None:
    """As every monitor does: the end on opening, each new line followed; scrolled up to
    read, it stays where the reader is; End follows again. (It opened at the oldest line and
    stayed there.)"""
    app, _ = make_app(tmp_path, spec="esp32s2-app:chatty")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: S2 in app.scrollbacks, "the app's lines")
        scrollback = app.scrollbacks[S2]
        await until(pilot, lambda: scrollback.total > 200, "more lines than a screen holds")
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, ConsoleScreen)
        log = screen.query_one(RichLog)
        await until(pilot, lambda: log.max_scroll_y > 0 and at_end(log), "the end")
        seen = scrollback.total
        await until(pilot, lambda: scrollback.total > seen + 50, "new lines")
        await until(pilot, lambda: screen.shown >= seen + 50, "them drawn")
        # followed (a batch just written is scrolled to at the next refresh: wait for it; a
        # console that does not follow never gets there while lines come)
        await until(pilot, lambda: at_end(log), "the new end")
        await pilot.press("pageup")
        held = log.scroll_y
        assert not following(screen) and not at_end(log)
        drawn = screen.shown
        await until(pilot, lambda: screen.shown > drawn + 50, "more lines drawn")
        assert log.scroll_y == held  # the reader's place kept
        await pilot.press("end")
        await until(pilot, lambda: at_end(log), "the end again")
        drawn = screen.shown
        await until(pilot, lambda: screen.shown > drawn + 50, "more lines drawn")
        await until(pilot, lambda: at_end(log), "followed again")
