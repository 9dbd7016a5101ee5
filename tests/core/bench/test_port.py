"""A port's life as a table: each state, each thing that can happen to it, the state it moves to
and what it asks the workbench to do. The port is sans-IO, so each row runs it directly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import methodcaller
from pathlib import Path

import pytest

from espdfu.bench.artifacts import Artifact
from espdfu.bench.base import Sending
from espdfu.bench.feed import ConsoleView
from espdfu.bench.port import (
    Effect,
    FlashWhole,
    Hide,
    LookFor,
    Policy,
    Port,
    ReadConsole,
    ResetIntoApp,
    Say,
    Show,
)
from espdfu.bench.verify import Verdict
from espdfu.bench.views import Life
from espdfu.chips import ESPRESSIF_VID, chip_by_name
from espdfu.consoles.bridge import BridgeError
from espdfu.consoles.health import RunState
from espdfu.files import dfufile
from espdfu.files.dfufile import DfuImage, FlashFile
from espdfu.files.espimage import AppDesc, app_desc_bytes, write_image
from espdfu.flashing.failures import Failure, FlashError
from espdfu.flashing.flasher import FlashResult, Outcome, Phase, Progress
from espdfu.flashing.jobs import Job
from espdfu.usb.boards import Access, Board, Mode
from espdfu.usb.protocol import Ending

PATH = "1-1.2"
S2 = chip_by_name("esp32s2")
ARTIFACT = Artifact(Path("dfu.bin"), None, "", 1000, 0.0, "digest-1", made_here=False)


def board(mode: Mode, address: int = 5) -> Board:
    """A board at PATH as discovery reports it (an app's descriptors do not name the chip)."""
    chip = S2 if mode in (Mode.ROM, Mode.DFU) else None
    pid = {Mode.ROM: 0x0002, Mode.DFU: 0x0002, Mode.APP: 0x4002, Mode.NO_DFU: 0x4001}[mode]
    interface = None if mode is Mode.NO_DFU else 0
    return Board(PATH, ESPRESSIF_VID, pid, address, chip, mode, interface, None, Access.OK)


ROM, DFU, APP, NO_DFU = board(Mode.ROM), board(Mode.DFU, 6), board(Mode.APP), board(Mode.NO_DFU)


def sent(digest: str = "digest-1", app: AppDesc | None = None) -> Sending:
    """A flash of a dfu.bin whose app is ``app`` (None: an app that names no build)."""
    data = write_image(2, [(0x3F000020, app_desc_bytes(app))], entry=0) if app else bytes(1000)
    image = dfufile.parse(dfufile.pack([FlashFile(0x10000, "app.bin", data)], pid=2))
    return Sending(replace(ARTIFACT, image=image, digest=digest), image)


JOB: Job[Sending, object] = Job(PATH, sent(), threading.Event())
FLASHED = FlashResult(PATH, "esp32s2", 1000, 1.0, ending=Ending.IDLE)
LOST = FlashResult(PATH, "esp32s2", 1000, 1.0, FlashError(Failure.VANISHED, "It vanished."))
CANCELLED = FlashResult(PATH, "esp32s2", 1000, 1.0, FlashError(Failure.CANCELLED, "Cancelled."))
NOT_RESET = FlashResult(
    PATH,
    "esp32s2",
    1000,
    0.1,
    FlashError(Failure.NOT_RESET, "It was not reset into download mode."),
)
OPEN = ConsoleView(device="/dev/ttyACM0")
HELD = ConsoleView(problem="/dev/ttyACM0 is in use by another program.", hint="Close it.")
GONE = ConsoleView(lines=3)
PANICKED = replace(
    OPEN, state=RunState.PANICKED, detail="LoadProhibited", said="panicked: LoadProhibited"
)
NOTED = replace(OPEN, state=RunState.RUNNING, said="running · panicked 3 s ago (LoadProhibited)")
BROWNOUT = replace(OPEN, state=RunState.POWER, said="power trouble: Brownout detector was trig")


News = Callable[[Port], list[Effect]]
"""What happens to a port: one of its transitions, called."""


def seen(found: Board) -> News:
    return methodcaller("seen", found)


def started() -> News:
    return methodcaller("flash_started", JOB, 1000)


def downloading() -> News:
    return methodcaller("progressed", Progress(PATH, Phase.DOWNLOADING, 64, 1000))


def ended(result: FlashResult, left: Board | None, digest: str = "digest-1") -> News:
    return methodcaller("ended", Outcome(result, left), sent(digest))


def console(view: ConsoleView) -> News:
    return methodcaller("console_changed", view)


def timed_out(look: int) -> News:
    return methodcaller("timed_out", look)


LEFT: News = methodcaller("left")


# How to bring a port to each state, from nothing.
STATES: dict[str, list[News]] = {
    "absent": [],
    "ROM download": [seen(ROM)],
    "DFU mode": [seen(DFU)],
    "app with DFU runtime": [seen(APP)],
    "flashing": [seen(ROM), started()],
    "flashing, off the bus": [seen(ROM), started(), LEFT],
    "flashed, in DFU mode": [seen(ROM), started(), ended(FLASHED, DFU, "digest-1")],
    "away after a flash": [seen(ROM), started(), ended(FLASHED, DFU, "digest-1"), LEFT],
    "app, seen by its console": [
        seen(ROM),
        started(),
        ended(FLASHED, DFU, "digest-1"),
        LEFT,
        console(OPEN),
    ],
    "app panicked": [seen(APP), console(OPEN), console(PANICKED)],
}


@dataclass(frozen=True)
class Row:
    state: str
    news: News
    life: Life
    effects: tuple[type[Effect], ...]
    says: str = ""
    """Words the log line says (empty: no line)."""


TABLE = [
    # A board comes, changes, goes.
    Row("absent", seen(ROM), Life.PRESENT, (Show, Say), f"{PATH}: esp32s2, ROM download."),
    Row("absent", seen(NO_DFU), Life.PRESENT, (ReadConsole, Show, Say), "unknown, no DFU."),
    Row("absent", LEFT, Life.ABSENT, ()),
    Row("absent", console(OPEN), Life.ABSENT, ()),  # not read: a port never seen
    Row("ROM download", seen(DFU), Life.PRESENT, (Show, Say), "esp32s2, DFU."),
    Row("ROM download", seen(ROM), Life.PRESENT, (Show,)),  # nothing new to say
    Row("ROM download", LEFT, Life.ABSENT, (ReadConsole, Hide, Say), f"{PATH} unplugged."),
    Row("ROM download", started(), Life.FLASHING, (Show,)),
    Row("ROM download", timed_out(1), Life.PRESENT, ()),
    Row("app with DFU runtime", LEFT, Life.ABSENT, (Hide, Say), "unplugged."),
    Row("app with DFU runtime", started(), Life.FLASHING, (ReadConsole, Show)),
    # A flash: the board leaves in its DETACH and comes back in DFU mode, silently.
    Row("flashing", LEFT, Life.FLASHING, (Show,)),
    Row("flashing", downloading(), Life.FLASHING, (Show,)),
    Row("flashing", started(), Life.FLASHING, ()),  # one flash a port
    Row("flashing, off the bus", seen(DFU), Life.FLASHING, (Show,)),
    Row("flashing", console(OPEN), Life.FLASHING, ()),  # not read while flashed
    Row("flashing", ended(FLASHED, DFU, "digest-1"), Life.PRESENT, (Show, Say), "Flashed 1,000"),
    Row("flashing", ended(CANCELLED, DFU, "d"), Life.PRESENT, (Show, Say), "Cancelled."),
    Row(
        "flashing, off the bus",
        ended(FLASHED, None, "d"),
        Life.AWAY,
        (ReadConsole, LookFor, Show, Say),
        "Flashed",
    ),
    Row(
        "flashing, off the bus",
        ended(LOST, None, "d"),
        Life.ABSENT,
        (ReadConsole, Hide, Say, Say),
        "It vanished. 1-1.2 unplugged.",
    ),
    # After a good flash, RESET: looked for, then its app's console, or given up.
    Row("flashed, in DFU mode", LEFT, Life.AWAY, (ReadConsole, LookFor, Show)),
    Row("away after a flash", console(OPEN), Life.APP, (Show,)),
    Row("away after a flash", console(HELD), Life.APP, (Show,)),
    Row("away after a flash", timed_out(1), Life.ABSENT, (Hide, Say), f"{PATH} unplugged."),
    Row("away after a flash", timed_out(0), Life.AWAY, ()),  # an older look, answered
    Row("away after a flash", seen(NO_DFU), Life.PRESENT, (Show, Say), "esp32s2, no DFU."),
    Row("away after a flash", seen(ROM), Life.PRESENT, (ReadConsole, Show, Say), "ROM download."),
    Row("app, seen by its console", console(GONE), Life.AWAY, (LookFor, Show)),
    Row(
        "app, seen by its console",
        seen(ROM),
        Life.PRESENT,
        (ReadConsole, Show, Say),
        "ROM download.",
    ),
    Row("app, seen by its console", LEFT, Life.APP, ()),  # off the bus already
    # Trouble is said in the log once, as it begins (the panel keeps it until looked at).
    Row(
        "app with DFU runtime",
        console(PANICKED),
        Life.PRESENT,
        (Show, Say),
        "1-1.2: app panicked: LoadProhibited.",
    ),
    Row(
        "app, seen by its console", console(BROWNOUT), Life.APP, (Show, Say), "power trouble: Brown"
    ),
    Row("app panicked", console(PANICKED), Life.PRESENT, (Show,)),  # said already
    Row("app panicked", console(NOTED), Life.PRESENT, (Show,)),  # over: the panel says so
]


def port_in(state: str, policy: Policy | None = None) -> Port:
    port = Port(PATH, policy=policy)
    for news in STATES[state]:
        news(port)
    return port


def named(row: Row) -> str:
    transition = repr(row.news).split("'")[1]  # methodcaller('seen', ...)
    return f"{row.state} + {transition}"


@pytest.mark.parametrize("row", TABLE, ids=named)
def test_the_ports_life(row: Row) -> None:
    moves_as_said(port_in(row.state), row)


def moves_as_said(port: Port, row: Row) -> None:
    """The row's news moves ``port`` to the row's life, with the row's effects and words."""
    effects = row.news(port)
    assert port.life is row.life
    assert tuple(type(effect) for effect in effects) == row.effects
    said = " ".join(effect.text for effect in effects if isinstance(effect, Say))
    assert row.says in said and bool(said) == bool(row.says)


def test_every_state_of_the_table_is_reached_as_it_says() -> None:
    lives = {state: port_in(state).life for state in STATES}
    assert lives == {
        "absent": Life.ABSENT,
        "ROM download": Life.PRESENT,
        "DFU mode": Life.PRESENT,
        "app with DFU runtime": Life.PRESENT,
        "flashing": Life.FLASHING,
        "flashing, off the bus": Life.FLASHING,
        "flashed, in DFU mode": Life.PRESENT,
        "away after a flash": Life.AWAY,
        "app, seen by its console": Life.APP,
        "app panicked": Life.PRESENT,
    }
    assert {row.state for row in TABLE} == set(STATES) - {"DFU mode"}


def test_the_console_is_read_only_where_an_app_may_run() -> None:
    """Never in the ROM's download or DFU mode, never while flashed; always off the bus."""
    assert port_in("ROM download").console is None
    assert port_in("app with DFU runtime").console is not None
    assert port_in("flashing").console is None
    assert port_in("away after a flash").console is not None
    assert port_in("away after a flash", Policy(consoles=False)).life is Life.ABSENT


def test_a_board_that_appears_is_armed_as_the_settings_say_and_only_then() -> None:
    assert port_in("ROM download").armed
    assert not port_in("ROM download", Policy(arm=False)).armed
    port = port_in("ROM download")
    port.armed = False  # the user disarmed it: a flash and its re-enumeration keep that
    for news in (started(), LEFT, seen(DFU), ended(FLASHED, DFU, "digest-1")):
        news(port)
    assert not port.armed


def test_an_apps_usb_ids_do_not_lose_the_chip_its_rom_named() -> None:
    port = port_in("away after a flash")
    seen(NO_DFU)(port)
    assert port.board is not None and port.board.chip is S2
    LEFT(port)
    timed_out(port.look)(port)  # given up: what comes next may be another board
    seen(NO_DFU)(port)
    assert port.board is not None and port.board.chip is None


def test_a_flash_from_rom_download_never_shows_an_app_and_shows_dfu_as_it_downloads() -> None:
    """The panel's mode words all along a flash from ROM download: DETACH takes the board off
    the bus on its way to DFU mode, the download has it in DFU mode before the bus is seen."""
    port = port_in("ROM download")
    words = []
    for news in (started(), LEFT, downloading(), seen(DFU), ended(FLASHED, DFU, "d")):
        news(port)
        words.append(port.view(None, force=False).mode_words)
    assert words == ["ROM download", "ROM download → DFU", "DFU", "DFU", "DFU"]


def test_a_flash_of_an_app_with_a_dfu_runtime_keeps_saying_so_until_dfu_mode() -> None:
    port = port_in("app with DFU runtime")
    drawn = []
    for news in (started(), LEFT, downloading(), seen(DFU)):
        news(port)
        view = port.view(None, force=False)
        drawn.append(f"{view.board.chip_name} · {view.mode_words}")
    assert drawn == [
        "unknown · app (DFU runtime)",
        "unknown · app (DFU runtime) → DFU",
        "unknown · DFU",
        "esp32s2 · DFU",
    ]


def test_the_view_says_what_the_port_knows() -> None:
    away = port_in("away after a flash").view(None, force=False)
    assert away.away and away.state == "reset? looking for it" and away.mode_words == "off the bus"
    app = port_in("app, seen by its console").view(None, force=False)
    assert app.state == "app: no output yet" and app.mode_words == "app" and app.running_app
    flashing = port_in("flashing").view(None, force=False)
    assert flashing.flashing and flashing.state == "connecting"
    held = port_in("away after a flash")
    console(replace(HELD))(held)
    assert held.view(None, force=False).state == HELD.problem


def test_trouble_is_an_error_in_the_log_and_power_trouble_a_warning() -> None:
    """Firmware in trouble is the board's fault to fix; a brownout is the power's."""
    panicked = console(PANICKED)(port_in("app with DFU runtime"))
    browned = console(BROWNOUT)(port_in("app with DFU runtime"))
    assert [say.level for say in panicked if isinstance(say, Say)] == ["error"]
    assert [say.level for say in browned if isinstance(say, Say)] == ["warning"]


def test_each_boot_after_our_flash_is_checked_against_the_build_flashed() -> None:
    """The build a boot names (its ELF's SHA-256, as ESP-IDF's start-up prints it) against the
    app of the file flashed here: the log says each change once, the view says it always."""
    app = AppDesc("blink", "v2", "v5.3", "Dec  7 2026", "12:00:00", bytes.fromhex("3e4a" * 16))
    port = Port(PATH)
    for news in (
        seen(ROM),
        started(),
        methodcaller("ended", Outcome(FLASHED, None), sent("d", app)),
    ):
        news(port)
    said: list[str] = []

    def boot(view: ConsoleView) -> None:
        effects = console(view)(port)
        said.extend(f"{e.level}: {e.text}" for e in effects if isinstance(e, Say))

    boot(OPEN)  # the console opens: nothing said of the build yet
    assert port.view(None, force=False).check is None and said == []
    mine = replace(OPEN, state=RunState.RUNNING, elf="3e4a3e4a3e4a3e4a")
    boot(mine)
    assert said == [
        f"info: {PATH}: verified: it runs blink v2 (ELF 3e4a3e4a…), the build flashed here."
    ]
    check = port.view(None, force=False).check
    assert check is not None and check.verdict is Verdict.VERIFIED
    assert check.words == "running blink v2 · verified"
    boot(replace(OPEN, state=RunState.BOOTING))  # a RESET: the same build again, not said again
    boot(mine)
    assert len(said) == 1
    boot(replace(mine, elf="9f1c9f1c9f1c9f1c"))  # flashed by another tool meanwhile
    assert said[-1] == (
        f"error: {PATH}: runs another build (ELF 9f1c9f1c…, flashed 3e4a3e4a…): not the build "
        "flashed here."
    )
    boot(replace(OPEN, state=RunState.RUNNING))  # attached to a running app: no banner seen
    assert said[-1].startswith(f"warning: {PATH}: not verified: its app runs, but no start-up")
    before = len(said)
    boot(replace(OPEN, state=RunState.CRASHING, detail="LoadProhibited", said="crashing at boot"))
    assert said[before:] == [  # one line: not also "crashing at boot", of the same boots
        f"error: {PATH}: the build flashed here did not boot: LoadProhibited."
    ]


def test_no_check_without_a_build_of_ours_to_compare() -> None:
    """A board never flashed here, or whose last flash failed, is not judged."""
    port = port_in("app, seen by its console")  # flashed, but its file named no app
    running = replace(OPEN, state=RunState.RUNNING, elf="3e4a3e4a3e4a3e4a")
    effects = console(running)(port)
    assert not [e for e in effects if isinstance(e, Say)] and port.view(None, False).check is None


# A DevKit whose console is linked to its USB-UART bridge, resets through it on.
BRIDGED_TABLE = [
    # Its UART is read in download mode too: the ROM says so there.
    Row("ROM download", LEFT, Life.APP, (Show,)),  # its console open: its app runs
    Row("app, seen by its console", started(), Life.FLASHING, (ReadConsole, Show)),
    Row("away after a flash", started(), Life.FLASHING, (ReadConsole, Show)),
    # After a good flash, no RESET asked: the bridge resets it, on its console's port.
    Row(
        "flashing",
        ended(FLASHED, DFU, "digest-1"),
        Life.PRESENT,
        (ReadConsole, Show, Say, ResetIntoApp),
        "Flashed 1,000",
    ),
    Row(
        "flashing", ended(CANCELLED, DFU, "d"), Life.PRESENT, (ReadConsole, Show, Say), "Cancelled."
    ),
    # Its bridge did not take it into download mode: its app still runs, its console says so.
    Row(
        "flashing from its app",
        ended(NOT_RESET, None, "d"),
        Life.AWAY,
        (ReadConsole, LookFor, Show, Say),
        "was not reset into download mode",
    ),
    Row(  # off the bus from now on, whether or not the monitor has looked since
        "flashed, in DFU mode",
        methodcaller("reset_into_app_done", None),
        Life.APP,
        (Show, Say),
        f"{PATH}: reset into its app through its UART bridge.",
    ),
    Row(
        "flashed, in DFU mode",
        methodcaller("reset_into_app_done", BridgeError("It will not.", "Link it.")),
        Life.PRESENT,
        (Show, Say),
        "not reset into its app: It will not. Link it. Press RESET on the board",
    ),
]


def bridged_in(state: str) -> Port:
    port = Port(PATH)
    port.bridged = True
    console(OPEN)(port)  # its bridge's port, there before the board is seen
    for news in BRIDGED_STATES.get(state) or STATES[state]:
        news(port)
    if port.console is not None and port.life is not Life.FLASHING:
        console(OPEN)(port)
    return port


BRIDGED_STATES = {"flashing from its app": [*STATES["app, seen by its console"], started()]}
"""States only a bridged port reaches (with those of :data:`STATES`)."""


@pytest.mark.parametrize("row", BRIDGED_TABLE, ids=named)
def test_a_bridged_ports_life(row: Row) -> None:
    moves_as_said(bridged_in(row.state), row)


def test_a_bridged_board_off_the_bus_may_be_flashed_an_unbridged_one_not() -> None:
    """Its bridge takes it into download mode first; without one the user must."""
    assert bridged_in("app, seen by its console").startable
    assert bridged_in("away after a flash").startable
    assert not port_in("app, seen by its console").startable
    assert not port_in("away after a flash").startable
    assert not bridged_in("absent").startable  # never seen: nothing to flash


# --- the base: what the board holds, as its boots confirm -------------------------------------

BUILD = AppDesc("blink", "v2", "v5.3", "Dec  7 2026", "12:00:00", bytes.fromhex("3e4a" * 16))
MINE = replace(OPEN, state=RunState.RUNNING, elf="3e4a3e4a3e4a3e4a")
THEIRS = replace(OPEN, state=RunState.RUNNING, elf="9f1c9f1c9f1c9f1c")


def base(port: Port) -> DfuImage | None:
    """What the port holds as the board's base now (a call: each look is a new one)."""
    return port.base.image if port.base is not None else None


def flashed_here(port: Port, flash: Sending) -> None:
    for news in (seen(ROM), started(), methodcaller("ended", Outcome(FLASHED, None), flash)):
        news(port)


def test_a_flash_is_the_base_once_a_boot_names_its_build() -> None:
    port = Port(PATH)
    flash = sent("d", BUILD)
    flashed_here(port, flash)
    console(OPEN)(port)
    console(replace(OPEN, state=RunState.RUNNING))(port)  # no banner: which build, unknown
    assert base(port) is None
    console(MINE)(port)
    assert base(port) is flash.artifact.image
    console(THEIRS)(port)  # flashed by another tool since, or another board
    assert base(port) is None


def test_a_base_ends_with_the_board_and_with_each_flash() -> None:
    port = Port(PATH)
    flashed_here(port, sent("d", BUILD))
    console(MINE)(port)
    assert base(port) is not None
    console(GONE)(port)  # its app's console went: a RESET, or the cable
    timed_out(port.look)(port)
    assert not port.shown and base(port) is None  # what comes here next may be another board
    flashed_here(port, sent("d", BUILD))
    console(MINE)(port)
    assert base(port) is not None
    for news in (seen(ROM), started(), methodcaller("ended", Outcome(CANCELLED, DFU), sent())):
        news(port)
    assert base(port) is None  # half a flash: nobody knows what it holds


def test_changes_that_did_not_give_the_build_send_the_whole_file() -> None:
    port = Port(PATH)
    whole = sent("d", BUILD)
    flashed_here(port, whole)
    console(MINE)(port)
    held = port.base
    assert held is not None
    changes = replace(sent("e", BUILD), base=held)
    flashed_here(port, changes)
    effects = console(THEIRS)(port)
    says = [effect for effect in effects if isinstance(effect, Say)]
    assert says[-1].level == "warning" and says[-1].text == (
        f"{PATH}: the changes since {held.since} did not give the build: the board did not "
        "hold what espdfu flashed there then; sending the whole file."
    )
    assert [e for e in effects if isinstance(e, FlashWhole)] == [FlashWhole(changes.artifact)]
    assert port.base is None
    assert not [e for e in console(THEIRS)(port) if isinstance(e, FlashWhole)]  # once


def test_a_trusted_base_needs_no_boot() -> None:
    port = Port(PATH, policy=Policy(trust_base=True))
    flash = sent("d", BUILD)
    flashed_here(port, flash)
    assert base(port) is flash.artifact.image
