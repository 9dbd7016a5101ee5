"""Each board's console in the workbench: read while its app runs, closed for a flash, batched,
panics decoded; virtual boards print through real pseudo-terminals."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from espdfu.bench import flashes
from espdfu.bench.feed import BATCH_S, ConsoleFeed, ConsoleView
from espdfu.bench.views import BenchEvent, BoardRemoved, ConsoleOutput
from espdfu.chips import CHIPS
from espdfu.consoles.health import RunState
from espdfu.consoles.lines import Line
from espdfu.demo.finger import Finger
from espdfu.files.espimage import read_image
from espdfu.files.idfbuild import flash_files_from_json, read_flash_files
from espdfu.flashing.flasher import Outcome
from espdfu.flashing.flasher import flash_and_look as real_flash_and_look
from espdfu.loops import Alarms
from espdfu.sim import TimeModel
from espdfu.sim.firmware import PANIC_LINES, boot_lines
from espdfu.usb.boards import Mode
from tests.helpers.bench import Bench, bench_on
from tests.helpers.soak import TIMEOUT_S


@pytest.fixture
def one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    yield from bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.instant())


@pytest.fixture
def briefly_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    """One board, looked for only 0.3 s when it leaves by what may be a RESET."""
    yield from bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.instant(), away_s=0.3)


def _printed(events: list[BenchEvent], path: str) -> str:
    """Every line the board's app printed, one a line."""
    return "\n".join(
        line.text
        for event in events
        if isinstance(event, ConsoleOutput) and event.path == path
        for line in event.lines
    )


def _flashed(bench: Bench) -> str:
    """Build and flash the one board; its port path."""
    (path,) = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([path])
    return path


def _app_elf(bench: Bench) -> str:
    """The ELF SHA-256 the build's app says of itself, as its start-up prints it."""
    specs = flash_files_from_json(bench.build_dir / "flasher_args.json")
    app = next(f for f in read_flash_files(specs) if f.name.endswith("app.bin"))
    image = read_image(app.data, app=True)
    assert image is not None and image.app is not None
    return f"ELF file SHA256:  {image.app.elf_prefix}..."


def test_after_a_flash_and_reset_the_board_shows_its_new_apps_console(one: Bench) -> None:
    path = _flashed(one)
    assert one.workbench.boards()[path].console is None  # DFU mode: the ROM's, not read
    one.world.board(path).press_reset()
    one.recorder.wait(
        lambda: "app: sensor ready" in _printed(one.recorder.events, path), "the app's lines"
    )
    view = one.workbench.boards()[path]
    assert not view.present and view.running_app  # off the bus, but shown: its app runs
    assert view.console is not None and view.console.state is RunState.RUNNING
    assert view.state == "app running"
    assert _app_elf(one) in _printed(one.events(), path)
    assert f"{path}: its app's console is on" not in one.logged()  # shown all along


def test_a_board_that_leaves_after_its_flash_and_never_comes_back_was_unplugged(
    briefly_away: Bench,
) -> None:
    one = briefly_away
    path = _flashed(one)
    one.world.board(path).unplug()
    one.recorder.wait(lambda: one.workbench.boards()[path].away, "the board looked for")
    assert one.workbench.boards()[path].state == "reset? looking for it"
    one.recorder.wait(lambda: path not in one.workbench.boards(), "the board given up")
    assert any(isinstance(e, BoardRemoved) and e.path == path for e in one.events())
    assert f"{path} unplugged." in one.logged()


