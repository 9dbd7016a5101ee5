"""The ESP-IDF dfu.bin: read and verify one, write one byte-identical to ESP-IDF's mkdfu.py.

Layout: a cpio "newc" archive (dfuinfo0.dat, the optional flash_params.dat, the flash files
sorted by address, TRAILER!!!) zero-padded to a multiple of 10240 bytes, then the 16-byte DFU
suffix whose last four bytes are the CRC. A host downloads the file without its suffix.

The reader trusts nothing: every length is checked against the bytes that are really there
before it is used, so any input gives either an image or a :class:`DfuFormatError`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ..chips import ANY_PID, ESPRESSIF_VID, Chip, chip_by_pid, dfu_chip_names
from ..errors import DfuFormatError, InputError, printable
from ..fsutil import atomic_write, read_bytes
from ..units import format_size
from .contents import Contents, read_contents

SUFFIX = struct.Struct("<HHHH3sB")  # bcdDevice, idProduct, idVendor, bcdDFU, "UFD", bLength
CRC = struct.Struct("<I")
SUFFIX_LEN = SUFFIX.size + CRC.size  # 16: what a host strips before sending
SUFFIX_SIGNATURE = b"UFD"
BCD_DFU = 0x0100
BCD_DEVICE = 0xFFFF

DFUINFO = struct.Struct("<II64s16s")  # address, flags, name (cut at 64 bytes), md5
FLASH_PARAMS = struct.Struct("<8I")
DFUINFO_NAME = "dfuinfo0.dat"
FLASH_PARAMS_NAME = "flash_params.dat"
TRAILER_NAME = "TRAILER!!!"
FLAG_PARAM = 1 << 2
FLAG_NOERASE = 1 << 3
FLAG_IGNORE_MD5 = 1 << 4
FLASH_PARAMS_FLAGS = FLAG_PARAM | FLAG_NOERASE | FLAG_IGNORE_MD5

CPIO_MAGIC = b"070701"
CPIO_HEADER_LEN = 110
CPIO_BLOCK = 10240
_CPIO_HEADER = re.compile(rb"070701[0-9a-fA-F]{104}")
_REGULAR_FILE_MODE = 0o100644

DEFAULT_PART_SIZE = 512 * 1024
FLASH_SIZES = {f"{1 << n}MB": (1 << n) * 1024 * 1024 for n in range(8)}  # 1MB ... 128MB
DEFAULT_FLASH_SIZE = FLASH_SIZES["2MB"]
SECTOR_SIZE = 4096
MAX_FILE_SIZE = 256 * 1024 * 1024
"""Twice the largest ESP flash: anything bigger cannot be a dfu.bin worth reading."""

_REBUILD_HINT = "Rebuild it with `idf.py dfu` (or `espdfu mkdfu`) and try again."
_DISTINCT_NAMES_HINT = (
    "Give the images distinct file names (in a project: the files its CMake files add to the "
    "flash targets), then make the dfu.bin again with `idf.py dfu` or `espdfu mkdfu`."
)
_ADDRESS_LIMIT = 1 << 32
_NAME_LIMIT = 4096
"""Bytes, with the NUL: PATH_MAX on Linux; a longer name is damage, not a file's name."""
_FINDINGS_LISTED = 20


def dfu_crc(data: bytes | memoryview, crc: int = 0) -> int:
    """The DFU suffix CRC: the bitwise complement of the standard CRC-32."""
    return 0xFFFFFFFF ^ zlib.crc32(data, crc)


# --- the value objects ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlashEntry:
    """One file of the archive that the ROM writes to flash."""

    name: str
    address: int
    size: int
    flags: int
    md5: bytes
    md5_ok: bool
    start: int = 0
    """Where the entry's data begins in the payload: the ROM erases the entry's whole region
    when the block holding this byte arrives."""

    @property
    def end(self) -> int:
        """The first flash address after this entry."""
        return self.address + self.size


