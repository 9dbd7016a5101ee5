"""File reads and writes with the two guarantees the project makes about files.

Reads turn OS failures into sentences and refuse absurd sizes before allocating anything;
writes go to a temporary file beside the target and are renamed over it, so nobody ever sees
a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EspdfuError, InputError
from .units import format_size


def read_bytes(path: str | os.PathLike[str], *, limit: int, what: str) -> bytes:
    """The whole content of ``path``, refusing files larger than ``limit`` bytes."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            # Sized from fstat, so no buffer of ``limit`` bytes is allocated; a file that grows
            # while being read is read on, up to the limit.
            data = file.read(size + 1) if size <= limit else b""
            if len(data) > size:
                data += file.read(limit + 1 - len(data))
            if size > limit or len(data) > limit:
                raise InputError(
                    f"{path} is {format_size(max(size, len(data)))}: far too large to be a "
                    f"{what} (the limit is {format_size(limit)}).",
                    f"Check that {path} is the file you meant.",
                )
            return data
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a {what}.") from None
    except FileNotFoundError:
        raise InputError(f"{path} does not exist.") from None
    except PermissionError:
        raise InputError(
            f"No permission to read {path}.", "Check the file's owner and mode."
        ) from None
    except OSError as error:
        raise InputError(f"Cannot read {path}: {error.strerror or error}.") from None


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
        raise EspdfuError(f"Cannot write {path}: it is a folder.") from None
    except FileNotFoundError:
        raise EspdfuError(f"Cannot write {path}: its folder does not exist.") from None
    except PermissionError:
        raise EspdfuError(
            f"No permission to write {path}.", "Choose another output path with -o."
        ) from None
    except OSError as error:
        raise EspdfuError(f"Cannot write {path}: {error.strerror or error}.") from None
    return path
