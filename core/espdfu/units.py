"""Sizes and addresses written the way people read them, and read back the same way."""

from __future__ import annotations

import re

_UNITS = ("bytes", "KB", "MB", "GB")
_SIZE = re.compile(r"(0x[0-9a-f]+|\d+)\s*(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE | re.ASCII)
_MULTIPLES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def format_size(n: int) -> str:
    """``4194304`` → "4 MB", ``1536`` → "1.5 KB", ``10`` → "10 bytes", ``1`` → "1 byte"
    (binary multiples)."""
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "bytes":
        return "1 byte" if n == 1 else f"{n:,} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def parse_size(text: str) -> int | None:
    """A size in bytes as people write it, None when it is not one: "4096", "0x1000", "64K",
    "64KB", "64KiB", "4M", "4MB" (binary multiples, as ESP-IDF means them in "4MB")."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1), 0) * _MULTIPLES[(match.group(2) or "").lower()]