@dataclass(frozen=True)
class DfuImage:
    """What a dfu.bin holds, as read and checked.

    ``problems`` lists why the file is not valid (empty when it is); ``warnings`` what is
    legal but likely not what the user wants.
    """

    raw: bytes = field(repr=False)
    pid: int
    vid: int
    crc_ok: bool
    flash_size: int | None
    entries: tuple[FlashEntry, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    whole: DfuImage | None = field(default=None, repr=False, compare=False)
    """For a dfu.bin of another's changes only (:mod:`espdfu.files.delta`): that file, whose
    contents a board holds once this one is flashed over what it held before."""

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def chip(self) -> Chip | None:
        """The chip the file is for, or None when its PID is unknown or means "any"."""
        return chip_by_pid(self.pid)

    @property
    def chip_name(self) -> str:
        if self.pid == ANY_PID:
            return "any"
        chip = self.chip
        return chip.name if chip else "unknown"

    @cached_property
    def contents(self) -> Contents:
        """What it writes, read as the chip will boot it (read when first asked, then kept); of
        a file of changes, what the board boots after it: the whole file's."""
        return self.whole.contents if self.whole is not None else read_contents(self)

    @property
    def payload(self) -> bytes:
        """The bytes a host downloads: the file without its 16-byte suffix."""
        return self.raw[:-SUFFIX_LEN]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``espdfu info --json`` prints)."""
        return {
            "valid": self.valid,
            "chip": self.chip_name,
            "pid": self.pid,
            "vid": self.vid,
            "size": len(self.raw),
            "crc_ok": self.crc_ok,
            "flash_size": self.flash_size,
            "flash_params": self.flash_size is not None,
            "entries": [
                {
                    "name": e.name,
                    "address": e.address,
                    "size": e.size,
                    "flags": e.flags,
                    "md5": e.md5.hex(),
                    "md5_ok": e.md5_ok,
                }
                for e in self.entries
            ],
            "warnings": list(self.warnings),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class FlashFile:
    """An input of the writer: ``data`` goes to flash at ``address``, stored as ``name``."""

    address: int
    name: str
    data: bytes = field(repr=False)


# --- reading ----------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], *, strict: bool = True) -> DfuImage:
    """Read and verify the dfu.bin at ``path``.

    With ``strict`` (the default) a file with any problem raises :class:`DfuFormatError`;
    without it, a file whose structure can be read is returned with its ``problems`` listed,
    so a tool can show what is wrong. Unreadable files raise :class:`InputError`.
    """
    data = read_bytes(path, limit=MAX_FILE_SIZE, what="dfu.bin")
    try:
        return parse(data, strict=strict)
    except DfuFormatError as error:
        raise DfuFormatError(f"{path}: {error.message}", error.hint) from None


def parse(data: bytes, *, strict: bool = True) -> DfuImage:
    """Read and verify a dfu.bin held in memory (see :func:`load`)."""
    pid, vid = _read_suffix(data)
    crc_stored = CRC.unpack_from(data, len(data) - CRC.size)[0]
    crc_computed = dfu_crc(memoryview(data)[: -CRC.size])
    crc_problem = "" if crc_stored == crc_computed else _crc_message(crc_stored, crc_computed)
    try:
        image = _read_archive(data, pid, vid, crc_problem)
    except DfuFormatError:
        if not crc_problem:
            raise
        raise DfuFormatError(crc_problem, _REBUILD_HINT) from None
    if strict and image.problems:
        raise DfuFormatError(image.problems[0], _REBUILD_HINT)
    return image


def _crc_message(stored: int, computed: int) -> str:
    return (
        f"The CRC in the DFU suffix does not match the content (stored 0x{stored:08x}, "
        f"computed 0x{computed:08x}): the file is damaged, cut short or still being written."
    )


def _read_suffix(data: bytes) -> tuple[int, int]:
    """Check the DFU suffix; return (idProduct, idVendor)."""
    if not data:
        raise DfuFormatError("The file is empty (0 bytes).", _REBUILD_HINT)
    if len(data) >= SUFFIX_LEN:
        _bcd_device, pid, vid, _bcd_dfu, signature, length = SUFFIX.unpack_from(
            data, len(data) - SUFFIX_LEN
        )
        if signature == SUFFIX_SIGNATURE and length == SUFFIX_LEN:
            return pid, vid
        if signature == SUFFIX_SIGNATURE:
            raise DfuFormatError(
                f"The DFU suffix declares {length} bytes; ESP-IDF's dfu.bin uses {SUFFIX_LEN}.",
                _REBUILD_HINT,
            )
    raise _not_a_dfu_file(data)


def _not_a_dfu_file(data: bytes) -> DfuFormatError:
    """Say what the file looks like, since it is not a dfu.bin."""
    size = "1 byte" if len(data) == 1 else f"{len(data):,} bytes"
    if data.startswith(CPIO_MAGIC):
        return DfuFormatError(
            f"The file is cut short ({size}): it starts like a dfu.bin but has no DFU suffix "
            "at its end. A build may still be writing it, or a copy was interrupted.",
            _REBUILD_HINT,
        )
    if data[0] == 0xE9:
        return DfuFormatError(
            f"This is a raw ESP firmware image ({size}, it starts with the image magic 0xE9), "
            "not a dfu.bin: the ROM accepts only the dfu.bin archive over DFU.",
            "Run `idf.py dfu` to get build/dfu.bin, or make one with "
            "`espdfu mkdfu -o dfu.bin --chip esp32s2 0x10000 app.bin`.",
        )
    if data.startswith(b"\x7fELF"):
        return DfuFormatError(
            f"This is an ELF program ({size}), not a dfu.bin.",
            "Flash build/dfu.bin, which `idf.py dfu` makes from the build.",
        )
    return DfuFormatError(
        f"This is not a dfu.bin ({size}): it has no DFU suffix (a dfu.bin ends with 'UFD', "
        "the suffix length 16 and a CRC).",
        "Flash build/dfu.bin, which `idf.py dfu` makes.",
    )


@dataclass(frozen=True, slots=True)
class _Member:
    """A cpio member: its name (raw bytes) and where its data lies in the payload."""

    name: bytes
    start: int
    size: int

    @property
    def label(self) -> str:
        return _label(self.name)


def _label(name: bytes) -> str:
    """An archive name as text that is safe to print (the file may be anybody's)."""
    return printable(name.decode("utf-8", "replace"))


class _Findings:
    """Problems or warnings: the first few in full, then only how many more.

    A damaged or hostile file can hold millions of bad records; listing each would cost far
    more memory than the file and tell nobody anything more.
    """

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.listed) < _FINDINGS_LISTED:
            self.listed.append(text)
        else:
            self.more += 1

    def __iter__(self) -> Iterator[str]:
        yield from self.listed
        if self.more:
            yield f"... and {self.more:,} more of the same kinds."