def test_a_console_another_program_holds_is_said_on_the_board_and_read_once_freed(
    briefly_away: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = briefly_away
    path = _flashed(one)
    board = one.world.board(path)
    rang: queue.Queue[str] = queue.Queue()
    """The keys of the alarms that rang and were acted on: the look for the board."""
    set_alarm = Alarms.set

    def set_and_tell(alarms: Alarms, key: str, seconds: float, call: Callable[[], object]) -> None:
        def ring() -> None:
            call()
            rang.put(key)

        set_alarm(alarms, key, seconds, ring)

    monkeypatch.setattr(Alarms, "set", set_and_tell)
    board.press_reset()
    port = board.console_port
    assert port is not None
    with serial.Serial(port, exclusive=True):  # idf.py monitor got there first
        one.recorder.wait(
            lambda: "in use by another program" in one.workbench.boards()[path].state,
            "the refusal",
        )
        assert rang.get(timeout=TIMEOUT_S) == path  # away_s is over, and the look answered:
        assert "in use by another program" in one.workbench.boards()[path].state  # still shown
        assert f"{path} unplugged." not in one.logged()
    one.recorder.wait(lambda: one.workbench.boards()[path].running_app, "the console, freed")


def test_a_running_apps_console_is_closed_before_it_is_flashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers_at_flash: list[list[str]] = []

    def flash_and_look(*args: object, **kwargs: object) -> Outcome:
        readers_at_flash.append(
            [t.name for t in threading.enumerate() if t.name == "espdfu-console"]
        )
        return real_flash_and_look(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flashes, "flash_and_look", flash_and_look)
    generator = bench_on(tmp_path, monkeypatch, "esp32s2-app", TimeModel.instant())
    bench = next(generator)
    (path,) = bench.world.paths
    bench.recorder.wait(lambda: bench.workbench.boards()[path].running_app, "the app's console")
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([path])
    assert bench.workbench.boards()[path].last.ok  # type: ignore[union-attr]
    assert readers_at_flash == [[]]  # no console reader alive as the flash began
    next(generator, None)


def _in_mode(bench: Bench, path: str, mode: Mode) -> Callable[[], bool]:
    def there() -> bool:
        view = bench.workbench.boards().get(path)
        return view is not None and view.present and view.board.mode is mode

    return there


def test_a_board_back_from_its_reset_as_its_app_keeps_the_chip_it_had_in_download_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = bench_on(tmp_path, monkeypatch, "esp32s2-app", TimeModel.instant())
    bench = next(generator)
    (path,) = bench.world.paths
    bench.recorder.wait(lambda: path in bench.workbench.boards(), "the board")
    assert bench.workbench.boards()[path].board.chip_name == "unknown"  # an app's descriptors
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([path])  # (the flash can be over before the bus is looked at again)
    bench.recorder.wait(_in_mode(bench, path, Mode.DFU), "the board seen in DFU mode")
    assert bench.workbench.boards()[path].board.chip_name == "esp32s2"  # the ROM's PID
    bench.world.board(path).press_reset()
    bench.recorder.wait(_in_mode(bench, path, Mode.APP), "the board back, running its app")
    assert bench.workbench.boards()[path].board.chip_name == "esp32s2"
    next(generator, None)


def test_the_demos_finger_resets_a_flashed_board_and_brings_it_back_for_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = bench_on(tmp_path, monkeypatch, "esp32s2", TimeModel.instant())
    bench = next(generator)
    bench.workbench.subscribe(Finger(bench.world.bus, bench.workbench, reset_s=0.05).see)
    (path,) = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([path])
    first = _app_elf(bench)
    bench.recorder.wait(lambda: first in _printed(bench.recorder.events, path), "the app's banner")
    assert f"Demo: RESET tapped on {path} for you" in bench.logged()
    bench.workbench.build(then_flash=True)
    assert f"Demo: BOOT held and RESET tapped on {path} for you." in bench.logged()
    bench.recorder.wait(
        lambda: _printed(bench.recorder.events, path).count("ELF file SHA256: ") >= 2,
        "the second app's banner",
    )
    second = _app_elf(bench)
    assert second != first  # every demo build differs: the new app is the one running
    assert second in _printed(bench.events(), path)
    next(generator, None)


def test_a_console_on_a_uart_bridge_is_read_from_the_port_the_config_gives_its_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pty: Pty
) -> None:
    generator = bench_on(
        tmp_path,
        monkeypatch,
        "esp32s2",
        TimeModel.instant(),
        labels={"1-1.1": "left jig"},
        console_ports={"left jig": pty.name},
    )
    bench = next(generator)
    (path,) = bench.world.paths
    bench.workbench.build(then_flash=True)
    bench.wait_flashed([path])
    bench.world.board(path).press_reset()
    bench.recorder.wait(lambda: bench.workbench.boards()[path].running_app, "the bridge's port")
    view = bench.workbench.boards()[path]
    assert view.console is not None and view.console.device == pty.name
    pty.write(["I (5) uart: hello over the bridge"])
    bench.recorder.wait(
        lambda: "hello over the bridge" in _printed(bench.recorder.events, path), "the line"
    )
    assert "ELF file SHA256" not in _printed(
        bench.events(), path
    )  # not the board's own USB console
    next(generator, None)


