"""File reads and writes with the two guarantees the project makes about files.

Reads turn OS failures into sentences and refuse absurd sizes before allocating anything;
writes go to a temporary file beside the target and are renamed over it, so nobody ever sees
a half-written file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import EspdfuError, InputError, printable
from .units import format_size

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def read_bytes(path: str | os.PathLike[str], *, limit: int, what: str) -> bytes:
    """The whole content of the regular file ``path``, refusing more than ``limit`` bytes.

    The file is read once into memory, and refused if it changed meanwhile (a build still
    writing it): the bytes returned are one version of it, never the start of one and the end
    of another. Devices and pipes are refused before reading, as a pipe would block for ever
    and a device may never end.
    """
    path = Path(path)
    shown = printable(str(path))  # the name may come from a file: never raw to a terminal
    try:
        # Non-blocking, so that opening a pipe with no writer returns and can be refused.
        descriptor = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
        try:
            before = os.fstat(descriptor)
            if not stat.S_ISREG(before.st_mode):
                if stat.S_ISDIR(before.st_mode):
                    raise InputError(
                        f"{shown} is a folder, not a {what}.",
                        f"Give the path of the {what} itself, not of the folder it is in.",
                    )
                raise InputError(
                    f"{shown} is a device, pipe or socket, not a {what}.",
                    f"Save the {what} to a regular file and give that file: espdfu reads it "
                    "whole and checks it first, which a device, pipe or socket does not allow.",
                )
            if before.st_size > limit:
                raise InputError(
                    f"{shown} is {format_size(before.st_size)}: far too large to be a {what} "
                    f"(the limit is {format_size(limit)}).",
                    f"Check that {shown} is the file you meant.",
                )
            # Sized from fstat, so no buffer of ``limit`` bytes is allocated.
            with os.fdopen(descriptor, "rb", closefd=False) as file:
                data = file.read(before.st_size + 1)
            after = os.fstat(descriptor)
        finally:
            os.close(descriptor)
    except FileNotFoundError:
        raise InputError(f"{shown} does not exist.", _missing_hint(path, what)) from None
    except PermissionError:
        raise InputError(
            f"No permission to read {shown}.", "Check the file's owner and mode."
        ) from None
    except OSError as error:
        raise InputError(f"Cannot read {shown}: {error.strerror or error}.") from None
    except ValueError:  # the only one os.open raises: a NUL in the name
        raise InputError(f"The file name {shown} holds a NUL character.") from None
    if len(data) != before.st_size or _version(after) != _version(before):
        raise InputError(
            f"{shown} changed while it was being read: something is still writing it.",
            "Wait until the build (or copy) has finished, then try again.",
        )
    return data


def _missing_hint(path: Path, what: str) -> str:
    """Where a relative path was looked for, as a mistyped folder is the usual cause."""
    if path.is_absolute():
        return f"Check the name and the folder of the {what}."
    where = printable(str(Path.cwd()))
    return f"Check the name and the folder of the {what} (relative to {where})."


Version = tuple[int, int] | None
"""(size, mtime_ns) of a file, or None when there is none: what a write changes."""


def _version(status: os.stat_result) -> tuple[int, int]:
    """What changes when a file is written to (not ctime: replacing a file changes the old
    one's, and the old one is still whole)."""
    return status.st_size, status.st_mtime_ns


def file_version(path: Path) -> Version:
    """The :data:`Version` of the file at ``path`` now."""
    try:
        return _version(path.stat())
    except OSError:
        return None


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; return the path.

    The file gets the mode a plain ``open(path, "w")`` would give it (the user's umask).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
    except IsADirectoryError:
        raise EspdfuError(
            f"Cannot write {path}: it is a folder.", "Give the path of a file, not of a folder."
        ) from None
    except FileNotFoundError:
        raise EspdfuError(
            f"Cannot write {path}: its folder does not exist.",
            f"Create {path.parent} first, or give a path in a folder that exists.",
        ) from None
    except PermissionError:
        raise EspdfuError(
            f"No permission to write {path}.", "Choose another output path with -o."
        ) from None
    except OSError as error:
        raise EspdfuError(f"Cannot write {path}: {error.strerror or error}.") from None
    return path