def _read_archive(data: bytes, pid: int, vid: int, crc_problem: str) -> DfuImage:
    payload = memoryview(data)[:-SUFFIX_LEN]
    members, end = _read_members(payload)
    warnings = _Findings()
    problems = _Findings()
    if crc_problem:
        problems.add(crc_problem)

    if not members or members[0].name != DFUINFO_NAME.encode():
        first = members[0].label if members else TRAILER_NAME
        raise DfuFormatError(
            f"The archive starts with '{first}' instead of {DFUINFO_NAME}: "
            "this is not an ESP-IDF dfu.bin."
        )
    index = members[0]
    if index.size % DFUINFO.size:
        raise DfuFormatError(
            f"{DFUINFO_NAME} is {index.size} bytes, not a whole number of "
            f"{DFUINFO.size}-byte records: the archive is damaged."
        )
    # Where the records of each member's name are, last first for pop(); only offsets are
    # kept, so that a file of nothing but records costs a fraction of its size.
    wanted = {member.name[:64] for member in members[1:]}
    records: dict[bytes, list[int]] = {}
    spare: list[int] = []
    for offset in range(index.start, index.start + index.size, DFUINFO.size):
        name = _record_name(payload, offset)
        if name in wanted:
            records.setdefault(name, []).append(offset)
        else:
            spare.append(offset)
    for offsets in records.values():
        offsets.reverse()

    flash_size: int | None = None
    entries: list[FlashEntry] = []
    seen: set[bytes] = set()
    for member in members[1:]:
        if member.name in seen:
            raise DfuFormatError(
                f"The archive holds two files named '{member.label}'. The ESP ROM looks up "
                f"where each file goes, and its md5, in {DFUINFO_NAME} by the file's name "
                "alone, so it cannot tell which record belongs to which file. (ESP-IDF's "
                "mkdfu.py writes such a dfu.bin when two images of a build have the same "
                "file name.)",
                _DISTINCT_NAMES_HINT,
            )
        seen.add(member.name)
        if len(member.name) > 64:
            warnings.add(
                f"The name '{member.label}' is longer than 64 bytes and is cut in {DFUINFO_NAME}."
            )
        candidates = records.get(member.name[:64])
        if not candidates:
            problems.add(f"'{member.label}' has no record in {DFUINFO_NAME}.")
            continue
        address, flags, _name, md5 = DFUINFO.unpack_from(payload, candidates.pop())
        content = payload[member.start : member.start + member.size]
        md5_ok = hashlib.md5(content).digest() == md5
        if not md5_ok and not flags & FLAG_IGNORE_MD5:
            problems.add(
                f"The md5 of '{member.label}' does not match its record in {DFUINFO_NAME}: "
                "the file's content was changed or the writer is broken."
            )
        if member.name == FLASH_PARAMS_NAME.encode():
            if member.size != FLASH_PARAMS.size:
                raise DfuFormatError(
                    f"{FLASH_PARAMS_NAME} is {member.size} bytes instead of "
                    f"{FLASH_PARAMS.size}: the archive is damaged."
                )
            flash_size = FLASH_PARAMS.unpack_from(payload, member.start)[3]
            continue
        entries.append(
            FlashEntry(member.label, address, member.size, flags, md5, md5_ok, member.start)
        )

    spare.extend(offset for left in records.values() for offset in left)
    for offset in sorted(spare):
        label = _label(_record_name(payload, offset))
        problems.add(f"{DFUINFO_NAME} has a record for '{label}' but the file is missing.")

    if any(payload[end:]):
        raise DfuFormatError(
            f"There are {len(payload) - end:,} bytes after the archive's end that are not "
            "zero padding: the file was changed or two files were joined."
        )
    if len(payload) % CPIO_BLOCK:
        warnings.add(
            f"The archive is {len(payload):,} bytes, not padded to a multiple of {CPIO_BLOCK} "
            "as ESP-IDF pads it."
        )
    for warning in _layout_warnings(entries, flash_size, pid, vid):
        warnings.add(warning)
    return DfuImage(
        raw=data,
        pid=pid,
        vid=vid,
        crc_ok=not crc_problem,
        flash_size=flash_size,
        entries=tuple(entries),
        warnings=tuple(warnings),
        problems=tuple(problems),
    )


