"""The ESP32-S2/S3 ROM's USB DFU, as a model without I/O: what a board answers to each request.

gadget.py puts it on a real USB bus (configfs + FunctionFS); keeping the decisions here, apart
from the file descriptors, lets the model be read and reasoned about as the ROM's behaviour,
written afresh from DFU 1.1 rather than borrowed from the virtual boards, so that the two
models check each other. What is shared with the project is what must be the same: the ROM
facts and their sources (``espdfu.usb.rom``: descriptors, transfer size, erase time per sector,
dfuIDLE after the download), the streaming archive receiver (so the md5 checks and errFILE,
errVERIFY, errADDRESS and errNOTDONE come out exactly as on the virtual boards), and the DFU
constants.

In ROM download mode the DFU runtime interface answers appIDLE and takes DETACH, after which
the board re-enumerates in DFU mode. In DFU mode a download runs through DFU 1.1's state
machine with 64-byte blocks; a block that starts a file erases the file's region in one go,
and until the erase is done the board answers nothing (``held_until``: the gadget holds the
next request, which the host sees NAKed, as esp-idf issue 6999 shows); the zero-length DNLOAD
leads straight back to dfuIDLE (the ROM neither manifests visibly nor resets). Settings give
DFU 1.1's variants: the erase reported as dfuDNBUSY with its poll timeout, a dfuMANIFEST
phase. Requests the state does not allow, UPLOAD, unknown requests and wrong block numbers
STALL and leave dfuERROR/errSTALLEDPKT, as DFU 1.1 says; so do requests sent to a busy board
before the poll timeout it reported has elapsed.
"""

from __future__ import annotations

import enum
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

from espdfu.chips import Chip
from espdfu.sim.receiver import Receiver
from espdfu.usb import rom
from espdfu.usb.protocol import (
    FUNCTIONAL_DESCRIPTOR_TYPE,
    REQUEST_IN,
    REQUEST_OUT,
    Request,
    State,
    Status,
    StatusReply,
)

TRANSFER_SIZE = rom.TRANSFER_SIZE
RUNTIME_DESCRIPTOR = rom.runtime_descriptor()
DFU_MODE_DESCRIPTOR = rom.dfu_mode_descriptor()
_GET_DESCRIPTOR = 6
_STANDARD_IN_INTERFACE = 0x81

Mode = Literal["rom", "dfu", "app"]


def clock() -> float:
    """Seconds since the guest booted, the clock of /proc/uptime (boot.sh's timeline)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


@dataclass(frozen=True)
class Timing:
    """What the board makes its host wait."""

    block_poll_ms: int = rom.BLOCK_POLL_MS
    """Reported with dfuDNLOAD-IDLE after each block: the time its flash write takes."""
    erase_ms_per_sector: float = rom.ERASE_MS_PER_SECTOR
    """How long a file's erase takes per 4 KiB sector of its region (0: no time)."""
    erase_busy: bool = not rom.ERASE_BLOCKS_BUS
    """Report the erase as dfuDNBUSY with its time as the poll timeout (DFU 1.1's way)
    instead of answering nothing until it is done (the ROM's)."""
    manifest_poll: bool = not rom.MANIFEST_TO_IDLE
    """Answer the zero-length DNLOAD's GETSTATUS with dfuMANIFEST and ``manifest_ms`` (DFU
    1.1's way) instead of dfuIDLE at once (the ROM's)."""
    manifest_ms: int = 10
    reenumerate_s: float = 0.5
    """From DETACH to the board being on the bus again in DFU mode (our assumption)."""
    strict_poll: bool = True
    """STALL requests to a busy board (dfuDNBUSY, dfuMANIFEST) before its poll timeout."""


@dataclass
class Faults:
    """One-shot misbehaviours, each consumed when it fires."""

    pull_after_bytes: int | None = None
    """Pull the cable at the first DNLOAD once this many payload bytes were taken."""
    error_at_block: int | None = None
    """Report ``error_status`` after the block of this number (counted from 0)."""
    error_status: str = "WRITE"
    """A name of espdfu.usb.protocol.Status."""
    corrupt_byte: int | None = None
    """Flip the bits of the payload byte at this offset as it arrives (a bad write)."""


