"""A virtual ESP32-S2/S3 board: what it shows on the bus in each mode, and the ROM's DFU.

The board answers control transfers the way the ESP ROM does (:mod:`espdfu.usb.rom` holds each
fact and its source): a composite CDC-ACM + DFU-runtime device in download mode that
re-enumerates as a DFU-mode device on DETACH, a strict DFU 1.1 download state machine feeding
a streaming archive receiver that erases each entry's region in one go — holding every request
until the erase is done — and dfuIDLE straight after the download. Timings come from a time
model. Settings give the variants DFU 1.1 would have (the erase reported as dfuDNBUSY with its
poll timeout; a dfuMANIFEST phase), and faults make it misbehave on purpose. Errors are
libusb's, raised as pyusb's libusb1 backend raises them, so the host code under test sees
exactly what it would see on hardware.
"""

from __future__ import annotations

import contextlib
import enum
import math
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, get_args

from ..chips import Chip, chip_by_name, dfu_chip_names
from ..errors import InputError
from ..files.espimage import is_image
from ..usb import rom
from ..usb.protocol import (
    REQUEST_IN,
    REQUEST_OUT,
    Request,
    State,
    Status,
    StatusReply,
)
from . import firmware
from .bootloader import DEFAULT_APP, booted_app
from .bridge import VirtualBridge
from .descriptors import (
    LANGIDS,
    TRANSFER_SIZE,
    BusMode,
    DeviceDescriptor,
    Layout,
    Libusb,
    jtag_serial,
    layout,
    string_descriptor,
    usb_error,
)
from .receiver import ReceivedFile, Receiver
from .timing import SECTOR_SIZE, WALL_CLOCK, Clock, Pacer, TimeModel

if TYPE_CHECKING:
    from .backend import SimBus

MAX_FLASH_SIZE = 128 * 1024 * 1024
_JTAG_CHIPS = ("esp32s3",)


# --- what a board is and what can go wrong with it ---------------------------------------------


class BoardKind(enum.Enum):
    """What is on the other end of the cable, which decides how the board starts."""

    ROM = "rom"
    """ROM download mode (BOOT held at reset): CDC-ACM + DFU runtime."""
    DFU = "dfu"
    """Already in the ROM's DFU mode, as a board is after a flash."""
    APP = "app"
    """An ESP-IDF application with a DFU runtime interface: re-flashable without buttons."""
    JTAG = "jtag"
    """An ESP32-S3 whose USB pins belong to USB-Serial-JTAG: no DFU at all."""
    NO_ACCESS = "noaccess"
    """Like ROM, but the host lacks permission to open it (no udev rule)."""
    NO_DRIVER = "nodriver"
    """Like ROM, on Windows with no WinUSB driver installed: neither mode can be opened."""
    NO_DFU_DRIVER = "nodfudriver"
    """Like ROM, on Windows with WinUSB on interface 2 only: the board detaches, but the
    DFU-mode device that appears then has no driver (every first flash on Windows)."""

    def lacks_driver(self, mode: BusMode) -> bool:
        """Whether the host has no driver for this board's face in ``mode``.

        Windows binds a driver to a USB ID and, in a composite device, to one interface: the
        download mode's interface 2 and the single-interface DFU-mode device are two bindings,
        so a PC can have one without the other. The two kinds are the two states users meet:
        nothing installed yet, and Zadig run on interface 2 only.
        """
        return self is BoardKind.NO_DRIVER or (self is BoardKind.NO_DFU_DRIVER and mode == "dfu")

    @property
    def start_mode(self) -> BusMode:
        """The mode the board is in when it is plugged in."""
        return _START_MODES[self]


_START_MODES: dict[BoardKind, BusMode] = {
    BoardKind.ROM: "rom",
    BoardKind.DFU: "dfu",
    BoardKind.APP: "app",
    BoardKind.JTAG: "jtag",
    BoardKind.NO_ACCESS: "rom",
    BoardKind.NO_DRIVER: "rom",
    BoardKind.NO_DFU_DRIVER: "rom",
}


