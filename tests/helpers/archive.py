"""An independent, minimal dfu.bin maker for tests: crafts valid and deliberately broken files.

Written from the format description rather than by calling the writer under test, so the
reader is checked against a second implementation.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

DFUINFO = struct.Struct("<II64s16s")


def cpio_member(name: bytes, data: bytes, *, trailer: bool = False) -> bytes:
    mode = 0 if trailer else 0o100644
    nlink = 1 if trailer else 0
    fields = [0, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(b"%08x" % value for value in fields) + name + b"\0"
    header += b"\0" * (-len(header) % 4)
    return header + data + b"\0" * (-len(data) % 4)


def record(
    address: int, name: bytes, data: bytes, flags: int = 0, md5: bytes | None = None
) -> bytes:
    digest = hashlib.md5(data).digest() if md5 is None else md5
    return DFUINFO.pack(address, flags, name, digest)


def archive(records: list[bytes], members: list[tuple[bytes, bytes]], pad: bool = True) -> bytes:
    """dfuinfo0.dat holding ``records``, then ``members``, then the trailer, padded to 10240."""
    body = cpio_member(b"dfuinfo0.dat", b"".join(records))
    body += b"".join(cpio_member(name, data) for name, data in members)
    body += cpio_member(b"TRAILER!!!", b"", trailer=True)
    if pad:
        body += b"\0" * (-len(body) % 10240)
    return body


def with_suffix(payload: bytes, pid: int = 2, vid: int = 0x303A) -> bytes:
    """Append a DFU suffix and a correct CRC."""
    data = payload + struct.pack("<HHHH3sB", 0xFFFF, pid, vid, 0x0100, b"UFD", 16)
    return data + struct.pack("<I", 0xFFFFFFFF ^ zlib.crc32(data))


def fix_crc(data: bytes) -> bytes:
    """Recompute the CRC of a file whose bytes were changed on purpose."""
    body = data[:-4]
    return body + struct.pack("<I", 0xFFFFFFFF ^ zlib.crc32(body))


def simple_dfu(files: list[tuple[int, bytes, bytes]], pid: int = 2) -> bytes:
    """A valid legacy-layout dfu.bin from (address, name, data) in the given order."""
    records = [record(address, name, data) for address, name, data in files]
    return with_suffix(archive(records, [(name, data) for _, name, data in files]), pid)


def vector_app() -> bytes:
    """The reproducible 1,200,000-byte app.bin of the vectors' README."""
    blocks = (hashlib.sha256(b"espdfu-vector-%d" % i).digest() for i in range(37500))
    return b"".join(blocks)[:1_200_000]
