"""The streaming archive receiver on its own: any block boundaries, bounded memory, each error."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from espdfu.files.dfufile import FLAG_NOERASE, FLAG_PARAM
from espdfu.sim.receiver import Receiver
from espdfu.usb.protocol import Status
from tests.helpers.archive import archive, cpio_member, record
from tests.helpers.simhost import MB, expected_flash, image, payload_of

DFU_BIN, FILES = image()
PAYLOAD = payload_of(DFU_BIN)
EXPECTED = expected_flash(FILES)


def feed(
    payload: bytes, cuts: list[int], flash: bytearray | None = None
) -> tuple[Receiver, Status]:
    receiver = Receiver(bytearray(4 * MB) if flash is None else flash)
    status = Status.OK
    edges = sorted({0, len(payload), *(c % (len(payload) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        status = receiver.feed(payload[start:end]).status
    return receiver, status


@given(st.lists(st.integers(min_value=0), max_size=60))
def test_any_block_boundaries_give_the_same_flash(cuts: list[int]) -> None:
    flash = bytearray(4 * MB)
    receiver, status = feed(PAYLOAD, cuts, flash)
    assert status is Status.OK and receiver.complete
    assert flash == EXPECTED


def test_one_byte_at_a_time() -> None:
    receiver, status = feed(PAYLOAD[:30_000], list(range(30_000)))
    assert status is Status.OK
    assert [f.name for f in receiver.files] == ["bootloader.bin", "partition-table.bin"]


def test_each_block_reports_the_regions_it_erased() -> None:
    receiver = Receiver(bytearray(4 * MB))
    erased = [
        region
        for offset in range(0, len(PAYLOAD), 64)
        for region in receiver.feed(PAYLOAD[offset : offset + 64]).erased
    ]
    assert erased == [
        (0x1000, 0x6000),  # bootloader.bin, 20,000 bytes
        (0x8000, 0x9000),  # partition-table.bin
        (0x10000, 0x20000),  # app.bin, in 64 KiB parts
        (0x20000, 0x30000),
        (0x30000, 0x35000),
    ]


def test_padding_after_the_trailer_is_ignored() -> None:
    receiver, status = feed(PAYLOAD + b"\xaa" * 500, [len(PAYLOAD)])
    assert status is Status.OK and receiver.complete


def test_the_first_member_must_be_dfuinfo() -> None:
    body = cpio_member(b"app.bin", b"x") + cpio_member(b"TRAILER!!!", b"", trailer=True)
    assert feed(body, [])[1] is Status.FILE
    assert feed(cpio_member(b"TRAILER!!!", b"", trailer=True), [])[1] is Status.FILE


def test_a_member_without_a_record_is_err_file() -> None:
    payload = archive([record(0, b"a.bin", b"a")], [(b"a.bin", b"a"), (b"b.bin", b"b")])
    receiver, status = feed(payload, [])
    assert status is Status.FILE
    assert [f.name for f in receiver.files] == ["a.bin"]


def test_a_damaged_header_or_name_is_err_file() -> None:
    good = archive([record(0, b"a.bin", b"a")], [(b"a.bin", b"a")])
    assert feed(good.replace(b"070701", b"070707", 2), [])[1] is Status.FILE
    unterminated = good.replace(b"a.bin\0", b"a.binX")
    assert feed(unterminated, [])[1] is Status.FILE


def test_errors_are_sticky() -> None:
    receiver = Receiver(bytearray(4 * MB))
    assert receiver.feed(b"not an archive at all" * 10).status is Status.FILE
    assert receiver.feed(PAYLOAD[:64]).status is Status.FILE


def test_declared_sizes_are_not_trusted() -> None:
    """A header declaring 4 GiB of dfuinfo0.dat or a 4 GiB name is refused, not allocated."""
    huge_index = b"070701" + b"0" * 48 + b"ffffffff" + b"0" * 32 + b"0000000d" + b"0" * 8
    assert feed(huge_index + b"dfuinfo0.dat\0", [])[1] is Status.FILE
    huge_name = b"070701" + b"0" * 48 + b"00000000" + b"0" * 32 + b"ffffffff" + b"0" * 8
    assert feed(huge_name + bytes(1000), [])[1] is Status.FILE


def test_dfuinfo_must_hold_whole_records() -> None:
    assert feed(archive([b"x" * 87], []), [])[1] is Status.FILE


def test_param_entries_are_not_written_and_flash_params_set_the_flash_size() -> None:
    params = struct.pack("<8I", 0, 0, 0, 1 * MB, 65536, 4096, 256, 0xFFFF)
    flags = FLAG_PARAM | FLAG_NOERASE
    payload = archive(
        [record(0, b"flash_params.dat", params, flags), record(1 * MB, b"b.bin", b"b")],
        [(b"flash_params.dat", params), (b"b.bin", b"b")],
    )
    flash = bytearray(4 * MB)
    receiver, status = feed(payload, [], flash)
    assert status is Status.ADDRESS  # 1 MiB is now the end of the flash
    assert flash[:32] == bytes(32) and receiver.files == []


def test_noerase_writes_without_erasing() -> None:
    payload = archive([record(0x2000, b"a.bin", b"abcd", FLAG_NOERASE)], [(b"a.bin", b"abcd")])
    flash = bytearray(4 * MB)
    receiver, status = feed(payload, [], flash)
    assert status is Status.OK and receiver.complete
    assert flash[0x2000:0x2008] == b"abcd\0\0\0\0"


def test_an_empty_file_writes_and_erases_nothing() -> None:
    payload = archive([record(0x2000, b"empty.bin", b"")], [(b"empty.bin", b"")])
    flash = bytearray(4 * MB)
    receiver, status = feed(payload, [], flash)
    assert status is Status.OK and receiver.files[0].md5_ok
    assert not any(flash)


def test_a_physical_flash_smaller_than_4_mib_bounds_the_archive() -> None:
    payload = archive([record(1 * MB, b"a.bin", b"a")], [(b"a.bin", b"a")])
    assert feed(payload, [], bytearray(1 * MB))[1] is Status.ADDRESS
