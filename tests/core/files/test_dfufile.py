"""The dfu.bin reader's verdicts and the writer's rules, one case at a time."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from espdfu.errors import DfuFormatError, EspdfuError, InputError
from espdfu.files import dfufile
from espdfu.files.dfufile import FLASH_SIZES, DfuImage, FlashFile
from tests.helpers.archive import archive, fix_crc, record, simple_dfu, with_suffix

MB = 1024 * 1024
APP = bytes(range(256)) * 16  # 4 KiB


def _valid() -> bytes:
    return dfufile.pack([FlashFile(0x10000, "app.bin", APP)], pid=9, flash_size=4 * MB)


def _format_error(data: bytes) -> str:
    with pytest.raises(DfuFormatError) as caught:
        dfufile.parse(data)
    return str(caught.value)


# --- what the reader returns ------------------------------------------------------------------


def test_a_written_file_reads_back_with_everything_stated() -> None:
    data = _valid()
    image = dfufile.parse(data)
    assert image.valid and image.crc_ok
    assert image.chip_name == "esp32s3" and image.chip is not None
    assert image.flash_size == 4 * MB
    assert [(e.name, e.address, e.size, e.md5_ok) for e in image.entries] == [
        ("app.bin", 0x10000, 4096, True)
    ]
    assert image.payload == data[:-16] and len(image.payload) % 10240 == 0
    assert image.warnings == () and image.problems == ()


def test_as_dict_has_the_documented_keys() -> None:
    summary = dfufile.parse(_valid()).as_dict()
    assert {"chip", "pid", "vid", "crc_ok", "flash_size", "entries", "warnings"} <= set(summary)
    assert summary["entries"][0] == {
        "name": "app.bin",
        "address": 0x10000,
        "size": 4096,
        "flags": 0,
        "md5": dfufile.parse(_valid()).entries[0].md5.hex(),
        "md5_ok": True,
    }


def test_pid_ffff_means_any_chip() -> None:
    image = dfufile.parse(dfufile.pack([FlashFile(0, "a", b"x")], pid=0xFFFF))
    assert image.chip_name == "any" and image.chip is None
    assert not any("product ID" in w for w in image.warnings)


# --- errors: each is the format error, worded for people --------------------------------------


def test_empty_file() -> None:
    assert "empty" in _format_error(b"")


def test_truncated_file_says_cut_short() -> None:
    """Cut anywhere after cpio's 6-byte magic "070701", the file starts like a dfu.bin."""
    data = _valid()
    for length in (len(data) - 1, len(data) // 2, 200, 6):
        assert "cut short" in _format_error(data[:length])


def test_a_file_cut_inside_the_cpio_magic_is_not_a_dfu_bin() -> None:
    """Five bytes of "070701" say nothing of what the file was meant to be."""
    assert "not a dfu.bin" in _format_error(_valid()[:5])


def test_a_file_cut_inside_the_archive_says_cut_short() -> None:
    assert "cut short" in _format_error(_valid()[:3000])


def test_bad_crc() -> None:
    data = bytearray(_valid())
    data[-1] ^= 0x55
    assert "CRC" in _format_error(bytes(data))


def test_missing_suffix_on_an_archive() -> None:
    assert "no DFU suffix" in _format_error(_valid()[:-16])


def test_raw_application_image_is_named_as_such() -> None:
    message = _format_error(b"\xe9\x03\x02\x20" + bytes(60_000))
    assert "raw ESP firmware image" in message and "idf.py dfu" in message


def test_elf_file_is_named_as_such() -> None:
    assert "ELF" in _format_error(b"\x7fELF" + bytes(5000))


def test_unrelated_bytes_are_not_a_dfu_file() -> None:
    assert "not a dfu.bin" in _format_error(b"hello world, this is text\n" * 50)


def test_a_one_byte_file_is_one_byte_long() -> None:
    assert "(1 byte)" in _format_error(b"x")


def test_suffix_on_something_that_is_not_cpio() -> None:
    assert "not ESP-IDF's cpio archive" in _format_error(with_suffix(bytes(10240)))


def test_dfuse_file_is_named_as_such() -> None:
    assert "DfuSe" in _format_error(with_suffix(b"DfuSe\x01" + bytes(500), pid=0xDF11))


def test_wrong_suffix_length() -> None:
    data = bytearray(_valid())
    data[-5] = 20
    assert "suffix declares 20 bytes" in _format_error(fix_crc(bytes(data)))


def test_record_without_its_file() -> None:
    records = [record(0x1000, b"a.bin", b"A"), record(0x2000, b"b.bin", b"B")]
    data = with_suffix(archive(records, [(b"a.bin", b"A")]))
    assert "record for 'b.bin' but the file is missing" in _format_error(data)


def test_file_without_a_record() -> None:
    records = [record(0x1000, b"a.bin", b"A")]
    data = with_suffix(archive(records, [(b"a.bin", b"A"), (b"b.bin", b"B")]))
    assert "'b.bin' has no record" in _format_error(data)


def test_md5_mismatch_with_a_correct_crc() -> None:
    records = [record(0x1000, b"a.bin", b"A", md5=bytes(16))]
    data = with_suffix(archive(records, [(b"a.bin", b"A")]))
    assert "md5 of 'a.bin' does not match" in _format_error(data)
    image = dfufile.parse(data, strict=False)
    assert not image.valid and image.crc_ok
    assert image.entries[0].md5_ok is False


def test_ignore_md5_flag_is_honoured() -> None:
    records = [record(0x1000, b"a.bin", b"A", flags=1 << 4, md5=bytes(16))]
    image = dfufile.parse(with_suffix(archive(records, [(b"a.bin", b"A")])))
    assert image.valid and image.entries[0].md5_ok is False


def test_dfuinfo_must_come_first() -> None:
    payload = archive([], [])
    swapped = payload.replace(b"dfuinfo0.dat", b"something!!!", 1)
    assert "instead of dfuinfo0.dat" in _format_error(with_suffix(swapped))


def test_dfuinfo_size_must_be_whole_records() -> None:
    data = with_suffix(archive([record(0, b"a", b"A")[:-1]], [(b"a", b"A")]))
    assert "whole number" in _format_error(data)


def test_flash_params_of_the_wrong_size() -> None:
    params = b"\0" * 31
    records = [record(0, b"flash_params.dat", params, flags=28)]
    data = with_suffix(archive(records, [(b"flash_params.dat", params)]))
    assert "flash_params.dat is 31 bytes" in _format_error(data)


def test_data_after_the_trailer_is_refused() -> None:
    payload = bytearray(archive([record(0, b"a", b"A")], [(b"a", b"A")]))
    payload[-1] = 0x01
    assert "not zero padding" in _format_error(with_suffix(bytes(payload)))


def test_same_name_twice_is_refused_with_why_and_how_to_rebuild() -> None:
    """mkdfu.py writes such files (two app.bin from different folders); the ROM cannot take
    them, so they stay refused, but the message must say why and what to do."""
    records = [record(0, b"app.bin", b"A"), record(4096, b"app.bin", b"B")]
    data = with_suffix(archive(records, [(b"app.bin", b"A"), (b"app.bin", b"B")]))
    with pytest.raises(DfuFormatError) as caught:
        dfufile.parse(data)
    assert caught.value.message.startswith("The archive holds two files named 'app.bin'.")
    assert "by the file's name alone" in caught.value.message
    assert "cannot tell which record belongs to which file" in caught.value.message
    assert caught.value.hint.startswith("Give the images distinct file names")
    assert "`idf.py dfu`" in caught.value.hint


def test_bad_crc_wins_over_the_damage_it_explains() -> None:
    data = bytearray(_valid())
    data[0:6] = b"XXXXXX"
    message = _format_error(bytes(data))
    assert "CRC" in message and "damaged" in message


def test_non_strict_lists_the_problem_instead_of_raising() -> None:
    data = bytearray(_valid())
    data[-1] ^= 1
    image = dfufile.parse(bytes(data), strict=False)
    assert not image.valid and not image.crc_ok
    assert "CRC" in image.problems[0]
    assert [e.name for e in image.entries] == ["app.bin"]


# --- warnings: legal but likely wrong ---------------------------------------------------------


def _warnings(image: DfuImage) -> str:
    return "\n".join(image.warnings)


def test_overlapping_entries_warn() -> None:
    data = simple_dfu([(0x1000, b"a", b"A" * 100), (0x1010, b"b", b"B")])
    assert "'b' at 0x1010 overlaps 'a'" in _warnings(dfufile.parse(data))


def test_entry_beyond_the_flash_size_warns() -> None:
    data = dfufile.pack([FlashFile(0x1FFFFF, "app.bin", b"xy")], pid=2, flash_size=2 * MB)
    assert "'app.bin' ends at 0x200001, beyond the 2 MB flash (it takes 4MB); the file " in (
        _warnings(dfufile.parse(data))
    )


def test_entries_beyond_the_flash_size_warn_once_with_both_sizes() -> None:
    """Ten parts beyond the flash gave ten warnings, none of which said how big it must be."""
    big = FlashFile(0x3F0000, "rand5m.bin", bytes(5 * MB))
    image = dfufile.parse(dfufile.pack([big], pid=2, flash_size=2 * MB))
    beyond = [warning for warning in image.warnings if "beyond" in warning]
    assert len(beyond) == 1
    assert beyond[0].startswith(
        "10 entries reach up to 0x8f0000, beyond the 2 MB flash (they take 16MB)"
    )


@pytest.mark.parametrize(
    ("files", "flash_size", "words"),
    [
        ([FlashFile(0x1000, "empty.bin", b"")], 2 * MB, "Nothing to write: every image is empty"),
        ([], 2 * MB, "Nothing to write"),
        (
            [FlashFile(0x1FFFFF, "a.bin", b"xy")],
            2 * MB,
            "'a.bin' ends at 0x200001, beyond the 2 MB",
        ),
        (
            [FlashFile(0xFFFF0000, "a.bin", b"x")],
            128 * MB,
            "(it takes more than any ESP flash holds)",
        ),
    ],
)
def test_the_writer_refuses_what_no_board_should_get(
    files: list[FlashFile], flash_size: int, words: str
) -> None:
    with pytest.raises(InputError, match=re.escape(words)) as refused:
        dfufile.check_writable(files, flash_size)
    assert refused.value.hint


def test_the_writer_takes_what_fits_and_a_legacy_file_of_any_size() -> None:
    dfufile.check_writable([FlashFile(0x1FFFFE, "a.bin", b"xy")], 2 * MB)
    dfufile.check_writable([FlashFile(0x3F0000, "a.bin", bytes(MB))], None)


def test_part_size_not_a_multiple_of_4096_warns() -> None:
    data = dfufile.pack([FlashFile(0, "app.bin", bytes(3000))], pid=2, part_size=1000)
    warnings = _warnings(dfufile.parse(data))
    assert "parts of 1,000 bytes, not a multiple of 4096" in warnings


def test_long_names_are_cut_and_still_matched() -> None:
    name = "n" * 70 + ".bin"
    image = dfufile.parse(dfufile.pack([FlashFile(0, name, b"data")], pid=2))
    assert image.valid and image.entries[0].name == name
    assert "longer than 64 bytes" in _warnings(image)


def test_unknown_pid_and_legacy_layout_warn() -> None:
    image = dfufile.parse(dfufile.pack([FlashFile(0, "a", b"a")], pid=0x1234, flash_size=None))
    warnings = _warnings(image)
    assert "Unknown product ID 0x1234" in warnings and "Legacy layout" in warnings
    # flash_params.dat came with v4.3.4 and v4.4.2, not v5.0 (mkdfu.py at those tags).
    assert "as ESP-IDF up to v4.3.3, v4.4.0 and v4.4.1 write it" in warnings
    assert "v5" not in warnings
    assert image.chip_name == "unknown"


def test_foreign_vendor_id_warns() -> None:
    data = with_suffix(archive([record(0, b"a", b"A")], [(b"a", b"A")]), vid=0x0483)
    assert "vendor ID in the suffix is 0x0483" in _warnings(dfufile.parse(data))


def test_no_entries_warns() -> None:
    image = dfufile.parse(dfufile.pack([], pid=2))
    assert "no flash entries" in _warnings(image)


# --- writer rules (ESP-IDF's) -----------------------------------------------------------------


def test_files_are_sorted_by_address() -> None:
    files = [FlashFile(0x10000, "app.bin", b"app"), FlashFile(0x1000, "boot.bin", b"boot")]
    image = dfufile.parse(dfufile.pack(files, pid=2))
    assert [(e.name, e.address) for e in image.entries] == [
        ("boot.bin", 0x1000),
        ("app.bin", 0x10000),
    ]


def test_two_files_for_one_address_are_refused_not_one_dropped() -> None:
    """mkdfu.py keeps the last file for an address and drops the other without a word."""
    files = [FlashFile(0x10000, "old.bin", b"old"), FlashFile(0x10000, "new.bin", b"new")]
    with pytest.raises(InputError) as caught:
        dfufile.pack(files, pid=2)
    assert caught.value.message == (
        "'old.bin' and 'new.bin' are both for 0x10000: only one image can be written at an address."
    )


def test_parts_are_named_and_placed_like_esp_idf() -> None:
    image = dfufile.parse(
        dfufile.pack([FlashFile(0x8000, "x", bytes(10000))], pid=2, part_size=4096)
    )
    assert [(e.name, e.address, e.size) for e in image.entries] == [
        ("x", 0x8000, 4096),
        ("x.1", 0x9000, 4096),
        ("x.2", 0xA000, 1808),
    ]


@pytest.mark.parametrize(
    "files",
    [
        [FlashFile(0x1000, "app.bin", b"a"), FlashFile(0x20000, "app.bin", b"b")],
        [FlashFile(0x1000, "x", bytes(8192)), FlashFile(0x20000, "x.1", b"b")],
        [FlashFile(0x1000, "TRAILER!!!", b"a")],
        [FlashFile(0x1000, "n" * 64 + "1", b"a"), FlashFile(0x2000, "n" * 64 + "2", b"b")],
    ],
)
def test_names_the_board_could_not_tell_apart_are_refused(files: list[FlashFile]) -> None:
    with pytest.raises(InputError, match="could not tell them apart") as caught:
        dfufile.pack(files, pid=2, part_size=4096)
    assert "by its name alone" in caught.value.message
    assert caught.value.hint.startswith("Give the images distinct file names")


def test_a_shared_name_names_both_images() -> None:
    files = [FlashFile(0x1000, "app.bin", b"a"), FlashFile(0x20000, "app.bin", b"b")]
    with pytest.raises(InputError) as caught:
        dfufile.pack(files, pid=2)
    assert caught.value.message.startswith(
        "'app.bin' at 0x20000 would have the same name in the dfu.bin as 'app.bin' at 0x1000 "
    )


def test_an_empty_file_gives_no_entry_as_in_esp_idf() -> None:
    image = dfufile.parse(dfufile.pack([FlashFile(0, "empty", b"")], pid=2))
    assert image.entries == ()


@pytest.mark.parametrize("size", list(FLASH_SIZES.values()))
def test_every_esp_idf_flash_size_is_accepted(size: int) -> None:
    assert dfufile.parse(dfufile.pack([], pid=2, flash_size=size)).flash_size == size


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"flash_size": 3 * MB}, "not one ESP-IDF knows"),
        ({"part_size": 0}, "positive"),
        ({"pid": 0x10000}, "16 bits"),
    ],
)
def test_writer_refuses_impossible_settings(kwargs: dict[str, int], words: str) -> None:
    arguments = {"pid": 2, **kwargs}
    with pytest.raises(InputError, match=words):
        dfufile.pack([FlashFile(0, "a", b"a")], **arguments)


def test_writer_refuses_addresses_beyond_32_bits() -> None:
    with pytest.raises(InputError, match="32-bit"):
        dfufile.pack([FlashFile(0xFFFFFFFF, "a", b"ab")], pid=2)


# --- files on disk ----------------------------------------------------------------------------


def test_save_is_atomic_and_follows_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "dfu.bin"
    target.write_bytes(b"old")
    previous = os.umask(0o027)
    try:
        dfufile.save(target, _valid())
    finally:
        os.umask(previous)
    assert target.read_bytes() == _valid()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["dfu.bin"]


def test_save_into_a_missing_folder_fails_in_words(tmp_path: Path) -> None:
    with pytest.raises(EspdfuError, match="folder does not exist"):
        dfufile.save(tmp_path / "no" / "dfu.bin", b"x")


def test_load_names_the_file_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(b"\xe9" + bytes(100))
    with pytest.raises(DfuFormatError, match=r"app\.bin: This is a raw ESP firmware image"):
        dfufile.load(path)


def test_load_refuses_absurd_sizes_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as file:
        file.truncate(2 * 1024 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(InputError, match="far too large"):
        dfufile.load(path)


def test_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        dfufile.load(tmp_path / "x")


def test_load_of_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        dfufile.load(tmp_path)