def _record_name(payload: memoryview, offset: int) -> bytes:
    """The name in the dfuinfo0.dat record at ``offset``, up to its first NUL."""
    name: bytes = DFUINFO.unpack_from(payload, offset)[2]
    return name.split(b"\0", 1)[0]


def _read_members(payload: memoryview) -> tuple[list[_Member], int]:
    """Walk the cpio headers up to the trailer; return the members and the archive's end."""
    members: list[_Member] = []
    offset = 0
    total = len(payload)
    while True:
        header = bytes(payload[offset : offset + CPIO_HEADER_LEN])
        sizes = cpio_sizes(header)
        if sizes is None:
            raise _bad_header(offset, total, header)
        size, name_size = sizes
        if name_size > _NAME_LIMIT:
            raise DfuFormatError(
                f"The archive entry at byte {offset:,} declares a name of {name_size:,} bytes, "
                "longer than any file name: the archive is damaged."
            )
        name_end = offset + CPIO_HEADER_LEN + name_size
        data_start = _align4(name_end)
        data_end = data_start + size
        if data_end > total:
            raise DfuFormatError(
                f"The archive is cut short: the entry at byte {offset:,} declares "
                f"{size:,} bytes of data but the file ends first.",
                _REBUILD_HINT,
            )
        raw_name = bytes(payload[offset + CPIO_HEADER_LEN : name_end])
        if not raw_name.endswith(b"\0"):
            raise DfuFormatError(
                f"The archive entry at byte {offset:,} has a malformed name: it is damaged."
            )
        name = raw_name[:-1]
        offset = _align4(data_end)
        if name == TRAILER_NAME.encode():
            return members, offset
        members.append(_Member(name, data_start, size))


