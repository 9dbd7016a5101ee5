"""Only what changed: the dfu.bin of the changed sectors leaves a board's flash exactly as the
whole file would, fed to the ROM's model of a download (the simulator's receiver)."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espdfu.demo.project import PARTITIONS, app_image, bootloader_image
from espdfu.files import dfufile
from espdfu.files.delta import compose, incomparable
from espdfu.files.dfufile import SECTOR_SIZE, DfuImage, FlashFile
from espdfu.files.espimage import write_image
from espdfu.files.partitions import write_table
from espdfu.sim.receiver import Receiver

KIB = 1024
BUILT = time.gmtime(0)
FLASH = 4 * 1024 * KIB
NVS_AT = 0x9000


def dfu(
    app: bytes,
    nvs: bytes | None = b"\x01" * 100,
    pid: int = 2,
    extra: dict[int, bytes] | None = None,
) -> DfuImage:
    files = [
        FlashFile(0x1000, "bootloader.bin", bootloader_image()),
        FlashFile(0x8000, "partition-table.bin", write_table(PARTITIONS)),
        FlashFile(0x10000, "app.bin", app),
    ]
    if nvs is not None:
        files.append(FlashFile(NVS_AT, "nvs.bin", nvs))
    files += [FlashFile(at, f"x{at:x}.bin", data) for at, data in (extra or {}).items()]
    return dfufile.parse(dfufile.pack(files, pid=pid))


def flashed(*files: bytes, flash: bytearray | None = None) -> bytearray:
    """The flash after each dfu.bin in turn, as the ROM's model writes it."""
    flash = bytearray(b"\xff" * FLASH) if flash is None else flash
    for data in files:
        receiver = Receiver(flash)
        payload = data[: -dfufile.SUFFIX_LEN]
        for start in range(0, len(payload), 64):
            assert receiver.feed(payload[start : start + 64]).status.name == "OK"
        assert receiver.complete
    return flash


