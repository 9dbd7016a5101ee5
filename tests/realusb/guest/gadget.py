"""The emulated boards on the guest's USB bus: configfs gadgets and FunctionFS, driven by rom.py.

    python3 -m guest.gadget CONFIG OUT      (from the folder above guest/)

CONFIG (JSON, written by harness.py) lists the boards: ``{"boards": [{"chip": "esp32s2",
"flash_size": 4194304, "timing": {...}, "faults": {...}, "dfu_pid": null}]}`` (rom.Timing and
rom.Faults; ``dfu_pid``: the DFU-mode PID when not espdfu.usb.rom.dfu_mode_pid's).
Board N sits on the UDC ``dummy_udc.N``, which dummy_hcd pairs with its own host port. Each
board has two gadgets, as the ROM has two faces: ROM download mode (the kernel's CDC-ACM at
interfaces 0-1, the DFU runtime interface at 2 on FunctionFS) and DFU mode (one FunctionFS
interface). DETACH unbinds the first and, after the re-enumeration delay, binds the second
to the same UDC: the same port, a new address, as a board does. A cable pull unbinds.

Writes OUT/boards.json (each board's UDC and USB port path) once every board is plugged in,
then serves until SIGTERM, when it unplugs the boards and writes OUT/boardN.json (rom.Rom's
report) and OUT/boardN.flash (the flash image). Requests on /run/gadget.ctl (a FIFO, one
"ID ACTION BOARD" a line: replug, unplug, wipe) are acknowledged in /run/gadget.ack.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from espdfu.chips import ESPRESSIF_VID, chip_by_name
from espdfu.usb import rom
from espdfu.usb.protocol import DFU_CLASS, DFU_SUBCLASS, PROTOCOL_DFU, PROTOCOL_RUNTIME

from .rom import (
    DFU_MODE_DESCRIPTOR,
    RUNTIME_DESCRIPTOR,
    Action,
    Answer,
    Faults,
    Mode,
    Rom,
    Setup,
    Timing,
    clock,
)

CONFIGFS = Path("/sys/kernel/config/usb_gadget")
FFS_MOUNTS = Path("/dev/ffs")
CONTROL = Path("/run/gadget.ctl")
ACK = Path("/run/gadget.ack")

# FunctionFS (linux/usb/functionfs.h): descriptors (v2) and strings written to ep0, events
# read from it.
_DESCRIPTORS_MAGIC_V2 = 3
_STRINGS_MAGIC = 2
_HAS_FS_DESC = 1
_HAS_HS_DESC = 2
_EVENT = struct.Struct("<BBHHHB3x")  # the SETUP packet, then the event type
_EVENT_SETUP = 4


def log(text: str) -> None:
    print(f"{clock():8.3f} {text}", flush=True)


def functionfs_descriptors(protocol: int, functional: bytes) -> bytes:
    """One DFU interface (no endpoints) and its functional descriptor, at full and high speed.

    The interface is number 0 within the function; the composite gadget renumbers it (2 in
    ROM download mode, after CDC-ACM's two). No interface string: the ROM has none."""
    interface = struct.pack("<9B", 9, 4, 0, 0, 0, DFU_CLASS, DFU_SUBCLASS, protocol, 0)
    speeds = struct.pack("<II", 2, 2) + (interface + functional) * 2
    flags = _HAS_FS_DESC | _HAS_HS_DESC
    return struct.pack("<III", _DESCRIPTORS_MAGIC_V2, 12 + len(speeds), flags) + speeds


def functionfs_strings() -> bytes:
    return struct.pack("<IIII", _STRINGS_MAGIC, 16, 0, 0)


def write_attributes(folder: Path, attributes: dict[str, str]) -> None:
    for name, value in attributes.items():
        (folder / name).write_text(value)


APP_PID = 0x4001
"""The app's own USB console after a RESET: one CDC-ACM function under Espressif's VID, with
the PID esp_tinyusb gives a device of one CDC interface (0x4000 | 1). That ESP-IDF's other
console (CONFIG_ESP_CONSOLE_USB_CDC, the ROM's USB stack) shows the same PID is an assumption:
espdfu finds a console by port path, whatever the PID."""


class Gadget:
    """One configfs gadget: device descriptor, strings, one configuration and its functions."""

    def __init__(
        self, name: str, product_id: int, device_class: tuple[int, int, int], product: str
    ) -> None:
        self.folder = CONFIGFS / name
        self.folder.mkdir()
        write_attributes(
            self.folder,
            {
                "idVendor": f"0x{ESPRESSIF_VID:04x}",
                "idProduct": f"0x{product_id:04x}",
                "bcdDevice": f"0x{rom.BCD_DEVICE:04x}",
                "bcdUSB": "0x0200",
                "bDeviceClass": str(device_class[0]),
                "bDeviceSubClass": str(device_class[1]),
                "bDeviceProtocol": str(device_class[2]),
                "max_speed": "full-speed",  # the ESP32-S2/S3 USB-OTG runs at full speed
            },
        )
        strings = self.folder / "strings" / "0x409"
        strings.mkdir()
        write_attributes(
            strings, {"manufacturer": "Espressif", "product": product, "serialnumber": "0"}
        )
        self.configuration = self.folder / "configs" / "c.1"
        self.configuration.mkdir()
        write_attributes(self.configuration, {"MaxPower": "100", "bmAttributes": "0x80"})

    def add(self, function: str) -> None:
        """Add a function (``acm.x``, ``ffs.x``); interfaces are numbered in this order."""
        path = self.folder / "functions" / function
        path.mkdir()
        (self.configuration / function).symlink_to(path)

    def bind(self, udc: str) -> None:
        (self.folder / "UDC").write_text(udc)

    def unbind(self) -> None:
        (self.folder / "UDC").write_text("\n")


class FunctionFs:
    """A FunctionFS instance: its ep0, with descriptors and strings written."""

    def __init__(self, instance: str, descriptors: bytes) -> None:
        self.mountpoint = FFS_MOUNTS / instance
        self.mountpoint.mkdir(parents=True)
        subprocess.run(["mount", "-t", "functionfs", instance, str(self.mountpoint)], check=True)
        self.ep0 = os.open(self.mountpoint / "ep0", os.O_RDWR)
        os.write(self.ep0, descriptors)
        os.write(self.ep0, functionfs_strings())

    def serve(self, answer: Callable[[FunctionFs, Setup], None]) -> None:
        """Read ep0's events for ever; hand each SETUP to ``answer``."""
        while True:
            try:
                events = os.read(self.ep0, _EVENT.size * 8)
            except OSError as error:  # a request cancelled by an unbind, and the like
                log(f"{self.mountpoint.name}: ep0 read: {os.strerror(error.errno or 0)}")
                time.sleep(0.01)
                continue
            for offset in range(0, len(events), _EVENT.size):
                *packet, kind = _EVENT.unpack_from(events, offset)
                if kind == _EVENT_SETUP:
                    answer(self, Setup(*packet))

    def read(self, length: int) -> bytes:
        """Take an OUT request's data stage, or acknowledge one without data."""
        return os.read(self.ep0, length)

    def write(self, data: bytes) -> None:
        os.write(self.ep0, data)

    def stall(self, is_in: bool) -> None:
        """FunctionFS stalls a request when ep0 is used against its direction."""
        try:
            if is_in:
                os.read(self.ep0, 0)
            else:
                os.write(self.ep0, b"")
        except OSError as error:
            if error.errno != errno.EL2HLT:
                raise


class Board:
    """One emulated board on one UDC: its two gadgets, its ROM, and its cable."""

    def __init__(self, index: int, spec: dict[str, Any]) -> None:
        chip = chip_by_name(spec["chip"])
        if chip is None:
            raise SystemExit(f"unknown chip {spec['chip']!r}")
        self.index = index
        self.udc = f"dummy_udc.{index}"
        self.rom = Rom(
            chip,
            spec.get("flash_size", 4 * 1024 * 1024),
            Timing(**spec.get("timing", {})),
            Faults(**spec.get("faults", {})),
        )
        self.lock = threading.Lock()
        """Held while the ROM decides, so that the cable and the requests take turns."""
        self.cable = threading.Lock()
        self.bound: Mode | None = None
        product = f"ESP32-{chip.name[5:].upper()}"
        self.gadgets: dict[Mode, Gadget] = {
            "rom": Gadget(f"rom{index}", chip.dfu_pid, (0xEF, 0x02, 0x01), product),
            "dfu": Gadget(
                f"dfu{index}", spec.get("dfu_pid") or rom.dfu_mode_pid(chip), (0, 0, 0), product
            ),
        }
        self.product = product
        self.gadgets["rom"].add(f"acm.rom{index}")
        self.gadgets["rom"].add(f"ffs.rt{index}")
        self.gadgets["dfu"].add(f"ffs.dfu{index}")
        runtime = functionfs_descriptors(PROTOCOL_RUNTIME, RUNTIME_DESCRIPTOR.encode())
        dfu = functionfs_descriptors(PROTOCOL_DFU, DFU_MODE_DESCRIPTOR.encode())
        for function in (FunctionFs(f"rt{index}", runtime), FunctionFs(f"dfu{index}", dfu)):
            threading.Thread(target=function.serve, args=(self._answer,), daemon=True).start()

    @property
    def path(self) -> str:
        """The USB port path of this UDC's host port: dummy_hcd.N has one root hub, port 1."""
        (hub,) = Path(f"/sys/devices/platform/dummy_hcd.{self.index}").glob("usb[0-9]*")
        return f"{hub.name[3:]}-1"

    def plug(self, mode: Mode) -> None:
        """Plug the board in (again) in ``mode``: ROM download mode, DFU mode after DETACH, or
        its app after a RESET without BOOT (its USB console only)."""
        if mode == "app" and mode not in self.gadgets:  # made on the first RESET only: the
            # kernel has 8 gadget serial ports (ttyGS0-7) for every board's ACM functions
            self.gadgets[mode] = Gadget(
                f"app{self.index}", APP_PID, (0xEF, 0x02, 0x01), self.product
            )
            self.gadgets[mode].add(f"acm.app{self.index}")
        with self.cable:
            self._unbind()
            with self.lock:
                self.rom.enumerate(mode)
            self.gadgets[mode].bind(self.udc)
            self.bound = mode
        log(f"board{self.index}: plugged in, {mode} mode")

    def unplug(self) -> None:
        with self.cable:
            self._unbind()
            with self.lock:
                self.rom.unplug()
        log(f"board{self.index}: unplugged")

    def wipe(self) -> None:
        with self.lock:
            self.rom.flash[:] = bytes(len(self.rom.flash))

    def _unbind(self) -> None:
        if self.bound is not None:
            self.gadgets[self.bound].unbind()
            self.bound = None

    def _reenumerate(self) -> None:
        """After DETACH: off the bus, then back on the same port in DFU mode."""
        with self.cable:
            self._unbind()
        time.sleep(self.rom.timing.reenumerate_s)
        self.plug("dfu")

    def _hold(self) -> bool:
        """While the ROM erases it answers nothing: keep the request waiting (the host's
        transfer is NAKed) until the erase is done. False when the board left the bus
        meanwhile: the request is dropped, as a real board's would be."""
        generation = self.rom.generation
        while (left := self.rom.held_until - clock()) > 0:
            time.sleep(min(left, 0.05))
            if self.rom.generation != generation:
                log(f"board{self.index}: a request held by the erase was dropped")
                return False
        return True

    def _answer(self, function: FunctionFs, setup: Setup) -> None:
        if not self._hold():
            return
        taken = False

        def read() -> bytes:
            nonlocal taken
            taken = True
            return function.read(setup.length)

        try:
            with self.lock:
                answer: Answer = self.rom.control(setup, read)
            if answer.action is Action.PULL:
                # Unplugged here, before ep0 is read again: that read would take the data
                # stage of the request left unanswered, and the host would see it succeed.
                log(f"board{self.index}: cable pulled during a request")
                self.unplug()
                return
            if answer.stall:
                function.stall(setup.is_in)
            elif setup.is_in:
                function.write((answer.data or b"")[: setup.length])
            elif not taken:
                read()
            if answer.action is Action.DETACH:
                threading.Thread(target=self._reenumerate, daemon=True).start()
        except OSError as error:  # the host gave up on the request, or the cable went
            log(f"board{self.index}: request {setup}: {os.strerror(error.errno or 0)}")

    def report(self, out: Path) -> None:
        flash = out / f"board{self.index}.flash"
        with self.lock:
            flash.write_bytes(self.rom.flash)
            report = {
                "index": self.index,
                "udc": self.udc,
                "path": self.path,
                "flash_file": flash.name,
                **self.rom.report(),
            }
        write_json(out / f"board{self.index}.json", report)


def write_json(path: Path, data: object) -> None:
    """Readers see the old file or the whole new one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)


def serve_control(boards: list[Board]) -> None:
    """Carry out the scenario's requests, one a line: "ID replug|unplug|wipe BOARD"."""
    os.mkfifo(CONTROL)
    actions: dict[str, Callable[[Board], None]] = {
        "replug": lambda board: board.plug("rom"),
        "reset": lambda board: board.plug("app"),
        "unplug": Board.unplug,
        "wipe": Board.wipe,
    }
    while True:
        with CONTROL.open() as requests:  # waits for a writer
            for line in requests:
                number, action, board = line.split()
                try:
                    actions[action](boards[int(board)])
                    result = "ok"
                except (KeyError, IndexError, ValueError, OSError) as error:
                    result = f"failed: {error!r}"
                log(f"control: {action} {board}: {result}")
                temporary = ACK.with_name(ACK.name + ".tmp")
                temporary.write_text(f"{number} {result}\n")
                temporary.replace(ACK)


def main(argv: list[str]) -> int:
    config, out = json.loads(Path(argv[1]).read_text()), Path(argv[2])
    (out / "gadget.pid").write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    boards = [Board(index, spec) for index, spec in enumerate(config["boards"])]
    for board in boards:
        board.plug("rom")
    threading.Thread(target=serve_control, args=(boards,), daemon=True).start()
    write_json(
        out / "boards.json",
        [{"index": b.index, "chip": b.rom.chip.name, "udc": b.udc, "path": b.path} for b in boards],
    )
    log(f"{len(boards)} board(s) up")
    stop.wait()
    for board in boards:
        board.unplug()
        board.report(out)
    log("reports written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