# --- Consoles on a pseudo-terminal ---------------------------------------------------------------


class Pty:
    """A pseudo-terminal: what the test writes to its master, a reader reads from its slave."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.name = os.ttyname(slave)
        os.close(slave)

    def write(self, lines: list[str]) -> None:
        data = "".join(f"{line}\r\n" for line in lines).encode()
        while data:
            data = data[os.write(self.master, data) :]


ESP32S2 = next(chip for chip in CHIPS if chip.name == "esp32s2")


class Deliveries:
    def __init__(self) -> None:
        self.batches: list[tuple[ConsoleView, tuple[Line, ...]]] = []
        self.changed = threading.Condition()

    def __call__(self, path: str, view: ConsoleView, lines: tuple[Line, ...]) -> None:
        with self.changed:
            self.batches.append((view, lines))
            self.changed.notify_all()

    def lines(self) -> list[Line]:
        return [line for _, batch in self.batches for line in batch]

    def wait(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.lines()) >= count, TIMEOUT_S), (
                f"{len(self.lines())} of {count} lines"
            )

    def wait_open(self) -> None:
        with self.changed:
            assert self.changed.wait_for(
                lambda: bool(self.batches) and self.batches[-1][0].open, TIMEOUT_S
            )


@pytest.fixture
def pty() -> Iterator[Pty]:
    made = Pty()
    yield made
    os.close(made.master)


def test_the_rate_a_panel_shows_fades_once_the_app_stops_printing(pty: Pty) -> None:
    """A burst, then nothing (a boot's lines, then a board that hangs): the view is made again
    until its rate is no more a flood's, though no line comes and its state stays."""
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered)
    consoles.read("1-1", True)
    delivered.wait_open()
    pty.write([f"I ({n}) app: line {n}" for n in range(100)])
    delivered.wait(100)
    assert delivered.batches[-1][0].rate_words.endswith("lines/s")
    with delivered.changed:
        assert delivered.changed.wait_for(
            lambda: not delivered.batches[-1][0].rate_words, TIMEOUT_S
        )
    consoles.close()
    assert delivered.batches[-1][0].state is RunState.RUNNING


def test_a_boots_burst_is_no_flood_but_the_apps_own_is(pty: Pty) -> None:
    """Every reset prints 20 to 40 lines at once (the ROM's, the bootloader's, start-up's):
    no "lines/s" for those; the running app printing as fast is a flood."""
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered)
    consoles.read("1-1", True)
    delivered.wait_open()
    boot = boot_lines(ESP32S2, None) * 2  # a boot, and a RESET right after
    pty.write(boot)
    delivered.wait(len(boot))
    assert not any(view.rate_words for view, _ in delivered.batches)  # (4 lines: main_task's)
    pty.write([f"I ({n}) app: line {n}" for n in range(100)])
    delivered.wait(len(boot) + 100)
    consoles.close()
    assert delivered.batches[-1][0].rate_words.endswith("lines/s")


