"""Many boards at once: parallel downloads under a scanning monitor, at full speed each."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import usb.core

from espdfu.files.dfufile import FlashFile, pack
from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel
from espdfu.usb.protocol import Ending, Request
from tests.helpers.simhost import Host, device_at, expected_flash, image, payload_of


def test_eight_boards_flashed_from_eight_threads_under_a_monitor() -> None:
    bus = SimBus.from_spec("esp32s2*4,esp32s3*4", time=TimeModel.instant())
    backend = SimBackend(bus)
    images = {path: image(0x0002 if n < 4 else 0x0009, seed=n) for n, path in enumerate(bus.boards)}
    stop = threading.Event()
    scans = 0

    def monitor() -> None:
        nonlocal scans
        while not stop.is_set():
            for dev in usb.core.find(find_all=True, backend=backend):
                try:
                    dev.get_active_configuration()
                except usb.core.USBError as gone:  # it left since the scan, as boards do
                    assert gone.backend_error_code == -4
            scans += 1

    def flash(path: str) -> Ending:
        runtime = Host(device_at(backend, path), interface=2)
        runtime.out(Request.DETACH, 1000)
        return Host(device_at(backend, path)).download(payload_of(images[path][0]))

    watcher = threading.Thread(target=monitor)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            endings = list(pool.map(flash, bus.boards))
    finally:
        stop.set()
        watcher.join()
    assert endings == [Ending.IDLE] * 8 and scans > 0
    for path, board in bus.boards.items():
        assert board.mode == "dfu" and board.downloads_completed == 1
        assert board.flash == expected_flash(images[path][1])


def test_boards_sleep_their_latencies_in_parallel() -> None:
    """Eight boards downloaded from eight threads take far less than eight one after another.
    Both runs are timed here, so a loaded host slows both (an absolute bound flaked)."""
    model = TimeModel(request_s=0.0005, erase_ms_per_sector=0, manifest_ms=0)
    payload = payload_of(pack([FlashFile(0, "a.bin", bytes(2048))], pid=2))

    def eight(threads: int) -> float:
        """The wall time of a download to each of eight boards from ``threads`` threads."""
        bus = SimBus.from_spec("esp32s2-dfu*8", time=model)
        backend = SimBackend(bus)
        started = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: Host(device_at(backend, p)).download(payload), bus.boards))
        wall = time.monotonic() - started
        each = [board.device_time_s for board in bus.boards.values()]
        assert min(each) > 0.15  # 160 blocks, 2 requests each, 0.5 ms each
        assert {board.kind for board in bus.boards.values()} == {BoardKind.DFU}
        return wall

    one_after_another = eight(1)
    assert eight(8) < one_after_another / 2  # 0.14 here when nothing else runs, 0.19 when busy