def cpio_sizes(header: bytes) -> tuple[int, int] | None:
    """(data size, name size with its NUL) of a 110-byte cpio "newc" header, or None."""
    if not _CPIO_HEADER.fullmatch(header):
        return None
    return int(header[54:62], 16), int(header[94:102], 16)


def _bad_header(offset: int, total: int, header: bytes) -> DfuFormatError:
    if offset == 0 and header.startswith(b"DfuSe"):
        return DfuFormatError(
            "This is a DfuSe file (for STM32 devices), not an ESP32 dfu.bin.",
            "Flash build/dfu.bin, which `idf.py dfu` makes.",
        )
    if offset == 0:
        return DfuFormatError(
            "The file has a DFU suffix, but its content is not ESP-IDF's cpio archive: it is "
            "a DFU file for some other device, not an ESP32 dfu.bin.",
            "Flash build/dfu.bin, which `idf.py dfu` makes.",
        )
    if offset + CPIO_HEADER_LEN > total:
        return DfuFormatError(
            f"The archive is cut short at byte {offset:,}: its end marker ({TRAILER_NAME}) "
            "is missing.",
            _REBUILD_HINT,
        )
    return DfuFormatError(f"The archive entry at byte {offset:,} is damaged (bad cpio header).")


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _layout_warnings(
    entries: list[FlashEntry], flash_size: int | None, pid: int, vid: int
) -> list[str]:
    """What is legal in the format but likely wrong on the board."""
    warnings: list[str] = []
    if chip_by_pid(pid) is None and pid != ANY_PID:
        warnings.append(
            f"Unknown product ID 0x{pid:04x} in the suffix: the file names no chip with USB "
            f"DFU ({dfu_chip_names()})."
        )
    if vid not in (ESPRESSIF_VID, 0xFFFF):
        warnings.append(
            f"The vendor ID in the suffix is 0x{vid:04x}, not Espressif's 0x{ESPRESSIF_VID:04x}."
        )
    if flash_size is None:
        warnings.append(
            f"Legacy layout without {FLASH_PARAMS_NAME}, as ESP-IDF up to v4.3.3, v4.4.0 "
            "and v4.4.1 write it: the ROM keeps its default flash settings."
        )
    if not entries:
        warnings.append("The file holds no flash entries: flashing it writes nothing.")
    ordered = sorted(entries, key=lambda e: (e.address, e.end))
    for before, after in itertools.pairwise(ordered):
        if after.address < before.end:
            warnings.append(
                f"'{after.name}' at 0x{after.address:x} overlaps '{before.name}' "
                f"(0x{before.address:x}-0x{before.end:x})."
            )
    overrun = overrun_warning(entries, flash_size)
    if overrun:
        warnings.append(overrun)
    names = {entry.name for entry in entries}
    for entry in entries:
        if f"{entry.name}.1" in names and entry.size % SECTOR_SIZE:
            warnings.append(
                f"'{entry.name}' is split into parts of {entry.size:,} bytes, not a multiple "
                f"of {SECTOR_SIZE}: the ROM erases whole sectors, so parts erase each other."
            )
    return warnings


