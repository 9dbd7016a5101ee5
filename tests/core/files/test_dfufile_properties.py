"""Properties of the dfu.bin reader and writer over many generated inputs.

The reader must give back what the writer was given, reject every damaged file, and for any
bytes at all raise nothing but the format error.
"""

from __future__ import annotations

import hashlib
import re
import struct
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espdfu.chips import CHIPS
from espdfu.errors import DfuFormatError, InputError
from espdfu.files import dfufile
from espdfu.files.dfufile import (
    CPIO_HEADER_LEN,
    CPIO_MAGIC,
    FLASH_PARAMS_NAME,
    FLASH_SIZES,
    DfuImage,
    FlashFile,
)
from tests.helpers.archive import archive, fix_crc, record, simple_dfu, with_suffix

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=80) | (
    st.sampled_from(["app.bin", "flash_params.dat", "TRAILER!!!", "n" * 64 + "x"])
)
ARCHIVE_NAMES = {b"dfuinfo0.dat", b"flash_params.dat", b"TRAILER!!!"}
flash_file_sets = st.dictionaries(
    keys=st.integers(min_value=0, max_value=0x00FF_FFFF),
    values=st.tuples(names, st.binary(max_size=3000)),
    max_size=6,
)
pids = st.sampled_from([chip.dfu_pid for chip in CHIPS]) | st.integers(0, 0xFFFF)
flash_sizes = st.sampled_from([None, *FLASH_SIZES.values()])


def _parse_or_format_error(data: bytes) -> DfuImage | None:
    """Parse; the format error is an accepted outcome, any other exception fails the test."""
    try:
        return dfufile.parse(data)
    except DfuFormatError as error:
        assert error.message  # always worded
        return None


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    files=flash_file_sets,
    pid=pids,
    flash_size=flash_sizes,
    part_size=st.integers(min_value=1, max_value=5000),
)
def test_write_then_read_returns_the_same_files(
    files: dict[int, tuple[str, bytes]], pid: int, flash_size: int | None, part_size: int
) -> None:
    inputs = [FlashFile(address, name, data) for address, (name, data) in files.items()]
    expected = []
    for address in sorted(files):
        name, data = files[address]
        for number, start in enumerate(range(0, len(data), part_size)):
            part = data[start : start + part_size]
            part_name = f"{name}.{number}" if number else name
            expected.append((part_name, address + start, len(part), hashlib.md5(part).digest()))
    stored = [name.encode()[:64] for name, *_ in expected]
    if len(set(stored)) < len(stored) or set(stored) & ARCHIVE_NAMES:
        with pytest.raises(InputError, match="could not tell them apart"):
            dfufile.pack(inputs, pid=pid, flash_size=flash_size, part_size=part_size)
        return

    data = dfufile.pack(inputs, pid=pid, flash_size=flash_size, part_size=part_size)
    image = dfufile.parse(data)
    assert [(e.name, e.address, e.size, e.md5) for e in image.entries] == expected
    assert all(e.md5_ok for e in image.entries)
    assert (image.pid, image.flash_size, image.crc_ok) == (pid, flash_size, True)
    assert len(image.payload) % 10240 == 0


def _small_valid_file() -> bytes:
    return dfufile.pack(
        [
            FlashFile(0x1000, "boot.bin", b"\x01" * 300),
            FlashFile(0x10000, "app.bin", b"\xaa" * 900),
        ],
        pid=2,
        flash_size=4 * 1024 * 1024,
    )


