"""Only what changed, on real builds: how much of each new app image a delta flash sends.

    python benchmarks/bench_changes_images.py [FOLDER] [--pairs]

The synthetic figures of the tests say that a small edit sends a few sectors; what real builds
do is another matter: a compiler and a linker move code about, so one changed line can shift
every address after it and change most sectors of the image. This measures
``espdfu.files.delta.compose`` on consecutive versions of application images committed to
public repositories (ESP-IDF, Arduino and CircuitPython builds for the ESP32-S2 and -S3).

The images live outside the repository, in a folder named by the argument or by the
environment variable ``ESPDFU_REAL_IMAGES``: one sub-folder per series, holding the versions of
one committed app binary as ``<n>-<commit>.bin``, oldest first (its SOURCES.md says where each
came from). Each consecutive pair becomes two dfu.bin files that differ only in the app: the
demo project's bootloader (the same bytes in both, so never sent), a partition table whose
factory partition holds the series' largest app, and the app at 0x10000. Then
``compose(new, base)`` gives what a board holding the base is sent, and the ROM's model (the
simulator's receiver) checks that this delta leaves the base's flash as the whole new file
does, byte for byte. Without a folder nothing is measured: it says how to make one.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from espdfu.demo.project import PARTITIONS, bootloader_image
from espdfu.files import dfufile
from espdfu.files.delta import compose, incomparable
from espdfu.files.dfufile import FlashFile
from espdfu.files.espimage import MAGIC, read_image
from espdfu.files.partitions import write_table
from espdfu.sim.receiver import Receiver
from run import Row, Section, markdown_table

ENV = "ESPDFU_REAL_IMAGES"
CHIPS = {2: ("ESP32-S2", 0x0002, 0x1000), 9: ("ESP32-S3", 0x0009, 0x0)}
"""The chip id at offset 12 of an image header: its name, the dfu.bin's PID, the bootloader's
address."""
CHIP_ID_AT = 12
TABLE_AT = 0x8000
APP_AT = 0x10000
APP_ALIGN = 64 * 1024
MIN_APP_PARTITION = 1024 * 1024
FLASH = 16 * 1024 * 1024
BLOCK = 64
"""The ROM's DFU transfer size: the receiver is fed as the host sends."""
MOSTLY = 90.0
"""A pair sending at least this % of its app is one where a delta saves next to nothing."""
MB = 1e6

HOW_TO = f"""\
Nothing measured: no folder of real images. Name one as the argument or in ${ENV}:
one sub-folder per series (at any depth), each holding the versions of one app image as
<n>-<commit>.bin, oldest first (n orders them). To make one, take an app binary committed to a
repository's history, for instance

    git log --reverse --format=%H -- build/app.bin
    git show COMMIT:build/app.bin > FOLDER/owner+repo/build+app.bin/1-COMMIT.bin

keeping only ESP32-S2/S3 images (byte 0 is 0xE9; byte 12 is 2 or 9)."""


@dataclass(frozen=True)
class Version:
    """One image of a series."""

    label: str
    """``3-5ca2cd0``: its file's name."""
    data: bytes

    @property
    def chip_id(self) -> int:
        return self.data[CHIP_ID_AT]

    @property
    def idf_version(self) -> str | None:
        image = read_image(self.data, app=True)
        return image.app.idf_version if image is not None and image.app is not None else None

    @property
    def words(self) -> str:
        image = read_image(self.data, app=True)
        if image is None or image.app is None:
            return "no app description"
        app = image.app
        return f"{app.project} {app.version} (ESP-IDF {app.idf_version})"


@dataclass(frozen=True)
class Pair:
    """What a delta from ``base`` to ``new`` sends."""

    series: str
    base: Version
    new: Version
    sent: int
    total: int
    sectors: int
    runs: int
    same_flash: bool

    @property
    def app(self) -> int:
        return len(self.new.data)

    @property
    def percent(self) -> float:
        return 100 * self.sent / self.app

    @property
    def kind(self) -> str:
        if len(self.new.data) == len(self.base.data):
            return "same image length"
        new, base = self.new.idf_version, self.base.idf_version
        if new is not None and base is not None and new != base:
            return "ESP-IDF version differs"
        return "the rest"

    @property
    def name(self) -> str:
        return f"{self.series}: {self.base.label} → {self.new.label}"


@dataclass(frozen=True)
class Measured:
    pairs: tuple[Pair, ...]
    skipped: tuple[str, ...]
    """Why pairs (or images) were left out."""


# --- the images ---------------------------------------------------------------------------------


def folder_from(argument: str | None) -> Path | None:
    named = argument or os.environ.get(ENV, "")
    return Path(named).expanduser() if named else None


def series_in(folder: Path) -> dict[str, list[Version]]:
    """Each folder holding ``<n>-<commit>.bin`` files: its versions in order of n."""
    found: dict[str, list[Version]] = {}
    numbered = [
        path
        for path in folder.rglob("*.bin")
        if path.is_file() and path.stem.split("-")[0].isdigit()
    ]
    for directory in sorted({path.parent for path in numbered}):
        files = [path for path in numbered if path.parent == directory]
        files.sort(key=lambda path: int(path.stem.split("-")[0]))
        name = str(directory.relative_to(folder))
        found[name] = [Version(path.stem, path.read_bytes()) for path in files]
    return found


