"""A minimal DFU host for the simulator's tests: pyusb control transfers, poll timeouts honoured.

It drives the project's own sans-IO download (``protocol.download``) with the flasher's own
loop (``driver.drive``), or single requests, so the tests see exactly what the flasher will
see, STALLs and all.
"""

from __future__ import annotations

import random

import usb.core

from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.sim.timing import WALL_CLOCK, Clock
from espdfu.usb.driver import drive
from espdfu.usb.protocol import (
    REQUEST_IN,
    REQUEST_OUT,
    STATUS_LENGTH,
    Ending,
    Exchange,
    Reply,
    Request,
    State,
    StatusReply,
    Step,
    download,
)

MB = 1024 * 1024


class ModelClock:
    """Time that moves only when someone sleeps, by what they asked and ``late`` more (how
    late a loaded machine's sleep wakes), as the real-USB tests' fake clock does: on it a
    board's timing is a fact of the model, not of how busy the machine was.

    It starts at 100 s, so that times stay within a factor of two of one another and their
    differences are exact: sleeping until a deadline lands on it.
    """

    def __init__(self, late: float = 0.0) -> None:
        self.time = 100.0
        self.late = late

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds + self.late


def devices(bus: SimBus) -> list[usb.core.Device]:
    return list(usb.core.find(find_all=True, backend=SimBackend(bus)))


def device_at(backend: SimBackend, path: str) -> usb.core.Device:
    """The device at a port path ("1-1.2"), as a multi-board host finds it."""
    ports = tuple(int(p) for p in path.split("-")[1].split("."))
    found = usb.core.find(backend=backend, custom_match=lambda d: d.port_numbers == ports)
    assert found is not None, f"nothing at {path}"
    return found


def one_board(
    chip: str = "esp32s2",
    kind: BoardKind = BoardKind.DFU,
    time_model: TimeModel | None = None,
    clock: Clock = WALL_CLOCK,
    **settings: bool,
) -> tuple[SimBus, VirtualBoard, usb.core.Device]:
    """A bus with one board, instant unless told, on ``clock``, and its pyusb device;
    ``settings`` go to the board (``erase_busy``, ``manifest_poll``, ``strict_poll``)."""
    bus = SimBus(time_model or TimeModel.instant(), clock)
    board = bus.plug(VirtualBoard(chip, kind, **settings))  # type: ignore[arg-type]
    return bus, board, device_at(SimBackend(bus), board.path)


class Host:
    """Single DFU requests to one interface; it waits on ``clock`` (its board's)."""

    def __init__(self, dev: usb.core.Device, interface: int = 0, clock: Clock = WALL_CLOCK) -> None:
        self.dev = dev
        self.interface = interface
        self.clock = clock

    def status(self, *, honour_poll: bool = True) -> StatusReply:
        reply = StatusReply.decode(self.raw_in(Request.GETSTATUS, STATUS_LENGTH))
        if honour_poll and reply.poll_timeout_ms:
            self.clock.sleep(reply.poll_timeout_ms / 1000)
        return reply

    def state(self) -> State:
        return State(self.raw_in(Request.GETSTATE, 1)[0])

    def raw_in(self, request: Request, length: int) -> bytes:
        return bytes(self.dev.ctrl_transfer(REQUEST_IN, request, 0, self.interface, length))

    def out(self, request: Request, value: int = 0, data: bytes = b"") -> int:
        written: int = self.dev.ctrl_transfer(REQUEST_OUT, request, value, self.interface, data)
        return written

    def dnload(self, block: int, data: bytes) -> int:
        return self.out(Request.DNLOAD, block, data)

    def send(self, payload: bytes, first_block: int = 0) -> list[StatusReply]:
        """DNLOAD every 64-byte block, each followed by GETSTATUS until dfuDNLOAD-IDLE."""
        replies = []
        for block, offset in enumerate(range(0, len(payload), 64), first_block):
            self.dnload(block, payload[offset : offset + 64])
            reply = self.status()
            replies.append(reply)
            while reply.state is State.DNBUSY:
                reply = self.status()
                replies.append(reply)
            if reply.state is not State.DNLOAD_IDLE:
                break
        return replies

    def download(self, payload: bytes) -> Ending:
        """The whole download, by the project's protocol machine."""
        return run(self.dev, download(payload, 64), self.interface, self.clock)


def run(
    dev: usb.core.Device,
    steps: Exchange[Ending],
    interface: int = 0,
    clock: Clock = WALL_CLOCK,
) -> Ending:
    """Drive a protocol generator over pyusb with the flasher's driver (poll timeouts waited
    on ``clock``)."""

    def perform(step: Step) -> Reply:
        if step.request is Request.GETSTATUS:
            raw = dev.ctrl_transfer(REQUEST_IN, step.request, 0, interface, STATUS_LENGTH)
            return StatusReply.decode(bytes(raw))
        dev.ctrl_transfer(REQUEST_OUT, step.request, step.value, interface, step.data)
        return None

    return drive(steps, perform, clock.sleep, clock.now)


def image(
    pid: int = 0x0002, *, seed: int = 1, part_size: int = 64 * 1024
) -> tuple[bytes, list[FlashFile]]:
    """A dfu.bin like ESP-IDF's (bootloader, partition table, an app split into parts)."""
    rng = random.Random(seed)
    bootloader = 0x1000 if pid == 0x0002 else 0x0
    files = [
        FlashFile(bootloader, "bootloader.bin", rng.randbytes(20_000)),
        FlashFile(0x8000, "partition-table.bin", rng.randbytes(3072)),
        FlashFile(0x10000, "app.bin", rng.randbytes(150_001)),
    ]
    return dfufile.pack(files, pid=pid, flash_size=4 * MB, part_size=part_size), files


def payload_of(dfu_bin: bytes) -> bytes:
    return dfu_bin[: -dfufile.SUFFIX_LEN]


def expected_flash(files: list[FlashFile], size: int = 4 * MB) -> bytearray:
    """Old data (zeros), each file's sectors erased, each file written, as the ROM does."""
    flash = bytearray(size)
    for file in files:
        start = file.address - file.address % 4096
        end = -(-(file.address + len(file.data)) // 4096) * 4096
        flash[start:end] = b"\xff" * (end - start)
    for file in files:
        flash[file.address : file.address + len(file.data)] = file.data
    return flash