def check_kind(chip: Chip, kind: BoardKind) -> None:
    """Refuse boards that cannot exist."""
    if kind is BoardKind.JTAG and chip.name not in _JTAG_CHIPS:
        raise InputError(
            f"A {chip.name} board cannot be a USB-Serial-JTAG-only board: the jtag kind is for "
            f"{', '.join(_JTAG_CHIPS)} only."
        )


def resolve_chip(chip: str | Chip) -> Chip:
    if isinstance(chip, Chip):
        return chip
    found = chip_by_name(chip)
    if found is None:
        raise InputError(f"Unknown chip '{chip}': the simulator has {dfu_chip_names()}.")
    return found


FaultAction = Literal[
    "unplug", "stall", "timeout", "status", "busy", "garbage", "short", "descriptor"
]
FAULT_ACTIONS: tuple[str, ...] = get_args(FaultAction)
_IN_ONLY_ACTIONS = ("garbage", "short")


@dataclass(frozen=True)
class Fault:
    """A one-shot misbehaviour, fired by the ``nth`` class request ``on`` (None: any).

    Requests are counted since the board was (re)plugged; a fault fires at the first matching
    request once the count has reached ``nth``, so one added later fires at the next match.
    Actions: "unplug" (the board leaves the bus, the request raises NO_DEVICE), "stall",
    "timeout" (USBTimeoutError after the host's timeout, scaled), "status" (the reply to that
    GETSTATUS, or the next one after another request, is dfuERROR with ``status``), "busy"
    (GETSTATUS answers dfuDNBUSY — dfuMANIFEST once the download has ended — from then on,
    until the board re-enumerates by a plug or a reset), "garbage" and "short" (that IN
    request returns unknown codes, or half the bytes),
    "descriptor" (never consumed: the functional descriptor has bLength 3 from the next
    enumeration on, and GET_DESCRIPTOR for it stalls).
    """

    action: FaultAction
    on: Request | None = None
    nth: int = 1
    status: Status = Status.UNKNOWN

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}: one of {FAULT_ACTIONS}")
        if self.nth < 1:
            raise ValueError("a fault's nth counts from 1")


class Enumeration:
    """One appearance of a board on the bus, and what the host's kernel holds of it.

    pyusb's device identification: descriptors stay readable after the board left (libusb's
    do too), everything else fails once ``gone`` is set. ``claims`` maps interfaces to the
    handles holding them, ``drivers`` are the interfaces a kernel driver is bound to.
    """

    __slots__ = (
        "board",
        "claims",
        "configuration",
        "descriptor",
        "drivers",
        "gone",
        "layout",
        "lock",
    )

    def __init__(self, board: VirtualBoard, descriptor: DeviceDescriptor, layout: Layout) -> None:
        self.board = board
        self.descriptor = descriptor
        self.layout = layout
        self.gone = False
        self.lock = threading.Lock()
        self.claims: dict[int, object] = {}
        self.drivers = {
            i.bInterfaceNumber for i in layout.configuration.interfaces if i.kernel_driver
        }
        self.configuration = layout.configuration.bConfigurationValue


# --- the board -------------------------------------------------------------------------------

