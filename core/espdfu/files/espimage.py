"""ESP firmware images (the bootloader, an app) as the chip reads them, and how to write one.

The layout is ESP-IDF's ``esp_app_format.h`` (``esp_image_header_t``, 24 bytes; segment headers,
8 bytes each) and ``esp_app_desc.h`` (``esp_app_desc_t``, 256 bytes at the start of an app's
first segment); the checks are those of the bootloader's ``esp_image_format.c`` that need no
chip: the magic, at most 16 segments, segment lengths a multiple of 4, an app's first segment
long enough for its description, the checksum (XOR of the segments' data, seeded 0xEF, in the
last byte of a 16-byte padding) and the SHA-256 appended when ``hash_appended`` is set. The
load addresses are not checked against each chip's memory map. esptool reads the same images
(its ``image-info``); the tests check this reader against it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MAGIC = 0xE9
HEADER = struct.Struct("<BBBBIB3sHBHH4sB")  # esp_image_header_t
SEGMENT = struct.Struct("<II")  # esp_image_segment_header_t: load address, length
MAX_SEGMENTS = 16
CHECKSUM_SEED = 0xEF
HASH_LEN = 32
APP_DESC = struct.Struct("<II8x32s32s16s16s32s32sHHBB2x72x")  # esp_app_desc_t
APP_DESC_MAGIC = 0xABCD5432
APP_DESC_AT = HEADER.size + SEGMENT.size
"""An app's esp_app_desc_t starts its first segment: right after the two headers (0x20)."""
_MAX_SEGMENT_LEN = 16 * 1024 * 1024  # ESP_IMAGE_MAX_FLASH_ADDR_SIZE on these chips
CHIP_NAMES = {
    0x00: "esp32", 0x02: "esp32s2", 0x05: "esp32c3", 0x09: "esp32s3", 0x0C: "esp32c2",
    0x0D: "esp32c6", 0x10: "esp32h2", 0x12: "esp32p4", 0x14: "esp32c61", 0x17: "esp32c5",
    0x19: "esp32h21", 0x1C: "esp32h4", 0x20: "esp32s31",
}  # fmt: skip
"""``esp_chip_id_t`` (esp_app_format.h): which chip an image's header names."""


def chip_name(chip_id: int) -> str:
    return CHIP_NAMES.get(chip_id, f"chip id 0x{chip_id:04x}")


@dataclass(frozen=True)
class AppDesc:
    """What an ESP-IDF app says of itself (``esp_app_desc_t``), as its start-up prints it."""

    project: str
    version: str
    idf_version: str
    date: str
    time: str
    elf_sha256: bytes
    secure_version: int = 0

    @property
    def elf_prefix(self) -> str:
        """The 16 hex digits the app prints at start-up (``ELF file SHA256:  3e4a…``)."""
        return self.elf_sha256.hex()[:16]

    @property
    def words(self) -> str:
        """``espdfu-demo 1.2 · ESP-IDF v5.3 · built Dec  7 2026 12:03:11 · ELF 3e4a2b1c…``."""
        return self._said(" ".join(part for part in (self.date, self.time) if part))

    @property
    def brief(self) -> str:
        """As :attr:`words` without the build time (a dfu.bin's age says it, where this is
        shown): ``espdfu-demo 1.2 · ESP-IDF v5.3 · ELF 3e4a2b1c…``."""
        return self._said("")

    def _said(self, built: str) -> str:
        parts = [f"{self.project} {self.version}".strip(), f"ESP-IDF {self.idf_version}"]
        if built:
            parts.append(f"built {built}")
        parts.append(f"ELF {self.elf_sha256.hex()[:8]}…")
        return " · ".join(parts)


@dataclass(frozen=True)
class Segment:
    load_address: int
    offset: int
    """Where its data starts in the image."""
    length: int


@dataclass(frozen=True)
class EspImage:
    """An image as read, and what the bootloader (or the ROM, for the bootloader) would refuse
    in it: ``problems``, in words close to the bootloader's own, empty when it would load it."""

    chip_id: int
    entry: int
    spi_mode: int
    spi_speed: int
    spi_size: int
    min_rev: int
    """The lowest chip revision it runs on, major * 100 + minor."""
    max_rev: int
    hash_appended: bool
    segments: tuple[Segment, ...]
    length: int
    """Its bytes up to the checksum's padding and the hash (what a partition must hold)."""
    checksum_ok: bool
    sha256: bytes | None
    """The SHA-256 appended to it (None when not appended, or cut off)."""
    sha256_ok: bool | None
    app: AppDesc | None
    problems: tuple[str, ...]


def is_image(data: bytes) -> bool:
    """Whether ``data`` starts like an ESP image (its magic byte)."""
    return bool(data) and data[0] == MAGIC


