"""The workbench under load: rebuilds faster than flashes on 16 boards, and hot-plug storms.

The counts come from tests/helpers/soak.py, which benchmarks/bench_soak.py reports too.
"""

from __future__ import annotations

import threading
from pathlib import Path

from espdfu.files import dfufile
from espdfu.flashing.flasher import FlashResult, flash
from espdfu.sim import SimBus, VirtualSerial
from espdfu.usb.transport import Usb
from tests.helpers.soak import FAST, TIMEOUT_S, RecordingBackend, dfu_bin, soak, storm


def test_auto_flash_keeps_up_with_rebuilds_faster_than_flashes_on_16_boards(
    tmp_path: Path,
) -> None:
    report = soak(tmp_path, boards=16, rounds=25)
    assert report.trouble == [] and report.threads_left == []
    assert report.holding_last == 16  # every board ends with the last dfu.bin
    assert report.most_at_once == 1  # never two flashes on one board at once
    assert report.lost == report.duplicate == report.failed == 0
    assert report.ok == report.started == report.downloads  # one result per flash, as done
    assert report.artifacts >= 2 and report.skipped > 0  # rebuilds did outrun the flashes
    assert report.stale_views == 0 and report.events_after_stop == 0


def test_boards_come_and_go_every_few_ms_while_others_are_flashed(tmp_path: Path) -> None:
    report = storm(tmp_path, flashed=4, others=10, artifacts=3)
    assert report.trouble == [] and report.threads_left == []
    assert report.ok == report.flashes == report.downloads == 4 * 3
    assert report.unplugs >= 20 and report.removals_seen > 0  # it did storm, and was seen
    assert report.converged and report.stale_views == 0
    assert report.events_after_stop == 0


def test_the_overlap_count_sees_two_flashes_on_one_board() -> None:
    """The instrument itself: two flashes started at once on one board count as two."""
    bus = SimBus.from_spec("esp32s2-dfu", time=FAST)
    backend = RecordingBackend(bus)
    usb = Usb(backend, "virtual boards", VirtualSerial(bus))
    (path,) = bus.boards
    image = dfufile.parse(dfu_bin(0))
    together = threading.Barrier(2)
    results: list[FlashResult] = []

    def host() -> None:
        together.wait()
        results.append(flash(usb, path, image))

    threads = [threading.Thread(target=host) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert backend.most_at_once() == {path: 2}
    assert sorted(result.ok for result in results) == [False, True]  # the board let one in