_CLASS_REQUESTS = {request.value: request for request in Request}
_IN_REQUESTS = frozenset((Request.UPLOAD, Request.GETSTATUS, Request.GETSTATE))
_ALLOWED = {  # DFU 1.1's state table, without UPLOAD (the ROM has none)
    State.APP_IDLE: frozenset((Request.GETSTATUS, Request.GETSTATE, Request.DETACH)),
    State.DFU_IDLE: frozenset((Request.DNLOAD, Request.ABORT, Request.GETSTATUS, Request.GETSTATE)),
    State.DNLOAD_SYNC: frozenset((Request.GETSTATUS, Request.GETSTATE)),
    State.DNBUSY: frozenset((Request.GETSTATUS,)),
    State.DNLOAD_IDLE: frozenset(
        (Request.DNLOAD, Request.ABORT, Request.GETSTATUS, Request.GETSTATE)
    ),
    State.MANIFEST_SYNC: frozenset((Request.GETSTATUS, Request.GETSTATE)),
    State.MANIFEST: frozenset((Request.GETSTATUS,)),
    State.ERROR: frozenset((Request.GETSTATUS, Request.GETSTATE, Request.CLRSTATUS)),
}
_TYPE_MASK, _STANDARD, _CLASS = 0x60, 0x00, 0x20
_GET_DESCRIPTOR, _GET_CONFIGURATION, _SET_CONFIGURATION = 6, 8, 9
_GARBAGE = bytes((0xEE, 0, 0, 0, 0xEE, 0))  # unknown status and state, no poll timeout
_HOLD_SLICE_S = 0.02
"""While a request waits out an erase, how often it looks whether the cable was pulled."""

_Outcome = bytes | None | Libusb
"""A request's result: the IN data, None for an accepted OUT request, or a libusb error."""


