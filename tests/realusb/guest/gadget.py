"""The emulated boards on the guest's USB bus: configfs gadgets and FunctionFS, driven by rom.py.

    python3 -m guest.gadget CONFIG OUT      (from the folder above guest/)

CONFIG (JSON, written by harness.py) lists the boards: ``{"boards": [{"chip": "esp32s2",
"flash_size": 4194304, "timing": {...}, "faults": {...}, "dfu_pid": null, "bridge": false,
"start": "rom", "app": "idf", "preload": [[address, file], ...]}]}`` (rom.Timing and
rom.Faults; ``dfu_pid``: the DFU-mode PID when not espdfu.usb.rom.dfu_mode_pid's; the rest:
harness.BoardSpec). Board N sits on the UDC ``dummy_udc.N``, which dummy_hcd pairs with its
own host port. Each board has two gadgets, as the ROM has two faces: ROM download mode (the
kernel's CDC-ACM at interfaces 0-1, the DFU runtime interface at 2 on FunctionFS) and DFU mode
(one FunctionFS interface). DETACH unbinds the first and, after the re-enumeration delay, binds
the second to the same UDC: the same port, a new address, as a board does. A cable pull
unbinds. A board with a bridge has it on a UDC after all the boards' (:class:`Bridge`): its
line state resets the chip, into ROM download mode or its app, which prints on the bridge.

Writes OUT/boards.json (each board's UDC, USB port path and bridge's) once every board is
powered on, then serves until SIGTERM, when it unplugs the boards and writes OUT/boardN.json
(rom.Rom's report, and the bridge's lines) and OUT/boardN.flash (the flash image). Requests on
/run/gadget.ctl (a FIFO, one "ID ACTION BOARD" a line: replug, reset, unplug, wipe) are
acknowledged in /run/gadget.ack.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import json
import os
import queue
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
from espdfu.files.dfufile import SECTOR_SIZE
from espdfu.sim.bootloader import booted_app
from espdfu.sim.bridge import AutoProgram, Resettable
from espdfu.sim.firmware import Script, download_lines
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


def functionfs_descriptors(full_speed: list[bytes], high_speed: list[bytes]) -> bytes:
    """A function's descriptors at full and high speed, in FunctionFS's v2 form."""
    speeds = struct.pack("<II", len(full_speed), len(high_speed))
    speeds += b"".join(full_speed) + b"".join(high_speed)
    flags = _HAS_FS_DESC | _HAS_HS_DESC
    return struct.pack("<III", _DESCRIPTORS_MAGIC_V2, 12 + len(speeds), flags) + speeds


def dfu_descriptors(protocol: int, functional: bytes) -> bytes:
    """One DFU interface (no endpoints) and its functional descriptor.

    The interface is number 0 within the function; the composite gadget renumbers it (2 in
    ROM download mode, after CDC-ACM's two). No interface string: the ROM has none."""
    interface = struct.pack("<9B", 9, 4, 0, 0, 0, DFU_CLASS, DFU_SUBCLASS, protocol, 0)
    return functionfs_descriptors([interface, functional], [interface, functional])


def _endpoint(address: int, attributes: int, size: int, interval: int) -> bytes:
    return struct.pack("<BBBBHB", 7, 5, address, attributes, size, interval)


def cdc_acm_descriptors() -> bytes:
    """A CDC-ACM serial port in one interface (class CDC, subclass ACM) with its three
    endpoints: notifications (ep1), bulk IN (ep2) and bulk OUT (ep3).

    A bridge of that class also has a data interface and CDC's functional descriptors (header,
    ACM, union), which FunctionFS refuses: it takes class descriptors of a few classes only, and
    CDC is not one. Linux's cdc_acm takes one interface with three endpoints as such a port
    ("No union descriptor, assuming single interface") and sends it the same requests, once it
    finds some descriptor after the interface's (it skips what is not CDC's): here an interface
    association naming the interface, which FunctionFS takes."""
    interface = struct.pack("<9B", 9, 4, 0, 0, 3, 0x02, 0x02, 0x00, 0)  # CDC, ACM, no protocol
    association = struct.pack("<8B", 8, 0x0B, 0, 1, 0x02, 0x02, 0x00, 0)
    full = [interface, association, _endpoint(0x81, 3, 16, 32), _endpoint(0x82, 2, 64, 0)]
    high = [interface, association, _endpoint(0x81, 3, 16, 9), _endpoint(0x82, 2, 512, 0)]
    full.append(_endpoint(0x03, 2, 64, 0))
    high.append(_endpoint(0x03, 2, 512, 0))
    return functionfs_descriptors(full, high)


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
        self,
        name: str,
        product_id: int,
        device_class: tuple[int, int, int],
        product: str,
        *,
        vendor: tuple[int, str] = (ESPRESSIF_VID, "Espressif"),
        bcd_device: int = rom.BCD_DEVICE,
    ) -> None:
        self.folder = CONFIGFS / name
        self.folder.mkdir()
        write_attributes(
            self.folder,
            {
                "idVendor": f"0x{vendor[0]:04x}",
                "idProduct": f"0x{product_id:04x}",
                "bcdDevice": f"0x{bcd_device:04x}",
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
            strings, {"manufacturer": vendor[1], "product": product, "serialnumber": "0"}
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


BRIDGE = (0x1A86, 0x55D3, "USB Single Serial")
"""A CDC-ACM USB-UART bridge: WCH's CH343P (VID, PID, product), which some ESP32-S3 boards
carry and Linux drives with cdc_acm. The CP210x and FTDI bridges of DevKitC boards have drivers
of their own, which need those chips' vendor requests: no gadget here stands in for them."""
_SET_LINE_CODING, _GET_LINE_CODING, _SET_CONTROL_LINE_STATE, _SEND_BREAK = 0x20, 0x21, 0x22, 0x23
_DTR, _RTS = 0x01, 0x02
LOST_AFTER_S = 0.5
"""A write of the chip's UART output that no host takes within this is taken back."""
_libc = ctypes.CDLL(None, use_errno=True)


class Uart:
    """The chip's UART0 as its bridge passes it on: what the chip prints while a host reads the
    port goes out; what it prints while none has the port open is lost, as a UART's output is.
    The host's cdc_acm reads only while the port is open, so a write nobody takes within
    :data:`LOST_AFTER_S` is interrupted by a signal, which makes FunctionFS take the request
    back (``os.write`` would retry it: libc's is called)."""

    def __init__(self, endpoint: Path) -> None:
        self._endpoint = endpoint
        self._queue: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._send, daemon=True, name=f"uart {endpoint}").start()

    def print(self, line: str) -> None:
        self._queue.put(line.encode() + b"\r\n")

    def _send(self) -> None:
        out = os.open(self._endpoint, os.O_WRONLY)
        me = threading.get_ident()
        while True:
            data = self._queue.get()
            while not self._queue.empty():
                data += self._queue.get_nowait()
            # A whole number of 64-byte packets would wait for more (no zero-length packet):
            # the last byte goes on its own then.
            split = len(data) - 1 if len(data) % 64 == 0 else len(data)
            for chunk in (data[:split], data[split:]):
                if chunk and not self._write(out, chunk, me):
                    log(f"{self._endpoint.parent.name}: {len(data)} bytes lost (no host reads)")
                    break

    @staticmethod
    def _write(out: int, chunk: bytes, me: int) -> bool:
        timer = threading.Timer(LOST_AFTER_S, signal.pthread_kill, (me, signal.SIGUSR1))
        timer.start()
        written = _libc.write(out, chunk, len(chunk))
        timer.cancel()
        return bool(written == len(chunk))


class Bridge:
    """A DevKit's USB-UART bridge on a UDC of its own (its own USB port): a CDC-ACM function on
    FunctionFS (the kernel's f_acm keeps the line state to itself), whose line state
    (SET_CONTROL_LINE_STATE) drives the chip's EN and GPIO0 through the DevKit's auto-program
    circuit (espdfu.sim.bridge.AutoProgram: the virtual boards' model, with its sources), and
    whose bulk IN carries the chip's UART0 output."""

    def __init__(self, index: int, udc_index: int, chip: Resettable) -> None:
        self.udc_index = udc_index
        vendor, product_id, product = BRIDGE
        self.gadget = Gadget(
            f"bridge{index}", product_id, (0x02, 0, 0), product, vendor=(vendor, "wch.cn"),
            bcd_device=0x0443,
        )  # fmt: skip
        self.gadget.add(f"ffs.br{index}")
        self.function = FunctionFs(f"br{index}", cdc_acm_descriptors())
        self.circuit = AutoProgram(chip)
        self.uart = Uart(self.function.mountpoint / "ep2")
        self._coding = struct.pack("<IBBB", 115200, 0, 0, 8)  # 115200 8N1 until the host sets one
        threading.Thread(target=self.function.serve, args=(self._answer,), daemon=True).start()
        threading.Thread(target=self._take_writes, daemon=True).start()

    def plug(self) -> None:
        self.gadget.bind(f"dummy_udc.{self.udc_index}")

    @property
    def path(self) -> str:
        return port_path(self.udc_index)

    def _answer(self, function: FunctionFs, setup: Setup) -> None:
        try:
            if setup.request == _SET_CONTROL_LINE_STATE and not setup.is_in:
                function.read(0)
                dtr, rts = bool(setup.value & _DTR), bool(setup.value & _RTS)
                log(f"{function.mountpoint.name}: DTR {int(dtr)} RTS {int(rts)}")
                self.circuit.set_lines(dtr, rts)
            elif setup.request == _SET_LINE_CODING and not setup.is_in:
                self._coding = function.read(setup.length)[:7]
            elif setup.request == _GET_LINE_CODING and setup.is_in:
                function.write(self._coding[: setup.length])
            elif setup.request == _SEND_BREAK and not setup.is_in:
                function.read(0)
            else:
                function.stall(setup.is_in)
        except OSError as error:
            log(f"{function.mountpoint.name}: request {setup}: {os.strerror(error.errno or 0)}")

    def _take_writes(self) -> None:
        """What the host writes to the chip's UART: taken, and not read by any of the apps."""
        with (self.function.mountpoint / "ep3").open("rb", buffering=0) as writes:
            while True:
                try:
                    writes.read(512)
                except OSError:
                    time.sleep(0.1)


class Board:
    """One emulated board on one UDC: its two gadgets, its ROM, and its cable; with
    ``bridge_udc``, a USB-UART bridge on that UDC, wired to its EN and GPIO0."""

    def __init__(
        self, index: int, spec: dict[str, Any], folder: Path, bridge_udc: int | None = None
    ) -> None:
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
        runtime = dfu_descriptors(PROTOCOL_RUNTIME, RUNTIME_DESCRIPTOR.encode())
        dfu = dfu_descriptors(PROTOCOL_DFU, DFU_MODE_DESCRIPTOR.encode())
        for function in (FunctionFs(f"rt{index}", runtime), FunctionFs(f"dfu{index}", dfu)):
            threading.Thread(target=function.serve, args=(self._answer,), daemon=True).start()
        for address, name in spec.get("preload", []):  # what an earlier flash left: its
            data = (folder / name).read_bytes()  # sectors erased, then written
            end = -(-(address + len(data)) // SECTOR_SIZE) * SECTOR_SIZE
            self.rom.flash[address:end] = b"\xff" * (end - address)
            self.rom.flash[address : address + len(data)] = data
        self.app = spec.get("app", "idf")
        """What its app does when it runs (espdfu.sim.firmware.APPS)."""
        self.bridge = None if bridge_udc is None else Bridge(index, bridge_udc, self)
        self._app_stop = threading.Event()

    @property
    def path(self) -> str:
        return port_path(self.index)

    def hold_reset(self) -> None:
        """EN held low through the bridge: the chip stops, off the bus."""
        self.unplug("reset held")

    def press_reset(self, boot: bool = False) -> None:
        """The chip leaves reset (RESET tapped, or EN released through the bridge): in ROM
        download mode when GPIO0 is low (BOOT held), which its ROM says on UART0; else in its
        app. An app's console is its own USB (a CDC-ACM) on a board without a bridge; with one,
        UART0 through the bridge, and no USB: the chip stays off the bus."""
        self._app_stop.set()
        if boot:
            self.plug("rom")
            if self.bridge is not None:
                for line in download_lines(self.rom.chip):
                    self.bridge.uart.print(line)
        elif self.bridge is None:
            self.plug("app")
        else:
            self.unplug("app booted")
            with self.lock:
                app = booted_app(bytes(self.rom.flash))
            self._app_stop = threading.Event()
            script = Script(self.rom.chip, app, self.app)
            threading.Thread(
                target=self._run_app, args=(script, self.bridge.uart, self._app_stop), daemon=True
            ).start()
            log(f"board{self.index}: its app runs")

    @staticmethod
    def _run_app(script: Script, uart: Uart, stop: threading.Event) -> None:
        """Print the app's lines until the next reset."""
        for line, pause in script:
            if stop.is_set():
                return
            uart.print(line)
            if pause and stop.wait(pause):
                return

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

    def unplug(self, why: str = "unplugged") -> None:
        """Off the bus, its app (if any) stopped: the cable pulled, the chip held in reset, or
        running an app with no USB (``why``, for the record)."""
        self._app_stop.set()
        with self.cable:
            self._unbind()
            with self.lock:
                self.rom.unplug(why)
        log(f"board{self.index}: {why}")

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
                "bridge": self.bridge and self.bridge.path,
                "lines": self.bridge and self.bridge.circuit.lines,
                "flash_file": flash.name,
                **self.rom.report(),
            }
        write_json(out / f"board{self.index}.json", report)


def port_path(udc_index: int) -> str:
    """The USB port path of a UDC's host port: dummy_hcd.N has one root hub, port 1."""
    (hub,) = Path(f"/sys/devices/platform/dummy_hcd.{udc_index}").glob("usb[0-9]*")
    return f"{hub.name[3:]}-1"


def write_json(path: Path, data: object) -> None:
    """Readers see the old file or the whole new one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)


def serve_control(boards: list[Board]) -> None:
    """Carry out the scenario's requests, one a line: "ID replug|unplug|wipe BOARD"."""
    os.mkfifo(CONTROL)
    actions: dict[str, Callable[[Board], None]] = {
        "replug": lambda board: board.press_reset(boot=True),
        "reset": lambda board: board.press_reset(boot=False),
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
    signal.signal(signal.SIGUSR1, lambda number, frame: None)  # interrupts a UART's write
    specs, folder = config["boards"], Path(argv[1]).parent
    bridge_udcs = itertools.count(len(specs))
    boards = [
        Board(index, spec, folder, next(bridge_udcs) if spec.get("bridge") else None)
        for index, spec in enumerate(specs)
    ]
    for board, spec in zip(boards, specs, strict=True):
        if board.bridge is not None:
            board.bridge.plug()
        board.press_reset(boot=spec.get("start", "rom") == "rom")  # powered on
    threading.Thread(target=serve_control, args=(boards,), daemon=True).start()
    write_json(
        out / "boards.json",
        [
            {
                "index": b.index,
                "chip": b.rom.chip.name,
                "udc": b.udc,
                "path": b.path,
                "bridge": b.bridge and b.bridge.path,
            }
            for b in boards
        ],
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
