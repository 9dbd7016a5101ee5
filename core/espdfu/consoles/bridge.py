"""Resetting a board through its USB-UART bridge: into ROM download mode before a flash, into its
app after, with no button pressed.

Espressif's DevKits wire the bridge's DTR and RTS lines to the chip's EN (reset) and GPIO0 (the
boot strapping pin) through two transistors, the auto-program circuit that esptool drives. The
sequences are Espressif's own, from esp-pylib (``esp_pylib.serial_reset``, the one source
esptool and esp-idf-monitor share; docs/choices.md says why it was chosen): the classic
bootloader reset (EN low 100 ms, GPIO0 released 50 ms after EN), its tight form where the port
can set both lines in one call (a real POSIX terminal), and the hard reset (EN pulsed alone).

A port whose lines cannot be set (a CDC port that refuses them, a pseudo-terminal, a USB
console that is not a bridge) raises :class:`BridgeError`, in words with what to do.
"""

from __future__ import annotations

import io
from types import ModuleType

import serial

from ..errors import EspdfuError

_NOT_A_BRIDGE_HINT = (
    "Link the board to its USB-UART bridge (the DevKit's UART connector) in the configuration's "
    '[consoles], or turn its resets off ([resets] "<board>" = false) and use BOOT and RESET.'
)


class BridgeError(EspdfuError):
    """The bridge did not set its lines: the board was not reset."""


def into_download_mode(port: serial.SerialBase) -> None:
    """Reset the chip with GPIO0 low: it starts in ROM download mode (its DFU on native USB)."""
    sequences = _sequences()
    try:
        try:
            sequences.unix_tight_bootloader_reset(port)
        except (NotImplementedError, AttributeError, io.UnsupportedOperation):
            sequences.classic_bootloader_reset(port)  # no file to set both lines at once
    except OSError as error:  # pyserial's SerialException is one too
        raise _refused(port, error) from None


def into_app(port: serial.SerialBase) -> None:
    """Reset the chip with GPIO0 high: it boots its app (EN pulsed low for 100 ms)."""
    sequences = _sequences()
    try:
        sequences.hard_reset(port)
    except OSError as error:
        raise _refused(port, error) from None


def _sequences() -> ModuleType:
    """esp-pylib's sequences: an extra of the core (``espdfu[bridge]``), which the app brings."""
    try:
        from esp_pylib import serial_reset
    except ImportError:
        raise BridgeError(
            "Resetting a board through its USB-UART bridge needs Espressif's esp-pylib, which "
            "is not installed.",
            "Install it (pip install 'espdfu[bridge]'; espdfu-tui brings it), or turn the "
            "resets off: [flash] reset = false.",
        ) from None
    return serial_reset


def _refused(port: serial.SerialBase, error: OSError) -> BridgeError:
    why = error.strerror or str(error) or type(error).__name__
    return BridgeError(
        f"{port.port} did not set its DTR/RTS lines ({why}), so it cannot reset the board: "
        "it is no USB-UART bridge, or not one wired to the chip's EN and GPIO0.",
        _NOT_A_BRIDGE_HINT,
    )
