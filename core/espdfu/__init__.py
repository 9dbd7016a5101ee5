"""espdfu: flash ESP32-S2/S3 boards over native USB DFU (the core, without any UI).

The names in ``__all__`` are the library's public API, documented in docs/api.md::

    import espdfu

    usb = espdfu.open_usb()
    image = espdfu.load("build/dfu.bin")
    paths = [b.path for b in espdfu.scan(usb) if espdfu.incompatibility(b, image) is None]
    for result in espdfu.flash_many(usb, paths, image):
        print(result.path, result.message)

They are imported on first use, so that importing one module of the package (the demo's
build, ``espdfu.files.dfufile`` in a script) does not pay for pyusb and the flash engine.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing's own, without importing typing (PEP 781): type checkers see True

__version__ = "0.1.0"

__all__ = [
    "Access",
    "Board",
    "DfuFormatError",
    "DfuImage",
    "EspdfuError",
    "Failure",
    "FlashError",
    "FlashOptions",
    "FlashResult",
    "InputError",
    "Mode",
    "Phase",
    "Progress",
    "Usb",
    "UsbUnavailable",
    "__version__",
    "flash",
    "flash_many",
    "incompatibility",
    "load",
    "open_usb",
    "scan",
]

if TYPE_CHECKING:
    from .errors import DfuFormatError, EspdfuError, InputError
    from .files.dfufile import DfuImage, load
    from .flashing.flasher import (
        Failure,
        FlashError,
        FlashOptions,
        FlashResult,
        Phase,
        Progress,
        flash,
        flash_many,
        incompatibility,
    )
    from .usb.boards import Access, Board, Mode, scan
    from .usb.transport import Usb, UsbUnavailable
    from .worlds import open_usb

_HOMES = ("errors", "files.dfufile", "usb.transport", "worlds", "usb.boards", "flashing.flasher")
"""Where the public names live, the cheapest module to import first."""


if not TYPE_CHECKING:  # hidden from type checkers, which would take any name as valid

    def __getattr__(name: str) -> object:
        """Import a public name's module the first time the name is used (PEP 562)."""
        if name in __all__:
            for home in _HOMES:
                module = importlib.import_module(f".{home}", __name__)
                if hasattr(module, name):
                    value = getattr(module, name)
                    globals()[name] = value
                    return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
