"""ESP-IDF's own mkdfu vectors: the reader parses each, the writer reproduces each byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.files.idfbuild import Image, flash_files_from_json, read_flash_files
from tests.helpers.archive import vector_app

MB = 1024 * 1024
VECTOR_1_FILES = [(0x1000, "1.bin", 1024), (0x8000, "2.bin", 2048), (0x10000, "3.bin", 3072)]
SPLIT_FILES = [(0x0, "bin", 5), (0x5, "bin.1", 5)]
TEN_CE = [FlashFile(0, "bin", b"\xce" * 10)]


@pytest.mark.parametrize(
    ("name", "flash_size", "expected"),
    [
        ("1/dfu.bin", 4 * MB, VECTOR_1_FILES),
        ("2/dfu.bin", 4 * MB, SPLIT_FILES),
        ("legacy_no_flash_params/1/dfu.bin", None, VECTOR_1_FILES),
        ("legacy_no_flash_params/2/dfu.bin", None, SPLIT_FILES),
    ],
)
def test_reader_parses_each_vector(
    vectors: Path, name: str, flash_size: int | None, expected: list[tuple[int, str, int]]
) -> None:
    image = dfufile.load(vectors / name)
    assert image.valid and image.crc_ok
    assert image.chip_name == "esp32s2"
    assert (image.pid, image.vid) == (2, 0x303A)
    assert image.flash_size == flash_size
    assert [(e.address, e.name, e.size) for e in image.entries] == expected
    assert all(e.md5_ok and e.flags == 0 for e in image.entries)
    assert image.payload == (vectors / name).read_bytes()[:-16]
    legacy_warned = any("Legacy layout" in w for w in image.warnings)
    assert legacy_warned == (flash_size is None)


def test_entries_carry_the_md5_of_their_bytes(vectors: Path) -> None:
    image = dfufile.load(vectors / "1" / "dfu.bin")
    for entry in image.entries:
        assert entry.md5 == hashlib.md5((vectors / "1" / entry.name).read_bytes()).digest()


def _vector_1_inputs(vectors: Path) -> list[FlashFile]:
    return read_flash_files([Image(a, vectors / "1" / n) for a, n, _ in VECTOR_1_FILES])


def test_writer_reproduces_vector_1(vectors: Path) -> None:
    data = dfufile.pack(_vector_1_inputs(vectors), pid=2, flash_size=4 * MB)
    assert data == (vectors / "1" / "dfu.bin").read_bytes()


def test_writer_reproduces_vector_1_from_its_json(vectors: Path) -> None:
    specs = flash_files_from_json(vectors / "1" / "flasher_args.json")
    assert [image.address for image in specs] == [0x8000, 0x1000, 0x10000]  # out of order
    data = dfufile.pack(read_flash_files(specs), pid=2, flash_size=4 * MB)
    assert data == (vectors / "1" / "dfu.bin").read_bytes()


def test_writer_reproduces_the_legacy_vector_1(vectors: Path) -> None:
    data = dfufile.pack(_vector_1_inputs(vectors), pid=2, flash_size=None)
    assert data == (vectors / "legacy_no_flash_params" / "1" / "dfu.bin").read_bytes()


def test_writer_reproduces_the_split_vectors(vectors: Path) -> None:
    assert (
        dfufile.pack(TEN_CE, pid=2, flash_size=4 * MB, part_size=5)
        == (vectors / "2" / "dfu.bin").read_bytes()
    )
    assert (
        dfufile.pack(TEN_CE, pid=2, flash_size=None, part_size=5)
        == (vectors / "legacy_no_flash_params" / "2" / "dfu.bin").read_bytes()
    )


# Self-contained: the SHA-256 values ESP-IDF's writer gives for inputs anyone can make.


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_split_case_matches_esp_idf_without_the_vectors() -> None:
    new = dfufile.pack(TEN_CE, pid=2, flash_size=4 * MB, part_size=5)
    legacy = dfufile.pack(TEN_CE, pid=2, flash_size=None, part_size=5)
    assert _sha256(new) == "30fd6c93b9db14d4c45b7ed00db1ab93e499016e809984b9805f1b1526efe8bf"
    assert _sha256(legacy) == "b2d25442812d4f1fe94875cd6d145bc4ec009cf596afaaf7aab1faada9bea31c"


def test_large_split_case_matches_esp_idf() -> None:
    app = vector_app()
    assert _sha256(app) == "31a51b463db6036350996babfaa9edcd263a0c2e0fc08a1bdd3b0e3c68121af5"
    data = dfufile.pack([FlashFile(0x10000, "app.bin", app)], pid=2, flash_size=4 * MB)
    assert _sha256(data) == "e53e6f9abc52d27fa13c35fe83ca8c201ca82250fecde6df13794aa0361705f9"
    image = dfufile.parse(data)
    assert [(e.name, e.address, e.size) for e in image.entries] == [
        ("app.bin", 0x10000, 524288),
        ("app.bin.1", 0x90000, 524288),
        ("app.bin.2", 0x110000, 151424),
    ]
    assert image.warnings == ()
