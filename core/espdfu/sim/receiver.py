"""The ROM's side of a download: the dfu.bin archive parsed as it streams in, written to flash.

The ESP ROM keeps no copy of the download: it reads the cpio "newc" stream block by block,
takes dfuinfo0.dat's records first, then erases each file's region when the file's first
data arrives and writes the data at the record's address, checking the md5 at the file's end.
This does the same, so a host that sends a broken archive fails here as on a board. Headers
and names may be split across any blocks; nothing is allocated from a size the stream declares.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ..files.dfufile import (
    CPIO_HEADER_LEN,
    DFUINFO,
    DFUINFO_NAME,
    FLAG_IGNORE_MD5,
    FLAG_NOERASE,
    FLAG_PARAM,
    FLASH_PARAMS,
    FLASH_PARAMS_NAME,
    TRAILER_NAME,
    cpio_sizes,
)
from ..usb import rom
from ..usb.protocol import Status
from .timing import SECTOR_SIZE

MAX_NAME = 4096
MAX_INDEX = 64 * 1024
"""Bounds on what the receiver buffers: a name, and dfuinfo0.dat (744 records)."""

_ERASED = memoryview(b"\xff" * (64 * 1024))
_DFUINFO = DFUINFO_NAME.encode()
_FLASH_PARAMS = FLASH_PARAMS_NAME.encode()
_TRAILER = TRAILER_NAME.encode()


class ReceivedFile(NamedTuple):
    """A file the board wrote to flash."""

    name: str
    address: int
    size: int
    md5_ok: bool


class Fed(NamedTuple):
    """The outcome of one block: the status it revealed and the regions it erased."""

    status: Status
    erased: tuple[tuple[int, int], ...] = ()


_FED_OK = Fed(Status.OK)


class _Member:
    """The archive member whose data is arriving, and what to do with it."""

    __slots__ = ("address", "collect", "cursor", "flags", "md5", "name", "remaining", "size")

    def __init__(self, name: bytes, size: int, address: int = 0, flags: int = 0) -> None:
        self.name = name
        self.size = size
        self.remaining = size
        self.address = address
        self.cursor = address
        self.flags = flags
        self.md5 = b""
        self.collect: bytearray | None = None

    @property
    def written(self) -> bool:
        return self.name != _DFUINFO and not self.flags & FLAG_PARAM


class Receiver:
    """One download's archive, fed block by block into ``flash``."""

    def __init__(self, flash: bytearray) -> None:
        self._flash = flash
        self._limit = min(rom.FLASH_SIZE_WITHOUT_PARAMS, len(flash))
        self._records: dict[bytes, list[tuple[int, int, bytes]]] | None = None
        self._status = Status.OK
        self._buffer = bytearray()
        self._need = CPIO_HEADER_LEN
        self._name_size = 0
        self._data_size = 0
        self._skip = 0
        self._member: _Member | None = None
        self._hash = hashlib.md5()
        self._erased: list[tuple[int, int]] = []
        self.files: list[ReceivedFile] = []
        self.complete = False
        """The trailer arrived: the archive is whole (what follows is padding)."""

    def feed(self, block: bytes | memoryview) -> Fed:
        """Take the next block; after an error every block reports that error."""
        if self._status is not Status.OK or self.complete:
            return Fed(self._status)
        view = memoryview(block)
        pos, end = 0, len(view)
        while pos < end and self._status is Status.OK and not self.complete:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._member is not None:
                pos = self._take_data(view, pos)
            else:
                step = min(self._need - len(self._buffer), end - pos)
                self._buffer += view[pos : pos + step]
                pos += step
                if len(self._buffer) == self._need:
                    self._parse_header_or_name()
        if not self._erased and self._status is Status.OK:
            return _FED_OK
        erased, self._erased = tuple(self._erased), []
        return Fed(self._status, erased)

    # --- the cpio framing ----------------------------------------------------------------------

    def _parse_header_or_name(self) -> None:
        raw = bytes(self._buffer)
        self._buffer.clear()
        if not self._name_size:
            sizes = cpio_sizes(raw)
            if sizes is None or not 0 < sizes[1] <= MAX_NAME:
                self._status = Status.FILE
                return
            self._data_size, self._name_size = sizes
            self._need = self._name_size
            return
        self._skip = -(CPIO_HEADER_LEN + self._name_size) % 4
        self._name_size = 0
        self._need = CPIO_HEADER_LEN
        if not raw.endswith(b"\0"):
            self._status = Status.FILE
            return
        self._start(raw[:-1], self._data_size)

    def _start(self, name: bytes, size: int) -> None:
        """A member's header and name are in: match it to its dfuinfo0.dat record."""
        if self._records is None:
            if name != _DFUINFO or size % DFUINFO.size or size > MAX_INDEX:
                self._status = Status.FILE
                return
            member = _Member(name, size)
            member.collect = bytearray()
        elif name == _TRAILER:
            self.complete = True
            return
        else:
            candidates = self._records.get(name[:64])
            if not candidates:
                self._status = Status.FILE
                return
            address, flags, member_md5 = candidates.pop(0)
            member = _Member(name, size, address, flags)
            member.md5 = member_md5
            if name == _FLASH_PARAMS:
                if size != FLASH_PARAMS.size:
                    self._status = Status.FILE
                    return
                member.collect = bytearray()
            elif member.written and address + size > self._limit:
                self._status = Status.ADDRESS
                return
        self._member = member
        self._hash = hashlib.md5()
        if not size:
            self._finish(member)

    def _take_data(self, view: memoryview, pos: int) -> int:
        member = self._member
        assert member is not None
        step = min(member.remaining, len(view) - pos)
        chunk = view[pos : pos + step]
        self._hash.update(chunk)
        if member.collect is not None:
            member.collect += chunk
        elif member.written:
            if member.remaining == member.size and not member.flags & FLAG_NOERASE:
                self._erase(member.address, member.address + member.size)
            self._flash[member.cursor : member.cursor + step] = chunk
            member.cursor += step
        member.remaining -= step
        if not member.remaining:
            self._finish(member)
        return pos + step

    def _finish(self, member: _Member) -> None:
        self._member = None
        self._skip = -member.size % 4
        if member.name == _DFUINFO:
            self._records = _read_records(member.collect or b"")
            return
        if member.name == _FLASH_PARAMS and member.collect is not None:
            chip_size = FLASH_PARAMS.unpack(member.collect)[3]
            self._limit = min(chip_size, len(self._flash))
        md5_ok = self._hash.digest() == member.md5
        if member.written:
            name = member.name.decode("utf-8", "replace")
            self.files.append(ReceivedFile(name, member.address, member.size, md5_ok))
        if not md5_ok and not member.flags & FLAG_IGNORE_MD5:
            self._status = Status.VERIFY

    def _erase(self, start: int, end: int) -> None:
        """Erase the sectors [start, end) touches, as the ROM does before writing a file."""
        start -= start % SECTOR_SIZE
        end = min(-(-end // SECTOR_SIZE) * SECTOR_SIZE, len(self._flash))
        for offset in range(start, end, len(_ERASED)):
            stop = min(offset + len(_ERASED), end)
            self._flash[offset:stop] = _ERASED[: stop - offset]
        self._erased.append((start, end))


def _read_records(index: bytes | bytearray) -> dict[bytes, list[tuple[int, int, bytes]]]:
    """dfuinfo0.dat by name (its first 64 bytes): (address, flags, md5), in archive order."""
    records: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for address, flags, name, md5 in DFUINFO.iter_unpack(index):
        records.setdefault(name.split(b"\0", 1)[0], []).append((address, flags, md5))
    return records
