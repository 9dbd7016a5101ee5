"""No hands: a DevKit whose console is linked to its USB-UART bridge is reset through the
bridge's lines into download mode before each flash and into its app after, and the boot that
follows is checked against the build flashed; with its resets off it is left to the user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from espdfu.bench.settings import WorkbenchSettings
from espdfu.bench.verify import Verdict
from espdfu.bench.views import BoardChanged, Life, Logged
from espdfu.bench.workbench import Workbench
from espdfu.files import dfufile
from espdfu.flashing.flasher import flash
from espdfu.sim import TimeModel
from espdfu.sim.bridge import bridge_url
from espdfu.usb.transport import SerialPorts
from tests.helpers.bench import Bench, bench_on
from tests.helpers.boardworld import world
from tests.helpers.soak import Recorder

PATH = "1-1.1"
LINK = {PATH: bridge_url(PATH)}


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """One S2 DevKit in download mode, its console linked to its bridge ([consoles])."""
    yield from bench_on(
        tmp_path, monkeypatch, "esp32s2:bridge", TimeModel.instant(), console_ports=LINK
    )


def verified(bench: Bench, build: int) -> bool:
    view = bench.workbench.boards()[PATH]
    check = view.check
    return (
        check is not None and check.verdict is Verdict.VERIFIED and f"build {build}" in check.words
    )


def test_each_rebuild_is_flashed_and_verified_running_with_no_button(bench: Bench) -> None:
    board = bench.world.board(PATH)
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    assert not board.present  # its app has no USB: only the bridge's console tells it runs
    assert bench.workbench.boards()[PATH].life is Life.APP
    before = len(bench.events())
    bench.workbench.build()  # from its app: into download mode by the bridge, then flashed
    bench.recorder.wait(lambda: verified(bench, 2), "build 2 verified running")
    shown = [
        e.view.mode_words for e in bench.events()[before:]
        if isinstance(e, BoardChanged) and e.view.path == PATH
    ]  # fmt: skip
    modes = [words for n, words in enumerate(shown) if n == 0 or shown[n - 1] != words]
    start = modes.index("app → ROM download")  # the panel says how it goes in, never "DFU" first
    assert modes[start : start + 2] == ["app → ROM download", "ROM download"]
    assert "DFU" in modes[start + 2 :]  # then DETACH's way, as from any ROM download
    logged = bench.logged()
    assert logged.count(f"{PATH}: reset into download mode through its UART bridge") == 1
    assert logged.count(f"{PATH}: reset into its app through its UART bridge.") == 2
    assert "Press RESET" not in logged  # nothing asked of the user
    assert board.downloads_completed == 2


@pytest.fixture
def unbridged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """The same board, its resets turned off for it ([resets] "1-1.1" = false)."""
    yield from bench_on(
        tmp_path, monkeypatch, "esp32s2:bridge", TimeModel.instant(), console_ports=LINK,
        resets={PATH: False},
    )  # fmt: skip


def test_a_board_whose_resets_are_off_is_left_to_the_user(unbridged: Bench) -> None:
    bench = unbridged
    board = bench.world.board(PATH)
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([PATH])
    bench.wait_idle()
    assert board.present and board.mode == "dfu"  # waits for RESET, as the ROM does
    assert f"Press RESET on {PATH}" in bench.logged()
    assert board.bridge is not None
    assert not any(rts and not dtr for dtr, rts in board.bridge.lines)  # EN never low


@pytest.fixture
def cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """The DevKit runs its app when the workbench starts: its chip's USB was never on the bus."""
    yield from bench_on(
        tmp_path, monkeypatch, "esp32s2:bridge", TimeModel.instant(), console_ports=LINK,
        before=lambda w: w.board(PATH).press_reset(boot=False),
    )  # fmt: skip


def test_a_board_running_its_app_from_the_start_is_seen_and_flashed_through_its_bridge(
    cold: Bench,
) -> None:
    bench = cold
    board = bench.world.board(PATH)
    view = bench.workbench.boards()[PATH]
    assert view.life is Life.APP and not board.present  # seen on its console only
    assert view.mode_words == "app" and view.board.chip is None  # not yet known: not guessed
    assert f"{PATH}: its app's console is on {bridge_url(PATH)}." in bench.logged()
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    assert bench.workbench.boards()[PATH].board.chip_name == "esp32s2"  # its ROM said so
    assert board.downloads_completed == 1


class _BridgeBeside:
    """The virtual boards' serial ports, and a CP2102N beside the board at PATH on its hub (as a
    DevKit's UART connector, plugged into the same hub): what the system's ports would say."""

    def __init__(self, boards: SerialPorts) -> None:
        self._boards = boards

    def at(self, usb_path: str) -> str | None:
        return self._boards.at(usb_path)

    def espressif(self) -> list[str]:
        return self._boards.espressif()

    def bridges_beside(self, usb_path: str) -> list[tuple[str, str]]:
        return [("1-1.4", "CP210x at /dev/ttyUSB0")] if usb_path == PATH else []


