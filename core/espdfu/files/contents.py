"""What a dfu.bin writes to flash, read as the chip will boot it: the 2nd-stage bootloader at
the ROM's offset, the partition table, an app at each app partition it fills.

Only what goes where an image is booted is judged as an image (the bootloader's address, app
partitions; without a partition table in the file, what starts with the image magic); data
(NVS, file systems, certificates) never is. ``problems`` says, one sentence each, why the board
would not boot what the file writes; ``--force`` flashes it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..chips import CHIPS, Chip
from ..jsonable import as_json
from .espimage import AppDesc, EspImage, chip_name, is_image, read_image
from .partitions import Partition, PartitionTable, is_table, read_table

if TYPE_CHECKING:  # dfufile reads a file's contents through this module
    from .dfufile import DfuImage


@dataclass(frozen=True)
class Region:
    """Bytes written at one address: the file's entries there, parts joined."""

    address: int
    name: str
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


@dataclass(frozen=True)
class Placed:
    """An image where it will be booted from."""

    address: int
    name: str
    role: str
    """``bootloader``, or the app partition's label (``factory``, ``ota_0``), or ``app``."""
    image: EspImage
    partition: Partition | None = None


@dataclass(frozen=True)
class Contents:
    images: tuple[Placed, ...]
    table: PartitionTable | None
    table_at: int | None
    problems: tuple[str, ...]

    @property
    def app(self) -> AppDesc | None:
        """What the board boots first: the app of the lowest app partition the file fills."""
        apps = [p.image.app for p in self.images if p.role != "bootloader" and p.image.app]
        return apps[0] if apps else None

    def as_dict(self) -> dict[str, object]:
        return {
            "images": [
                {"address": p.address, "name": p.name, "role": p.role, **as_json(p.image)}
                for p in self.images
            ],
            "partition_table": None
            if self.table is None
            else {
                "address": self.table_at,
                "md5_ok": self.table.md5_ok,
                "partitions": [p.as_dict() for p in self.table.partitions],
            },
            "boot_problems": list(self.problems),
        }


_BOOTLOADER_AT = frozenset(chip.bootloader_at for chip in CHIPS)
REBUILD = "Rebuild the project (`idf.py dfu`) and flash the new dfu.bin."


def regions(image: DfuImage) -> list[Region]:
    """The file's entries joined where one continues the next (mkdfu splits large images)."""
    joined: list[Region] = []
    payload = image.payload
    for entry in sorted(image.entries, key=lambda e: e.address):
        data = payload[entry.start : entry.start + entry.size]
        if joined and joined[-1].end == entry.address:
            last = joined[-1]
            joined[-1] = Region(last.address, last.name, last.data + data)
        else:
            joined.append(Region(entry.address, entry.name, data))
    return joined


def read_contents(image: DfuImage) -> Contents:
    """What ``image`` writes, as the chip its suffix names will boot it."""
    chip = image.chip
    found = regions(image)
    problems: list[str] = []
    table_region = next((r for r in found if is_table(r.data)), None)
    table = None
    if table_region is not None:
        table = read_table(table_region.data)
        problems += [f"{table_region.name}: {p}." for p in table.problems] if table else []
    placed: list[Placed] = []
    for region in found:
        role = _role(region, chip, table)
        if role is None:
            continue
        what, partition = role
        esp = read_image(region.data, app=what != "bootloader")
        if esp is None:
            problems.append(
                f"{region.name} at 0x{region.address:x} is not an ESP image (no magic byte "
                f"0xE9), but the {_where(what, partition)} boots from there."
            )
            continue
        placed.append(Placed(region.address, region.name, what, esp, partition))
        problems += _judge(region, what, esp, partition, chip)
    return Contents(
        tuple(placed),
        table,
        table_region.address if table_region is not None else None,
        tuple(problems),
    )


def _role(
    region: Region, chip: Chip | None, table: PartitionTable | None
) -> tuple[str, Partition | None] | None:
    """What boots ``region`` (the ROM: the bootloader; the bootloader: an app), or None: data.
    Without a partition table in the file, only what starts with the image magic is judged; a
    file for any chip (PID 0xFFFF) may hold a bootloader at any chip's offset."""
    if table is None and not is_image(region.data):
        return None
    if region.address in ({chip.bootloader_at} if chip else _BOOTLOADER_AT):
        return "bootloader", None
    if table is None:
        return "app", None
    for partition in table.apps:
        if partition.offset == region.address:
            return partition.label or "app", partition
    return None


def _where(role: str, partition: Partition | None) -> str:
    """Who boots it: the ROM (the bootloader), the bootloader (an app)."""
    if role == "bootloader":
        return "ROM"
    return f"bootloader (partition {partition.label!r})" if partition else "bootloader"


def _judge(
    region: Region, role: str, esp: EspImage, partition: Partition | None, chip: Chip | None
) -> list[str]:
    at = f"{region.name} at 0x{region.address:x}"
    problems = [f"{at} would not boot: {problem}." for problem in esp.problems]
    if chip is not None and esp.chip_id != chip.image_id:
        problems.append(
            f"{at} is built for {chip_name(esp.chip_id)} but the file is for {chip.name}: "
            f"the {_where(role, partition)} refuses it."
        )
    if partition is not None and esp.length > partition.size:
        problems.append(
            f"{at} is {esp.length:,} bytes, larger than its partition {partition.label!r} "
            f"({partition.size:,} bytes): the bootloader refuses it."
        )
    return problems
