"""Properties of the dfu.bin reader and writer over many generated inputs.

The reader must give back what the writer was given, reject every damaged file, and for any
bytes at all raise nothing but the format error.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espdfu import dfufile
from espdfu.chips import CHIPS
from espdfu.dfufile import FLASH_SIZES, DfuImage, FlashFile
from espdfu.errors import DfuFormatError, InputError
from tests.core.archive import fix_crc, simple_dfu, with_suffix

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
            dfufile.build(inputs, pid=pid, flash_size=flash_size, part_size=part_size)
        return

    data = dfufile.build(inputs, pid=pid, flash_size=flash_size, part_size=part_size)
    image = dfufile.parse(data)
    assert [(e.name, e.address, e.size, e.md5) for e in image.entries] == expected
    assert all(e.md5_ok for e in image.entries)
    assert (image.pid, image.flash_size, image.crc_ok) == (pid, flash_size, True)
    assert len(image.payload) % 10240 == 0


def _small_valid_file() -> bytes:
    return dfufile.build(
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