@pytest.mark.parametrize("linked", [False, True])
def test_a_bridge_beside_an_unlinked_board_is_said_once(tmp_path: Path, linked: bool) -> None:
    """Said, not used: the user links it (opening an unknown serial port could reset
    whatever is there)."""
    w = world("esp32s2*2", TimeModel.instant())
    assert w.usb.serial is not None
    usb_world = replace(w.usb, serial=_BridgeBeside(w.usb.serial))
    consoles = {PATH: "1-1.4"} if linked else {}
    settings = WorkbenchSettings(
        build_dir=tmp_path, monitor_interval_s=0.05, console_ports=consoles
    )
    workbench, recorder = Workbench(usb_world, settings), Recorder()
    workbench.start(recorder)
    try:
        recorder.wait(lambda: len(workbench.boards()) == 2, "the boards")
        if not linked:
            recorder.wait(lambda: "beside" in recorder.logged(), "the bridge said")
        w.board(PATH).unplug()
        recorder.wait(lambda: PATH not in workbench.boards(), "the board gone")
        w.board(PATH).replug()  # seen again: not said again
        recorder.wait(lambda: PATH in workbench.boards(), "the board back")
    finally:
        workbench.stop()
    said = [e.text for e in recorder.events if isinstance(e, Logged) and "beside" in e.text]
    expected = (
        f"{PATH}: a USB-UART bridge (CP210x at /dev/ttyUSB0) is at 1-1.4, beside it on its hub. "
        f'If it is this DevKit\'s, link them ([consoles] "{PATH}" = "1-1.4"): espdfu then reads '
        "its console there and resets it itself, into download mode and back into its app."
    )
    assert said == ([] if linked else [expected])


def test_a_verified_board_gets_only_the_changes_and_they_leave_the_whole_files_flash(
    bench: Bench,
) -> None:
    """Build 1 goes whole and is seen running: the board's base. Build 2 (a same-size edit of
    its code) sends its changed sectors, and nothing else of the demo's; the board's flash
    is then what the whole of build 2 leaves, and build 2 is verified running."""
    board = bench.world.board(PATH)
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    first = dfufile.load(bench.build_dir / "dfu.bin")
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 2), "build 2 verified running")
    second = dfufile.load(bench.build_dir / "dfu.bin")
    said = [line for line in bench.logged().splitlines() if "sectors changed since" in line]
    assert len(said) == 1 and said[0].startswith(f"{PATH}: sending ")
    sent = {file.name: file.size for file in board.last_files}
    assert all(name.endswith("-app.bin") for name in sent)  # bootloader and table: the same
    assert 0 < sum(sent.values()) < len(second.payload) / 4
    twin = world("esp32s2")
    for image in (first, second):
        assert flash(twin.usb, PATH, image).ok
    assert board.flash == twin.board(PATH).flash


def test_a_board_that_no_longer_held_its_base_gets_the_whole_file_at_once(bench: Bench) -> None:
    """Another tool wrote into the app since build 1 ran (a sector build 2 does not change):
    its changes leave an app its bootloader refuses; the whole file follows, and runs."""
    board = bench.world.board(PATH)
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    first = dfufile.load(bench.build_dir / "dfu.bin")
    board.flash[0x10000 + 40 * 1024] ^= 0xFF  # not build 2's edit, nor its first or last sector
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 2), "build 2 verified running")
    logged = bench.logged()
    assert "sectors changed since" in logged
    assert f"{PATH}: the build flashed here did not boot: " in logged
    assert f"{PATH}: the changes since " in logged and "sending the whole file." in logged
    assert "app.bin" in {file.name for file in board.last_files}  # the whole file, last
    twin = world("esp32s2")
    for image in (first, dfufile.load(bench.build_dir / "dfu.bin")):
        assert flash(twin.usb, PATH, image).ok
    assert board.flash == twin.board(PATH).flash


def test_the_build_a_board_runs_is_not_sent_again_but_on_asking_for_the_whole_file(
    bench: Bench,
) -> None:
    board = bench.world.board(PATH)
    bench.workbench.build(then_flash=True)
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    assert bench.workbench.flash([PATH]) == []
    assert (
        f"{PATH}: nothing sent: it holds this build already (nothing changed since "
        in bench.logged()
    )
    assert board.downloads_completed == 1
    assert bench.workbench.flash([PATH], whole=True) == [PATH]
    bench.recorder.wait(lambda: board.downloads_completed == 2, "the whole file flashed")
    assert "app.bin" in {file.name for file in board.last_files}


@pytest.fixture
def whole_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """The DevKit of ``bench``, with ``[flash] changes_only = false``."""
    yield from bench_on(
        tmp_path, monkeypatch, "esp32s2:bridge", TimeModel.instant(), console_ports=LINK,
        changes_only=False,
    )  # fmt: skip


def test_with_changes_only_off_every_flash_sends_the_whole_file(whole_only: Bench) -> None:
    bench = whole_only
    bench.workbench.set_auto_flash(True)
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 1), "build 1 verified running")
    bench.workbench.build()
    bench.recorder.wait(lambda: verified(bench, 2), "build 2 verified running")
    assert "sectors changed" not in bench.logged()
    assert "app.bin" in {file.name for file in bench.world.board(PATH).last_files}
