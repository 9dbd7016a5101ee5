"""dfu.bin read+verify and write of an 8 MiB image, against the floor of hashing it once.

The floor is what no reader can avoid: md5 over the image bytes and the CRC-32 over the
dfu.bin bytes, each computed once. The goal is that reading (``dfufile.load``) and writing
(``dfufile.pack`` + ``dfufile.save``) each cost at most 1.5 times that.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import random
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from espdfu.files import dfufile
from run import Row, Section, markdown_table

MIB = 1024 * 1024
IMAGE_SIZE = 8 * MIB
BOOTLOADER = (0x1000, "bootloader.bin", 20 * 1024)
PARTITION_TABLE = (0x8000, "partition-table.bin", 3 * 1024)
APP_ADDRESS = 0x10000
APP_NAME = "app.bin"
FLASH_SIZE = 16 * MIB  # the app ends past 8 MiB, so an 8 MiB flash would draw a warning
PID = 0x0002  # ESP32-S2
SEED = 0xDF0
REPEATS = 15
QUICK_REPEATS = 3
GOAL = 1.5


def image_files() -> list[dfufile.FlashFile]:
    """A bootloader, a partition table and an app: 8 MiB of deterministic pseudo-random bytes."""
    rng = random.Random(SEED)
    files = [
        dfufile.FlashFile(address, name, rng.randbytes(size))
        for address, name, size in (BOOTLOADER, PARTITION_TABLE)
    ]
    app_size = IMAGE_SIZE - sum(len(file.data) for file in files)
    files.append(dfufile.FlashFile(APP_ADDRESS, APP_NAME, rng.randbytes(app_size)))
    return files


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding ``path`` ("ext4", "tmpfs", ...), from mountinfo."""
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) < 5 or not after:
            continue
        mount_point = fields[4]  # the last mount on a point is the one in use, so >= below
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, after.split()[0]
    return kind


@dataclass(frozen=True)
class Timing:
    """The seconds one measurement took, repetition by repetition."""

    name: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)


def measure(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Time each case ``repeats`` times after one warm-up, taking the cases in turn.

    Taking them in turn (rather than all repetitions of one, then the next) spreads any drift
    of the machine, such as a noisy neighbour or a clock change, over all of them alike, so the
    ratios stay fair. The collector is off while timing.
    """
    for case in cases.values():
        case()
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, case in cases.items():
                start = time.perf_counter()
                case()
                seconds[name].append(time.perf_counter() - start)
    finally:
        if collecting:
            gc.enable()
    return {name: Timing(name, tuple(values)) for name, values in seconds.items()}


def run(quick: bool) -> Section:
    files = image_files()
    data = dfufile.pack(files, pid=PID, flash_size=FLASH_SIZE)
    image = dfufile.parse(data)
    if not image.valid or image.warnings:
        raise RuntimeError(f"the test image is not clean: {image.problems + image.warnings}")
    image_bytes = sum(len(file.data) for file in files)

    def floor() -> None:
        for file in files:
            hashlib.md5(file.data).digest()
        zlib.crc32(data)

    def md5_only() -> None:
        for file in files:
            hashlib.md5(file.data).digest()

    def crc_only() -> None:
        zlib.crc32(data)

    with tempfile.TemporaryDirectory(prefix="espdfu-bench-") as folder:
        source = Path(folder) / "dfu.bin"
        dfufile.save(source, data)
        target = Path(folder) / "out.bin"
        fresh_names = (Path(folder) / f"new-{n}.bin" for n in itertools.count())
        repeats = QUICK_REPEATS if quick else REPEATS
        timings = measure(
            {
                "floor: md5 + crc32": floor,
                "md5 of the image": md5_only,
                "crc32 of the dfu.bin": crc_only,
                "read+verify: load()": lambda: dfufile.load(source),
                "parse() from memory": lambda: dfufile.parse(data),
                "write: pack() + save()": lambda: dfufile.save(
                    target, dfufile.pack(files, pid=PID, flash_size=FLASH_SIZE)
                ),
                "write to a new file: pack() + save()": lambda: dfufile.save(
                    next(fresh_names), dfufile.pack(files, pid=PID, flash_size=FLASH_SIZE)
                ),
                "pack() in memory": lambda: dfufile.pack(files, pid=PID, flash_size=FLASH_SIZE),
            },
            repeats,
        )
        if target.read_bytes() != data:
            raise RuntimeError("pack() + save() wrote other bytes than pack() made")
        filesystem = filesystem_of(Path(folder))

    floor_s = timings["floor: md5 + crc32"].median
    read_ratio = timings["read+verify: load()"].median / floor_s
    write_ratio = timings["write to a new file: pack() + save()"].median / floor_s
    overwrite_ratio = timings["write: pack() + save()"].median / floor_s

    table = markdown_table(
        ["Measurement", "Median ms", "Min ms", "Max ms", "MB/s", "× floor"],
        [
            [
                t.name,
                f"{t.median * 1e3:.2f}",
                f"{t.low * 1e3:.2f}",
                f"{t.high * 1e3:.2f}",
                f"{image_bytes / t.median / 1e6:,.0f}",
                f"{t.median / floor_s:.2f}",
            ]
            for t in timings.values()
        ],
    )
    parts = len(image.entries)
    body = f"""\
Input: a bootloader at 0x{BOOTLOADER[0]:x} ({BOOTLOADER[2] // 1024} KiB), a partition table \
at 0x{PARTITION_TABLE[0]:x} ({PARTITION_TABLE[2] // 1024} KiB) and an app at \
0x{APP_ADDRESS:x}, {image_bytes:,} bytes (8 MiB) of pseudo-random content in all \
(`random.Random({SEED:#x})`), cut by `pack()` into {parts} archive entries of at most 512 KiB; \
the dfu.bin is {len(data):,} bytes.

Each measurement is timed {repeats} times with `time.perf_counter` after one warm-up, the \
measurements taken in turn, the garbage collector off. MB/s counts the {image_bytes / 1e6:.2f} \
MB of image bytes. The file is read from and written to a temporary folder (on {filesystem}), \
so the page cache serves it; `save()` does not fsync.

- floor: md5 over the image bytes + `zlib.crc32` over the dfu.bin bytes, once each;
- read+verify: `dfufile.load(path)` (file read + `parse()`);
- write: `dfufile.pack(...)` then `dfufile.save(path, data)` over the previous output, as a
  rebuild does; "to a new file" saves under a new name each time. The difference is the
  filesystem's: ext4 starts writing a file out when it is renamed over another
  (`auto_da_alloc`), the price of replacing a dfu.bin atomically; that cost is disk I/O and
  varies from run to run, so the goal is set on the write to a new file.

{table}"""
    rows = [
        Row("floor (md5 + crc32)", f"{floor_s * 1e3:.2f} ms"),
        Row(
            "read+verify / floor",
            f"{read_ratio:.2f}×",
            f"≤ {GOAL}×",
            read_ratio <= GOAL,
        ),
        Row(
            "write / floor",
            f"{write_ratio:.2f}×",
            f"≤ {GOAL}×",
            write_ratio <= GOAL,
        ),
        Row("write over an existing file / floor (filesystem-bound)", f"{overwrite_ratio:.2f}×"),
    ]
    return Section("dfu.bin read+verify and write, 8 MiB image", body, rows)