def read_image(data: bytes, *, app: bool) -> EspImage | None:
    """The image at the start of ``data`` (None without the magic byte: not an image at all).

    ``app``: read as an application (its first segment holds an esp_app_desc_t), not as the
    2nd-stage bootloader. Never raises: what the bootloader would refuse is in ``problems``.
    """
    if not is_image(data):
        return None
    if len(data) < HEADER.size:
        return _broken(f"the image is cut off in its header ({len(data)} of {HEADER.size} bytes)")
    (_, count, mode, speed_size, entry, _, _, chip_id, _, min_rev, max_rev, _, hashed) = (
        HEADER.unpack_from(data)
    )
    problems: list[str] = []
    if count > MAX_SEGMENTS:
        problems.append(f"segment count {count} exceeds max {MAX_SEGMENTS}")
        count = 0
    segments: list[Segment] = []
    checksum = CHECKSUM_SEED
    at = HEADER.size
    for index in range(count):
        if at + SEGMENT.size > len(data):
            problems.append(f"the image is cut off in segment {index}'s header")
            break
        load, length = SEGMENT.unpack_from(data, at)
        at += SEGMENT.size
        if length % 4 or length >= _MAX_SEGMENT_LEN:
            problems.append(f"invalid segment length 0x{length:x}")
            break
        if at + length > len(data):
            problems.append(
                f"the image is cut off in segment {index} ({len(data) - at} of {length} bytes)"
            )
            break
        if index == 0 and app and length < APP_DESC.size:
            problems.append(f"Segment 0: length 0x{length:x} is too short for app description")
        segments.append(Segment(load, at, length))
        checksum ^= _xor(data[at : at + length])
        at += length
    whole = not problems
    end = (at + 16) & ~15  # the checksum byte ends a 16-byte block
    checksum_ok = whole and end <= len(data) and data[end - 1] == checksum
    if whole and end > len(data):
        problems.append("the image is cut off before its checksum")
        whole = False
    elif whole and not checksum_ok:
        problems.append(f"Checksum failed. Calculated 0x{checksum:02x} read 0x{data[end - 1]:02x}")
    sha256: bytes | None = None
    sha256_ok: bool | None = None
    if hashed and whole:
        if end + HASH_LEN > len(data):
            problems.append("the image is cut off in its appended SHA-256")
        else:
            sha256 = data[end : end + HASH_LEN]
            sha256_ok = hashlib.sha256(data[:end]).digest() == sha256
            if not sha256_ok:
                problems.append("Image hash failed - image is corrupt")
            end += HASH_LEN
    return EspImage(
        chip_id=chip_id,
        entry=entry,
        spi_mode=mode,
        spi_speed=speed_size & 0xF,
        spi_size=speed_size >> 4,
        min_rev=min_rev,
        max_rev=max_rev,
        hash_appended=bool(hashed),
        segments=tuple(segments),
        length=end,
        checksum_ok=checksum_ok,
        sha256=sha256,
        sha256_ok=sha256_ok,
        app=_app_desc(data, segments) if app else None,
        problems=tuple(problems),
    )


def _broken(problem: str) -> EspImage:
    return EspImage(0xFFFF, 0, 0, 0, 0, 0, 0, False, (), 0, False, None, None, None, (problem,))


def _xor(data: bytes) -> int:
    """The XOR of all bytes of ``data``, at C speed (big-integer XOR of its two halves)."""
    value = int.from_bytes(data, "little")
    size = len(data)
    while size > 1:
        half = (size + 1) // 2
        value = (value & ((1 << (8 * half)) - 1)) ^ (value >> (8 * half))
        size = half
    return value & 0xFF


def _app_desc(data: bytes, segments: Sequence[Segment]) -> AppDesc | None:
    if not segments or segments[0].length < APP_DESC.size:
        return None
    fields = APP_DESC.unpack_from(data, segments[0].offset)
    magic, secure, version, project, built_time, built_date, idf, elf = fields[:8]
    if magic != APP_DESC_MAGIC:
        return None
    return AppDesc(
        project=_text(project),
        version=_text(version),
        idf_version=_text(idf),
        date=_text(built_date),
        time=_text(built_time),
        elf_sha256=elf,
        secure_version=secure,
    )


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


# --- writing ------------------------------------------------------------------------------------


def app_desc_bytes(desc: AppDesc) -> bytes:
    """``desc`` as the 256 bytes of an esp_app_desc_t."""
    return APP_DESC.pack(
        APP_DESC_MAGIC,
        desc.secure_version,
        desc.version.encode()[:31],
        desc.project.encode()[:31],
        desc.time.encode()[:15],
        desc.date.encode()[:15],
        desc.idf_version.encode()[:31],
        desc.elf_sha256,
        0,
        0,
        16,  # mmu_page_size: log2 of 64 KiB
        2,  # spi_flash_mode: DIO
    )


def write_image(
    chip_id: int,
    segments: Sequence[tuple[int, bytes]],
    *,
    entry: int,
    spi: tuple[int, int, int] = (2, 0xF, 2),
    revs: tuple[int, int] = (0, 0xFFFF),
    hash_appended: bool = True,
) -> bytes:
    """An image of ``segments`` ((load address, data), each a multiple of 4 bytes) as ESP-IDF's
    build writes it: ``spi`` is (mode, speed, size) of the header (DIO, 80 MHz, 4 MB)."""
    mode, speed, size = spi
    header = HEADER.pack(
        MAGIC, len(segments), mode, speed | size << 4, entry, 0xEE, bytes(3), chip_id,
        revs[0] // 100, revs[0], revs[1], bytes(4), int(hash_appended),
    )  # fmt: skip
    body = bytearray(header)
    checksum = CHECKSUM_SEED
    for load, data in segments:
        if len(data) % 4:
            raise ValueError("a segment's length must be a multiple of 4")
        body += SEGMENT.pack(load, len(data)) + data
        checksum ^= _xor(data)
    body += bytes(15 - len(body) % 16) + bytes([checksum])
    if hash_appended:
        body += hashlib.sha256(body).digest()
    return bytes(body)
