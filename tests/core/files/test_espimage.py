"""ESP images read as the bootloader reads them, checked against esptool's ``image-info``."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espdfu.demo.project import app_image, bootloader_image
from espdfu.files.espimage import (
    APP_DESC_AT,
    HEADER,
    AppDesc,
    app_desc_bytes,
    read_image,
    write_image,
)
from tests.helpers.esptool import image_info

S2, S3 = 0x0002, 0x0009
DESC = AppDesc("blink", "v1.2-3-gabc", "v5.3.1", "Dec  7 2026", "12:03:11", bytes(range(32)))


def app(chip_id: int = S2, *, code: int = 4096, hashed: bool = True) -> bytes:
    """An app of three segments, its esp_app_desc_t first, as ESP-IDF's build lays it out."""
    segments = [
        (0x3F000020, app_desc_bytes(DESC) + bytes(range(256)) * 2),
        (0x3FFBE000, b"\x11\x22\x33\x44" * 64),
        (0x40080020, bytes((n * 7) & 0xFF for n in range(code))),
    ]
    return write_image(chip_id, segments, entry=0x40024AD8, hash_appended=hashed)


def agree(path: Path, data: bytes, *, is_app: bool = True) -> None:
    """Our reading of ``data`` and esptool's are the same, field by field."""
    path.write_bytes(data)
    ours = read_image(data, app=is_app)
    theirs = image_info(path)
    assert ours is not None, theirs.output
    assert ours.chip_id == theirs.chip_id and ours.entry == theirs.entry, theirs.output
    segments = [(s.length, s.load_address, s.offset - 8) for s in ours.segments]
    assert segments == theirs.segments, theirs.output
    assert ours.checksum_ok is theirs.checksum_valid, theirs.output
    assert ours.sha256_ok is theirs.hash_valid, theirs.output
    if ours.sha256 is not None:
        assert ours.sha256.hex() == theirs.hash_hex
    if ours.app is not None:
        assert theirs.app["Project name"] == ours.app.project
        assert theirs.app["App version"] == ours.app.version
        assert theirs.app["Compile time"] == f"{ours.app.date} {ours.app.time}"
        assert theirs.app["ESP-IDF"] == ours.app.idf_version
        assert theirs.app["ELF file SHA256"] == ours.app.elf_sha256.hex()


def test_an_app_is_read_as_esptool_reads_it(tmp_path: Path) -> None:
    data = app()
    agree(tmp_path / "app.bin", data)
    image = read_image(data, app=True)
    assert image is not None and image.problems == () and image.app == DESC
    assert image.length == len(data)  # the checksum's padding and the hash included
    assert image.app.words == (
        "blink v1.2-3-gabc · ESP-IDF v5.3.1 · built Dec  7 2026 12:03:11 · ELF 00010203…"
    )
    assert image.app.elf_prefix == "0001020304050607"  # as the app prints it at start-up


def test_the_demos_images_are_whole_images_that_esptool_accepts(tmp_path: Path) -> None:
    built = time.gmtime(1_800_000_000)
    demo_app = app_image("build 7", built)
    agree(tmp_path / "app.bin", demo_app)
    agree(tmp_path / "bootloader.bin", bootloader_image(), is_app=False)
    desc = read_image(demo_app, app=True)
    assert desc is not None and desc.app is not None
    assert (desc.app.project, desc.app.version, desc.app.date) == (
        "espdfu-demo",
        "build 7",
        "Jan 15 2027",
    )
    other = read_image(app_image("build 7", built, seed=1), app=True)
    assert other is not None and other.app is not None
    assert other.app.elf_sha256 != desc.app.elf_sha256  # each build its own ELF


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chip_id=st.sampled_from([S2, S3]),
    lengths=st.lists(st.integers(0, 512).map(lambda n: n * 4), min_size=1, max_size=16),
    hashed=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_any_image_esptool_reads_we_read_alike(
    tmp_path: Path, chip_id: int, lengths: list[int], hashed: bool, seed: int
) -> None:
    rng = __import__("random").Random(seed)
    segments = [
        (0x3FFB0000 + 0x1000 * n, rng.randbytes(length)) for n, length in enumerate(lengths)
    ]
    data = write_image(chip_id, segments, entry=0x40024000, hash_appended=hashed)
    agree(tmp_path / "any.bin", data, is_app=False)
    image = read_image(data, app=False)
    assert image is not None and image.problems == ()


@pytest.mark.parametrize(
    ("break_it", "problem", "esptool_says"),
    [
        (lambda d: d[:-40] + bytes([d[-40] ^ 1]) + d[-39:], "Image hash failed", "hash"),
        (lambda d: d[:600] + bytes([d[600] ^ 1]) + d[601:], "Checksum failed", "checksum"),
    ],
    ids=["a byte of its hash", "a byte of its data"],
)
def test_a_corrupt_image_is_refused_as_the_bootloader_refuses_it_and_esptool_agrees(
    tmp_path: Path, break_it: object, problem: str, esptool_says: str
) -> None:
    broken = break_it(app())  # type: ignore[operator]
    image = read_image(broken, app=True)
    assert image is not None
    assert any(problem in p for p in image.problems), image.problems
    path = tmp_path / "broken.bin"
    path.write_bytes(broken)
    theirs = image_info(path)
    if esptool_says == "hash":
        assert theirs.hash_valid is False and theirs.checksum_valid is True
    else:
        assert theirs.checksum_valid is False


def test_an_image_without_a_hash_has_none_to_check() -> None:
    image = read_image(app(hashed=False), app=True)
    assert image is not None and image.sha256 is None and image.sha256_ok is None
    assert image.problems == ()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (app()[:10], "cut off in its header"),
        (app()[:2000], "cut off in segment 2"),
        (app()[:-20], "cut off in its appended SHA-256"),
        (app(hashed=False)[:-1], "cut off before its checksum"),
        (bytes([0xE9, 17]) + app()[2:], "segment count 17 exceeds max 16"),
        (
            write_image(S2, [(0x3F000020, bytes(64))], entry=0),
            "Segment 0: length 0x40 is too short for app description",
        ),
    ],
    ids=["header", "segment", "hash", "checksum", "17 segments", "no room for its description"],
)
def test_a_broken_image_says_why(data: bytes, problem: str) -> None:
    image = read_image(data, app=True)
    assert image is not None
    assert any(problem in p for p in image.problems), image.problems


def test_a_segment_whose_length_is_not_a_multiple_of_4_is_invalid() -> None:
    data = bytearray(app())
    data[HEADER.size + 4 : HEADER.size + 8] = (0x301).to_bytes(4, "little")
    image = read_image(bytes(data), app=True)
    assert image is not None and image.problems == ("invalid segment length 0x301",)


def test_what_is_not_an_image_is_not_read_as_one() -> None:
    assert read_image(b"\xaa\x50" + bytes(30), app=True) is None
    assert read_image(b"", app=False) is None


def test_the_app_description_sits_where_esp_idf_puts_it() -> None:
    data = app()
    assert data[APP_DESC_AT : APP_DESC_AT + 4] == (0xABCD5432).to_bytes(4, "little")
    assert data[APP_DESC_AT + 0x90 : APP_DESC_AT + 0xB0] == DESC.elf_sha256  # app_elf_sha256
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
