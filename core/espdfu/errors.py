"""The one exception family the core raises for foreseeable faults.

Every error carries a sentence for people (``message``) and, where there is one, what to do
about it (``hint``). Front ends print both and never a traceback.
"""

from __future__ import annotations


class EspdfuError(Exception):
    """A fault the user can understand and act on."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class DfuFormatError(EspdfuError):
    """The bytes are not a valid ESP-IDF dfu.bin."""


class InputError(EspdfuError):
    """An input file or folder cannot be read or does not make sense (not a dfu.bin)."""


def printable(text: str) -> str:
    """``text`` from a file, safe to show: control characters (a terminal's escape sequences
    among them) are written escaped, as ``\\x1b``, never sent to the terminal."""
    if text.isprintable():
        return text
    text = text.translate(_CONTROLS)  # the usual ones at C speed, the rarer ones below
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


_CONTROLS = {code: ascii(chr(code))[1:-1] for code in (*range(0x20), *range(0x7F, 0xA0))}