def dfu(app: bytes, chip_id: int, app_partition: int) -> bytes:
    """A dfu.bin of the demo's bootloader, a table whose factory partition is
    ``app_partition`` bytes, and ``app``."""
    _, pid, bootloader_at = CHIPS[chip_id]
    *others, factory = PARTITIONS
    table = write_table([*others, replace(factory, offset=APP_AT, size=app_partition)])
    flash_size = dfufile.fitting_flash_size(APP_AT + app_partition) or "16MB"
    files = [
        FlashFile(bootloader_at, "bootloader.bin", bootloader_image()),
        FlashFile(TABLE_AT, "partition-table.bin", table),
        FlashFile(APP_AT, "app.bin", app),
    ]
    return dfufile.pack(files, pid=pid, flash_size=dfufile.FLASH_SIZES[flash_size])


def flashed(flash: bytearray, data: bytes) -> None:
    """Write the dfu.bin ``data`` into ``flash`` as the ROM's model does."""
    if not data:
        return
    receiver = Receiver(flash)
    payload = memoryview(data)[: -dfufile.SUFFIX_LEN]
    for start in range(0, len(payload), BLOCK):
        fed = receiver.feed(payload[start : start + BLOCK])
        if fed.status.name != "OK":
            raise RuntimeError(f"the receiver refused a block: {fed.status.name}")
    if not receiver.complete:
        raise RuntimeError("the receiver did not see the archive's end")


