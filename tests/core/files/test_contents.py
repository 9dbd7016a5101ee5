"""What a dfu.bin writes, read as the chip will boot it: the partition table, each image where
it is booted from, and why the board would not boot it."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espdfu.files import dfufile
from espdfu.files.contents import read_contents, regions
from espdfu.files.dfufile import FlashFile
from espdfu.files.espimage import write_image
from espdfu.files.partitions import APP, DATA, Partition, read_table, write_table
from tests.core.files.test_espimage import DESC, S3, app

S2_PID, ANY_PID = 0x0002, 0xFFFF
TABLE = (
    Partition("nvs", DATA, 0x02, 0x9000, 0x6000),
    Partition("phy_init", DATA, 0x01, 0xF000, 0x1000),
    Partition("factory", APP, 0x00, 0x10000, 0x100000),
    Partition("storage", DATA, 0x82, 0x110000, 0x10000),
)
BOOTLOADER = write_image(
    0x0002, [(0x3FFE6100, bytes(64)), (0x4004B000, bytes(128))], entry=0x4004B1EC
)


def dfu(*files: FlashFile, pid: int = S2_PID, part_size: int = 512 * 1024) -> dfufile.DfuImage:
    return dfufile.parse(dfufile.pack(list(files), pid=pid, part_size=part_size))


def build(app_data: bytes | None = None, table: tuple[Partition, ...] = TABLE) -> list[FlashFile]:
    return [
        FlashFile(0x1000, "bootloader.bin", BOOTLOADER),
        FlashFile(0x8000, "partition-table.bin", write_table(table)),
        FlashFile(0x10000, "app.bin", app() if app_data is None else app_data),
    ]


def test_a_table_is_read_as_gen_esp32part_writes_it() -> None:
    data = write_table(TABLE)
    # gen_esp32part.py's entry: <2sBBLL16sL, then an MD5 entry, then 0xFF to 0xC00 bytes
    first = struct.unpack_from("<2sBBLL16sL", data)
    assert first == (b"\xaa\x50", 1, 2, 0x9000, 0x6000, b"nvs" + bytes(13), 0)
    md5_at = 32 * len(TABLE)
    assert data[md5_at : md5_at + 16] == b"\xeb\xeb" + b"\xff" * 14
    assert data[md5_at + 16 : md5_at + 32] == hashlib.md5(data[:md5_at]).digest()
    assert len(data) == 0xC00 and data[md5_at + 32 :] == b"\xff" * (0xC00 - md5_at - 32)
    table = read_table(data)
    assert table is not None and table.partitions == TABLE and table.md5_ok is True
    assert [p.kind for p in table.partitions] == [
        "data/nvs",
        "data/phy",
        "app/factory",
        "data/spiffs",
    ]
    assert table.apps == (TABLE[2],)


def test_a_table_whose_md5_is_wrong_says_so_and_one_without_md5_is_fine() -> None:
    data = bytearray(write_table(TABLE))
    data[0x42] ^= 1  # the third entry's type
    table = read_table(bytes(data))
    assert table is not None and table.md5_ok is False
    assert table.problems == ("the partition table's MD5 does not match its entries",)
    plain = read_table(write_table(TABLE, md5=False))
    assert plain is not None and plain.md5_ok is None and plain.problems == ()


def test_a_build_boots_and_its_app_is_known() -> None:
    contents = read_contents(dfu(*build()))
    assert contents.problems == ()
    assert [(p.address, p.role) for p in contents.images] == [
        (0x1000, "bootloader"),
        (0x10000, "factory"),
    ]
    assert contents.app == DESC and contents.table_at == 0x8000


def test_an_image_split_into_parts_is_joined_before_it_is_read() -> None:
    big = app(code=40 * 1024)
    image = dfu(*build(big), part_size=8 * 1024)
    assert sum(entry.name.startswith("app.bin") for entry in image.entries) > 4
    joined = [r for r in regions(image) if r.address == 0x10000]
    assert joined[0].data == big
    assert read_content_problems(image) == ()


def read_content_problems(image: dfufile.DfuImage) -> tuple[str, ...]:
    return read_contents(image).problems


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (build(app(S3)), "app.bin at 0x10000 is built for esp32s3 but the file is for esp32s2"),
        (build(app()[:-20]), "app.bin at 0x10000 would not boot: the image is cut off"),
        (build(app()[:600] + b"\x00" + app()[601:]), "would not boot: Checksum failed"),
        (
            build(table=(*TABLE[:2], Partition("factory", APP, 0, 0x10000, 0x1000))),
            "larger than its partition 'factory' (4,096 bytes): the bootloader refuses it",
        ),
        (build(b"\x00" * 4096), "app.bin at 0x10000 is not an ESP image (no magic byte 0xE9)"),
        (
            [
                FlashFile(0x1000, "bootloader.bin", write_image(0x0009, [(0, bytes(8))], entry=0)),
                *build()[1:],
            ],
            "bootloader.bin at 0x1000 is built for esp32s3",
        ),
    ],
    ids=[
        "an S3 app in an S2 file",
        "cut off",
        "checksum",
        "over its partition",
        "not an image",
        "an S3 bootloader",
    ],
)
def test_what_the_board_would_not_boot_is_said(files: list[FlashFile], says: str) -> None:
    problems = read_content_problems(dfu(*files))
    assert any(says in problem for problem in problems), problems


def test_data_is_never_judged_as_an_image() -> None:
    """NVS, a file system, certificates: whatever their bytes, never refused."""
    data = [
        FlashFile(0x9000, "nvs.bin", bytes(0x6000)),
        FlashFile(0x110000, "storage.bin", b"\xe9" + bytes(4095)),
    ]
    contents = read_contents(dfu(*build(), *data))
    assert contents.problems == () and len(contents.images) == 2


def test_without_a_table_only_what_starts_with_the_magic_is_judged() -> None:
    """A file of raw parts (no partition table): bytes that are not an image are data."""
    files = [FlashFile(0x1000, "blob.bin", bytes(1024)), FlashFile(0x10000, "app.bin", app())]
    contents = read_contents(dfu(*files))
    assert contents.problems == () and [p.role for p in contents.images] == ["app"]
    broken = read_contents(dfu(FlashFile(0x20000, "app.bin", app(S3))))
    assert any("built for esp32s3" in p for p in broken.problems)


def test_a_file_for_any_chip_takes_the_chip_of_nothing_and_still_checks_its_images() -> None:
    contents = read_contents(dfu(*build(), pid=ANY_PID))
    assert contents.problems == () and contents.app == DESC
    broken = read_contents(dfu(*build(app()[:-20]), pid=ANY_PID))
    assert any("cut off" in p for p in broken.problems)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0x0, 0x1000, 0x8000, 0x9000, 0x10000, 0x20000]),
            st.sampled_from([b"", b"\xe9", b"\xe9\x03", b"\xaa\x50", b"\xe9\x11\x02"]),
            st.binary(max_size=600),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda f: f[0],
    ),
    st.sampled_from([S2_PID, 0x0009, ANY_PID]),
)
def test_any_file_is_read_without_raising_and_each_problem_is_one_sentence(
    files: list[tuple[int, bytes, bytes]], pid: int
) -> None:
    """Hostile or half-built files: what the board would not boot is said, never raised."""
    parts = [FlashFile(at, f"f{at:x}.bin", head + body) for at, head, body in files]
    contents = read_contents(dfu(*parts, pid=pid))
    for problem in contents.problems:
        assert problem.endswith(".") and "\n" not in problem