def flash_overrun(ends: Iterable[tuple[str, int]], flash_size: int | None) -> str:
    """What lies beyond ``flash_size`` of the (name, end address) ``ends``, with the flash it
    takes: "'app.bin' ends at 0x8f0000, beyond the 2 MB flash (it takes 16MB)"; empty when
    nothing does."""
    beyond = [(name, end) for name, end in ends if flash_size is not None and end > flash_size]
    if not beyond:
        return ""
    last = max(end for _, end in beyond)
    if len(beyond) == 1:
        what, they = f"'{beyond[0][0]}' ends at 0x{last:x}", "it takes"
    else:
        what, they = f"{len(beyond)} entries reach up to 0x{last:x}", "they take"
    takes = fitting_flash_size(last) or "more than any ESP flash holds"
    return f"{what}, beyond the {format_size(flash_size or 0)} flash ({they} {takes})"


def overrun_warning(entries: Iterable[FlashEntry], flash_size: int | None) -> str:
    """What a dfu.bin's reader is told of entries beyond the flash size it declares (such files
    exist: ESP-IDF writes them), with both sizes; empty when there are none."""
    overrun = flash_overrun(((entry.name, entry.end) for entry in entries), flash_size)
    if not overrun:
        return ""
    return (
        f"{overrun}; the file declares that flash in {FLASH_PARAMS_NAME}, and what the ESP ROM "
        "does with entries beyond it is not published: flash it only to a board whose flash is "
        "big enough."
    )


def fitting_flash_size(end: int) -> str | None:
    """The smallest flash size ESP-IDF knows that holds ``end`` bytes ("4MB"), if any."""
    return next((name for name, size in FLASH_SIZES.items() if size >= end), None)


def check_writable(files: Iterable[FlashFile], flash_size: int | None) -> None:
    """Refuse to write a dfu.bin that flashes nothing, or whose images pass ``flash_size``:
    ESP-IDF's writer makes both without a word, and neither is what anybody meant."""
    files = list(files)
    if not any(file.data for file in files):
        raise InputError(
            "Nothing to write: every image is empty, and a dfu.bin without flash entries "
            "writes nothing to the board.",
            "Give the images the board should get (empty ones are left out, as ESP-IDF "
            "leaves them out).",
        )
    overrun = flash_overrun(((f.name, f.address + len(f.data)) for f in files), flash_size)
    if overrun:
        raise InputError(
            f"{overrun}: espdfu does not write a dfu.bin the flash cannot hold.",
            "If the board's flash is bigger, say so with --flash-size (a build's own is "
            "CONFIG_ESPTOOLPY_FLASHSIZE, in `idf.py menuconfig`); else put the images lower.",
        )


# --- writing ----------------------------------------------------------------------------------


def pack(
    files: Iterable[FlashFile],
    *,
    pid: int,
    flash_size: int | None = DEFAULT_FLASH_SIZE,
    part_size: int = DEFAULT_PART_SIZE,
) -> bytes:
    """Pack ``files`` into the dfu.bin ESP-IDF's ``mkdfu.py write`` makes from the same inputs.

    Files are taken in address order, and each is cut into ``part_size`` parts (``app.bin``,
    ``app.bin.1``, ...). Two files for one address are refused: mkdfu.py keeps the last one
    without a word (:func:`espdfu.files.idfbuild.merge_images` resolves its ``--json`` override with
    a warning). A ``flash_size`` of None writes the legacy layout without flash_params.dat.
    """
    if not 0 <= pid <= 0xFFFF:
        raise InputError(f"The product ID 0x{pid:x} does not fit in 16 bits.")
    if part_size <= 0:
        raise InputError(f"The part size must be a positive number of bytes, not {part_size}.")
    if flash_size is not None and flash_size not in FLASH_SIZES.values():
        raise InputError(
            f"A flash size of {format_size(flash_size)} is not one ESP-IDF knows: "
            f"use one of {', '.join(FLASH_SIZES)}."
        )
    records: list[bytes] = []
    members: list[bytes | memoryview] = []
    if flash_size is not None:
        params = FLASH_PARAMS.pack(0, 0, 0, flash_size, 65536, SECTOR_SIZE, 256, 0xFFFF)
        _add_member(members, records, FLASH_PARAMS_NAME, params, 0, FLASH_PARAMS_FLAGS)
    for name, address, data in _parts(files, part_size):
        _add_member(members, records, name, data, address)
    index: list[bytes | memoryview] = []
    _add_member(index, [], DFUINFO_NAME, b"".join(records))
    _add_member(members, [], TRAILER_NAME, b"")
    chunks = index + members
    archive_size = sum(len(chunk) for chunk in chunks)
    chunks.append(bytes(-archive_size % CPIO_BLOCK))
    chunks.append(
        SUFFIX.pack(BCD_DEVICE, pid, ESPRESSIF_VID, BCD_DFU, SUFFIX_SIGNATURE, SUFFIX_LEN)
    )
    crc = 0
    for chunk in chunks:
        crc = zlib.crc32(chunk, crc)
    chunks.append(CRC.pack(0xFFFFFFFF ^ crc))
    return b"".join(chunks)


