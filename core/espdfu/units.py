"""Sizes and addresses written the way people read them."""

from __future__ import annotations

_UNITS = ("bytes", "KB", "MB", "GB")


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
