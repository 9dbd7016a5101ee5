"""ESP-IDF partition tables (``gen_esp32part.py``'s binary format), read and written.

A table is a run of 32-byte entries (magic 0xAA50, type, subtype, offset, size, a 16-byte
label, flags), then optionally an MD5 entry (0xEBEB, 14 bytes of 0xFF, the MD5 of the entries
before it), then 0xFF to the end of its 0xC00 bytes. The bootloader looks for it at
``CONFIG_PARTITION_TABLE_OFFSET``, 0x8000 unless the project moved it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

ENTRY = struct.Struct("<2sBBII16sI")
MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
MAX_LENGTH = 0xC00
APP, DATA = 0x00, 0x01
_APP_SUBTYPES = {0x00: "factory", 0x20: "test", **{0x10 + n: f"ota_{n}" for n in range(16)}}
_DATA_SUBTYPES = {
    0x00: "ota", 0x01: "phy", 0x02: "nvs", 0x03: "coredump", 0x04: "nvs_keys", 0x05: "efuse",
    0x06: "undefined", 0x80: "esphttpd", 0x81: "fat", 0x82: "spiffs", 0x83: "littlefs",
}  # fmt: skip
_TYPES = {APP: "app", DATA: "data", 0x02: "bootloader", 0x03: "partition_table"}


@dataclass(frozen=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0

    @property
    def is_app(self) -> bool:
        return self.type == APP

    @property
    def kind(self) -> str:
        """``app/factory``, ``data/nvs``: as the partition CSV names it."""
        kinds = _APP_SUBTYPES if self.type == APP else _DATA_SUBTYPES if self.type == DATA else {}
        return f"{_TYPES.get(self.type, f'0x{self.type:02x}')}/" + kinds.get(
            self.subtype, f"0x{self.subtype:02x}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "type": self.kind.split("/")[0],
            "subtype": self.kind.split("/")[1],
            "offset": self.offset,
            "size": self.size,
            "flags": self.flags,
        }


@dataclass(frozen=True)
class PartitionTable:
    partitions: tuple[Partition, ...]
    md5_ok: bool | None
    """None: the table has no MD5 entry (``--disable-md5sum``)."""
    problems: tuple[str, ...]

    @property
    def apps(self) -> tuple[Partition, ...]:
        return tuple(p for p in self.partitions if p.is_app)


def is_table(data: bytes) -> bool:
    return data[:2] == MAGIC


def read_table(data: bytes) -> PartitionTable | None:
    """The table at the start of ``data`` (None when it does not start with an entry)."""
    if not is_table(data):
        return None
    partitions: list[Partition] = []
    md5_ok: bool | None = None
    problems: list[str] = []
    at = 0
    while at + ENTRY.size <= min(len(data), MAX_LENGTH):
        raw = data[at : at + ENTRY.size]
        if raw[:2] == MD5_MAGIC:
            md5_ok = raw[16:] == hashlib.md5(data[:at]).digest()
            if not md5_ok:
                problems.append("the partition table's MD5 does not match its entries")
            break
        if raw[:2] != MAGIC:
            if raw != b"\xff" * ENTRY.size:
                problems.append(f"the partition table has a broken entry at 0x{at:x}")
            break
        _, kind, subtype, offset, size, label, flags = ENTRY.unpack(raw)
        name = label.split(b"\0", 1)[0].decode("utf-8", "replace")
        partitions.append(Partition(name, kind, subtype, offset, size, flags))
        at += ENTRY.size
    return PartitionTable(tuple(partitions), md5_ok, tuple(problems))


def write_table(partitions: Sequence[Partition], *, md5: bool = True) -> bytes:
    """``partitions`` as ``gen_esp32part.py`` writes them, padded with 0xFF to 0xC00 bytes."""
    body = b"".join(
        ENTRY.pack(MAGIC, p.type, p.subtype, p.offset, p.size, p.label.encode()[:16], p.flags)
        for p in partitions
    )
    if md5:
        body += MD5_MAGIC + b"\xff" * 14 + hashlib.md5(body).digest()
    return body + b"\xff" * (MAX_LENGTH - len(body))
