"""Sizes as people write them, read back the one way every option reads them."""

from __future__ import annotations

import pytest

from espdfu.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096), ("0x1000", 4096), ("64K", 65536), ("64kb", 65536), ("64KiB", 65536),
        ("4M", 4 << 20), ("4MB", 4 << 20), ("128mb", 128 << 20), ("1G", 1 << 30),
        (" 2MB ", 2 << 20), ("10b", 10), ("0", 0),
    ],
)  # fmt: skip
def test_sizes_with_and_without_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "4 apples", "4.5M", "M", "0x", "1e6", "4MBB"])
def test_what_is_no_size(text: str) -> None:
    assert parse_size(text) is None


def test_a_size_reads_back_as_written() -> None:
    assert parse_size(format_size(4 << 20).replace(" ", "")) == 4 << 20
