"""The flashing station: every board flashed once per plug, on virtual boards under the real
flash engine and monitor, and `espdfu station` as a line runs it."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from espdfu.files import dfufile
from espdfu.flashing.flasher import Failure, FlashResult
from espdfu.flashing.station import Skipped, Station
from espdfu.sim import Fault, TimeModel
from espdfu.sim.board import Enumeration
from espdfu.usb.boards import read_state
from espdfu.usb.protocol import Request
from tests.helpers.boardworld import KIB, World, assert_flashed, image, image_files, world
from tests.helpers.buildfolder import stale_build
from tests.helpers.command import DEADLINE_S, Command, espdfu

INTERVAL_S = 0.02


class Rig:
    """A station on a world of virtual boards, recording what it reports."""

    def __init__(self, w: World, paths: tuple[str, ...], app_size: int) -> None:
        self.world = w
        self.files = image_files(app_size=app_size)
        self.results: list[FlashResult] = []
        self.skipped: list[Skipped] = []
        self.station = Station(
            w.usb,
            image("esp32s2", self.files),
            self.results.append,
            self.skipped.append,
            paths=paths,
            monitor_interval_s=INTERVAL_S,
        )
        self.looks = 0
        """How many times anything looked at the bus (the monitor, once no flash runs)."""
        enumerations = w.bus.enumerations

        def look() -> list[Enumeration]:
            self.looks += 1
            return enumerations()

        w.bus.enumerations = look  # type: ignore[method-assign]

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    def settle(self) -> None:
        """Until the monitor has looked at the bus three more times (a flash those looks
        started may still run: stop() waits for it)."""
        looks = self.looks
        self.wait(lambda: self.looks >= looks + 3, "three looks at the bus")


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(
        spec: str,
        paths: tuple[str, ...] = (),
        time: TimeModel | None = None,
        app_size: int = 8 * KIB,
    ) -> Rig:
        rigs.append(Rig(world(spec, time), paths, app_size))
        return rigs[-1]

    yield make
    for made in rigs:
        made.station.stop()


def test_each_board_is_flashed_once_and_again_after_a_replug(rig: Callable[..., Rig]) -> None:
    r = rig("esp32s2*2,esp32s3")
    first, second, other = r.world.paths
    r.station.start()
    r.wait(lambda: len(r.results) == 2, "both esp32s2 boards")
    assert all(result.ok for result in r.results)
    assert [s.path for s in r.skipped] == [other] and "esp32s3" in r.skipped[0].reason
    r.settle()  # flashed boards stay on the bus in DFU mode: not a new plug
    assert [r.world.board(p).downloads_completed for p in (first, second)] == [1, 1]
    assert len(r.skipped) == 1  # nor is the other chip's board named again
    r.world.board(first).replug()  # the operator plugs the next board into that slot
    r.wait(lambda: len(r.results) == 3, "the board plugged in next")
    r.settle()
    r.station.stop()  # any flash that started has ended
    assert len(r.results) == 3 and r.results[-1].path == first and r.results[-1].ok
    assert [r.world.board(p).downloads_completed for p in (first, second)] == [2, 1]
    assert len(r.skipped) == 1
    assert_flashed(r.world.board(first), r.files)


def test_only_the_chosen_slots(rig: Callable[..., Rig]) -> None:
    r = rig("esp32s2*3", paths=("1-1.2",))
    r.station.start()
    r.wait(lambda: len(r.results) == 1, "the board in the slot")
    r.settle()
    r.station.stop()  # any flash that started has ended
    assert [result.path for result in r.results] == ["1-1.2"]
    assert [r.world.board(p).downloads_completed for p in r.world.paths] == [0, 1, 0]


def test_a_failed_board_waits_for_its_replug(rig: Callable[..., Rig]) -> None:
    r = rig("esp32s2")
    (path,) = r.world.paths
    board = r.world.board(path)
    board.unplug()
    r.station.start()
    board.replug()
    r.wait(lambda: board.downloads_completed == 1, "the flash")
    r.wait(lambda: len(r.results) == 1, "its result")
    board.unplug()  # pulled out after its flash, then a board that gets pulled mid-flash:
    board.faults.append(Fault("unplug", Request.DNLOAD, nth=20))
    board.replug()
    r.wait(lambda: len(r.results) == 2, "the second board's result")
    error = r.results[-1].error
    assert error is not None and error.kind is Failure.VANISHED
    board.replug()  # plugged back: flashed again
    r.wait(lambda: len(r.results) == 3, "the retry")
    assert r.results[-1].ok


def test_stop_aborts_the_running_flashes_and_leaves_the_boards_ready(
    rig: Callable[..., Rig],
) -> None:
    r = rig("esp32s2*2", time=TimeModel.realistic(), app_size=256 * KIB)  # about 10 s each
    r.station.start()
    r.wait(lambda: all(r.world.board(p).mode == "dfu" for p in r.world.paths), "the downloads")
    endings = r.station.stop()
    assert sorted(endings) == r.world.paths
    for result in endings.values():
        assert result is not None and result.error is not None
        assert result.error.kind is Failure.CANCELLED
    for path in r.world.paths:
        assert read_state(r.world.usb, r.world.scan(path)) == "ready"
    assert not any(t.name.startswith("espdfu-station") for t in threading.enumerate())


def start_station(folder: Path, config_dir: Path) -> Command:
    """`espdfu station` on two S2 boards and an S3, in ``folder``, with the configuration in
    ``config_dir`` (never the user's own)."""
    dfu = folder / "dfu.bin"
    dfu.write_bytes(dfufile.pack(image_files(app_size=8 * KIB), pid=0x0002))
    return Command(
        "station", dfu, "--sim", "esp32s2*2,esp32s3", cwd=folder,
        env={"ESPDFU_CONFIG_DIR": str(config_dir)},
    )  # fmt: skip


def test_the_command_reports_each_board_and_stops_on_a_signal(tmp_path: Path) -> None:
    command = start_station(tmp_path, tmp_path)
    try:
        command.expect_all(  # in any order: the skipped board's line may come last
            "1-1.3  not flashed: The file is for esp32s2",
            "1-1.1  esp32s2  Flashed",
            "1-1.2  esp32s2  Flashed",
        )
        code, err = command.stop(signal.SIGINT)
        assert code == 130
        assert "2 boards flashed, 0 failed." in err
        assert "stopped by SIGINT: nothing was running." in err
    finally:
        command.close()


def test_the_command_names_labelled_slots_by_label_and_port(tmp_path: Path) -> None:
    """The jig's slots are labelled (production.md says to): the operator reads those names,
    with the port, as `espdfu watch` writes them."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[labels]\n"1-1.2" = "slot 2"\n"1-1.3" = "slot 3"\n')
    command = start_station(tmp_path, config)
    try:
        unlabelled, _, skipped = command.expect_all(
            "1-1.1  esp32s2  Flashed", "slot 2 (1-1.2)  esp32s2  Flashed", "slot 3 (1-1.3)"
        )
        assert "not flashed: The file is for esp32s2" in skipped
        assert unlabelled.split()[1:3] == ["1-1.1", "esp32s2"]  # no label: the port alone
        assert command.stop(signal.SIGINT)[0] == 130
    finally:
        command.close()


def test_the_command_refuses_a_dfu_bin_older_than_the_build_beside_it(tmp_path: Path) -> None:
    """As `espdfu flash` does: a production line must not flash a build's stale file."""
    (tmp_path / "build").mkdir()
    stale_build(tmp_path / "build")
    refused = espdfu("station", "build/dfu.bin", "--sim", "esp32s2", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    said = "build/dfu.bin holds an older app than build/app.bin"
    assert refused.stderr.splitlines()[0] == (
        f"espdfu: {said}, so it is not what the build beside it flashes."
    )