def test_a_same_size_edit_sends_its_sectors_and_the_data_partition() -> None:
    base = dfu(app_image("build 1", BUILT))
    new = dfu(app_image("build 2", BUILT))
    delta = compose(new, base)
    compared = [run for run in delta.runs if not run.whole]
    assert compared and all(run.address % SECTOR_SIZE == 0 for run in compared)
    app_end = 0x10000 + len(app_image("build 2", BUILT))
    for run in compared:  # whole sectors, but where the image ends
        assert run.size % SECTOR_SIZE == 0 or run.address + run.size == app_end
    assert {run.source for run in compared} == {"app.bin"}  # bootloader and table unchanged
    (data,) = [run for run in delta.runs if run.whole]
    assert (data.address, data.size) == (NVS_AT, 100) and "'nvs' (data/nvs)" in data.whole
    assert delta.sectors == sum(-(-run.size // SECTOR_SIZE) for run in compared)
    assert delta.sent < delta.total / 4
    assert delta.words("12:03").startswith(f"sending {delta.sent / KIB:.1f} KB of ")
    assert delta.words("12:03").endswith(f"({delta.sectors} sectors changed since 12:03)")
    assert delta.image.contents == new.contents  # what the board boots after it
    assert not delta.image.contents.problems and delta.image.contents.app is not None
    names = [entry.name for entry in delta.image.entries]
    assert len(set(names)) == len(names) and all(len(name) <= 64 for name in names)


def test_the_same_file_sends_nothing() -> None:
    image = dfu(app_image("build 1", BUILT))
    delta = compose(image, image)
    assert delta.unchanged and delta.file == b"" and delta.sent == 0
    assert delta.words("12:03") == "nothing changed since 12:03: nothing sent"


def test_unchanged_code_with_new_data_sends_the_data_only() -> None:
    app = app_image("build 1", BUILT)
    delta = compose(dfu(app, b"\x02" * 100), dfu(app, b"\x01" * 100))
    assert [(run.address, run.size) for run in delta.runs] == [(NVS_AT, 100)]
    assert delta.sectors == 0


def test_an_image_the_base_lacks_goes_whole_and_a_longer_base_sector_is_sent() -> None:
    app = app_image("build 1", BUILT)
    shorter = app[: len(app) - 100]  # the base's app ran on past the new one's end
    delta = compose(dfu(shorter, None, extra={0x200000: b"\x07" * 5000}), dfu(app, None))
    last = max((run for run in delta.runs if run.source == "app.bin"), key=lambda r: r.address)
    assert last.address + last.size == 0x10000 + len(shorter)
    (other,) = [run for run in delta.runs if run.source == "x200000.bin"]
    assert (other.address, other.size) == (0x200000, 5000)


def test_files_it_cannot_compare_are_said() -> None:
    app = app_image("build 1", BUILT)
    assert incomparable(dfu(app, pid=9), dfu(app)) == (
        "the base is a file for esp32s2, this one for esp32s3"
    )
    assert incomparable(dfu(app), dfu(app)) == ""


def test_a_run_larger_than_a_part_is_cut_into_named_parts() -> None:
    base = dfu(app_image("build 1", BUILT, size=1200 * KIB))
    new = dfu(app_image("build 1", BUILT, size=1200 * KIB, seed=2))  # other code throughout
    delta = compose(new, base)
    names = [entry.name for entry in delta.image.entries if entry.name.startswith("10000-")]
    assert names[:3] == ["10000-app.bin", "10000-app.bin.1", "10000-app.bin.2"]
    assert bytes(flashed(base.raw, delta.file)) == bytes(flashed(base.raw, new.raw))


@st.composite
def edits(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two app builds: the second a same-size edit, an insertion or a cut of the first."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    first = bytearray(rng.randbytes(draw(st.integers(1, 40)) * KIB + draw(st.integers(0, 4095))))
    second = bytearray(first)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(second)))
        size = draw(st.integers(1, 3 * KIB))
        kind = draw(st.sampled_from(["same", "insert", "cut"]))
        if kind == "same":
            second[at : at + size] = rng.randbytes(len(second[at : at + size]))
        elif kind == "insert":
            second[at:at] = rng.randbytes(size)
        elif len(second) > size + 1:
            del second[at : at + size]
    return _app(bytes(first)), _app(bytes(second))


def _app(code: bytes) -> bytes:
    """An S2 app image (its checksum and SHA-256 follow the code) that runs ``code``."""
    return write_image(2, [(0x40080020, code[: len(code) // 4 * 4])], entry=0x40080020)


@settings(max_examples=60, deadline=None)
@given(edits(), st.booleans(), st.binary(min_size=1, max_size=64))
def test_a_delta_leaves_the_flash_as_the_whole_file_would(
    apps: tuple[bytes, bytes], rewritten: bool, nvs: bytes
) -> None:
    """Whatever the edit, and whether or not the app rewrote its NVS since the base."""
    base, new = dfu(apps[0], nvs), dfu(apps[1], b"\x01" + nvs)
    assert [placed.role for placed in new.contents.images] == ["bootloader", "factory"]
    board = flashed(base.raw)
    if rewritten:
        board[NVS_AT : NVS_AT + 16] = b"\x5a" * 16
    whole = flashed(new.raw, flash=bytearray(board))
    delta = compose(new, base)
    assert not any(run.whole for run in delta.runs if run.source == "app.bin")  # compared
    assert bytes(flashed(delta.file, flash=board)) == bytes(whole)


@pytest.mark.parametrize("kind", ["app", "bootloader"])
def test_a_wrong_base_gives_another_flash_than_the_whole_file(kind: str) -> None:
    """The delta trusts the base: a board that holds something else ends up with neither
    build (what the boot check after a delta flash is there to catch)."""
    base, new = dfu(app_image("build 1", BUILT)), dfu(app_image("build 2", BUILT))
    board = flashed(base.raw)
    at = 0x10000 + 40 * KIB if kind == "app" else 0x1000
    board[at : at + 4] = b"\0\0\0\0"  # another tool wrote here since
    whole = flashed(new.raw, flash=bytearray(board))
    assert bytes(flashed(compose(new, base).file, flash=board)) != bytes(whole)