def test_a_fast_app_is_delivered_whole_in_few_batches(pty: Pty) -> None:
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered)
    consoles.read("1-1", True)
    delivered.wait_open()
    lines = [f"I ({n}) app: line {n}" for n in range(3000)]
    started = time.monotonic()
    pty.write(lines)
    delivered.wait(len(lines))
    seconds = time.monotonic() - started
    consoles.close()
    assert [line.text for line in delivered.lines()] == lines  # all, in order
    batches = [batch for _, batch in delivered.batches if batch]
    assert len(batches) <= seconds / BATCH_S + 2  # one at once, then one a batch period
    view = delivered.batches[-1][0]
    assert view.lines == len(lines) and view.tail == tuple(delivered.lines()[-2:])
    assert view.rate > 0


def test_a_released_console_can_be_opened_alone_at_once(pty: Pty) -> None:
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered)
    consoles.read("1-1", True)
    delivered.wait_open()
    consoles.release("1-1")  # as before a flash
    from espdfu.consoles.ports import open_port

    open_port(pty.name).close()  # exclusive: it would say "in use" if the reader held it
    consoles.close()


def test_a_panic_backtrace_is_decoded_from_the_projects_elf(pty: Pty, elf: Path) -> None:
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered, elf=lambda: elf)
    consoles.read("1-1", True)
    delivered.wait_open()
    pty.write(PANIC_LINES)
    delivered.wait(len(PANIC_LINES) + 3)
    consoles.close()
    lines = delivered.lines()
    at = next(i for i, line in enumerate(lines) if line.text.startswith("Backtrace:"))
    decoded = lines[at + 1 : at + 4]
    assert all(line.tag == "backtrace" for line in decoded)
    assert [line.text.split(" at ")[0] for line in decoded] == [
        "  0x40081234: sensor_read", "  0x400d1234: app_main", "  0x40085678: _start"
    ]  # fmt: skip
    assert delivered.batches[-1][0].state is RunState.PANICKED


def test_a_panic_before_a_reset_is_noted_on_the_running_app_until_the_user_looks() -> None:
    """An app's USB console goes with the reset and comes back with the app: the panic was
    forgotten there (a new health at every open), and the panel said "app running"."""
    ptys = [Pty()]
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: ptys[-1].name, delivered)
    try:
        consoles.read("1-1", True)
        delivered.wait_open()
        ptys[0].write(["I (5000) app: tick", *PANIC_LINES])
        delivered.wait(1 + len(PANIC_LINES))
        assert delivered.batches[-1][0].state is RunState.PANICKED
        ptys.append(Pty())
        os.close(ptys[0].master)  # the reset: the port goes...
        with delivered.changed:  # ...and comes back with the app
            assert delivered.changed.wait_for(
                lambda: delivered.batches[-1][0].device == ptys[-1].name, TIMEOUT_S
            )
        ptys[-1].write(["I (300) app: hello again"])
        delivered.wait(2 + len(PANIC_LINES))
        view = delivered.batches[-1][0]
        assert view.state is RunState.RUNNING and view.warned
        assert view.words.startswith("app running · panicked ")
        assert view.words.endswith(" (LoadProhibited)")
        consoles.seen("1-1")
        with delivered.changed:
            assert delivered.changed.wait_for(
                lambda: delivered.batches[-1][0].note is None, TIMEOUT_S
            )
        assert delivered.batches[-1][0].words == "app running"
    finally:
        consoles.close()
        os.close(ptys[-1].master)


def test_a_console_that_stops_printing_turns_silent_without_a_new_line(
    pty: Pty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("espdfu.consoles.health.SILENT_S", 0.5)
    monkeypatch.setattr("espdfu.bench.feed.RECHECK_S", 0.1)
    delivered = Deliveries()
    consoles = ConsoleFeed(lambda path: lambda: pty.name, delivered)
    consoles.read("1-1", True)
    delivered.wait_open()
    pty.write(["I (300) app: hello"])
    with delivered.changed:
        silent = delivered.changed.wait_for(
            lambda: delivered.batches[-1][0].state is RunState.SILENT, TIMEOUT_S
        )
    consoles.close()
    assert silent
    assert delivered.batches[-1][0].words.startswith("app silent for ")
