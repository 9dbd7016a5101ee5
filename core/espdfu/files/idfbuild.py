"""What an ESP-IDF build says about flashing: its flash files, target chip and flash size.

The inputs of the dfu.bin writer come from here, whether a user names them on the command line
(the same rules as ESP-IDF's ``mkdfu.py write``) or points at a build folder after a plain
``idf.py build``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..chips import Chip, chip_by_name, dfu_chip_names
from ..errors import InputError, printable
from ..fsutil import read_bytes
from .dfufile import (
    DEFAULT_FLASH_SIZE,
    DEFAULT_PART_SIZE,
    FLASH_SIZES,
    MAX_FILE_SIZE,
    FlashFile,
    check_writable,
    pack,
)

PART_SIZE_ENV = "ESP_DFU_PART_SIZE"
FLASHER_ARGS = "flasher_args.json"
PROJECT_DESCRIPTION = "project_description.json"
_JSON_LIMIT = 16 * 1024 * 1024


def parse_int(text: str, what: str) -> int:
    """An integer written as Python writes literals ("4096", "0x1000"), as ESP-IDF reads them."""
    try:
        return int(text, 0)
    except ValueError:
        raise InputError(
            f"{what} '{printable(text)}' is not a number (write 4096 or 0x1000)."
        ) from None


def parse_pid(text: str) -> int:
    """A USB product ID in hex, with or without 0x: ESP-IDF's ``--pid`` reads "2" and "0x2"."""
    try:
        pid = int(text, 16)
    except ValueError:
        raise InputError(f"The product ID '{text}' is not a hexadecimal number.") from None
    if not 0 <= pid <= 0xFFFF:
        raise InputError(f"The product ID '{text}' does not fit in 16 bits.")
    return pid


def part_size_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """The part size ESP-IDF would use: ``ESP_DFU_PART_SIZE`` if set, else 512 KiB."""
    text = environ.get(PART_SIZE_ENV)
    return DEFAULT_PART_SIZE if text is None else parse_int(text, PART_SIZE_ENV)


def chip_for_target(target: str) -> Chip:
    """The chip of an ESP-IDF target, refusing targets without USB DFU."""
    chip = chip_by_name(target)
    if chip is None:
        shown = printable(target)  # read from the build's files
        raise InputError(
            f"The target {shown} has no USB DFU; only {dfu_chip_names()} can be flashed this way.",
            f"Flash {shown} over its serial port with `idf.py flash` instead.",
        )
    return chip


class Image(NamedTuple):
    """A flash image for a dfu.bin: where it goes, which file it is, and who named it."""

    address: int
    path: Path
    named_by: str = ""
    """For messages, when a flasher_args.json named it: ``build/flasher_args.json names
    "app.bin" under "0x10000"``. Empty for an image given on the command line."""


def flash_files_from_json(
    json_path: str | os.PathLike[str], content: Mapping[str, Any] | None = None
) -> list[Image]:
    """The ``flash_files`` of a flasher_args.json, in the file's order (``content``: the file
    as already read, so that what is said of it comes from one reading).

    Paths are relative to the JSON file's folder, and may lead out of it: a build names images
    from the project's source tree as ``../main/certs/...``, and absolute paths are allowed
    too. The build is the user's own, so it is trusted as ESP-IDF's mkdfu.py trusts it; what
    each path holds is checked when it is read (:func:`read_flash_files`).
    """
    json_path = Path(json_path)
    if content is None:
        content = read_json(json_path)
    flash_files = content.get("flash_files")
    if not isinstance(flash_files, dict) or not all(
        isinstance(name, str) for name in flash_files.values()
    ):
        raise InputError(
            f"{json_path} has no 'flash_files' object of addresses and file names: "
            "is it the flasher_args.json of an ESP-IDF build?"
        )
    images: dict[int, Image] = {}
    for key, name in flash_files.items():
        shown = printable(name)  # the file may be anybody's: no escape sequences to a terminal
        if not name or "\0" in name:
            raise InputError(f"{json_path} names the file '{shown}', which cannot exist.")
        address = parse_int(key, f"The address of {shown} in {json_path.name}")
        named_by = f'{json_path} names "{shown}" under "{printable(key)}"'
        earlier = images.get(address)
        if earlier is not None:
            raise InputError(
                f'{earlier.named_by} and "{shown}" under "{printable(key)}": two images '
                f"for the one address 0x{address:x}.",
                "Keep one of them: an ESP-IDF build names each address once.",
            )
        images[address] = Image(address, json_path.parent / name, named_by)
    return list(images.values())


