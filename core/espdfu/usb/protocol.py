"""USB DFU 1.1 without I/O: requests, states, status codes, descriptors, and the download.

The download is a generator that yields the requests to send and receives their results, so
the same logic drives libusb, the virtual boards and the QEMU gadget, and can be tested on its
own with made-up replies. It decides; it never sleeps or touches a device.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

DFU_CLASS = 0xFE
DFU_SUBCLASS = 0x01
PROTOCOL_RUNTIME = 0x01
PROTOCOL_DFU = 0x02
FUNCTIONAL_DESCRIPTOR_TYPE = 0x21
REQUEST_OUT = 0x21  # host to device, class, interface
REQUEST_IN = 0xA1  # device to host, class, interface
STATUS_LENGTH = 6


class Request(enum.IntEnum):
    DETACH = 0
    DNLOAD = 1
    UPLOAD = 2
    GETSTATUS = 3
    CLRSTATUS = 4
    GETSTATE = 5
    ABORT = 6


class State(enum.IntEnum):
    APP_IDLE = 0
    APP_DETACH = 1
    DFU_IDLE = 2
    DNLOAD_SYNC = 3
    DNBUSY = 4
    DNLOAD_IDLE = 5
    MANIFEST_SYNC = 6
    MANIFEST = 7
    MANIFEST_WAIT_RESET = 8
    UPLOAD_IDLE = 9
    ERROR = 10

    @property
    def label(self) -> str:
        """The name the DFU specification uses ("dfuDNLOAD-IDLE")."""
        return _STATE_LABELS[self]


_STATE_LABELS = {
    State.APP_IDLE: "appIDLE",
    State.APP_DETACH: "appDETACH",
    State.DFU_IDLE: "dfuIDLE",
    State.DNLOAD_SYNC: "dfuDNLOAD-SYNC",
    State.DNBUSY: "dfuDNBUSY",
    State.DNLOAD_IDLE: "dfuDNLOAD-IDLE",
    State.MANIFEST_SYNC: "dfuMANIFEST-SYNC",
    State.MANIFEST: "dfuMANIFEST",
    State.MANIFEST_WAIT_RESET: "dfuMANIFEST-WAIT-RESET",
    State.UPLOAD_IDLE: "dfuUPLOAD-IDLE",
    State.ERROR: "dfuERROR",
}


class Status(enum.IntEnum):
    OK = 0x00
    TARGET = 0x01
    FILE = 0x02
    WRITE = 0x03
    ERASE = 0x04
    CHECK_ERASED = 0x05
    PROG = 0x06
    VERIFY = 0x07
    ADDRESS = 0x08
    NOTDONE = 0x09
    FIRMWARE = 0x0A
    VENDOR = 0x0B
    USBR = 0x0C
    POR = 0x0D
    UNKNOWN = 0x0E
    STALLEDPKT = 0x0F

    @property
    def label(self) -> str:
        """The specification's name ("errVERIFY")."""
        return "OK" if self is Status.OK else f"err{self.name}"

    @property
    def meaning(self) -> str:
        """A sentence for people."""
        return _STATUS_MEANINGS[self]


_STATUS_MEANINGS = {
    Status.OK: "no error",
    Status.TARGET: "the file is not for this device",
    Status.FILE: "the device rejected the file's content (not a valid archive for it)",
    Status.WRITE: "the device could not write to its flash",
    Status.ERASE: "the device could not erase its flash",
    Status.CHECK_ERASED: "the flash was not blank after erasing",
    Status.PROG: "programming the flash failed",
    Status.VERIFY: "the written data failed its check (md5 mismatch)",
    Status.ADDRESS: "the file writes to an address outside the flash",
    Status.NOTDONE: "the download ended before the device had all the data it expected",
    Status.FIRMWARE: "the device's firmware is corrupt and cannot run",
    Status.VENDOR: "a vendor-specific error",
    Status.USBR: "the device saw an unexpected USB reset",
    Status.POR: "the device saw an unexpected power-on reset",
    Status.UNKNOWN: "an unknown error",
    Status.STALLEDPKT: "the device stalled a request it did not expect",
}