def _parts(files: Iterable[FlashFile], part_size: int) -> list[tuple[str, int, memoryview]]:
    """(name, address, data) of every archive member, in address order, names checked.

    The archive keeps base names only, and dfuinfo0.dat their first 64 bytes: two members
    whose names agree there (``a/app.bin`` and ``b/app.bin``) could not be told apart by the
    board, so they are refused, as are the archive's own names.
    """
    by_address: dict[int, FlashFile] = {}
    for file in files:
        earlier = by_address.setdefault(file.address, file)
        if earlier is not file:
            raise InputError(
                f"'{earlier.name}' and '{file.name}' are both for 0x{file.address:x}: only one "
                "image can be written at an address.",
                "Give each image its own address, or leave out the one you did not mean.",
            )
    taken = {
        name.encode(): f"the archive's own {name}"
        for name in (DFUINFO_NAME, FLASH_PARAMS_NAME, TRAILER_NAME)
    }
    parts = []
    for address in sorted(by_address):
        file = by_address[address]
        if not 0 <= address <= address + len(file.data) <= _ADDRESS_LIMIT:
            raise InputError(f"'{file.name}' at {address:#x} does not fit the 32-bit flash space.")
        data = memoryview(file.data)
        for number, start in enumerate(range(0, len(data), part_size)):
            name = f"{file.name}.{number}" if number else file.name
            key = name.encode("utf-8", "surrogateescape")[:64]
            where = f"'{name}' at 0x{address + start:x}"
            if key in taken:
                raise InputError(
                    f"{where} would have the same name in the dfu.bin as {taken[key]} (the "
                    f"archive keeps base names only, cut at 64 bytes in {DFUINFO_NAME}). The "
                    f"ESP ROM looks up where each file goes in {DFUINFO_NAME} by its name "
                    "alone: the board could not tell them apart.",
                    _DISTINCT_NAMES_HINT,
                )
            taken[key] = where
            parts.append((name, address + start, data[start : start + part_size]))
    return parts


def _add_member(
    members: list[bytes | memoryview],
    records: list[bytes],
    name: str,
    data: bytes | memoryview,
    address: int = 0,
    flags: int = 0,
) -> None:
    """Append a cpio member (and its dfuinfo0.dat record) the way ESP-IDF's writer lays it out."""
    raw_name = name.encode("utf-8", "surrogateescape")
    trailer = name == TRAILER_NAME
    fields = (
        0,  # ino
        0 if trailer else _REGULAR_FILE_MODE,
        0,  # uid
        0,  # gid
        1 if trailer else 0,  # nlink
        0,  # mtime
        len(data),
        0,  # devmajor
        0,  # devminor
        0,  # rdevmajor
        0,  # rdevminor
        len(raw_name) + 1,
        0,  # check
    )
    header = CPIO_MAGIC + b"".join(b"%08x" % value for value in fields) + raw_name + b"\0"
    members.append(header + bytes(-len(header) % 4))
    members.append(data)
    members.append(bytes(-len(data) % 4))
    if not trailer and name != DFUINFO_NAME:
        records.append(DFUINFO.pack(address, flags, raw_name, hashlib.md5(data).digest()))


def save(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write a dfu.bin atomically: readers see the old file or the whole new one."""
    return atomic_write(path, data)
