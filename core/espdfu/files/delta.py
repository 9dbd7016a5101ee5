"""Only what changed: a dfu.bin of the 4 KiB sectors in which a new file differs from the one a
board is known to hold (its base), which leaves the board's flash as the whole file would.

The ROM erases each entry's region when its first block arrives, and mkdfu warns that parts not
a multiple of 4 KiB misbehave, so each run of changed sectors is an entry of its own, starting
on a sector and ending on one or where its image ends (as a whole file's last part does). A
sector counts as changed unless the base wrote the same bytes over the same extent of it: a
sector where the base's image ran on past the new one's end is sent, so that the erase leaves
it as the whole file's would. What the board may have rewritten itself since (its data
partitions: otadata, NVS, PHY data, file systems; and whatever the file writes outside the
bootloader, the partition table and its app partitions) is never compared: it goes whole, as
the whole file would put it back. Nothing here checks the base: that the board holds it is the
caller's to know (a boot seen naming its build), and to confirm after.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import PurePath

from ..units import format_size
from .contents import Region, regions
from .dfufile import FLASH_PARAMS_NAME, SECTOR_SIZE, DfuImage, FlashFile, pack, parse

_NAME_BYTES = 56
"""A run's name, cut so that a part number (``.1``) still fits the 64 bytes dfuinfo0.dat keeps."""


@dataclass(frozen=True)
class Run:
    """Bytes sent at one address: changed sectors, or an image sent whole (``whole`` says why)."""

    address: int
    size: int
    source: str
    """The file's image these bytes are of (``app.bin``)."""
    whole: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "size": self.size, "image": self.source,
                "whole": self.whole or None}  # fmt: skip


@dataclass(frozen=True)
class Delta:
    """What goes to a board that holds the base: ``file``, a dfu.bin of ``runs`` (empty when
    nothing changed)."""

    runs: tuple[Run, ...]
    total: int
    """The bytes the whole file writes."""
    sectors: int
    """The sectors changed in the images compared (the rest of ``runs`` goes whole)."""
    file: bytes
    whole: DfuImage = field(repr=False)
    """The file whose changes these are."""

    @property
    def sent(self) -> int:
        return sum(run.size for run in self.runs)

    @property
    def unchanged(self) -> bool:
        return not self.runs

    @cached_property
    def image(self) -> DfuImage:
        """What a flash of it sends: ``file`` as read, its contents the whole file's (what the
        board then boots); when nothing changed, the whole file (a flash asked for anyway)."""
        if self.unchanged:
            return self.whole
        return replace(parse(self.file), whole=self.whole)

    def words(self, since: str = "") -> str:
        """``sending 84 KB of 1.1 MB (12 sectors changed since 12:03)``."""
        when = f" since {since}" if since else ""
        if self.unchanged:
            return f"nothing changed{when}: nothing sent"
        changed = f"{self.sectors} sector{'s' if self.sectors != 1 else ''} changed{when}"
        return f"sending {format_size(self.sent)} of {format_size(self.total)} ({changed})"

    def as_dict(self) -> dict[str, object]:
        return {"mode": "delta", "sent": self.sent, "total": self.total,
                "sectors": self.sectors, "runs": [run.as_dict() for run in self.runs]}  # fmt: skip


def incomparable(new: DfuImage, base: DfuImage) -> str:
    """Why only the changes of ``new`` cannot be sent to a board holding ``base`` ("" if they
    can): another chip, or entries whose flags a delta would not keep."""
    if new.pid != base.pid:
        return f"the base is a file for {base.chip_name}, this one for {new.chip_name}"
    flagged = [e.name for e in new.entries if e.flags and e.name != FLASH_PARAMS_NAME]
    if flagged:
        return f"its {flagged[0]} carries flags that a delta would not keep"
    return ""


def compose(new: DfuImage, base: DfuImage) -> Delta:
    """The changes of ``new`` for a board whose flash holds what ``base`` wrote
    (:func:`incomparable` must say nothing against them)."""
    assert not incomparable(new, base), incomparable(new, base)
    before = {region.address: region.data for region in regions(base)}
    compared = _compared(new)
    runs: list[Run] = []
    sectors = 0
    data_changed = False
    written = regions(new)
    for region in written:
        old = before.get(region.address)
        why = "" if region.address in compared else _data(new, region)
        if not why and region.address % SECTOR_SIZE:
            why = "it does not start on a 4 KiB sector"
        if why:
            runs.append(Run(region.address, len(region.data), region.name, why))
            data_changed |= old != region.data
            continue
        for start, end in _changed(region.data, old or b""):
            sectors += -(-(end - start) // SECTOR_SIZE)
            runs.append(Run(region.address + start, end - start, region.name))
    if not sectors and not data_changed:
        runs = []
    total = sum(len(region.data) for region in written)
    packed = _packed(new, written, runs) if runs else b""
    return Delta(tuple(runs), total, sectors, packed, new)


def _compared(image: DfuImage) -> set[int]:
    """The addresses whose images are compared sector by sector: the bootloader, the partition
    table and the apps the file places, which only a flash writes."""
    contents = image.contents
    compared = {placed.address for placed in contents.images}
    if contents.table_at is not None:
        compared.add(contents.table_at)
    return compared


def _data(image: DfuImage, region: Region) -> str:
    """Why ``region`` is sent whole: the board may have rewritten it since."""
    table = image.contents.table
    for partition in table.partitions if table is not None else ():
        if partition.offset <= region.address < partition.offset + partition.size:
            return f"partition {partition.label!r} ({partition.kind}): the board may rewrite it"
    return "not an image the board boots: the board may rewrite it"


def _changed(new: bytes, old: bytes) -> list[tuple[int, int]]:
    """The runs of sectors (start, end offsets in ``new``) where ``new`` differs from ``old``,
    written from the same address; a sector differs too where ``old`` ran on in it."""
    runs: list[tuple[int, int]] = []
    for start in range(0, len(new), SECTOR_SIZE):
        end = start + SECTOR_SIZE
        if new[start:end] == old[start:end]:
            continue
        stop = min(end, len(new))
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    return runs


def _packed(new: DfuImage, written: list[Region], runs: list[Run]) -> bytes:
    """The dfu.bin of ``runs`` of ``new`` (which writes ``written``): each an entry named for
    its address and image (names the ROM tells apart), with ``new``'s flash parameters."""
    files = []
    flash = {region.address: region.data for region in written}
    for run in runs:
        region_at = max(address for address in flash if address <= run.address)
        offset = run.address - region_at
        data = flash[region_at][offset : offset + run.size]
        name = f"{run.address:x}-{PurePath(run.source).name}".encode()[:_NAME_BYTES]
        files.append(FlashFile(run.address, name.decode(errors="ignore"), data))
    return pack(files, pid=new.pid, flash_size=new.flash_size)
