"""The hot-plug monitor's idle cost: CPU seconds per wall second with 8 boards connected.

The monitor rescans every 0.5 s (pyusb has no hot-plug callbacks), so its cost while nothing
changes is paid for as long as the app runs. Goal ≤ 1 % of one core. Measured on virtual
boards: the enumeration goes through pyusb and the simulator's backend instead of libusb.
"""

from __future__ import annotations

import time

from espdfu.sim import SimBus, TimeModel, virtual_usb
from espdfu.usb.hotplug import BoardEvent, HotPlug
from run import Row, Section

BOARDS = 8
GOAL = 0.01


def run(quick: bool) -> Section:
    seconds = 5.0 if quick else 30.0
    bus = SimBus.from_spec(f"esp32s2*{BOARDS}", time=TimeModel.instant())
    events: list[BoardEvent] = []
    monitor = HotPlug(virtual_usb(bus, "virtual boards"), events.append)
    monitor.start()
    if len(monitor.boards()) != BOARDS:
        raise RuntimeError(f"the monitor sees {len(monitor.boards())} boards, not {BOARDS}")
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    monitor.stop()
    share = cpu / wall
    scans = wall / 0.5
    body = (
        f"{BOARDS} virtual boards connected, nothing changing, for {wall:.1f} s of wall time "
        f"(about {scans:.0f} scans): the process used {cpu * 1000:.1f} ms of CPU, "
        f"{cpu / scans * 1e6:.0f} µs per scan. Events during the measurement: "
        f"{len(events) - BOARDS} (the {BOARDS} boards were reported once at start)."
    )
    return Section(
        "Hot-plug monitor, idle",
        body,
        [Row("CPU / wall, 8 boards idle", f"{share:.3%}", f"≤ {GOAL:.0%}", share <= GOAL)],
    )
