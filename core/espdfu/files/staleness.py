"""Whether a dfu.bin holds the build beside it, or an older one.

``idf.py build`` remakes a build's images but not its dfu.bin, so build folders hold dfu.bin
files of older builds. Their modification times say nothing: a copy gives every file the same
one, a touch makes any file newer. Only content tells, and cheaply: each image
flasher_args.json names is compared with what the dfu.bin writes at its address (an image
split into parts ``app.bin``, ``app.bin.1``, ... at consecutive addresses) by the MD5 each
entry's record keeps, so the images are read and the dfu.bin's content is not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, printable
from ..units import format_size
from .dfufile import FLASH_PARAMS_NAME, FLASH_SIZES, DfuImage, FlashEntry
from .idfbuild import (
    FLASHER_ARGS,
    Image,
    flash_files_from_json,
    image_roles,
    read_flash_files,
    read_json,
    said_flash_size,
)


@dataclass(frozen=True)
class Stale:
    """How a dfu.bin differs from the build beside it: the first image that differs (by
    address) and the flash size, in words."""

    dfu: str
    """The dfu.bin, as the other paths are shown."""
    why: str
    """What it holds, said after its name: "holds an older app than build/app.bin"."""
    image: str | None
    """The first image it does not hold, as ``why`` names it; None when only the flash size
    differs."""
    flash_size: str
    """The build's flash size ("4MB") when flash_params.dat says another, else empty."""

    def said(self) -> str:
        """The whole sentence, without its full stop: "build/dfu.bin holds an older app ..."."""
        return f"{self.dfu} {self.why}"

    def as_dict(self) -> dict[str, str | None]:
        """What ``espdfu info --json`` says of it."""
        return {"image": self.image, "why": self.said()}


def stale_dfu(path: Path, dfu: DfuImage) -> Stale | None:
    """How ``dfu``, read from ``path``, differs from the build whose flasher_args.json lies
    beside it; None when it holds that build (or there is no build beside it).

    An image that is not there is passed over: a dfu.bin may outlive its build's files, and
    what is not there is no evidence. What cannot be read otherwise (flasher_args.json, an
    image that is a pipe) raises :class:`InputError`.
    """
    flasher_args = path.parent / FLASHER_ARGS
    if not flasher_args.is_file():
        return None
    content = read_json(flasher_args)
    roles = image_roles(flasher_args, content)
    base = path.parent.parent
    starting = {entry.address: entry for entry in dfu.entries if entry.size}
    image: str | None = None
    reasons = []
    for named in sorted(flash_files_from_json(flasher_args, content)):
        data = _read(named)
        how = "" if data is None else _held(data, named.address, starting)
        if how:
            image = _shown(named.path, base)
            role = roles.get(named.path)
            if how == "missing":
                where = f"0x{named.address:x}, where {FLASHER_ARGS} puts {image}"
                reasons.append(f"has no {role or 'image'} at {where}")
            else:
                older = f"an older {role} than {image}" if role else f"an older copy of {image}"
                reasons.append(f"holds {older}")
            break
    said = said_flash_size(content)
    flash_size = ""
    if said and dfu.flash_size is not None and FLASH_SIZES[said] != dfu.flash_size:
        flash_size = said
        reasons.append(
            f"says {format_size(dfu.flash_size)} of flash in {FLASH_PARAMS_NAME} where "
            f"{FLASHER_ARGS} says {said}"
        )
    if not reasons:
        return None
    return Stale(_shown(path, base), ", and ".join(reasons), image, flash_size)


def _read(image: Image) -> bytes | None:
    """The image's bytes; None when it is not there."""
    try:
        return read_flash_files([image])[0].data
    except InputError:
        if image.path.exists():
            raise
        return None


def _held(data: bytes, address: int, starting: dict[int, FlashEntry]) -> str:
    """How the entries (by the address each starts at) hold ``data`` at ``address``: empty
    when they write it there, in one part or in parts at consecutive addresses; "missing"
    when none starts there; "differs" otherwise."""
    view = memoryview(data)
    at, end = address, address + len(data)
    while at < end:
        entry = starting.get(at)
        if entry is None:
            return "missing" if at == address else "differs"
        part = view[at - address : entry.end - address]
        if entry.end > end or hashlib.md5(part).digest() != entry.md5:
            return "differs"
        at = entry.end
    return ""


def _shown(path: Path, base: Path) -> str:
    """``path`` for a message: an absolute one as seen from ``base`` when it lies there
    ("build/app.bin" rather than the whole path), a relative one as given."""
    if path.is_absolute() and base.name and path.is_relative_to(base):
        path = path.relative_to(base)
    return printable(str(path))