@dataclass(frozen=True)
class StatusReply:
    """A decoded GETSTATUS reply."""

    status: Status
    poll_timeout_ms: int
    state: State

    @classmethod
    @functools.lru_cache(maxsize=64)
    def decode(cls, data: bytes) -> StatusReply:
        """Decode the 6 bytes, refusing short replies and unknown codes.

        Cached: a download hears the same few replies thousands of times.
        """
        if len(data) != STATUS_LENGTH:
            raise ProtocolError(
                f"the device answered GETSTATUS with {len(data)} bytes instead of 6"
            )
        try:
            status, state = Status(data[0]), State(data[4])
        except ValueError:
            raise ProtocolError(
                f"the device answered GETSTATUS with unknown codes (status {data[0]}, "
                f"state {data[4]})"
            ) from None
        return cls(status, int.from_bytes(data[1:4], "little"), state)

    @property
    def plain(self) -> bool:
        """The answer that lets the next block go at once: status OK, dfuDNLOAD-IDLE."""
        return self.status is Status.OK and self.state is State.DNLOAD_IDLE

    def encode(self) -> bytes:
        return (
            bytes([self.status])
            + self.poll_timeout_ms.to_bytes(3, "little")
            + bytes([self.state, 0])
        )


@dataclass(frozen=True)
class FunctionalDescriptor:
    """The DFU functional descriptor (type 0x21)."""

    attributes: int
    detach_timeout_ms: int
    transfer_size: int
    dfu_version: int
    FORMAT = struct.Struct("<BBBHHH")

    @property
    def manifestation_tolerant(self) -> bool:
        return bool(self.attributes & 0x04)

    @property
    def will_detach(self) -> bool:
        return bool(self.attributes & 0x08)

    def encode(self) -> bytes:
        return self.FORMAT.pack(
            self.FORMAT.size,
            FUNCTIONAL_DESCRIPTOR_TYPE,
            self.attributes,
            self.detach_timeout_ms,
            self.transfer_size,
            self.dfu_version,
        )

    @classmethod
    def find(cls, extra: bytes) -> FunctionalDescriptor | None:
        """The functional descriptor among a configuration's or interface's extra bytes."""
        offset = 0
        while offset + 2 <= len(extra):
            length, kind = extra[offset], extra[offset + 1]
            if length < 2:
                return None
            if kind == FUNCTIONAL_DESCRIPTOR_TYPE and length >= 7:
                return cls.decode(extra[offset : offset + length])
            offset += length
        return None

    @classmethod
    def decode(cls, data: bytes) -> FunctionalDescriptor | None:
        """Decode one descriptor; DFU 1.0 devices send 7 bytes without bcdDFUVersion."""
        if len(data) < 7 or data[1] != FUNCTIONAL_DESCRIPTOR_TYPE:
            return None
        attributes, detach, size = struct.unpack_from("<BHH", data, 2)
        version = struct.unpack_from("<H", data, 7)[0] if len(data) >= 9 else 0x0100
        return cls(attributes, detach, size, version)


# --- errors the protocol itself can detect -----------------------------------------------------


class ProtocolError(Exception):
    """The device answered something the DFU protocol does not allow at this point."""


class DeviceStatusError(Exception):
    """The device reported an error status (it is now in dfuERROR)."""

    def __init__(self, status: Status, during: str) -> None:
        super().__init__(f"{status.label} during {during}: {status.meaning}")
        self.status = status
        self.during = during


class BusyTooLongError(Exception):
    """The device stayed busy beyond any reasonable time (the message has no subject:
    "stayed busy (dfuDNBUSY) for over 120 s during the download")."""


# --- requests, as the download yields them -----------------------------------------------------


class Step(NamedTuple):
    """One request to send; a GETSTATUS no sooner than ``wait_ms`` after the previous one's reply.

    A named tuple: two are made for every 64-byte block, so they must be cheap.

    bwPollTimeout is the time a device needs before it can answer the next GETSTATUS. It is
    waited out when the device said it is busy (dfuDNBUSY, manifesting); a device that is
    idle again (dfuDNLOAD-IDLE) has nothing left to do, so the next block and its GETSTATUS
    go at once, as dfu-util (and so ESP-IDF) sends them. ROMs that report one constant poll
    timeout with every status would otherwise make each block wait for nothing.
    """

    request: Request
    value: int = 0
    data: bytes | memoryview = b""
    wait_ms: int = 0
    offset: int = 0
    """For DNLOAD: where ``data`` starts in the payload."""
    timeout_ms: int = 0
    """How long the device may take to answer this request; 0: the transport's usual time."""


