"""Run in the guest: how soon the hot-plug monitor sees a board plugged in, and what it costs
while nothing happens, with the kernel's uevents as its cue or by polling alone.

    python3 plugprobe.py PATH uevents|poll|cue PLUGS IDLE_S

uevents: as espdfu runs (the kernel's uevents, and its safety-net poll); poll: the poll alone
(no uevents, its 0.5 s interval); cue: the uevents with the poll 30 s apart, so that a board
seen sooner was the cue's doing.

Measures the monitor's CPU seconds over IDLE_S idle seconds, prints "ready", then "seen N" as it
reports each of PLUGS plugs of the board at PATH (the scenario plugs it in, and unplugs it
before the next); last, one JSON line: the guest's clock (CLOCK_BOOTTIME, the gadget's) at each
report and at each uevent of a USB device coming or going (a listener of its own: when the
kernel had the board), and the idle CPU.
"""

from __future__ import annotations

import functools
import json
import resource
import sys
import threading
import time
from dataclasses import replace

from espdfu.usb.hotplug import DEFAULT_INTERVAL_S, BoardEvent, Change, HotPlug
from espdfu.usb.transport import open_libusb
from espdfu.usb.uevents import KernelUevents, kernel_uevents

CUE_ONLY_S = 30.0


def main(path: str, how: str, plugs: int, idle_s: float) -> None:
    usb_world = open_libusb()
    if how == "poll":
        usb_world = replace(usb_world, news=None)
    seen: list[float] = []
    came = threading.Condition()

    def on_event(event: BoardEvent) -> None:
        if event.change is Change.ADDED and event.board.path == path:
            with came:
                seen.append(time.clock_gettime(time.CLOCK_BOOTTIME))
                came.notify_all()

    kernel = kernel_uevents()
    assert kernel is not None, "no netlink in the guest"
    heard: list[float] = []
    done = threading.Event()
    listening = threading.Thread(target=_listen, args=(kernel, heard, done), daemon=True)
    listening.start()
    interval = CUE_ONLY_S if how == "cue" else DEFAULT_INTERVAL_S
    monitor = HotPlug(usb_world, on_event, interval)
    monitor.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(idle_s)
    after = resource.getrusage(resource.RUSAGE_SELF)
    idle_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    seen.clear()  # whatever was on the bus before
    print("ready", flush=True)
    for n in range(1, plugs + 1):
        with came:
            came.wait_for(functools.partial(_at_least, seen, n), timeout=60)
        print(f"seen {n}", flush=True)
    monitor.stop()
    done.set()
    kernel.wake()
    report = {"seen": seen, "heard": heard, "idle_cpu_s": idle_cpu, "idle_s": idle_s}
    print(json.dumps(report), flush=True)


def _listen(kernel: KernelUevents, heard: list[float], done: threading.Event) -> None:
    """Note the guest's clock at each uevent of a USB device, until ``done``."""
    while not done.is_set():
        if kernel.wait(3600):
            heard.append(time.clock_gettime(time.CLOCK_BOOTTIME))


def _at_least(seen: list[float], n: int) -> bool:
    return len(seen) >= n


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