def image_roles(json_path: Path, content: Mapping[str, Any]) -> dict[Path, str]:
    """What a flasher_args.json says each image is, by path: its objects that name a file
    (``"app": {"file": ...}``, ``"partition-table"``, ...), as words ("partition table")."""
    roles: dict[Path, str] = {}
    for key, value in content.items():
        name = value.get("file") if isinstance(value, dict) else None
        if isinstance(name, str) and name:
            role = printable(key.replace("-", " ").replace("_", " "))  # anybody's file
            roles.setdefault(json_path.parent / name, role)
    return roles


def said_flash_size(settings: Mapping[str, Any]) -> str | None:
    """The flash size a flasher_args.json's ``flash_settings`` names, if ESP-IDF knows it
    ("4MB"; not "keep" or "detect")."""
    flash_settings = settings.get("flash_settings")
    said = flash_settings.get("flash_size") if isinstance(flash_settings, dict) else None
    return said.upper() if isinstance(said, str) and said.upper() in FLASH_SIZES else None


def merge_images(
    given: Iterable[Image], from_json: Iterable[Image]
) -> tuple[list[Image], list[str]]:
    """The images of ``mkdfu``, one per address, and warnings to show.

    Two images given for one address is a mistake, refused: mkdfu.py would keep the last and
    drop the other without a word. An image from ``--json`` replaces one given for its address,
    as in mkdfu.py (it adds the JSON's entries last), but a warning says which replaced which.
    """
    images: dict[int, Image] = {}
    for image in given:
        earlier = images.get(image.address)
        if earlier is not None:
            raise InputError(
                f"Two images for 0x{image.address:x}: {printable(str(earlier.path))} and "
                f"{printable(str(image.path))}. Only one can be written at an address.",
                "Give each image its own address, or leave out the one you did not mean.",
            )
        images[image.address] = image
    warnings = []
    for image in from_json:
        earlier = images.get(image.address)
        if earlier is not None:
            warnings.append(
                f"{image.named_by}, which replaces {printable(str(earlier.path))} given for "
                f"0x{image.address:x} (entries from --json win, as in ESP-IDF's mkdfu.py)."
            )
        images[image.address] = image
    return list(images.values()), warnings


def read_flash_files(images: Iterable[Image]) -> list[FlashFile]:
    """Read each file; the archive keeps only its base name, as ESP-IDF's writer does.

    Reading refuses what is not a regular file without waiting on it (a named pipe), and
    anything too large. A file a flasher_args.json named is refused with the key that named it.
    """
    files = []
    for image in images:
        try:
            data = read_bytes(image.path, limit=MAX_FILE_SIZE, what="flash image")
        except InputError as error:
            if not image.named_by:
                raise
            raise _named_image_error(image, error) from None
        files.append(FlashFile(image.address, image.path.name, data))
    return files


def _named_image_error(image: Image, error: InputError) -> InputError:
    """``error`` told with the flasher_args.json key that named the file, and a true hint."""
    shown = printable(str(image.path))
    try:
        mode = image.path.stat().st_mode  # stat() opens nothing: a pipe cannot block it
    except FileNotFoundError:
        return InputError(
            f"{image.named_by}, but {shown} does not exist.",
            "The file is gone since the build named it: restore it, or run `idf.py build` "
            "again so that flasher_args.json names what the project flashes now.",
        )
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a pipe, device or socket"
        return InputError(
            f"{image.named_by}, but {shown} is {kind}, not a file.",
            "A build names image files only: run `idf.py build` again, and if it still names "
            "this, check the images the project's CMake files add to its flash targets.",
        )
    return InputError(f"{error.message} {image.named_by}.", error.hint)