class VirtualBoard:
    """One board. Thread-safe: one lock per board, never held while sleeping.

    A new board's flash holds old data (zero bytes), so that what a download erased (0xFF)
    shows; it is allocated when first used. ``flash_size`` is the physical flash; the ROM
    works with the size flash_params.dat declares, 4 MiB without it, within the physical one.
    """

    def __init__(
        self,
        chip: str | Chip,
        kind: BoardKind = BoardKind.ROM,
        *,
        flash_size: int = rom.FLASH_SIZE_WITHOUT_PARAMS,
        strict_poll: bool = True,
        erase_busy: bool = not rom.ERASE_BLOCKS_BUS,
        manifest_poll: bool = not rom.MANIFEST_TO_IDLE,
        dfu_pid: int | None = None,
        erase_ms_per_sector: float | None = None,
        app: str = "idf",
        chatty: bool = False,
        bridge: bool = False,
        running: bool = False,
        faults: Iterable[Fault] = (),
    ) -> None:
        self.chip = resolve_chip(chip)
        check_kind(self.chip, kind)
        if not 0 < flash_size <= MAX_FLASH_SIZE or flash_size % SECTOR_SIZE:
            raise ValueError(f"a flash of {flash_size} bytes is not a whole number of sectors")
        self.kind = kind
        self.flash_size = flash_size
        self.strict_poll = strict_poll
        """Stall requests that arrive before the last reported poll timeout has elapsed."""
        self.erase_busy = erase_busy
        """Report an erase as dfuDNBUSY with its time as the poll timeout, as DFU 1.1 would
        have it, instead of holding every request until it is done as the ROM does."""
        self.manifest_poll = manifest_poll
        """Go through dfuMANIFEST with a poll timeout after the download (the ROM goes
        straight to dfuIDLE)."""
        self.dfu_pid = dfu_pid
        """The DFU-mode face's PID; None: :func:`espdfu.usb.rom.dfu_mode_pid`'s."""
        self.erase_ms_per_sector = erase_ms_per_sector
        """This board's erase time per sector (a slow flash chip); None: the bus's time model's."""
        if app not in firmware.APPS:
            raise ValueError(f"no virtual firmware {app!r}: one of {', '.join(firmware.APPS)}")
        self.app = app
        """What its firmware does when it runs (:data:`espdfu.sim.firmware.APPS`): ``idf``, a
        healthy ESP-IDF app; ``panic``, an app that panics at start and so reboots in a loop…"""
        self.chatty = chatty
        """Its app prints :data:`~espdfu.sim.firmware.CHATTY_LINES_S` lines a second, not one."""
        self.bridge = VirtualBridge(self) if bridge and firmware.SUPPORTED else None
        """Its USB-UART bridge (a DevKit's UART connector): its console, whatever the chip does,
        and DTR/RTS wired to EN and GPIO0 (:mod:`espdfu.sim.bridge`)."""
        self.running = running and kind is BoardKind.ROM
        """It powers on running its app, as a board plugged in without BOOT held: off the bus
        (its app has no USB), seen only on its bridge's console, if any."""
        self.faults: list[Fault] = list(faults)
        self.requests: Counter[Request] = Counter()
        """Class requests to the DFU interface since the board was (re)plugged."""
        self.downloads_completed = 0
        self.device_time_s = 0.0
        """What the board made hosts wait: request latencies, reported poll timeouts, DETACH
        re-enumerations and timeouts (scaled), for the host-efficiency benchmark."""
        self._lock = threading.Lock()
        self._bus: SimBus | None = None
        self._path = ""
        self._location: tuple[int, tuple[int, ...]] = (0, ())
        self._time = TimeModel.instant()
        self._clock: Clock = WALL_CLOCK
        self._pacer = Pacer()
        self._flash: bytearray | None = None
        self._receiver: Receiver | None = None
        self._plugged = False
        self._enumeration: Enumeration | None = None
        self._arrival: tuple[float, BusMode] | None = None
        self._stuck = False
        self._firmware: firmware.Firmware | None = None
        self._reset_dfu(State.APP_IDLE)

    def __repr__(self) -> str:
        where = f"at {self._path}" if self._path else "unplugged"
        return f"<VirtualBoard {self.chip.name} {self.kind.value} {where}>"

    # --- what tests and the demo look at ------------------------------------------------------

    @property
    def path(self) -> str:
        """The port path ("1-1.2"): the board's identity across re-enumerations."""
        if not self._path:
            raise RuntimeError("the board has not been plugged into a bus")
        return self._path

    @property
    def present(self) -> bool:
        return self.enumeration() is not None

    @property
    def mode(self) -> BusMode | None:
        """The mode it shows on the bus now, None while it is off the bus."""
        current = self.enumeration()
        return current.layout.mode if current else None

    @property
    def flash(self) -> bytearray:
        with self._lock:
            return self._memory()

    def read_flash(self, address: int, size: int) -> bytes:
        if not 0 <= address <= address + size <= self.flash_size:
            raise ValueError(
                f"[0x{address:x}, +{size}) is outside the {self.flash_size}-byte flash"
            )
        with self._lock:
            return bytes(self._memory()[address : address + size])

    @property
    def last_files(self) -> list[ReceivedFile]:
        """The files written in the last download (flash_params.dat is not written)."""
        with self._lock:
            return list(self._receiver.files) if self._receiver else []

    @property
    def console_port(self) -> str | None:
        """The serial port of its running app's own USB console (a pseudo-terminal), None while
        no app runs (in download or DFU mode, unplugged) or when its console is on its bridge."""
        with self._lock:
            return self._firmware.port if self._firmware and self.bridge is None else None

    # --- the cable and the buttons --------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the cable: the board leaves the bus until replug()."""
        with self._lock:
            self._leave(plugged=False)

    def replug(self) -> None:
        """Plug the cable (back) in: the board arrives at once, in its kind's start mode."""
        with self._lock:
            if self._bus is None:
                raise RuntimeError("the board has not been plugged into a bus: use SimBus.plug")
            self._plug_in()

    def press_reset(self, boot: bool = False) -> None:
        """Tap RESET, holding BOOT if ``boot``; the board re-enumerates after ``reenumerate_s``.

        With BOOT: ROM download mode. Without: the application runs, which is on the bus only
        for the APP kind (its DFU runtime); other kinds' applications have no USB, so the
        board stays off the bus. A JTAG board's USB-Serial-JTAG is there in either case. An
        unplugged board has no power: the button does nothing.
        """
        with self._lock:
            if self._plugged:
                self._out_of_reset(boot)

    def hold_reset(self) -> None:
        """EN held low (its bridge's lines): the chip stops, off the bus until released."""
        with self._lock:
            if self._plugged:
                self._leave(plugged=True)

    def _out_of_reset(self, boot: bool) -> None:
        if self.kind is BoardKind.JTAG:
            mode: BusMode | None = "jtag"
        elif boot:
            mode = "rom"
        else:
            mode = "app" if self.kind is BoardKind.APP else None
        due = self._clock.now() + self._time.reenumerate_delay_s
        self._leave(plugged=True, arrival=(due, mode) if mode else None)
        if not boot:
            self._run_app()
        elif self.bridge is not None:  # the ROM says where it waits, on its UART
            for line in firmware.download_lines(self.chip):
                self.bridge.tty.print(line)
            self.bridge.tty.send(time.monotonic())

    # --- for SimBus and SimBackend ----------------------------------------------------------------

    def enumeration(self) -> Enumeration | None:
        """The board's current enumeration, after any arrival that has come due."""
        with self._lock:
            arrival = self._arrival
            if arrival is not None and self._clock.now() >= arrival[0]:
                self._arrival = None
                self._arrive(arrival[1])
            return self._enumeration

    def _attach(self, bus: SimBus, path: str, location: tuple[int, tuple[int, ...]]) -> None:
        with self._lock:
            if self._bus is not None:
                raise ValueError(f"{self!r} is already on a bus")
            self._bus, self._path, self._location, self._time = bus, path, location, bus.time
            if self.bridge is not None:
                self.bridge.register(path)
            self._clock, self._pacer = bus.clock, Pacer(bus.clock)
            if self.erase_ms_per_sector is not None:
                self._time = replace(bus.time, erase_ms_per_sector=self.erase_ms_per_sector)
            self._plug_in()

    def control(
        self,
        enumeration: Enumeration,
        request_type: int,
        request: int,
        value: int,
        index: int,
        data: array[int],
        timeout_ms: int,
    ) -> int:
        """One control transfer, as libusb_control_transfer: fills IN ``data``, returns the count.

        The work is done under the lock at arrival; the latency is slept out afterwards, to
        a deadline fixed at arrival.
        """
        arrival = self._clock.now()
        length = len(data) * data.itemsize
        if self._erasing_until > arrival:
            arrival = self._hold(enumeration, arrival, timeout_ms)
        with self._lock:
            if enumeration is not self._enumeration:
                raise usb_error(Libusb.NO_DEVICE)
            latency = self._time.latency_s
            deadline = self._pacer.deadline(arrival, latency)
            kind = request_type & _TYPE_MASK
            outcome: _Outcome
            if kind == _CLASS and index == enumeration.layout.dfu_interface:
                outcome = self._class_request(
                    request_type, request, value, data, length, arrival, deadline
                )
            elif kind == _STANDARD:
                outcome = self._standard_request(enumeration, request_type, request, value, index)
            else:
                outcome = Libusb.PIPE
            if outcome is Libusb.NO_DEVICE:
                raise usb_error(outcome)
            if outcome is Libusb.TIMEOUT:
                latency = timeout_ms / 1000 * self._time.scale
                deadline = arrival + latency
            self.device_time_s += latency
        if latency:
            self._pacer.wait(deadline)
        if isinstance(outcome, Libusb):
            raise usb_error(outcome)
        if outcome is None:
            return length
        count = min(len(outcome), length)
        memoryview(data).cast("B")[:count] = outcome[:count]
        return count

    def _hold(self, enumeration: Enumeration, arrival: float, timeout_ms: int) -> float:
        """The ROM is erasing and answers nothing: the request waits (NAKed) until the erase is
        done, the host gives up (a timeout; the request is lost) or the cable is pulled."""
        until = self._erasing_until
        give_up = arrival + timeout_ms / 1000
        end = min(until, give_up)
        while (now := self._clock.now()) < end:
            if enumeration.gone:
                raise usb_error(Libusb.NO_DEVICE)
            self._clock.sleep(min(_HOLD_SLICE_S, end - now))
        with self._lock:  # the board's time, not how late the sleep woke (a loaded host)
            self.device_time_s += end - arrival
        if until > give_up:
            raise usb_error(Libusb.TIMEOUT)
        return now

    def usb_reset(self, enumeration: Enumeration) -> None:
        """A USB port reset: the ROM's DFU mode goes back to dfuIDLE; other modes carry on."""
        with self._lock:
            if enumeration is not self._enumeration:
                raise usb_error(Libusb.NO_DEVICE)
            if self._state is not State.APP_IDLE:
                self._reset_dfu(State.DFU_IDLE)

    # --- arriving and leaving (under the lock) ------------------------------------------------

    @property
    def _descriptor_broken(self) -> bool:
        return any(fault.action == "descriptor" for fault in self.faults)

    def _memory(self) -> bytearray:
        if self._flash is None:
            self._flash = bytearray(self.flash_size)
        return self._flash

    def _plug_in(self) -> None:
        self._leave(plugged=True)
        self.requests.clear()
        if self.running:
            self._run_app()
            return
        self._arrive(self.kind.start_mode)
        if self.kind is BoardKind.APP:
            self._run_app()

    def _run_app(self) -> None:
        """Start the app its bootloader boots from its flash (its console: :attr:`console_port`);
        with no partition table there, once something was flashed, the app where ESP-IDF's
        default table puts it (the simulator's assumption, for the tests' files without a
        table: a real bootloader boots nothing)."""
        if not firmware.SUPPORTED:
            return
        memory = self._memory()
        image = booted_app(memory)
        if image is None and self._receiver is not None:
            image = bytes(memory[DEFAULT_APP:])
            if not is_image(image):  # the tests' random stand-ins: the file written there
                written = [f.size for f in self._receiver.files if f.address == DEFAULT_APP]
                image = image[: written[0]] if written else None
        tty = self.bridge.tty if self.bridge is not None else None
        with contextlib.suppress(OSError):  # no pseudo-terminal left: an app without console
            self._firmware = firmware.Firmware(
                self.chip, image, kind=self.app, chatty=self.chatty, tty=tty
            )

    def _arrive(self, mode: BusMode) -> None:
        assert self._bus is not None
        bus_number, ports = self._location
        address = self._bus._allocate_address(bus_number)
        serial = jtag_serial(bus_number, ports)
        shape = layout(
            self.chip, mode, serial=serial, broken=self._descriptor_broken, dfu_pid=self.dfu_pid
        )
        self._enumeration = Enumeration(self, shape.device(bus_number, address, ports), shape)
        self._reset_dfu(State.DFU_IDLE if mode == "dfu" else State.APP_IDLE)

    def _leave(self, *, plugged: bool, arrival: tuple[float, BusMode] | None = None) -> None:
        """Leave the bus (if on it), to come back as ``arrival`` says: (when, in which mode).
        The app, if it ran, stops: a reset, download mode or no power."""
        if self._firmware is not None:
            self._firmware.stop()
            self._firmware = None
        current, self._enumeration = self._enumeration, None
        if current is not None:
            current.gone = True
            assert self._bus is not None
            self._bus._release_address(current.descriptor.bus, current.descriptor.address)
        self._plugged = plugged
        self._arrival = arrival
        self._stuck = False

    def _reset_dfu(self, state: State) -> None:
        self._state = state
        self._status = Status.OK
        self._pending = Status.OK
        """An error revealed by a request, reported by the next GETSTATUS."""
        self._next_block = 0
        self._erase_ms: float | None = None
        """The erase the last block started, reported as dfuDNBUSY (``erase_busy``)."""
        self._erasing_until = 0.0
        """Until when the ROM erases, holding every request (on the bus's clock)."""
        self._manifested = False
        self._ready_at = 0.0
        """When the last reported poll timeout ends."""

    # --- class requests to the DFU interface (under the lock) ---------------------------------

    def _class_request(
        self,
        request_type: int,
        code: int,
        value: int,
        data: array[int],
        length: int,
        arrival: float,
        deadline: float,
    ) -> _Outcome:
        request = _CLASS_REQUESTS.get(code)
        if request is None:
            return self._stall()
        self.requests[request] += 1
        is_in = request in _IN_REQUESTS
        if request_type != (REQUEST_IN if is_in else REQUEST_OUT):
            return self._stall()
        if self.strict_poll and arrival < self._ready_at and self._must_wait(request):
            return self._stall()
        fault = self._take_fault(request, is_in) if self.faults else None
        if fault is not None:
            if fault.action == "unplug":
                self._leave(plugged=False)
                return Libusb.NO_DEVICE
            if fault.action == "stall":
                return self._stall()
            if fault.action == "timeout":
                return Libusb.TIMEOUT
            if fault.action == "status":
                self._pending = fault.status
            elif fault.action == "busy" and is_in:
                self._stuck = True
        outcome = self._dfu_request(request, value, data, arrival, deadline)
        if fault is None:
            return outcome
        if fault.action == "busy":  # an OUT request that sets it off is still taken
            self._stuck = True
        elif fault.action == "status" and outcome is None:
            self._pending = fault.status  # again: a CLRSTATUS or ABORT taken cleared it
        elif fault.action == "garbage" and isinstance(outcome, bytes):
            return (_GARBAGE * (length // len(_GARBAGE) + 1))[:length]
        elif fault.action == "short" and isinstance(outcome, bytes):
            return outcome[: min(len(outcome), length) // 2]
        return outcome

    def _take_fault(self, request: Request, is_in: bool) -> Fault | None:
        total = self.requests.total()
        for number, fault in enumerate(self.faults):
            if (
                fault.action != "descriptor"
                and (fault.on is None or fault.on is request)
                and (is_in or fault.action not in _IN_ONLY_ACTIONS)
                and (self.requests[request] if fault.on else total) >= fault.nth
            ):
                del self.faults[number]
                return fault
        return None

    def _must_wait(self, request: Request) -> bool:
        """While busy (dfuDNBUSY, dfuMANIFEST) the poll timeout must pass before any request;
        once idle again the next block and its GETSTATUS may come at once (as from dfu-util)."""
        return self._state in (State.DNBUSY, State.MANIFEST)

    def _dfu_request(
        self, request: Request, value: int, data: array[int], arrival: float, deadline: float
    ) -> _Outcome:
        state = self._state
        if state in (State.DNBUSY, State.MANIFEST) and arrival >= self._ready_at:
            # The work is done: the device moves on by itself, as DFU 1.1 says.
            state = State.DNLOAD_SYNC if state is State.DNBUSY else State.MANIFEST_SYNC
            self._state = state
        if self._stuck:
            # Busy in the phase it is in: a device cannot go back to dfuDNBUSY once it took
            # the zero-length DNLOAD.
            ending = state in (State.MANIFEST_SYNC, State.MANIFEST)
            busy = State.MANIFEST if ending else State.DNBUSY
            if request is Request.GETSTATUS:
                poll = self._time.poll_ms(self._time.busy_poll_ms)
                return self._reply(Status.OK, busy, poll, deadline)
            return bytes((busy,)) if request is Request.GETSTATE else Libusb.PIPE
        if request not in _ALLOWED[state]:
            return self._stall()
        if request is Request.GETSTATUS:
            return self._get_status(arrival, deadline)
        if request is Request.GETSTATE:
            return bytes((state,))
        if request is Request.DNLOAD:
            return self._download(value, data.tobytes(), deadline)
        if request is Request.DETACH:
            delay = self._time.reenumerate_delay_s
            self.device_time_s += delay
            self._leave(plugged=True, arrival=(deadline + delay, "dfu"))
            return None
        self._reset_dfu(State.DFU_IDLE)  # ABORT, CLRSTATUS
        return None

    def _get_status(self, arrival: float, deadline: float) -> bytes:
        if self._pending is not Status.OK:
            status, self._pending = self._pending, Status.OK
            if self._state is not State.APP_IDLE:
                self._state, self._status = State.ERROR, status
            return self._reply(status, self._state, 0, deadline)
        state, work_ms = self._state, 0.0
        if state is State.DNLOAD_SYNC:
            if self._erase_ms is not None:
                state, work_ms, self._erase_ms = State.DNBUSY, self._erase_ms, None
            else:
                state, work_ms = State.DNLOAD_IDLE, self._time.block_write_ms
        elif state is State.MANIFEST_SYNC:
            if self._manifested:
                state = State.DFU_IDLE
            elif self._receiver is None or not self._receiver.complete:
                self._state, self._status = State.ERROR, Status.NOTDONE
                return self._reply(Status.NOTDONE, State.ERROR, 0, deadline)
            else:
                self._manifested = True
                self.downloads_completed += 1
                if self.manifest_poll:
                    state, work_ms = State.MANIFEST, self._time.manifest_ms
                else:
                    state = State.DFU_IDLE
        elif state in (State.DNBUSY, State.MANIFEST):  # asked early, strict_poll being off
            # Rounded to the µs first: 15 ms of float seconds must not read as 16 ms.
            remaining = math.ceil(round((self._ready_at - arrival) * 1000, 3))
            return StatusReply(Status.OK, remaining, state).encode()
        self._state = state
        return self._reply(self._status, state, self._time.poll_ms(work_ms), deadline)

    def _reply(self, status: Status, state: State, poll_ms: int, deadline: float) -> bytes:
        self._ready_at = deadline + poll_ms / 1000
        self.device_time_s += poll_ms / 1000
        return StatusReply(status, poll_ms, state).encode()

    def _download(self, block: int, payload: bytes, deadline: float) -> _Outcome:
        if len(payload) > TRANSFER_SIZE:
            return self._stall()
        if self._state is State.DFU_IDLE:
            if not payload:
                return self._stall()
            self._receiver = Receiver(self._memory())
        elif block != self._next_block:
            return self._stall()
        self._next_block = (block + 1) & 0xFFFF
        if not payload:
            self._state, self._manifested = State.MANIFEST_SYNC, False
            return None
        assert self._receiver is not None
        fed = self._receiver.feed(payload)
        if fed.status is not Status.OK and self._pending is Status.OK:
            self._pending = fed.status
        self._erase_ms = None
        if fed.erased:
            erase = sum(self._time.erase_ms(start, end) for start, end in fed.erased)
            if self.erase_busy:
                self._erase_ms = erase
            else:
                self._erasing_until = deadline + self._time.seconds(erase)
        self._state = State.DNLOAD_SYNC
        return None

    def _stall(self) -> Libusb:
        """STALL the request; in DFU mode that is dfuERROR with errSTALLEDPKT."""
        if self._state is not State.APP_IDLE:
            self._state, self._status, self._pending = State.ERROR, Status.STALLEDPKT, Status.OK
        return Libusb.PIPE

    # --- standard requests (under the lock) ---------------------------------------------------

    def _standard_request(
        self, enumeration: Enumeration, request_type: int, request: int, value: int, index: int
    ) -> _Outcome:
        shape = enumeration.layout
        kind, number = value >> 8, value & 0xFF
        if request == _GET_DESCRIPTOR and request_type == 0x80:
            if kind == 1:
                return enumeration.descriptor.encode()
            if kind == 2 and number == 0:
                return shape.configuration.encode()
            if kind == 3 and number == 0:
                return LANGIDS
            if kind == 3 and number <= len(shape.strings):
                return string_descriptor(shape.strings[number - 1])
        elif request == _GET_DESCRIPTOR and request_type == 0x81:
            if kind == 0x21 and index == shape.dfu_interface and not self._descriptor_broken:
                return shape.functional
        elif request == _GET_CONFIGURATION and request_type == 0x80:
            return bytes((enumeration.configuration,))
        elif request == _SET_CONFIGURATION and request_type == 0x00 and value in (0, 1):
            enumeration.configuration = value
            return None
        return Libusb.PIPE
