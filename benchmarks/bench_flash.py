"""The flash engine on virtual boards with the realistic time model: host efficiency, scaling.

Host efficiency: the wall time of a flash divided by the time the device itself imposed
(every request's latency, every erase it held the bus for, every bwPollTimeout it
reported). What is left over is the host: Python, pyusb, the state machine, and how closely
it keeps to the poll timeouts.
Goal ≤ 1.03.

Parallel scaling: the wall time of flashing 8 boards at once divided by that of one board.
Goal ≤ 1.2.
"""

from __future__ import annotations

import random
import statistics
import time

from espdfu.files import dfufile
from espdfu.flashing.flasher import flash, flash_many
from espdfu.sim import SimBus, TimeModel, virtual_usb
from espdfu.usb.transport import Usb
from run import Row, Section, markdown_table

KIB = 1024
EFFICIENCY_GOAL = 1.03
SCALING_GOAL = 1.2
BOARDS = 8


def _image(size: int) -> dfufile.DfuImage:
    rng = random.Random(0xF1A5)
    files = [
        dfufile.FlashFile(0x1000, "bootloader.bin", rng.randbytes(16 * KIB)),
        dfufile.FlashFile(0x10000, "app.bin", rng.randbytes(size - 16 * KIB)),
    ]
    return dfufile.parse(dfufile.pack(files, pid=0x0002, flash_size=4 * 1024 * KIB))


def _world(boards: int) -> tuple[Usb, SimBus]:
    bus = SimBus.from_spec(f"esp32s2*{boards}", time=TimeModel.realistic())
    return virtual_usb(bus, "virtual boards"), bus


def _check(results: list[object]) -> None:
    failed = [result for result in results if not getattr(result, "ok", False)]
    if failed:
        raise RuntimeError(f"a benchmark flash failed: {failed[0]}")


def run(quick: bool) -> Section:
    size = (64 if quick else 256) * KIB
    repeats = 1 if quick else 3
    image = _image(size)

    ratios, walls, device_times = [], [], []
    for _ in range(repeats):
        world, bus = _world(1)
        (path,) = bus.boards
        start = time.perf_counter()
        result = flash(world, path, image)
        wall = time.perf_counter() - start
        _check([result])
        device = bus.board(path).device_time_s
        walls.append(wall)
        device_times.append(device)
        ratios.append(wall / device)

    single, parallel = [], []
    for _ in range(repeats):
        world, bus = _world(BOARDS)
        paths = list(bus.boards)
        start = time.perf_counter()
        _check([flash(world, paths[0], image)])
        single.append(time.perf_counter() - start)
        world, bus = _world(BOARDS)
        start = time.perf_counter()
        _check(list(flash_many(world, list(bus.boards), image)))
        parallel.append(time.perf_counter() - start)
    scaling = statistics.median(parallel) / statistics.median(single)
    efficiency = statistics.median(ratios)

    table = markdown_table(
        ["Measurement", "Median s", "Min s", "Max s"],
        [
            [name, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{max(v):.2f}"]
            for name, v in (
                ("1 board: flash wall time", walls),
                ("1 board: device's own time", device_times),
                ("1 board of 8 present", single),
                (f"{BOARDS} boards in parallel", parallel),
            )
        ],
    )
    body = f"""\
A dfu.bin of {size // KIB} KiB ({len(image.payload):,} bytes sent: a 16 KiB bootloader and an
app) flashed onto virtual ESP32-S2 boards in ROM download mode — DETACH, re-enumeration, the
download in 64-byte blocks, manifestation — with the realistic time model of `espdfu.sim`,
{repeats} time(s). The device's own time counts every request's latency (1 ms; the simulator
pays back its own sleep overshoot, so latencies are exact on average), every erase it held the
bus for (the ROM's 30 ms per 4 KiB sector), and the re-enumeration after DETACH.

{table}"""
    rows = [
        Row(
            "host efficiency: wall / device time",
            f"{efficiency:.3f}×",
            f"≤ {EFFICIENCY_GOAL}×",
            efficiency <= EFFICIENCY_GOAL,
        ),
        Row(
            f"parallel scaling: {BOARDS} boards / 1 board",
            f"{scaling:.2f}×",
            f"≤ {SCALING_GOAL}×",
            scaling <= SCALING_GOAL,
        ),
        Row(
            "1 board throughput", f"{len(image.payload) / statistics.median(walls) / KIB:.1f} KiB/s"
        ),
    ]
    return Section("Flash engine on virtual boards", body, rows)