class Setup(NamedTuple):
    """A control request's SETUP packet."""

    request_type: int
    request: int
    value: int
    interface: int
    """wIndex: the interface, for the requests a function sees."""
    length: int

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & 0x80)


class Action(enum.Enum):
    """What the gadget must do on the bus after answering."""

    DETACH = "re-enumerate in DFU mode"
    PULL = "pull the cable without answering"


class Answer(NamedTuple):
    data: bytes | None = None
    """The data of an IN request."""
    stall: bool = False
    action: Action | None = None


_STALL = Answer(stall=True)
_OK = Answer()

_ALLOWED = {
    State.DFU_IDLE: {Request.DNLOAD, Request.ABORT, Request.GETSTATUS, Request.GETSTATE},
    State.DNLOAD_SYNC: {Request.GETSTATUS, Request.GETSTATE},
    State.DNBUSY: {Request.GETSTATUS},
    State.DNLOAD_IDLE: {Request.DNLOAD, Request.ABORT, Request.GETSTATUS, Request.GETSTATE},
    State.MANIFEST_SYNC: {Request.GETSTATUS, Request.GETSTATE},
    State.MANIFEST: {Request.GETSTATUS},
    State.ERROR: {Request.GETSTATUS, Request.GETSTATE, Request.CLRSTATUS},
}
_IN_REQUESTS = {Request.UPLOAD, Request.GETSTATUS, Request.GETSTATE}


@dataclass
class Download:
    """One download, from its first DNLOAD to how it ended."""

    started: float
    receiver: Receiver = field(repr=False)
    next_block: int = 0
    blocks: int = 0
    bytes: int = 0
    poll_ms: int = 0
    """The poll timeouts reported during it, in all."""
    ended: float | None = None
    outcome: str = "unfinished"
    manifested: bool = False
    flash_sha256: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "started": round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "blocks": self.blocks,
            "bytes": self.bytes,
            "poll_ms": self.poll_ms,
            "outcome": self.outcome,
            "files": [file._asdict() for file in self.receiver.files],
            "flash_sha256": self.flash_sha256,
        }


