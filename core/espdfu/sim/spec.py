"""Which virtual boards to plug in, written as users type it: ``--sim esp32s2*3,esp32s3-jtag``."""

from __future__ import annotations

import re

from ..chips import chip_by_name, dfu_chip_names
from ..errors import InputError
from .board import BoardKind, check_kind

MAX_PER_TERM = 64
MAX_BOARDS = 128
_COUNT = re.compile(r"\d{1,6}", re.ASCII)
_KINDS = {kind.value: kind for kind in BoardKind}
_FORMS = (
    "Write terms CHIP[-KIND][*COUNT] separated by commas, such as 'esp32s2*3,esp32s3-jtag'. "
    f"Chips: {dfu_chip_names()}. Kinds: rom (the default: ROM download mode), dfu, app, "
    f"jtag (esp32s3 only), noaccess, nodriver, nodfudriver. COUNT from 1 to {MAX_PER_TERM}, "
    f"at most {MAX_BOARDS} boards in all."
)


def parse_spec(spec: str) -> list[tuple[str, BoardKind]]:
    """The boards ``spec`` names, one (chip name, kind) per board, in order."""
    if not spec.strip():
        raise InputError("The simulator spec is empty: it names no board.", _FORMS)
    boards: list[tuple[str, BoardKind]] = []
    for term in spec.split(","):
        boards += _read_term(term.strip())
        if len(boards) > MAX_BOARDS:
            raise InputError(
                f"The simulator spec names more than {MAX_BOARDS} boards (up to '{term.strip()}').",
                _FORMS,
            )
    return boards


def _read_term(term: str) -> list[tuple[str, BoardKind]]:
    if not term:
        raise InputError("The simulator spec has an empty term (a stray comma).", _FORMS)
    body, star, count_text = (part.strip() for part in term.partition("*"))
    count = 1
    if star:
        if not _COUNT.fullmatch(count_text) or not 1 <= int(count_text) <= MAX_PER_TERM:
            raise InputError(
                f"In '{term}', the count after '*' must be a whole number from 1 to "
                f"{MAX_PER_TERM}.",
                _FORMS,
            )
        count = int(count_text)
    chip_part, dash, kind_text = body.rpartition("-")
    kind = _KINDS.get(kind_text.lower()) if dash else None
    name = chip_part if kind else body  # "esp32-s3" is a chip; "esp32-s3-dfu" one with a kind
    chip = chip_by_name(name)
    if chip is None:
        if dash and chip_by_name(chip_part):
            raise InputError(f"In '{term}', '{kind_text}' is not a board kind.", _FORMS)
        raise InputError(f"In '{term}', '{name}' is not a chip with USB DFU.", _FORMS)
    kind = kind or BoardKind.ROM
    try:
        check_kind(chip, kind)
    except InputError as error:
        raise InputError(f"In '{term}': {error.message}", _FORMS) from None
    return [(chip.name, kind)] * count