@dataclass(frozen=True)
class BuildFolder:
    """An ESP-IDF build folder, read for what the DFU writer needs."""

    path: Path
    chip: Chip
    flash_size: int
    flash_files: tuple[Image, ...]
    notes: tuple[str, ...]
    """Facts guessed rather than read (said to the user, never hidden)."""

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BuildFolder:
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"The build folder {path} does not exist or is not a folder.")
        flasher_args = path / FLASHER_ARGS
        if not flasher_args.is_file():
            raise InputError(
                f"{path} has no {FLASHER_ARGS}: it is not an ESP-IDF build folder, or the "
                "build has not finished.",
                "Run `idf.py build` in the project first.",
            )
        settings = read_json(flasher_args)
        config = _read_sdkconfig_json(path)
        target = _find_target(path, settings, config)
        notes: list[str] = []
        flash_size = _find_flash_size(settings, config)
        if flash_size is None:
            flash_size = DEFAULT_FLASH_SIZE
            notes.append("The build does not say its flash size; using ESP-IDF's default, 2MB.")
        return cls(
            path=path,
            chip=chip_for_target(target),
            flash_size=flash_size,
            flash_files=tuple(flash_files_from_json(flasher_args)),
            notes=tuple(notes),
        )

    def make_dfu(self, part_size: int | None = None) -> bytes:
        """The dfu.bin ``idf.py dfu`` would write for this build."""
        files = read_flash_files(self.flash_files)
        data = pack(
            files,
            pid=self.chip.dfu_pid,
            flash_size=self.flash_size,
            part_size=part_size_from_env() if part_size is None else part_size,
        )
        check_writable(files, self.flash_size)
        return data


def project_target(project_dir: Path, build_dir: Path) -> str | None:
    """The target a project builds for, for display: its sdkconfig, else its last build's."""
    try:
        target = _sdkconfig_value(project_dir / "sdkconfig", "CONFIG_IDF_TARGET")
        description = build_dir / PROJECT_DESCRIPTION
        if target is None and description.is_file():
            found = read_json(description).get("target")
            target = found if isinstance(found, str) else None
    except InputError:
        return None
    return target


def _find_target(path: Path, settings: dict[str, Any], config: dict[str, Any]) -> str:
    """The build's target, from the most to the least authoritative place that names it."""
    description = path / PROJECT_DESCRIPTION
    candidates = []
    if description.is_file():
        candidates.append(read_json(description).get("target"))
    candidates.append(config.get("IDF_TARGET"))
    candidates.append(_sdkconfig_value(path.parent / "sdkconfig", "CONFIG_IDF_TARGET"))
    extra = settings.get("extra_esptool_args")
    candidates.append(extra.get("chip") if isinstance(extra, dict) else None)
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            return candidate
    raise InputError(
        f"Cannot tell which chip the build in {path} is for: it has no {PROJECT_DESCRIPTION} "
        "and no sdkconfig names the target.",
        "Run `idf.py set-target esp32s2` (or esp32s3) and `idf.py build`.",
    )


def _find_flash_size(settings: dict[str, Any], config: dict[str, Any]) -> int | None:
    for candidate in (said_flash_size(settings), config.get("ESPTOOLPY_FLASHSIZE")):
        if isinstance(candidate, str) and candidate.upper() in FLASH_SIZES:
            return FLASH_SIZES[candidate.upper()]
    return None


def _read_sdkconfig_json(path: Path) -> dict[str, Any]:
    config = path / "config" / "sdkconfig.json"
    return read_json(config) if config.is_file() else {}


def _sdkconfig_value(sdkconfig: Path, key: str) -> str | None:
    """A string value from an sdkconfig file (``CONFIG_IDF_TARGET="esp32s2"``)."""
    if not sdkconfig.is_file():
        return None
    text = read_bytes(sdkconfig, limit=_JSON_LIMIT, what="sdkconfig").decode("utf-8", "replace")
    match = re.search(rf'^{re.escape(key)}="([^"\n]*)"', text, re.MULTILINE)
    return match.group(1) if match else None


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (a build's), or :class:`InputError`."""
    text = read_bytes(path, limit=_JSON_LIMIT, what="JSON file")
    try:
        content = json.loads(text)
    except ValueError as error:
        line = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise InputError(f"{path} is not valid JSON{line}.", "Rebuild to rewrite it.") from None
    except RecursionError:  # "[[[[..." deeper than the parser's stack
        raise InputError(
            f"{path} nests lists or objects too deeply to be a build's JSON file.",
            "Rebuild to rewrite it.",
        ) from None
    if not isinstance(content, dict):
        raise InputError(f"{path} does not hold a JSON object.")
    return content
