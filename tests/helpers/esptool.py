"""esptool's ``image-info``, the outside reference for ESP images: what it says of a file."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EsptoolView:
    """The facts ``esptool image-info`` prints, as it prints them."""

    output: str
    chip_id: int | None = None
    entry: int | None = None
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    """(length, load address, file offset of the segment's header) per segment."""
    checksum_valid: bool | None = None
    hash_hex: str | None = None
    hash_valid: bool | None = None
    app: dict[str, str] = field(default_factory=dict)
    """Its "Application Information" lines: Project name, App version, Compile time…"""


def image_info(path: Path) -> EsptoolView:
    """Run ``python -m esptool image-info PATH`` (the installed esptool) and read its output."""
    done = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    view = EsptoolView(output)
    if match := re.search(r"^Chip ID: (\d+)", output, re.M):
        view.chip_id = int(match[1])
    if match := re.search(r"^Entry point: (0x[0-9a-f]+)", output, re.M):
        view.entry = int(match[1], 16)
    for row in re.finditer(
        r"^\s+\d+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s", output, re.M
    ):
        view.segments.append((int(row[1], 16), int(row[2], 16), int(row[3], 16)))
    if match := re.search(r"^Checksum: 0x[0-9a-f]+ \((valid|invalid)", output, re.M):
        view.checksum_valid = match[1] == "valid"
    if match := re.search(r"^Validation hash: ([0-9a-f]{64}) \((valid|invalid)", output, re.M):
        view.hash_hex, view.hash_valid = match[1], match[2] == "valid"
    info = output.split("Application Information", 1)
    if len(info) == 2:
        for line in info[1].splitlines():
            key, colon, value = line.partition(": ")
            if colon:
                view.app[key.strip()] = value.strip()
    return view
