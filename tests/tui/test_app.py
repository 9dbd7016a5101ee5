"""The app driven by its keys, on virtual boards and a demo project (run_test + pilot)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import RichLog, Static

from espdfu.bench.build import BuildState
from espdfu.bench.views import BoardChanged, BoardView
from espdfu.config import config_dir, load_labels, save_label
from espdfu.errors import InputError
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.files.espimage import write_image
from espdfu.files.idfbuild import BuildFolder
from espdfu.sim import BoardKind, TimeModel, VirtualBoard
from espdfu_tui.__main__ import build_parser, main, make_app_from_args
from espdfu_tui.app import EspdfuApp
from espdfu_tui.grid import NO_BOARDS_TEXT, BoardGrid
from espdfu_tui.panels import BoardPanel, ago, panel_id
from espdfu_tui.screens import ConfirmScreen, HelpScreen, LabelScreen
from espdfu_tui.status import StatusBar
from tests.helpers.buildfolder import stale_build
from tests.helpers.harness import idle, log_text, make_app, panel, panel_text, text, until

SIZE = (80, 24)


def shown(widget: Widget) -> bool:
    """Whether a widget is displayed now (a call, so that checks before it do not narrow it)."""
    return bool(widget.display)


def top(app: EspdfuApp) -> Screen[object]:
    """The screen on top now."""
    return app.screen


S2A, S2B, S3 = "1-1.1", "1-1.2", "1-1.3"


@pytest.fixture(autouse=True)
def _instant_demo_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    monkeypatch.chdir(tmp_path)


async def test_one_panel_per_board_and_the_first_selected(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "three panels")
        assert [p.view.path for p in app.query(BoardPanel)] == [S2A, S2B, S3]
        assert app.focused is panel(app, S2A)
        assert "esp32s2 · ROM download" in panel_text(app, S2A)
        assert "armed" in panel_text(app, S2A) and "ready" in panel_text(app, S2A)
        assert "espdfu-demo · esp32s2 · build: idle" in text(app, "#project-line")
        assert "no build/dfu.bin yet: press b to build" in text(app, "#artifact-line")
        assert not app.query_one("#no-boards").display


async def test_a_build_missing_an_image_is_said_in_mkdfus_words(tmp_path: Path) -> None:
    """The top line said "no build/dfu.bin yet" where `espdfu mkdfu --build-dir` says which
    image flasher_args.json names that is not there."""
    app, _ = make_app(tmp_path)
    build = app.workbench.settings.build_dir
    build.mkdir()
    (build / "project_description.json").write_text('{"target": "esp32s2"}')
    (build / "flasher_args.json").write_text('{"flash_files": {"0x10000": "app.bin"}}')
    with pytest.raises(InputError) as mkdfu:
        BuildFolder.open(build).make_dfu()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "exist" in text(app, "#artifact-line"), "the missing image")
        assert text(app, "#artifact-line") == f"no build/dfu.bin: {mkdfu.value}"


async def test_a_dfu_bin_older_than_its_build_that_cannot_be_made_again_is_not_usable(
    tmp_path: Path,
) -> None:
    """The top line showed the dfu.bin of an older build as the one to flash."""
    app, _ = make_app(tmp_path)
    build = app.workbench.settings.build_dir
    build.mkdir()
    stale_build(build)
    (build / "partition_table" / "partition-table.bin").unlink()  # no new one can be made
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "NOT usable" in text(app, "#artifact-line"), "the dfu.bin")
        assert text(app, "#artifact-line") == (
            "build/dfu.bin is NOT usable: it holds an older app than build/app.bin "
            "(`idf.py dfu` makes it again)"
        )
        assert app.query_one(StatusBar).has_class("artifact-bad")


async def test_a_board_without_a_driver_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, spec="esp32s2,esp32s2-nodriver")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 2, "the panels")
        words = panel_text(app, S2B)
        assert "no driver" in words and "Install the WinUSB driver" in words  # what to do
        await until(pilot, lambda: "Zadig" in log_text(app), "the whole advice in the log")
        assert "esp-win-usb-drivers" in log_text(app)
        assert panel(app, S2B).has_class("inactive") and not panel(app, S2A).has_class("inactive")


async def test_at_80_columns_each_panel_line_fits_and_begins_with_what_to_do(
    tmp_path: Path,
) -> None:
    """Long advice was cut by the panel's edge wherever it fell ("looked for at the same USB
    port a…", the JTAG port's advice after its first words of why): each line now fits, and an
    advice shown in brief keeps its first words, which say what to do."""
    spec = "esp32s2,esp32s2:status=errVERIFY@4K,esp32s3-jtag,esp32s2-noaccess,esp32s2-nodriver"
    app, _ = make_app(tmp_path, spec=spec)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "the panels")
        await pilot.press("x")
        await until(pilot, lambda: panel(app, S2B).view.last is not None, "the failed flash")
        await until(pilot, lambda: not app.workbench.busy, "the end")
        await pilot.pause()
        advice = {}
        for widget in app.query(BoardPanel):
            for line in widget.query(Static):
                words = str(line.content)
                assert len(words) <= line.content_size.width, (widget.view.path, words)
            view = widget.view
            hint = view.last.next_step if view.last and not view.last.ok else view.board.hint
            if hint:
                advice[view.path] = (str(widget.query_one("#after", Static).content), hint)
        assert set(advice) == {S2B, S3, "1-1.4", "1-2.1"}
        for shown, hint in advice.values():
            assert hint.startswith(shown.rstrip("…").split(" (")[0])


async def test_no_boards_says_how_to_get_one(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path, spec="esp32s2")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        bus.board(S2A).unplug()
        await until(pilot, lambda: len(app.query(BoardPanel)) == 0, "the panel to go")
        assert app.query_one("#no-boards").display
        assert NO_BOARDS_TEXT in text(app, "#no-boards")


async def test_a_flash_shows_each_boards_way_to_dfu_mode_and_never_an_app(tmp_path: Path) -> None:
    """What a panel says of a board at each step of its flash, as the workbench reported it: a
    board in ROM download never reads as an app on its way to DFU mode (it did: "esp32s2 ·
    app" while DETACH took it off the bus, and "flashing 0%" before the bus saw DFU mode), and
    an app with a DFU runtime keeps saying so until DFU mode (it did: "unknown · app")."""
    rom, runtime = S2A, S2B
    app, _ = make_app(tmp_path, spec="esp32s2,esp32s2-app", time=TimeModel.scaled(0.3))
    views: list[BoardView] = []
    app.workbench.subscribe(lambda e: views.append(e.view) if isinstance(e, BoardChanged) else None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 2, "the panels")
        await pilot.press("x")
        await until(pilot, lambda: all(panel(app, p).view.last for p in (rom, runtime)), "flashes")
        drawn: dict[str, list[tuple[str, str]]] = {rom: [], runtime: []}
        for view in views:  # each step drawn, as a panel draws it
            widget = panel(app, view.path)
            widget.view = view
            widget.refresh_view()
            where = f"#{panel_id(view.path)}"
            drawn[view.path].append((text(app, f"{where} #what"), text(app, f"{where} #state")))
    for seen in drawn.values():
        assert any(state.startswith("waiting for DFU") for _, state in seen), seen
        flashing = [what for what, state in seen if state.startswith("flashing ")]
        assert flashing and all(what.endswith(" · DFU") for what in flashing), seen
        assert not any(what.endswith(" · app") for what, _ in seen), seen
    assert drawn[rom][0][0] == "esp32s2 · ROM download"
    assert drawn[runtime][0][0] == "unknown · app (DFU runtime)"
    assert all("DFU" in what.split(" · ")[1] for what, _ in drawn[runtime]), drawn[runtime]


async def test_x_builds_then_flashes_every_armed_board_that_can_take_it(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("x")
        await until(pilot, lambda: all(panel(app, p).view.last for p in (S2A, S2B)), "the flashes")
        await until(pilot, lambda: not app.workbench.busy, "the end")
        for path in (S2A, S2B):
            assert "flashed" in panel_text(app, path)
            assert "press RESET to run the new firmware" in panel_text(app, path)
            assert bus.board(path).downloads_completed == 1
        log = log_text(app)  # the RESET advice once for the round, not once a board
        assert log.count("Press RESET") == 1
        assert f"Press RESET on {S2A} and {S2B} to run the new firmware" in " ".join(log.split())
        assert "the dfu.bin is for esp32s2" in panel_text(app, S3)
        assert "build OK" in text(app, "#project-line")
        assert "build/dfu.bin: " in text(app, "#artifact-line")


async def test_b_builds_and_f_flashes_only_the_selected_board(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("b")
        await until(
            pilot, lambda: app.workbench.summary.build.state is BuildState.SUCCEEDED, "the build"
        )
        await until(pilot, lambda: app.workbench.compatible(S2B), "the artifact")
        assert all(bus.board(p).downloads_completed == 0 for p in (S2A, S2B))
        await pilot.press("right", "f")
        await until(pilot, lambda: panel(app, S2B).view.last is not None, "the flash")
        await idle(pilot, app)
        assert bus.board(S2B).downloads_completed == 1
        assert bus.board(S2A).downloads_completed == 0


async def test_shift_f_flashes_every_compatible_board(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("space")  # disarm the first: F does not care
        await pilot.press("b")
        await until(pilot, lambda: app.workbench.compatible(S2A), "the artifact")
        await pilot.press("F")
        await until(pilot, lambda: all(panel(app, p).view.last for p in (S2A, S2B)), "the flashes")
        await idle(pilot, app)
        for path in (S2A, S2B):
            last = panel(app, path).view.last
            assert last is not None and last.ok, (path, last)
            assert bus.board(path).downloads_completed == 1
        assert bus.board(S3).downloads_completed == 0


async def test_space_arms_and_w_turns_auto_flash_on(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("space")
        await until(pilot, lambda: not panel(app, S2A).view.armed, "disarmed")
        assert "armed" not in str(panel(app, S2A).border_subtitle)
        await pilot.press("w")
        await until(pilot, lambda: "auto-flash ON" in text(app, "#project-line"), "auto on")
        assert "Auto-flash on rebuild: on." in log_text(app)
        await pilot.press("b")  # a rebuild: the armed board is flashed by itself
        await until(pilot, lambda: panel(app, S2B).view.last is not None, "the auto-flash")
        await idle(pilot, app)
        assert bus.board(S2A).downloads_completed == 0


async def test_x_with_auto_flash_on_flashes_each_armed_board_once(tmp_path: Path) -> None:
    """The build's intent and auto-flash meet in one rule: one flash a board, nothing said
    about a flash "already" running."""
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("w")
        await until(pilot, lambda: "auto-flash ON" in text(app, "#project-line"), "auto on")
        await pilot.press("x")
        # The round's RESET advice comes after both flashes' lines.
        await until(pilot, lambda: "Press RESET" in log_text(app), "the round to end")
        await idle(pilot, app)
        assert "being flashed already" not in log_text(app)
        assert [bus.board(p).downloads_completed for p in (S2A, S2B, S3)] == [1, 1, 0]
        assert log_text(app).count("Press RESET") == 1


async def test_c_cancels_the_selected_boards_flash(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path, spec="esp32s2", time=TimeModel.scaled(0.3))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        await pilot.press("x")
        await until(
            pilot,
            lambda: "flashing" in panel(app, S2A).view.state,
            "the download to start",
        )
        await pilot.press("c")
        await until(pilot, lambda: panel(app, S2A).view.last is not None, "the cancel")
        words = panel_text(app, S2A)
        assert re.search(r"cancelled at byte [\d,]+, \d+ s ago", words), words
        assert "the board is ready to flash again" in words and "failed" not in words
        assert not panel(app, S2A).has_class("failed")
        assert bus.board(S2A).downloads_completed == 0


async def test_n_labels_the_selected_board(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("n")
        assert isinstance(app.screen, LabelScreen)
        await pilot.press(*"jig", "enter")
        await until(pilot, lambda: str(panel(app, S2A).border_title) == "jig", "the label")
        assert f"{S2A} · esp32s2" in panel_text(app, S2A)


async def test_l_hides_the_log_and_question_mark_shows_help(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, keymap={"build": "B"})
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        assert "press B to build" in text(app, "#artifact-line")  # the remapped key
        log = app.query_one("#log", RichLog)
        assert shown(log)
        await pilot.press("l")
        assert not shown(log)
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = dict(help_screen.keys)
        assert keys["B"].startswith("Build (") and "x" in keys and "F" in keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_arrows_move_on_the_grid_as_drawn_and_stop_at_its_edges(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:  # two a row at 80 columns: S2A S2B / S3
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        assert app.query_one(BoardGrid).columns == 2
        for key, lands_on in [
            ("left", S2A),  # the row's start
            ("up", S2A),  # the top row
            ("right", S2B),
            ("right", S2B),  # the row's end: not on to the next row
            ("down", S2B),  # nothing below it
            ("left", S2A),
            ("down", S3),
            ("down", S3),  # the last row: no wrap to the top
            ("right", S3),  # nothing to its right
            ("up", S2A),
        ]:
            await pilot.press(key)
            assert app.focused is panel(app, lands_on), (key, lands_on)
        app.action_move_row(1)  # two at once, as a held key sends them: each from the last
        app.action_move(1)  # from S3: nothing to its right (from S2A, it would be S2B)
        await pilot.pause()
        assert app.focused is panel(app, S3)
        seen = []
        for _ in range(6):  # tab goes round the boards only, never to the grid or the log
            await pilot.press("tab")
            seen.append(app.focused)
        assert all(isinstance(widget, BoardPanel) for widget in seen)
        assert len(set(seen)) == 3


async def test_hot_plug_adds_a_panel_in_port_order(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        bus.plug(VirtualBoard("esp32s2", kind=BoardKind.DFU), path="1-1.10")
        bus.plug(VirtualBoard("esp32s2", kind=BoardKind.DFU), path="1-1")
        await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "the new panels")
        paths = [p.view.path for p in app.query(BoardPanel)]
        assert paths == ["1-1", S2A, S2B, S3, "1-1.10"]


async def test_events_that_come_while_the_app_closes_are_dropped(tmp_path: Path) -> None:
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await app.query_one(BoardGrid).remove()  # as when the app closes
        await app.query_one(StatusBar).remove()
        bus.plug(VirtualBoard("esp32s2", kind=BoardKind.DFU), path="1-3")
        await until(pilot, lambda: "1-3" in app.workbench.boards(), "the board's event")
        assert app.workbench.drain()  # every event so far posted to the app...
        await pilot.pause()  # ...and handled
    # run_test re-raises what the app's handlers raised: nothing did


async def test_q_quits_at_once_when_idle(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the exit")
    assert app.return_code == 0


async def test_q_asks_first_while_a_flash_runs(tmp_path: Path) -> None:
    # A board stuck busy from 8 KiB on: the flash is still running when q, n, q, y are
    # handled, however loaded the machine (a 70 KB flash at the ROM's pace once ended first).
    app, bus = make_app(tmp_path, spec="esp32s2:busy@8K", time=TimeModel.realistic())
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        await pilot.press("x")
        await until(pilot, lambda: app.workbench.busy, "work")
        await pilot.press("q")
        assert isinstance(top(app), ConfirmScreen)
        await pilot.press("n")
        assert app.is_running and not isinstance(top(app), ConfirmScreen)
        await pilot.press("q", "y")
        await until(pilot, lambda: not app.is_running, "the exit")
    assert not app.workbench.busy  # the flash was aborted, not left running
    assert bus.board(S2A).downloads_completed == 0


async def test_every_command_is_in_the_palette(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE):
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        descriptions = {b.id: b.tooltip for b in app.BINDINGS if isinstance(b, Binding)}
        for description in filter(None, descriptions.values()):
            if not description.startswith(("Help", "Quit")):
                assert description in commands
        assert commands["Quit"].help == descriptions["quit"]  # it asks first


def test_command_line_options() -> None:
    args = build_parser().parse_args(
        ["proj", "--build-dir", "b", "--build-cmd", "idf.py -p x dfu", "--auto-flash", "--demo"]
    )
    assert (args.project_dir, args.build_dir, args.build_cmd) == (
        Path("proj"),
        Path("b"),
        "idf.py -p x dfu",
    )
    assert args.auto_flash and args.demo and not args.no_mouse


def test_panel_ids_are_valid_for_any_port_path() -> None:
    assert panel_id("1-1.2.3") == "board-1-1_2_3"


def test_what_stops_the_start_is_said_with_espdfus_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text("[build]\nshell = 3\n")
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(config))
    assert main(["--demo"]) == 2  # a mistake the user can correct
    assert "config.toml, line 2" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(not_a_folder))
    assert main(["--demo"]) == 1  # the lock file cannot be made there
    assert "Cannot use the lock file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["/nonexistent/dir"], "The project folder /nonexistent/dir does not exist."),
        (["/etc/passwd"], "The project folder /etc/passwd is not a folder."),
        (["--build-dir", "{file}"], "The build folder {file} is a file, not a folder."),
        (
            ["--build-dir", "/no/build"],
            "The build folder /no/build does not exist, and neither does /no.",
        ),
        (["--serve", "/nonexistent/dir"], "The project folder /nonexistent/dir does not exist."),
    ],
)
def test_a_folder_that_cannot_be_a_project_or_build_folder_is_refused(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They started as if fine, watching nothing for ever: now exit 2 before anything starts
    (no lock taken, nothing served)."""
    some_bin = tmp_path / "some.bin"
    some_bin.write_bytes(b"")
    argv = [arg.format(file=some_bin) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"espdfu-tui: {said.format(file=some_bin)}" in err and "Traceback" not in err


async def test_a_panel_shows_the_roms_erase_and_the_log_notes_the_large_part(
    tmp_path: Path,
) -> None:
    """A dfu.bin with one 1 MiB part: the board holds the bus 1 s for its erase (4 ms a sector
    here), and the panel says what it erases while it waits."""
    files = [FlashFile(0x10000, "app.bin", bytes(range(256)) * 4096)]
    time = TimeModel(request_s=0, erase_ms_per_sector=4.0, reenumerate_s=0.01)
    app, bus = make_app(tmp_path, spec="esp32s2", time=time)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        build_dir = app.workbench.settings.build_dir
        build_dir.mkdir(exist_ok=True)
        dfu_bin = dfufile.pack(files, pid=2, flash_size=4 * 1024 * 1024, part_size=2 << 20)
        (build_dir / "dfu.bin.tmp").write_bytes(dfu_bin)
        (build_dir / "dfu.bin.tmp").rename(build_dir / "dfu.bin")
        await until(pilot, lambda: app.workbench.compatible(S2A), "the artifact")
        log = "\n".join(str(line.text) for line in app.query_one("#log", RichLog).lines)
        assert "'app.bin' is one part of 1,048,576 bytes" in " ".join(log.split())
        await pilot.press("f")
        await until(pilot, lambda: "erasing 1 MB at 0x10000 (~8 s)" in panel_text(app, S2A), "it")
        assert "ETA" not in panel_text(app, S2A)  # the erase's own estimate fills the line
        await until(pilot, lambda: panel(app, S2A).view.last is not None, "the flash")
        last = panel(app, S2A).view.last
        assert last is not None and last.ok and bus.board(S2A).downloads_completed == 1


async def test_the_demo_keeps_its_labels_to_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label given in --demo is the demo's: the user's labels.toml is neither read nor
    written (it was: the demo's label then showed in `espdfu watch` on real boards)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("ESPDFU_CONFIG_DIR", raising=False)
    monkeypatch.delenv("ESPDFU_SIM", raising=False)
    users = save_label(S2A, "my real board")
    assert users == config_dir() / "labels.toml" and users.is_relative_to(home)
    before = users.read_bytes()
    demo_root = tmp_path / "demo"
    app, _ = make_app_from_args(build_parser().parse_args(["--demo"]), demo_root)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "the demo's boards")
        assert str(panel(app, S2A).border_title) == S2A  # not the user's label
        await pilot.press("n", *"bench", "enter")
        await until(pilot, lambda: str(panel(app, S2A).border_title) == "bench", "the label")
    assert users.read_bytes() == before
    assert load_labels(demo_root / "config") == {S2A: "bench"}


async def test_f_and_shift_f_without_a_dfu_bin_say_why(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        assert app.check_action("flash", ()) is None and app.check_action("flash_all", ()) is None
        await pilot.press("f", "F")  # greyed out, and they say why when pressed
        reason = "Nothing to flash: there is no dfu.bin yet."
        await until(pilot, lambda: log_text(app).count(reason) == 2, "both reasons")


async def test_shift_f_with_no_board_for_the_dfu_bin_says_so(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, spec="esp32s3")  # the demo builds for esp32s2
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        await pilot.press("b")
        await until(pilot, lambda: app.summary.artifact is not None, "the dfu.bin")
        await pilot.press("F")
        reason = "Nothing to flash: no board here can take this dfu.bin."
        await until(pilot, lambda: reason in log_text(app), "the reason")


async def test_a_dfu_bin_the_board_would_not_boot_is_shown_so_and_not_flashed(
    tmp_path: Path,
) -> None:
    """An ESP32-S2 dfu.bin whose app was built for the ESP32-S3: the top line says so, f
    says why it does nothing; the good build after it shows its app's own words."""
    app, bus = make_app(tmp_path, spec="esp32s2")
    build_dir = tmp_path / "espdfu-demo" / "build"
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        s3_app = write_image(0x0009, [(0x3F000020, bytes(256))], entry=0x40370000)
        build_dir.mkdir(parents=True, exist_ok=True)
        files = [FlashFile(0x10000, "app.bin", s3_app)]
        dfufile.save(build_dir / "dfu.bin", dfufile.pack(files, pid=0x0002))
        said = "app.bin at 0x10000 is built for esp32s3 but the file is for esp32s2"
        await until(pilot, lambda: said in text(app, "#artifact-line"), "the refusal")
        assert "build/dfu.bin would NOT boot: " in text(app, "#artifact-line")
        assert app.query_one(StatusBar).has_class("artifact-bad")
        logged = f"bytes; not flashed, as it would not boot: {said}"  # once, in one line
        await until(pilot, lambda: logged in log_text(app).replace("\n", ""), "the log's line")
        assert log_text(app).replace("\n", "").count(said) == 1
        await pilot.press("f")
        await until(pilot, lambda: "would not boot" in log_text(app), "f's reason")
        await idle(pilot, app)
        assert bus.board(S2A).downloads_completed == 0
        await pilot.press("b")
        await until(pilot, lambda: "espdfu-demo build 1" in text(app, "#artifact-line"), "a build")
        line = text(app, "#artifact-line")
        assert re.search(
            r"esp32s2, \d s ago · espdfu-demo build 1 · ESP-IDF v5\.3 · ELF [0-9a-f]{8}…", line
        )
        assert not app.query_one(StatusBar).has_class("artifact-bad")


async def test_keys_that_cannot_act_on_a_board_say_why_and_what_to_do(tmp_path: Path) -> None:
    """f on a board whose app runs without a DFU runtime, F past the boards it cannot flash, m
    on a board in download mode: each said why, with what to do (they did nothing)."""
    app, bus = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 3, "the panels")
        await pilot.press("m")  # S2A, in download mode: no app console yet
        await until(pilot, lambda: f"{S2A}: no console to show: " in log_text(app), "m's reason")
        words = " ".join(log_text(app).split())  # as read, not as wrapped
        assert "ROM download mode: its app's console comes after a RESET" in words
        assert app.screen is app.screen_stack[0]  # nothing opened
        await pilot.press("x")
        await until(pilot, lambda: all(panel(app, p).view.last for p in (S2A, S2B)), "flashes")
        bus.board(S2A).press_reset()  # its new app runs, off the bus: no DFU runtime
        await until(pilot, lambda: "build 1 · verified" in panel_text(app, S2A), "the app")
        await pilot.press("f")
        said = f"{S2A}: not flashed: its app runs without a DFU runtime"
        await until(pilot, lambda: said in " ".join(log_text(app).split()), "f's reason")
        assert "Hold BOOT, tap RESET, release BOOT" in " ".join(log_text(app).split())
        await pilot.press("F")  # S2B is flashed again; S2A and the S3 are passed over, said
        await until(pilot, lambda: bus.board(S2B).downloads_completed == 2, "S2B again")
        await idle(pilot, app)
        words = " ".join(log_text(app).split())
        assert words.count(said) == 2
        assert f"{S3}: not flashed: The file is for esp32s2 but the board at {S3} is esp32s3." in (
            words
        )
        assert "use --force if you are sure" in words  # what to do, as the command says it
        assert bus.board(S2A).downloads_completed == 1 and bus.board(S3).downloads_completed == 0


async def test_ages_move_on_by_themselves(tmp_path: Path) -> None:
    """ "flashed 0 s ago" and the dfu.bin's age follow the app's clock, moved on here."""
    later = 0.0
    app, _ = make_app(tmp_path, spec="esp32s2", clock=lambda: time.time() + later)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 1, "the panel")
        await pilot.press("x")
        await until(pilot, lambda: "flashed" in panel_text(app, S2A), "the flash")
        assert re.search(r"flashed \d s ago", panel_text(app, S2A))
        later = 125.0
        await until(
            pilot,
            lambda: (
                "flashed 2 min ago" in panel_text(app, S2A)
                and "esp32s2, 2 min ago" in text(app, "#artifact-line")
            ),
            "the once-a-second refresh",
        )


async def test_ctrl_c_reminds_of_the_apps_own_quit_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = make_app(tmp_path, keymap={"quit": "Q"})
    notes: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **_: notes.append(message))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+c")
        assert notes == ["Press Q to quit (it asks first while a flash or a build runs)."]
        assert app.is_running