def measure(folder: Path, check: bool = True) -> Measured:
    pairs: list[Pair] = []
    skipped: list[str] = []
    for series, versions in series_in(folder).items():
        usable = []
        for version in versions:
            if not version.data or version.data[0] != MAGIC:
                skipped.append(f"{series}/{version.label}: not an ESP image")
            elif len(version.data) <= CHIP_ID_AT or version.chip_id not in CHIPS:
                skipped.append(f"{series}/{version.label}: not an ESP32-S2/S3 image")
            else:
                usable.append(version)
        if not usable:
            continue
        largest = max(len(version.data) for version in usable)
        partition = max(MIN_APP_PARTITION, -(-largest // APP_ALIGN) * APP_ALIGN)
        for base, new in itertools.pairwise(usable):
            if base.data == new.data:
                skipped.append(f"{series}: {base.label} → {new.label}: the same bytes")
                continue
            if base.chip_id != new.chip_id:
                skipped.append(f"{series}: {base.label} → {new.label}: another chip")
                continue
            old_bytes = dfu(base.data, base.chip_id, partition)
            new_bytes = dfu(new.data, new.chip_id, partition)
            old_file, new_file = dfufile.parse(old_bytes), dfufile.parse(new_bytes)
            why = incomparable(new_file, old_file)
            if why:
                skipped.append(f"{series}: {base.label} → {new.label}: {why}")
                continue
            delta = compose(new_file, old_file)
            same = True
            if check:
                flash = bytearray(b"\xff" * FLASH)
                flashed(flash, old_bytes)
                by_delta = bytearray(flash)
                flashed(by_delta, delta.file)
                flashed(flash, new_bytes)
                same = by_delta == flash
            pairs.append(
                Pair(
                    series, base, new, delta.sent, delta.total, delta.sectors, len(delta.runs), same
                )
            )
    return Measured(tuple(pairs), tuple(skipped))


# --- the figures ----------------------------------------------------------------------------------


def summary(name: str, pairs: Sequence[Pair]) -> list[str]:
    """A table row: pairs, MB of new apps, MB sent, % sent, median %, pairs ≥ 90 %, min, max."""
    apps = sum(pair.app for pair in pairs)
    sent = sum(pair.sent for pair in pairs)
    percents = [pair.percent for pair in pairs]
    return [
        name,
        str(len(pairs)),
        f"{apps / MB:.2f}",
        f"{sent / MB:.2f}",
        f"{100 * sent / apps:.1f}",
        f"{statistics.median(percents):.1f}",
        str(sum(percent >= MOSTLY for percent in percents)),
        f"{min(percents):.1f}",
        f"{max(percents):.1f}",
    ]


HEADERS = ["Series", "Pairs", "MB new", "MB sent", "% sent", "Median %", "≥ 90 %", "Min %", "Max %"]
KINDS = ("same image length", "ESP-IDF version differs", "the rest")


def report(measured: Measured, show_pairs: bool = False) -> Section:
    pairs = measured.pairs
    if not pairs:
        return Section("Only what changed, on real builds", "No pair of images to compare.")
    by_series: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_series.setdefault(pair.series, []).append(pair)
    chips = {
        series: "/".join(sorted({CHIPS[p.new.chip_id][0] for p in members}))
        for series, members in by_series.items()
    }
    table = markdown_table(
        HEADERS,
        [summary(f"{series} ({chips[series]})", members) for series, members in by_series.items()]
        + [summary("**total**", pairs)],
    )
    kinds = markdown_table(
        ["Kind of change", *HEADERS[1:]],
        [
            summary(kind, [p for p in pairs if p.kind == kind])
            for kind in KINDS
            if any(p.kind == kind for p in pairs)
        ],
    )
    floor = min(pairs, key=lambda pair: (pair.sectors, pair.sent))
    fewest = [pair for pair in pairs if pair.sectors == floor.sectors]
    failures = [pair for pair in pairs if not pair.same_flash]
    whole = sum(pair.total for pair in pairs)
    sent = sum(pair.sent for pair in pairs)
    apps = sum(pair.app for pair in pairs)
    idf_and_length = sum(
        1
        for p in pairs
        if len(p.new.data) == len(p.base.data) and p.new.idf_version != p.base.idf_version
    )
    unknown = sum(1 for p in pairs if p.new.idf_version is None or p.base.idf_version is None)
    skipped = "".join(f"\n- {why}" for why in measured.skipped) or " none."
    body = f"""\
{len(pairs)} pairs of consecutive app images from {len(by_series)} series. "MB new" counts the \
new app images' bytes; "% sent" is the bytes `compose` sends (its runs of changed 4 KiB \
sectors, the last one cut where the image ends) over those bytes; "≥ 90 %" counts the pairs \
that send at least {MOSTLY:.0f} % of their new app. Counting the bootloader and partition table \
a whole flash also writes ({(whole - apps) / MB:.2f} MB in all; the same in both files, so \
never sent), the deltas send {100 * sent / whole:.1f} % of the {whole / MB:.2f} MB the whole \
files write.

{table}

By kind of change, told from the images: the same image length; else a different `idf_version` \
in the app description of both (an ESP-IDF, Arduino core or CircuitPython port update); else the \
rest. {idf_and_length} pairs of the same length have another `idf_version`; {unknown} pairs have \
an image without an app description (counted with the rest):

{kinds}

The floor, the fewest sectors a pair sent: {floor.sectors} ({floor.sent:,} bytes, \
{floor.percent:.1f} % of {floor.app:,}), by {len(fewest)} pair{"s" if len(fewest) != 1 else ""}: \
{"; ".join(pair.name for pair in fewest)}.

Byte for byte, the base's flash with the delta applied against it with the whole new file \
written (the ROM's model, {BLOCK}-byte blocks, {FLASH // (1024 * 1024)} MiB flash): \
{len(pairs) - len(failures)} of {len(pairs)} the same, {len(failures)} failure\
{"s" if len(failures) != 1 else ""}{": " + "; ".join(p.name for p in failures) if failures else ""}.

Left out:{skipped}"""
    if show_pairs:
        body += "\n\n" + markdown_table(
            ["Pair", "Kind", "Old bytes", "New bytes", "Sectors", "Runs", "Sent", "%", "New app"],
            [
                [
                    p.name,
                    p.kind,
                    f"{len(p.base.data):,}",
                    f"{p.app:,}",
                    str(p.sectors),
                    str(p.runs),
                    f"{p.sent:,}",
                    f"{p.percent:.1f}",
                    p.new.words,
                ]
                for p in pairs
            ],
        )
    percents = [pair.percent for pair in pairs]
    rows = [
        Row("pairs", str(len(pairs))),
        Row("sent / new apps", f"{100 * sent / apps:.1f} %"),
        Row("median pair", f"{statistics.median(percents):.1f} %"),
        Row(f"pairs sending ≥ {MOSTLY:.0f} %", f"{sum(p >= MOSTLY for p in percents)}"),
        Row("fewest sectors sent", f"{floor.sectors}"),
        Row("delta flash = whole flash", f"{len(failures)} failures", "0", not failures),
    ]
    return Section("Only what changed, on real builds", body, rows)


def run(quick: bool) -> Section:
    """For run.py: the folder from ``$ESPDFU_REAL_IMAGES``; ``quick`` changes nothing (the
    figures are counts, not timings)."""
    folder = folder_from(None)
    if folder is None or not folder.is_dir():
        return Section("Only what changed, on real builds", HOW_TO)
    return report(measure(folder))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folder", nargs="?", help=f"the images (default: ${ENV})")
    parser.add_argument("--pairs", action="store_true", help="also list every pair")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the byte-for-byte check through the ROM model"
    )
    args = parser.parse_args(argv)
    folder = folder_from(args.folder)
    if folder is None:
        print(HOW_TO)
        return 0
    if not folder.is_dir():
        print(f"{folder} is not a folder.\n\n{HOW_TO}")
        return 0
    section = report(measure(folder, check=not args.no_check), show_pairs=args.pairs)
    print(f"== {section.title} ==\n\n{section.body.strip()}\n")
    if section.rows:
        print(
            markdown_table(
                ["Figure", "Value", "Goal", "Status"],
                [[row.name, row.value, row.goal, row.status] for row in section.rows],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
