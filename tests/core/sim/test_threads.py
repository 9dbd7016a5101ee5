"""Many boards at once: parallel downloads under a scanning monitor, at full speed each."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import usb.core

from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb.protocol import Ending, Request
from tests.helpers.simhost import Host, ModelClock, device_at, expected_flash, image, payload_of


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


def test_a_board_sleeps_with_no_lock_held() -> None:
    """What lets boards sleep their latencies in parallel (benchmarks/bench_flash.py measures
    eight boards against one): whenever a board sleeps out a latency or an erase, neither its
    lock nor the bus's is held."""
    held: list[bool] = []

    class Watching(ModelClock):
        def sleep(self, seconds: float) -> None:
            held.append(board._lock.locked() or bus._lock.locked())
            super().sleep(seconds)

    clock = Watching()
    bus = SimBus(TimeModel.scaled(0.01), clock)
    board = bus.plug(VirtualBoard("esp32s2", BoardKind.DFU))
    dfu_bin, files = image()
    Host(device_at(SimBackend(bus), board.path), clock=clock).download(payload_of(dfu_bin))
    assert board.flash == expected_flash(files)
    assert len(held) > board.requests.total()  # every request's latency, and the erases
    assert not any(held)