def test_changing_any_single_byte_is_rejected() -> None:
    """Every position, with two different changes: the CRC covers every byte of the file."""
    data = _small_valid_file()
    for position in range(len(data)):
        for flip in (0x01, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= flip
            assert _parse_or_format_error(bytes(damaged)) is None, (position, flip)


@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_changing_one_byte_by_any_value_is_rejected(position: int, flip: int) -> None:
    data = bytearray(_small_valid_file())
    data[position % len(data)] ^= flip
    assert _parse_or_format_error(bytes(data)) is None


def test_every_truncation_is_rejected() -> None:
    data = simple_dfu([(0, b"a.bin", b"A" * 500), (4096, b"b.bin", b"B" * 40)])
    for length in range(len(data)):
        assert _parse_or_format_error(data[:length]) is None, length


@given(st.binary(max_size=4096))
def test_random_bytes_give_only_the_format_error(data: bytes) -> None:
    _parse_or_format_error(data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_with_a_repaired_crc_give_only_the_format_error(data: st.DataObject) -> None:
    """Past the CRC, the archive parser itself must withstand garbage."""
    original = bytearray(
        simple_dfu([(0, b"a.bin", b"A" * 100), (0x1000, b"flash_params.dat", bytes(32))])
    )
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        position = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        value = data.draw(st.integers(0, 255))
        if action == "set":
            original[position] = value
        elif action == "insert":
            original.insert(position, value)
        else:
            del original[position]
    _parse_or_format_error(fix_crc(bytes(original)))


@given(
    header_fields=st.lists(st.integers(min_value=0, max_value=0xFFFFFFFF), min_size=13, max_size=13)
)
def test_any_declared_sizes_give_only_the_format_error(header_fields: list[int]) -> None:
    """Huge or absurd lengths in a header are checked against the bytes really present."""
    header = b"070701" + b"".join(b"%08x" % value for value in header_fields)
    payload = header + b"dfuinfo0.dat\0" + bytes(10240)
    _parse_or_format_error(with_suffix(payload))


# --- hostile archives: splices, absurd declared sizes, memory ---------------------------------

FIELD_SIZE = 6  # in a cpio "newc" header, after the magic: 13 fields of 8 hex digits
FIELD_NAME_SIZE = 11
SIZES = st.sampled_from([0, 1, 109, 110, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF])
MB = 1024 * 1024


def _other_valid_file() -> bytes:
    return dfufile.pack(
        [FlashFile(0x8000, "partition-table.bin", b"\x55" * 3072)], pid=9, flash_size=None
    )


def _peak_bytes(function: Callable[[], object]) -> int:
    """The most memory Python held at once while ``function`` ran (tracemalloc's count)."""
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _memory_bound(data: bytes) -> int:
    """Far above what reading ``data`` needs, far below what a declared size would cost."""
    return 10 * len(data) + 4 * MB


def _any_outcome(data: bytes) -> None:
    """Both modes of the reader: an image or the format error, and nothing unprintable."""
    for strict in (True, False):
        try:
            image = dfufile.parse(data, strict=strict)
        except DfuFormatError as error:
            assert error.message and error.message.isprintable()
            continue
        texts = [*image.problems, *image.warnings, *(entry.name for entry in image.entries)]
        assert all(text.isprintable() for text in texts)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(first=st.integers(min_value=0), second=st.integers(min_value=0), repair=st.booleans())
def test_spliced_files_give_only_the_format_error(first: int, second: int, repair: bool) -> None:
    """The head of one dfu.bin joined to the tail of another, as a broken copy might leave."""
    a, b = _small_valid_file(), _other_valid_file()
    spliced = a[: first % len(a)] + b[second % len(b) :]
    _any_outcome(fix_crc(spliced) if repair and len(spliced) >= 4 else spliced)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    member=st.integers(min_value=0),
    field_number=st.sampled_from([FIELD_SIZE, FIELD_NAME_SIZE]) | st.integers(0, 12),
    value=SIZES | st.integers(min_value=0, max_value=0xFFFF_FFFF),
)
def test_any_declared_size_in_any_header_costs_no_memory(
    member: int, field_number: int, value: int
) -> None:
    """A header that declares 4 GB of data or name is refused without allocating it."""
    data = bytearray(_small_valid_file())
    headers = [found.start() for found in re.finditer(CPIO_MAGIC, data)]
    at = headers[member % len(headers)] + 6 + 8 * field_number
    data[at : at + 8] = b"%08x" % value
    damaged = fix_crc(bytes(data))
    assert _peak_bytes(lambda: _any_outcome(damaged)) < _memory_bound(damaged)


@given(params=st.lists(SIZES | st.integers(0, 0xFFFF_FFFF), min_size=8, max_size=8))
def test_any_flash_params_are_read_as_declared(params: list[int]) -> None:
    """flash_params.dat's md5 is not checked (ESP-IDF's flags say so): any values are read."""
    data = bytearray(_small_valid_file())
    name = FLASH_PARAMS_NAME.encode() + b"\0"
    start = data.rindex(name) + len(name)  # the member's, after dfuinfo0.dat's record
    start += -(start % 4) % 4  # the data starts 4-aligned, as the name's end is padded
    data[start : start + 32] = struct.pack("<8I", *params)
    image = dfufile.parse(fix_crc(bytes(data)), strict=False)
    assert image.flash_size == params[3]
    assert image.valid  # a strange flash size draws warnings, not problems


def _records_only(size: int) -> bytes:
    """dfuinfo0.dat full of records naming files the archive does not hold."""
    count = size // 88
    return with_suffix(archive([record(n, b"n%d" % n, b"") for n in range(count)], []))


def _members_only(size: int) -> bytes:
    """Thousands of empty members that have no record."""
    return with_suffix(archive([], [(b"m%d" % n, b"") for n in range(size // 120)]))


def _matched(size: int) -> bytes:
    """Thousands of one-byte members, each with its record."""
    members = [(b"m%d" % n, b"x") for n in range(size // 210)]
    records = [record(n, name, content) for n, (name, content) in enumerate(members)]
    return with_suffix(archive(records, members))


def _long_names(size: int) -> bytes:
    """Members named with 4,000 bytes of invalid UTF-8 and control characters."""
    count = size // 4200
    return with_suffix(archive([], [(b"\x80\x1b" * 2000 + b"%d" % n, b"") for n in range(count)]))


def _huge_declared_size(size: int) -> bytes:
    """A valid file whose app member declares 4 GB of data."""
    data = simple_dfu([(0x10000, b"app.bin", b"\xaa" * size)])
    at = data.index(b"app.bin\0") - CPIO_HEADER_LEN + 6 + 8 * FIELD_SIZE
    return fix_crc(data[:at] + b"ffffffff" + data[at + 8 :])


@pytest.mark.parametrize(
    "make", [_records_only, _members_only, _matched, _long_names, _huge_declared_size]
)
def test_memory_stays_bounded_for_hostile_archives(make: Callable[[int], bytes]) -> None:
    data = make(MB)
    assert _peak_bytes(lambda: _any_outcome(data)) < _memory_bound(data)


def test_millions_of_problems_are_counted_not_listed() -> None:
    image = dfufile.parse(_records_only(2 * MB), strict=False)
    assert len(image.problems) == 21
    assert image.problems[-1] == f"... and {2 * MB // 88 - 20:,} more of the same kinds."


@settings(max_examples=25)
@given(st.binary(max_size=2048))
def test_load_gives_only_the_format_error(content: bytes) -> None:
    """The same through a file on disk (the path is put in front of the message)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dfu.bin"
        path.write_bytes(content)
        try:
            dfufile.load(path)
        except DfuFormatError as error:
            assert error.message.startswith(f"{path}: ")
