"""Making a build folder's dfu.bin from the images its flasher_args.json names, as ``idf.py
dfu`` would: what those images are, when one may be made, and why none is.

The build-folder watcher decides when to look; this decides what a build that left no usable
dfu.bin allows. ``idf.py build`` does not remake dfu.bin, so after a plain build only the
images are new: a dfu.bin made of them is the build; one made while the build still writes
them (a new bootloader, the old app) must never be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import EspdfuError, InputError
from ..files import dfufile
from ..files.idfbuild import (
    FLASHER_ARGS,
    BuildFolder,
    flash_files_from_json,
    image_roles,
    read_flash_files,
    read_json,
)
from ..fsutil import Version, file_version

DFU_NAME = "dfu.bin"


@dataclass(frozen=True)
class Plan:
    """What flasher_args.json names: the flash images, and the one a build writes last."""

    images: tuple[Path, ...] = ()
    last_written: tuple[Path, ...] = ()
    """The app image (a build links it after everything else), or all images if unnamed."""


class DfuMaker:
    """Makes ``build_dir``'s dfu.bin from its flash images; says why it does not.

    Used by one thread at a time (the watcher's worker, or a caller under the watcher's
    lock for its reads). ``enabled`` False: it never makes one (the user's own ``idf.py dfu``
    does).
    """

    def __init__(self, build_dir: Path, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.dfu_path = build_dir / DFU_NAME
        self.flasher_args = build_dir / FLASHER_ARGS
        self.plan = Plan()
        self._plan_version: Version | bool = False  # False: flasher_args.json not read yet
        self._made_from: tuple[Version, ...] | None = None
        self._failure = ""
        """Why making dfu.bin from the images of ``_made_from`` failed ("" if it did not)."""

    def forget_plan(self) -> None:
        """Read flasher_args.json anew at the next :meth:`replan` (the folder was made anew)."""
        self._plan_version = False

    def replan(self) -> str | None:
        """Read flasher_args.json again if it changed; whether it did, and what to say of it
        when it cannot be read ("" when it can)."""
        version = file_version(self.flasher_args)
        if version == self._plan_version:
            return None
        self._plan_version = version
        if version is None or not self.flasher_args.is_file():
            self.plan = Plan()
            return ""
        try:
            images = tuple(image.path for image in flash_files_from_json(self.flasher_args))
            app = _app_image(self.flasher_args)
        except EspdfuError as error:
            self.plan = Plan()
            return str(error)
        self.plan = Plan(images, (app,) if app in images else images)
        return ""

    def why_unmade(self, *, paused: bool) -> str:
        """Why no dfu.bin is made of the build as it is now, with what to do; "" when one is
        to be made (or flasher_args.json is yet to be read: it decides then).

        The app must be among the images newer than dfu.bin, if any are: a build links it
        after everything else, so a newer bootloader alone is more likely a build still
        running than one that has finished, and a dfu.bin of a new bootloader and an old app
        must never be flashed. Images as old as dfu.bin or older (a copied folder) are no such
        sign: then content alone decides. ``paused``: our own build runs, and makes one.
        """
        if not self.enabled:
            return f"espdfu makes no {DFU_NAME} here (make_dfu is off): run `idf.py dfu`."
        if paused:
            return f"espdfu's build runs: a new one is made from {FLASHER_ARGS} once it ends."
        images = self.plan.images
        if not images:
            return "" if self._plan_version is False else f"{FLASHER_ARGS} names no images."
        versions = tuple(file_version(path) for path in images)
        if None in versions:
            return self.missing_image()
        if versions == self._made_from:
            failure = self._failure
            return f"none can be made: {failure}" if failure else "run `idf.py dfu`."
        dfu = file_version(self.dfu_path)
        mtimes = {path: v[1] for path, v in zip(images, versions, strict=True) if v}
        newer = [path.name for path in images if dfu is not None and mtimes[path] > dfu[1]]
        if dfu is not None and newer and max(mtimes[p] for p in self.plan.last_written) <= dfu[1]:
            app = self.plan.last_written[0].name
            return (
                f"{', '.join(newer)} newer than {DFU_NAME} but {app} is not: no {DFU_NAME} "
                f"is made until {app} is rebuilt too (`idf.py dfu` makes one now)."
            )
        return ""

    def make(self) -> tuple[str, ...]:
        """Make dfu.bin now; what the making noticed (mkdfu's notes). Raises EspdfuError,
        remembered: the same images are not tried again (:meth:`why_unmade` says why)."""
        self._made_from = tuple(file_version(path) for path in self.plan.images)
        try:
            folder = BuildFolder.open(self.dfu_path.parent)
            dfufile.save(self.dfu_path, folder.make_dfu())
        except EspdfuError as error:
            self._failure = str(error)
            raise
        self._failure = ""
        return tuple(folder.notes)

    def missing_image(self) -> str:
        """What ``espdfu mkdfu`` says of the first image flasher_args.json names that is not
        there ("" if all are there by now): nothing is read but what is missing."""
        try:
            images = flash_files_from_json(self.flasher_args)
            read_flash_files([image for image in images if file_version(image.path) is None][:1])
        except EspdfuError as error:
            return str(error)
        return ""


def _app_image(flasher_args: Path) -> Path | None:
    """The app image flasher_args.json names (``"app": {"file": ...}``), if it names one."""
    try:
        content = read_json(flasher_args)
    except InputError:  # rewritten since flash_files_from_json read it: the next event retries
        return None
    roles = image_roles(flasher_args, content)
    return next((path for path, role in roles.items() if role == "app"), None)