async def test_every_panel_fits_80x24_with_its_reset_advice(tmp_path: Path) -> None:
    """Five boards, three rows, no scrolling; the RESET advice whole in every panel."""
    app, _ = make_app(tmp_path, spec="esp32s2*5")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 5, "the panels")
        await pilot.press("x")
        await until(pilot, lambda: all(p.view.last for p in app.query(BoardPanel)), "flashes")
        grid = app.query_one(BoardGrid)
        assert grid.max_scroll_y == 0
        advice = "press RESET to run the new firmware"
        for board in app.query(BoardPanel):
            assert board.query_one("#after").content_size.width >= len(advice)
            assert advice in panel_text(app, board.view.path)


async def test_the_arrows_reach_boards_below_the_fold_and_show_them(tmp_path: Path) -> None:
    """Four rows in room for three: down moves the selection (the grid's own scroll keys
    would take the arrows) and the selected board scrolls into view."""
    app, _ = make_app(tmp_path, spec="esp32s2*8")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.query(BoardPanel)) == 8, "the panels")
        grid = app.query_one(BoardGrid)
        await until(pilot, lambda: grid.max_scroll_y > 0, "the overflow")
        panels = list(app.query(BoardPanel))
        assert app.focused is panels[0]
        await pilot.press("down", "down", "down")
        bottom_left = panels[6]
        assert app.focused is bottom_left
        await until(
            pilot, lambda: grid.region.contains_region(bottom_left.region), "it scrolled in view"
        )


async def test_b_while_a_build_runs_says_why_it_does_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "30")  # still running when b comes again
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await until(pilot, lambda: app.check_action("build", ()) is None, "b greyed out")
        await pilot.press("b")
        await until(pilot, lambda: "A build is already running." in log_text(app), "the reason")
        await pilot.press("c")
        await until(pilot, lambda: not app.workbench.busy, "the build cancelled")


def test_ages_grow_coarser_so_that_they_are_redrawn_rarely() -> None:
    assert [ago(0, t) for t in (9.9, 10, 19.9, 59, 60, 3599, 3600)] == [
        "9 s ago",
        "10 s ago",
        "10 s ago",
        "50 s ago",
        "1 min ago",
        "59 min ago",
        "1 h ago",
    ]