class Blocks(NamedTuple):
    """A run of plain blocks to send: each block's DNLOAD, then one GETSTATUS, and the next
    block at once while the device answers status OK, dfuDNLOAD-IDLE (see :class:`Step`).

    Nearly every block of a download is such a block, so a transport may send a run in one
    tight loop of its own; :func:`each_request` sends it as the separate requests.
    """

    first: int
    """The number of the first block, counted from 0 (unwrapped)."""
    data: memoryview
    """The run's bytes: whole blocks, but the payload's last."""
    offset: int
    """Where ``data`` starts in the payload."""
    size: int
    """The transfer size."""

    @property
    def block_count(self) -> int:
        return -(-len(self.data) // self.size)

    def parts(self, blocks: int) -> Iterator[Blocks]:
        """The run cut into runs of ``blocks`` blocks at most."""
        step = blocks * self.size
        for start in range(0, len(self.data), step):
            first = self.first + start // self.size
            yield Blocks(first, self.data[start : start + step], self.offset + start, self.size)


class Sent(NamedTuple):
    """How a run of blocks went: its first ``done`` blocks were answered plainly; ``reply`` is
    the answer that ended it early (to the GETSTATUS after block ``done``'s DNLOAD), None when
    every block went through."""

    done: int
    reply: StatusReply | None = None


class Ending(enum.Enum):
    """How a download legitimately ends."""

    IDLE = "the device returned to dfuIDLE"
    WAIT_RESET = "the device waits for a USB reset"
    VANISHED = "the device reset itself"


class DeviceGone(Exception):
    """Thrown into the download when the device left the bus during a request."""


Reply = StatusReply | None
"""What a request gives: the decoded reply of GETSTATUS, None for the others."""
_T = TypeVar("_T")
Exchange = Generator[Step | Blocks, Reply | Sent, _T]
"""A DFU exchange: it yields what to send and receives what that gave (:class:`Sent` for
:class:`Blocks`); it returns a ``_T``."""

BUSY_LIMIT_MS = 120_000
"""Longest a device may stay busy on one step, counted in its own poll timeouts (1 ms minimum
each): a large erase takes seconds, an endless dfuDNBUSY must still end."""


def download(
    payload: bytes | memoryview,
    transfer_size: int,
    *,
    busy_limit_ms: int = BUSY_LIMIT_MS,
    slow: Mapping[int, int] | None = None,
) -> Exchange[Ending]:
    """Bring the device to dfuIDLE, send ``payload`` in ``transfer_size`` blocks, manifest.

    Yields each request and receives its result: the decoded status for GETSTATUS, None for
    the others; the blocks between two slow ones go as one :class:`Blocks` run, answered with
    :class:`Sent`. Transport failures are thrown in; :class:`DeviceGone` after the device took
    the final zero-length DNLOAD is the legitimate end of a device that resets itself. Raises
    :class:`DeviceStatusError`, :class:`ProtocolError` or :class:`BusyTooLongError`.

    ``slow`` maps block numbers (counted from 0, unwrapped) to the time the device may take
    over that block: its DNLOAD and the GETSTATUS requests after it get that timeout (a
    device that erases without answering), and it may stay busy that long (one that says so).
    Each goes alone, as its own requests.
    """
    if transfer_size <= 0:
        raise ProtocolError(f"the device declares a transfer size of {transfer_size}")
    reply = yield from _reach_idle(busy_limit_ms)
    view = memoryview(payload)
    count = -(-len(view) // transfer_size)
    slow = slow or {}
    ends = sorted(block for block, timeout in slow.items() if timeout)
    block = 0
    while block < count:
        offset = block * transfer_size
        timeout = slow.get(block, 0)
        if timeout:
            data = view[offset : offset + transfer_size]
            yield Step(Request.DNLOAD, block & 0xFFFF, data, 0, offset, timeout)
            limit = max(busy_limit_ms, timeout)
            reply = yield from _settle(State.DNLOAD_IDLE, "the download", limit, reply, timeout)
            block += 1
            continue
        end = next((slow_block for slow_block in ends if slow_block > block), count)
        data = view[offset : end * transfer_size]
        sent = yield Blocks(block, data, offset, transfer_size)
        if not isinstance(sent, Sent):
            raise ProtocolError("a run of blocks gave no account of itself")
        block += sent.done
        if sent.reply is None:
            reply = _PLAIN
            continue
        reply = yield from _settled(sent.reply, State.DNLOAD_IDLE, "the download", busy_limit_ms)
        block += 1
    yield Step(Request.DNLOAD, count & 0xFFFF, b"", 0, len(view))
    try:
        reply = yield from _settle(State.DFU_IDLE, "manifestation", busy_limit_ms, reply)
    except DeviceGone:
        return Ending.VANISHED
    return Ending.WAIT_RESET if reply.state is State.MANIFEST_WAIT_RESET else Ending.IDLE


def each_request(blocks: Blocks, perform: Callable[[Step], Reply]) -> Sent:
    """Send a run of ``blocks`` as its separate requests, each through ``perform``.

    Where a transport has no loop of its own for runs, and where each request must be seen
    (a traced flash, the tests' devices).
    """
    data, size = blocks.data, blocks.size
    for done, start in enumerate(range(0, len(data), size)):
        number = (blocks.first + done) & 0xFFFF
        perform(Step(Request.DNLOAD, number, data[start : start + size], 0, blocks.offset + start))
        reply = _status(perform(_POLL_NOW))
        if not reply.plain:
            return Sent(done, reply)
    return Sent(blocks.block_count)


def recover(busy_limit_ms: int = BUSY_LIMIT_MS) -> Exchange[None]:
    """Leave the device in dfuIDLE after a failure or a cancel, if it is still there."""
    yield from _reach_idle(busy_limit_ms)


def _reach_idle(busy_limit_ms: int) -> Exchange[StatusReply]:
    """dfuERROR → CLRSTATUS; a download or upload in progress → ABORT; busy → wait."""
    actions = 0
    busy_ms = 0
    reply = None
    while True:
        reply = yield from _get_status(reply)
        if reply.state is State.DFU_IDLE:
            return reply
        if reply.state in _CLEARED_BY:
            if actions == MAX_CLEAR_ACTIONS:
                raise ProtocolError(
                    f"the device stays in {reply.state.label} after CLRSTATUS and ABORT"
                )
            actions += 1
            yield Step(_CLEARED_BY[reply.state])
        elif reply.state in _ALWAYS_BUSY:
            busy_ms = _count_busy(busy_ms, reply, busy_limit_ms)
        else:
            raise ProtocolError(
                f"the device is in {reply.state.label}, from which it cannot take a download"
            )


_CLEARED_BY = {
    State.ERROR: Request.CLRSTATUS,
    State.DNLOAD_IDLE: Request.ABORT,
    State.UPLOAD_IDLE: Request.ABORT,
}
_POLL_NOW = Step(Request.GETSTATUS)
_PLAIN = StatusReply(Status.OK, 0, State.DNLOAD_IDLE)
"""What a run of blocks leaves the device in (its poll timeout does not matter: no wait
follows dfuDNLOAD-IDLE)."""
_ALWAYS_BUSY = (State.DNLOAD_SYNC, State.DNBUSY, State.MANIFEST_SYNC, State.MANIFEST)
MAX_CLEAR_ACTIONS = 3


def _get_status(previous: StatusReply | None, timeout_ms: int = 0) -> Exchange[StatusReply]:
    """GETSTATUS, once the poll timeout of a device that said it was busy has passed."""
    wait = previous.poll_timeout_ms if previous and previous.state in _ALWAYS_BUSY else 0
    if wait or timeout_ms:
        reply = yield Step(Request.GETSTATUS, wait_ms=wait, timeout_ms=timeout_ms)
    else:
        reply = yield _POLL_NOW
    return _status(reply)


def _status(reply: Reply | Sent) -> StatusReply:
    """What GETSTATUS gave, which must be a status."""
    if not isinstance(reply, StatusReply):
        raise ProtocolError("GETSTATUS gave no reply")
    return reply


def _settle(
    target: State, during: str, busy_limit_ms: int, previous: StatusReply, timeout_ms: int = 0
) -> Exchange[StatusReply]:
    """Poll GETSTATUS until the device reaches ``target`` (or, at the end, waits for reset)."""
    reply = yield from _get_status(previous, timeout_ms)
    return (yield from _settled(reply, target, during, busy_limit_ms, timeout_ms))


def _settled(
    reply: StatusReply, target: State, during: str, busy_limit_ms: int, timeout_ms: int = 0
) -> Exchange[StatusReply]:
    """:func:`_settle` from ``reply``, the first answer already heard."""
    busy_ms = 0
    while True:
        if reply.status is not Status.OK or reply.state is State.ERROR:
            status = reply.status if reply.status is not Status.OK else Status.UNKNOWN
            raise DeviceStatusError(status, during)
        if reply.state is target or (
            target is State.DFU_IDLE and reply.state is State.MANIFEST_WAIT_RESET
        ):
            return reply
        if reply.state not in _BUSY_STATES[target]:
            raise ProtocolError(f"the device went to {reply.state.label} during {during}")
        busy_ms = _count_busy(busy_ms, reply, busy_limit_ms, f" during {during}")
        reply = yield from _get_status(reply, timeout_ms)


def _count_busy(busy_ms: int, reply: StatusReply, limit_ms: int, during: str = "") -> int:
    """Add a busy answer (its poll timeout, 1 ms at least) to the total; stop past the limit."""
    busy_ms += max(reply.poll_timeout_ms, 1)
    if busy_ms > limit_ms:
        raise BusyTooLongError(
            f"stayed busy ({reply.state.label}) for over {limit_ms / 1000:g} s{during}"
        )
    return busy_ms


_BUSY_STATES = {
    State.DNLOAD_IDLE: (State.DNLOAD_SYNC, State.DNBUSY),
    State.DFU_IDLE: (State.MANIFEST_SYNC, State.MANIFEST),
}
