"""Whether a dfu.bin holds the build beside it: decided by content alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from espdfu.files import dfufile
from espdfu.files.idfbuild import BuildFolder, read_flash_files
from espdfu.files.staleness import stale_dfu
from tests.helpers.buildfolder import NEWER_APP, fake_build, stale_build

MB = 1024 * 1024


@pytest.fixture
def build(tmp_path: Path) -> Path:
    folder = tmp_path / "build"
    folder.mkdir()
    fake_build(folder)
    return folder


def _stale(build: Path, data: bytes) -> str | None:
    """What is said of the dfu.bin ``data`` in ``build`` (None: it holds the build)."""
    path = build / "dfu.bin"
    path.write_bytes(data)
    stale = stale_dfu(path, dfufile.load(path))
    return None if stale is None else stale.said()


@pytest.mark.parametrize("part_size", [512 * 1024, 1024, 4096, 7])
def test_a_dfu_bin_of_the_build_holds_it_in_parts_of_any_size(build: Path, part_size: int) -> None:
    assert _stale(build, BuildFolder.open(build).make_dfu(part_size=part_size)) is None


def test_the_first_image_by_address_that_differs_is_named_with_its_role(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    stale = stale_build(build)
    assert _stale(build, stale) == "build/dfu.bin holds an older app than build/app.bin"
    (build / "bootloader" / "bootloader.bin").write_bytes(b"\xe9new bootloader")
    said = "build/dfu.bin holds an older bootloader than build/bootloader/bootloader.bin"
    assert _stale(build, stale) == said
    # an app longer or shorter than the one the dfu.bin holds (in three parts) differs too
    (build / "app.bin").write_bytes(NEWER_APP)
    held = BuildFolder.open(build).make_dfu(part_size=1000)
    assert _stale(build, held) is None
    for app in (NEWER_APP + b"more", NEWER_APP[:-4]):
        (build / "app.bin").write_bytes(app)
        assert _stale(build, held) == "build/dfu.bin holds an older app than build/app.bin"


def test_an_image_the_dfu_bin_lacks_and_one_not_there(build: Path) -> None:
    files = read_flash_files(BuildFolder.open(build).flash_files)
    without_app = dfufile.pack(files[:2], pid=2, flash_size=4 * MB)
    assert _stale(build, without_app) == (
        "build/dfu.bin has no app at 0x10000, where flasher_args.json puts build/app.bin"
    )
    (build / "app.bin").unlink()  # not there: no evidence either way
    assert _stale(build, without_app) is None


def test_the_flash_size_is_compared_only_where_both_say_one(build: Path) -> None:
    files = read_flash_files(BuildFolder.open(build).flash_files)
    two_mb = dfufile.pack(files, pid=2, flash_size=2 * MB)
    assert _stale(build, two_mb) == (
        "build/dfu.bin says 2 MB of flash in flash_params.dat where flasher_args.json says 4MB"
    )
    assert _stale(build, dfufile.pack(files, pid=2, flash_size=None)) is None  # legacy layout
    args = json.loads((build / "flasher_args.json").read_text())
    args["flash_settings"]["flash_size"] = "keep"
    (build / "flasher_args.json").write_text(json.dumps(args))
    assert _stale(build, two_mb) is None


def test_a_dfu_bin_without_a_build_beside_it_is_not_judged(tmp_path: Path) -> None:
    files = [dfufile.FlashFile(0x10000, "app.bin", b"\xe9app")]
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack(files, pid=2))
    assert stale_dfu(path, dfufile.load(path)) is None
