"""ESP-IDF build folders as a build leaves them (only the files espdfu reads), and as they are
found in the wild: copied, with a dfu.bin of an older build."""

from __future__ import annotations

import json
import os
from pathlib import Path

from espdfu.files.espimage import write_image
from espdfu.files.idfbuild import BuildFolder

IMAGES = {
    "0x1000": "bootloader/bootloader.bin",
    "0x8000": "partition_table/partition-table.bin",
    "0x10000": "app.bin",
}


def esp_image(text: bytes, chip_id: int = 0x0002) -> bytes:
    """A whole ESP image (an ESP32-S2's by default) whose one segment repeats ``text``."""
    data = text * (1024 // len(text) + 1)
    return write_image(chip_id, [(0x3F000020, data[: len(data) // 4 * 4])], entry=0x40080000)


NEWER_APP = esp_image(b"newer app")


def fake_build(build_dir: Path, target: str = "esp32s2") -> None:
    """What `idf.py build` leaves for espdfu to read (see test_idfbuild), flasher_args.json
    naming each image's role as ESP-IDF's does."""
    (build_dir / "bootloader").mkdir()
    (build_dir / "partition_table").mkdir()
    roles = ("bootloader", "partition-table", "app")
    args = {
        "flash_files": IMAGES,
        **{
            role: {"offset": offset, "file": name, "encrypted": "false"}
            for role, (offset, name) in zip(roles, IMAGES.items(), strict=True)
        },
        "flash_settings": {"flash_mode": "dio", "flash_size": "4MB"},
    }
    (build_dir / "flasher_args.json").write_text(json.dumps(args))
    (build_dir / "project_description.json").write_text(json.dumps({"target": target}))
    for name in IMAGES.values():
        (build_dir / name).write_bytes(esp_image(name.encode()))


def stale_build(build_dir: Path) -> bytes:
    """A build folder whose dfu.bin holds an older app than app.bin, as `idf.py dfu` and then
    a plain `idf.py build` leave it (this dfu.bin's bytes)."""
    fake_build(build_dir)
    stale = BuildFolder.open(build_dir).make_dfu()
    (build_dir / "dfu.bin").write_bytes(stale)
    (build_dir / "app.bin").write_bytes(NEWER_APP)
    return stale


def one_mtime(folder: Path, *, older: Path | None = None) -> None:
    """Every file in ``folder`` with one modification time, as after a copy (``older``, when
    given, a minute older)."""
    now = 1_700_000_000 * 10**9
    for path in folder.rglob("*"):
        when = now - 60 * 10**9 if path == older else now
        os.utime(path, ns=(when, when))