class Rom:
    """One board's ROM: its flash, its mode on the bus, and its DFU state."""

    def __init__(
        self,
        chip: Chip,
        flash_size: int,
        timing: Timing,
        faults: Faults,
        now: Callable[[], float] = clock,
    ) -> None:
        self.chip = chip
        self.flash = bytearray(flash_size)
        """Old data (zero bytes) at first, so that what a download erased shows as 0xFF."""
        self.timing = timing
        self.faults = faults
        self.now = now
        self.mode: Mode | None = None
        self.state = State.APP_IDLE
        self.status = Status.OK
        self.downloads: list[Download] = []
        self.requests: Counter[str] = Counter()
        self.stalls: Counter[str] = Counter()
        self.events: list[dict[str, Any]] = []
        """Enumerations, detaches, pulls and errors, in order, with their times."""
        self._pending = Status.OK
        self._busy_ms: float | None = None
        self._ready_at = 0.0
        self.held_until = 0.0
        """Until when the board erases and answers nothing (``now``'s clock)."""
        self.generation = 0
        """Counts the board's appearances on the bus: a held request of an earlier one is
        never answered."""

    # --- the bus ---------------------------------------------------------------------------------

    def enumerate(self, mode: Mode) -> None:
        """The board arrived on the bus in ``mode`` (plugged in, or after DETACH)."""
        self._end_download("re-enumerated")
        self.mode = mode
        self.state = State.DFU_IDLE if mode == "dfu" else State.APP_IDLE
        self.status = self._pending = Status.OK
        self._busy_ms = None
        self._ready_at = self.held_until = 0.0
        self.generation += 1
        self.event("enumerated", mode=mode)

    def unplug(self, why: str = "unplugged") -> None:
        """Off the bus: the cable pulled, or the chip held in reset (``why``, for the record)."""
        self._end_download("cable pulled" if why == "unplugged" else why)
        self.mode = None
        self.held_until = 0.0
        self.generation += 1
        self.event(why)

    @property
    def download(self) -> Download | None:
        current = self.downloads[-1] if self.downloads else None
        return current if current is not None and current.ended is None else None

    # --- control requests --------------------------------------------------------------------

    def control(self, setup: Setup, read: Callable[[], bytes]) -> Answer:
        """Answer one request. ``read`` takes an OUT request's data (or acknowledges one
        without data); it is called once the request is accepted, never for a stall."""
        if setup.request_type & 0x60 == 0:
            return self._standard(setup)
        try:
            request = Request(setup.request)
        except ValueError:
            return self._stall(f"unknown request {setup.request}")
        self.requests[request.name] += 1
        direction = REQUEST_IN if request in _IN_REQUESTS else REQUEST_OUT
        if setup.request_type != direction:
            return self._stall(f"{request.name} with bmRequestType 0x{setup.request_type:02x}")
        if self.mode == "rom":
            return self._runtime(request, read)
        return self._dfu(request, setup, read)

    def _standard(self, setup: Setup) -> Answer:
        if (
            setup.request_type == _STANDARD_IN_INTERFACE
            and setup.request == _GET_DESCRIPTOR
            and setup.value >> 8 == FUNCTIONAL_DESCRIPTOR_TYPE
        ):
            descriptor = DFU_MODE_DESCRIPTOR if self.mode == "dfu" else RUNTIME_DESCRIPTOR
            return Answer(descriptor.encode())
        return self._stall(f"standard request {setup.request}")

    def _runtime(self, request: Request, read: Callable[[], bytes]) -> Answer:
        if request is Request.GETSTATUS:
            return Answer(StatusReply(Status.OK, 0, State.APP_IDLE).encode())
        if request is Request.GETSTATE:
            return Answer(bytes((State.APP_IDLE,)))
        if request is Request.DETACH:
            read()
            self.event("detached")
            return Answer(action=Action.DETACH)
        return self._stall(f"{request.name} in appIDLE")

    def _dfu(self, request: Request, setup: Setup, read: Callable[[], bytes]) -> Answer:
        now = self.now()
        if self.state in (State.DNBUSY, State.MANIFEST):
            if now >= self._ready_at:  # the work is done: the board moves on by itself
                busy = self.state is State.DNBUSY
                self.state = State.DNLOAD_SYNC if busy else State.MANIFEST_SYNC
            elif self.timing.strict_poll:
                early = math.ceil((self._ready_at - now) * 1000)
                return self._stall(f"{request.name} {early} ms before the poll timeout")
        if request not in _ALLOWED[self.state]:
            return self._stall(f"{request.name} in {self.state.label}")
        if request is Request.GETSTATUS:
            return Answer(self._get_status(now))
        if request is Request.GETSTATE:
            return Answer(bytes((self.state,)))
        if request is Request.DNLOAD:
            return self._dnload(setup, read, now)
        read()
        if request is Request.ABORT:
            self._end_download("aborted")
        self.state, self.status = State.DFU_IDLE, Status.OK  # ABORT, CLRSTATUS
        return _OK

    def _get_status(self, now: float) -> bytes:
        download = self.download
        if self._pending is not Status.OK:
            self.state, self.status, self._pending = State.ERROR, self._pending, Status.OK
            at = download.bytes if download else 0
            self.event("error", status=self.status.label, at_byte=at)
            self._end_download(self.status.label)
            return StatusReply(self.status, 0, State.ERROR).encode()
        poll = 0
        if self.state is State.DNLOAD_SYNC:
            if self._busy_ms is not None:
                self.state, poll = State.DNBUSY, math.ceil(self._busy_ms)
                self._busy_ms = None
            else:
                self.state, poll = State.DNLOAD_IDLE, self.timing.block_poll_ms
        elif self.state is State.MANIFEST_SYNC and download is not None:
            if download.manifested:
                self.state = State.DFU_IDLE
                self._end_download("manifested")
            elif not download.receiver.complete:
                self.state, self.status = State.ERROR, Status.NOTDONE
                self.event("error", status=self.status.label, at_byte=download.bytes)
                self._end_download(self.status.label)
            else:
                download.manifested = True
                download.flash_sha256 = hashlib.sha256(self.flash).hexdigest()
                if self.timing.manifest_poll:
                    self.state, poll = State.MANIFEST, self.timing.manifest_ms
                else:
                    self.state = State.DFU_IDLE
                    self._end_download("manifested")
        elif self.state in (State.DNBUSY, State.MANIFEST):  # asked early, strict_poll off
            poll = math.ceil((self._ready_at - now) * 1000)
        if self.state in (State.DNBUSY, State.MANIFEST):
            self._ready_at = now + poll / 1000
        if download is not None:
            download.poll_ms += poll
        return StatusReply(self.status, poll, self.state).encode()

    def _dnload(self, setup: Setup, read: Callable[[], bytes], now: float) -> Answer:
        if setup.length > TRANSFER_SIZE:
            return self._stall(f"DNLOAD of {setup.length} bytes")
        download = self.download
        if self.state is State.DFU_IDLE:
            if not setup.length:
                return self._stall("zero-length DNLOAD in dfuIDLE")
            download = Download(now, Receiver(self.flash), next_block=setup.value)
            self.downloads.append(download)
        assert download is not None
        if setup.value != download.next_block:
            return self._stall(f"block {setup.value} where {download.next_block} was due")
        pull = self.faults.pull_after_bytes
        if pull is not None and setup.length and download.bytes >= pull:
            self.faults.pull_after_bytes = None
            self.event("pulled", at_byte=download.bytes)
            return Answer(action=Action.PULL)
        data = read()
        download.next_block = (setup.value + 1) & 0xFFFF
        if not data:
            self.state = State.MANIFEST_SYNC
            return _OK
        data = self._corrupted(data, download.bytes)
        fed = download.receiver.feed(data)
        if self.faults.error_at_block == download.blocks:
            self.faults.error_at_block = None
            self._pending = Status[self.faults.error_status]
        elif fed.status is not Status.OK and self._pending is Status.OK:
            self._pending = fed.status
        download.blocks += 1
        download.bytes += len(data)
        if fed.erased and self.timing.erase_ms_per_sector:
            sectors = sum(rom.sectors(start, end - start) for start, end in fed.erased)
            erase_ms = sectors * self.timing.erase_ms_per_sector
            start, end = fed.erased[0]
            self.event("erasing", address=start, size=end - start, ms=round(erase_ms, 1))
            if self.timing.erase_busy:
                self._busy_ms = erase_ms
            else:
                self.held_until = now + erase_ms / 1000
        self.state = State.DNLOAD_SYNC
        return _OK

    def _corrupted(self, data: bytes, offset: int) -> bytes:
        at = self.faults.corrupt_byte
        if at is None or not offset <= at < offset + len(data):
            return data
        self.faults.corrupt_byte = None
        self.event("corrupted", at_byte=at)
        changed = bytearray(data)
        changed[at - offset] ^= 0xFF
        return bytes(changed)

    def _stall(self, reason: str) -> Answer:
        """STALL; in DFU mode that is dfuERROR with errSTALLEDPKT."""
        self.stalls[reason] += 1
        if self.mode == "dfu":
            self.state, self.status, self._pending = State.ERROR, Status.STALLEDPKT, Status.OK
            self._end_download(f"stalled: {reason}")
        return _STALL

    # --- the record ----------------------------------------------------------------------------

    def _end_download(self, outcome: str) -> None:
        download = self.download
        if download is not None:
            download.ended = self.now()
            download.outcome = outcome

    def event(self, what: str, **details: Any) -> None:
        """Put ``what`` on the board's record, with the time."""
        self.events.append({"at": round(self.now(), 3), "event": what, **details})

    def report(self) -> dict[str, Any]:
        """What happened to the board, for the harness (JSON-ready)."""
        return {
            "chip": self.chip.name,
            "flash_size": len(self.flash),
            "timing": asdict(self.timing),
            "requests": dict(self.requests),
            "stalls": dict(self.stalls),
            "events": self.events,
            "downloads": [download.report() for download in self.downloads],
        }
