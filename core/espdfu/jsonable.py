"""Records as JSON-ready data, one rule for every ``--json`` that prints a record whole."""

from __future__ import annotations

import dataclasses
from typing import Any


def as_json(record: Any) -> dict[str, object]:
    """A dataclass's fields by name: bytes as hex, tuples as lists, dataclasses inside alike."""
    return {field.name: _value(getattr(record, field.name)) for field in dataclasses.fields(record)}


def _value(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_json(value)
    return value
