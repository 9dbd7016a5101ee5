"""The build-folder watcher: a new dfu.bin becomes an artifact once it has stopped changing.

A build writes dfu.bin in pieces, and reading it at the first event would see a half-written
file. So events only re-arm a deadline on one worker thread; when no event came for
``settle_s`` and the files' sizes and modification times are still what they were when the
last one came, the file is read and verified, and compared with the images the build's
flasher_args.json names: ``idf.py build`` does not remake dfu.bin, so a build folder often
holds one of an older build, and only content tells (a copy gives every file one mtime). When
dfu.bin does not hold the build (or there is none), the watcher makes it, as ``idf.py dfu``
would (:mod:`.dfumaker`); one known not to hold its build is never reported usable.

Only the build folder and the folders of the flash images are watched, never recursively:
an ESP-IDF build folder holds thousands of folders.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from stat import S_ISDIR

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from ..errors import DfuFormatError, EspdfuError, InputError
from ..files import dfufile
from ..files.dfufile import MAX_FILE_SIZE, DfuImage
from ..files.idfbuild import FLASHER_ARGS
from ..files.staleness import Stale, stale_dfu
from ..fsutil import Version, file_version, read_bytes
from .dfumaker import DFU_NAME, DfuMaker

log = logging.getLogger(__name__)

_FOLDER_POLL_S = 0.5
_RETRY_S = 5.0
_STOP_TIMEOUT_S = 2.0
# Opening, reading and attribute changes (our own reads among them) change no content.
_CONTENT_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})
_FOLDER_EVENTS = frozenset({"created", "moved", "deleted"})


@dataclass(frozen=True)
class Artifact:
    """A dfu.bin as read once it had settled: what it holds, or why it cannot be flashed."""

    path: Path
    image: DfuImage | None
    """The file as read without ``strict``; None when it is unreadable or no dfu.bin at all."""
    problem: str
    """Empty when the file is valid, else the first reason it is not."""
    size: int
    mtime: float
    digest: str
    """SHA-256 of the content (hex), empty if unreadable: the same content is the same artifact."""
    made_here: bool
    """Made by espdfu from the build's flash images (after a plain ``idf.py build``, or in
    place of one that did not hold them)."""

    @property
    def valid(self) -> bool:
        return self.image is not None and self.image.valid and not self.problem

    @property
    def boot_problems(self) -> tuple[str, ...]:
        """Why a board would not boot the valid file (its images as the chip reads them)."""
        return self.image.contents.problems if self.valid and self.image is not None else ()

    @property
    def usable(self) -> bool:
        """Valid, and a board would boot it: what may be flashed without ``force``."""
        return self.valid and not self.boot_problems


def read_artifact(path: Path, *, made_here: bool = False) -> Artifact | None:
    """The dfu.bin at ``path`` as it is now; None when there is none or it changed while read."""
    before = file_version(path)
    if before is None:
        return None
    try:
        data = read_bytes(path, limit=MAX_FILE_SIZE, what=DFU_NAME)
    except InputError as error:  # too large, no regular file, no permission; or it changed
        if file_version(path) != before:
            return None  # gone or still being written: its next event brings it back
        return Artifact(path, None, error.message, before[0], before[1] / 1e9, "", made_here)
    if file_version(path) != before or len(data) != before[0]:
        return None  # still being written: its next event brings it back
    image: DfuImage | None
    try:
        image = dfufile.parse(data, strict=False)
        problem = image.problems[0] if image.problems else ""
    except DfuFormatError as error:
        image, problem = None, error.message
    digest = hashlib.sha256(data).hexdigest()
    return Artifact(path, image, problem, len(data), before[1] / 1e9, digest, made_here)


class ArtifactWatcher:
    """Watches an ESP-IDF build folder and reports each new dfu.bin once it has settled.

    ``on_artifact`` and ``on_note`` are called on the watcher's thread (and on the caller's,
    from :meth:`start` and :meth:`check_now`); they should hand the news on, not block. So is
    ``on_unmade``, with why the folder gives no dfu.bin whenever that changes ("" once it is
    past): an image its flasher_args.json names is missing, in ``espdfu mkdfu``'s words.
    """

    def __init__(
        self,
        build_dir: Path,
        on_artifact: Callable[[Artifact], None],
        *,
        settle_s: float = 0.25,
        make_dfu: bool = True,
        on_note: Callable[[str], None] | None = None,
        on_unmade: Callable[[str], None] | None = None,
    ) -> None:
        self._build_dir = Path(build_dir).absolute()
        self._dfu_path = self._build_dir / DFU_NAME
        self._flasher_args = self._build_dir / FLASHER_ARGS
        self._on_artifact = on_artifact
        self._on_note = on_note
        self._on_unmade = on_unmade
        self._unmade = ""
        self._settle_s = settle_s
        self._maker = DfuMaker(self._build_dir, enabled=make_dfu)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._events = 0
        self._renamed = False
        """A dfu.bin was renamed into place: it is complete, no need to wait for it to settle."""
        self._watching = threading.Event()
        self._refreshing = threading.Lock()
        """One read-and-report at a time: the watcher's thread and check_now() callers both read
        dfu.bin, and the one holding older content must not report it after the newer one."""
        self._stopping = False
        self._paused = False
        self._current: Artifact | None = None
        self._read_stat: Version = None
        self._read: Artifact | None = None
        """The dfu.bin as last read, before it was compared with the build (under
        ``_refreshing``)."""
        self._said = ""
        """The last note on a dfu.bin that does not hold its build: each is said once."""
        self._thread: threading.Thread | None = None
        # Used by the worker thread only.
        self._folders = _Folders(self._dfu_path, self._poke, self._renamed_into_place)
        self._last_failure = ""

    @property
    def current(self) -> Artifact | None:
        """The last artifact reported."""
        with self._lock:
            return self._current

    @property
    def paused(self) -> bool:
        """While True, no dfu.bin is made from the flash images: our own build makes it."""
        with self._lock:
            return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        with self._lock:
            self._paused = value
        if not value:
            self._poke()  # what the build left is looked at again, and made into dfu.bin if need be

    def start(self) -> None:
        """Report the dfu.bin there is now (if any), then watch for new ones."""
        self._thread = threading.Thread(target=self._run, name="espdfu-watch", daemon=True)
        self._thread.start()
        if _identity(self._build_dir) is not None:  # changes from now on will be seen...
            self._watching.wait(_STOP_TIMEOUT_S)
        self.check_now()  # ...and this reads what is there already: nothing falls in between

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop watching for good; the watcher's threads are joined (at most ``timeout_s``)."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def check_now(self) -> Artifact | None:
        """Read dfu.bin now, report it if it is new, and return the current artifact."""
        if self._refresh(force=True) is not None:
            self._poke()  # the worker makes the right one
        return self.current

    def refresh(self) -> Artifact | None:
        """As :meth:`check_now`, but dfu.bin is read only if it changed since it was last read
        (the watcher has usually read it already); it is compared with the build again."""
        if self._refresh() is not None:
            self._poke()
        return self.current

    # --- reading ------------------------------------------------------------------------------

    def _refresh(
        self, *, force: bool = False, made_here: bool = False, again: bool = True
    ) -> str | None:
        """Read dfu.bin if it changed since it was last read (or ``force``), compare it with
        the build as it is now, and report it if that is new (:meth:`_judge`); without
        ``again``, a dfu.bin read before is not compared again (while our build rewrites the
        images: its end is).

        Returns None, or, when a dfu.bin is to be made (there is none, or it does not hold
        the build), what to say once it is made: only the worker makes it.
        """
        with self._refreshing:
            stat = file_version(self._dfu_path)
            with self._lock:
                unchanged = stat == self._read_stat
                deleted = stat is None and self._read_stat is not None
                if stat is None:
                    self._read_stat = None
            if deleted:
                self._note(f"{self._dfu_path} was deleted; the last artifact stays current.")
            if stat is None:
                self._read = None
                return None if self._why_unmade() else ""
            artifact = self._read
            if unchanged and not force and not again:
                return None
            if not unchanged or force or artifact is None:
                artifact = read_artifact(self._dfu_path, made_here=made_here)
                if artifact is None:
                    return None
                with self._lock:
                    self._read_stat = stat
                self._read = artifact
            return self._judge(artifact)

    def _judge(self, artifact: Artifact) -> str | None:
        """Report ``artifact`` if it is new, and return None; but when it does not hold the
        build's images (or is not usable at all) and the worker is to make the right one,
        report nothing and return what to say once that is made. One known not to hold its
        build is never reported usable: when none is made, it is reported not usable, and the
        note says why none is made."""
        stale = self._stale(artifact) if artifact.valid else None
        remade = stale is not None or (not artifact.valid and self._flasher_args.is_file())
        unmade = self._why_unmade() if remade else ""
        if remade and not unmade:
            return _made_note(self._dfu_path, artifact, stale)
        if stale is None:
            self._said = ""  # said again should it come back
        else:
            said = f"{stale.said()}; {unmade}"
            if said != self._said:
                self._said = said
                self._note(said)
            artifact = replace(artifact, problem=f"it {stale.why} (`idf.py dfu` makes it again)")
        with self._lock:
            last = self._current
            new = last is None or (artifact.digest, artifact.problem) != (last.digest, last.problem)
            if new:
                self._current = artifact
        if new:
            self._on_artifact(artifact)
        return None

    def _stale(self, artifact: Artifact) -> Stale | None:
        """How the dfu.bin differs from the build; None when it does not, or that cannot be
        told now (a flasher_args.json being rewritten: its next event brings it back; an image
        that is no file: making dfu.bin says so)."""
        if artifact.image is None:
            return None
        try:
            return stale_dfu(self._dfu_path, artifact.image)
        except EspdfuError as error:
            log.debug("dfu.bin not compared with the build: %s", error)
            return None

    # --- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while self._wait_for_folder():
            try:
                self._watch_folder()
            except Exception as error:  # the watcher must outlive any one failure
                self._note_failure(error)
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping, _RETRY_S)

    def _wait_for_folder(self) -> bool:
        """Wait until the build folder exists (a first build creates it); False when stopped."""
        while _identity(self._build_dir) is None:
            with self._wake:
                if self._wake.wait_for(lambda: self._stopping, _FOLDER_POLL_S):
                    return False
        with self._lock:
            return not self._stopping

    def _watch_folder(self) -> None:
        """Follow the build folder until it disappears or the watcher is stopped."""
        observer = Observer()
        observer.start()
        try:
            self._folders.forget()
            self._maker.forget_plan()
            self._schedule(observer)
            self._watching.set()
            self._settle_loop(observer)
        finally:
            observer.stop()
            observer.join(_STOP_TIMEOUT_S)

    def _settle_loop(self, observer: BaseObserver) -> None:
        """Wait for events; act once the files have been still for ``settle_s``."""
        seen = -1  # so the first round looks at the folder as it is now
        deadline: float | None = None
        armed: tuple[Version, ...] = ()
        while True:
            with self._wake:
                if self._events == seen:
                    timeout = None if deadline is None else deadline - time.monotonic()
                    self._wake.wait(None if timeout is None else max(timeout, 0.0))
                if self._stopping:
                    return
                fresh, seen = self._events != seen, self._events
                renamed, self._renamed = self._renamed, False
            if renamed:
                try:
                    self._refresh()
                except Exception as error:
                    self._note_failure(error)
            now = time.monotonic()
            if not fresh and (deadline is None or now < deadline):
                continue
            fingerprint = self._fingerprint()
            if fresh or fingerprint != armed:
                armed, deadline = fingerprint, now + self._settle_s
                continue
            deadline = None
            try:
                if _identity(self._build_dir) is None:
                    self._note(f"The build folder {self._build_dir} was removed; waiting for it.")
                    return
                self._settled(observer)
                self._last_failure = ""
            except Exception as error:
                self._note_failure(error)

    def _settled(self, observer: BaseObserver) -> None:
        replanned = self._maker.replan()
        if replanned:
            self._note(replanned)
        self._schedule(observer)
        paused = self.paused  # our build makes dfu.bin and rewrites the images meanwhile
        if replanned is not None:
            self._refresh(again=not paused)
            self._poke()  # let the newly named images settle before making anything of them
            return
        if self._maker.enabled and not paused:
            missing = any(file_version(path) is None for path in self._images)
            self._say_unmade(self._maker.missing_image() if missing else "")
        said = self._refresh(again=not paused)
        if said is not None:
            self._make(said)

    def _fingerprint(self) -> tuple[Version, ...]:
        paths = (self._dfu_path, self._flasher_args, *self._images)
        return tuple(file_version(path) for path in paths)

    def _poke(self) -> None:
        with self._wake:
            self._events += 1
            self._wake.notify_all()

    def _schedule(self, observer: BaseObserver) -> None:
        files = (self._dfu_path, self._flasher_args, *self._images)
        self._folders.schedule(observer, files)

    def _renamed_into_place(self) -> None:
        with self._wake:
            self._renamed = True

    # --- making dfu.bin -----------------------------------------------------------------------

    @property
    def _images(self) -> tuple[Path, ...]:
        return self._maker.plan.images

    def _why_unmade(self) -> str:
        return self._maker.why_unmade(paused=self.paused)

    def _make(self, said: str) -> None:
        """Make dfu.bin from the build's images, as ``idf.py dfu`` would, and say ``said``."""
        try:
            notes = self._maker.make()
        except EspdfuError as error:
            if self._read is None or not self._read.valid:
                self._note(str(error))  # else the note on the one there says it
            self._refresh()  # the one there, if any, is now reported with why
            return
        for note in (said, *notes):
            if note:
                self._note(note)
        self._refresh(made_here=True)

    # --- notes --------------------------------------------------------------------------------

    def _say_unmade(self, text: str) -> None:
        with self._lock:
            if text == self._unmade:
                return
            self._unmade = text
        if self._on_unmade is not None:
            self._on_unmade(text)

    def _note(self, text: str) -> None:
        if self._on_note is None:
            log.info("%s", text)
            return
        try:
            self._on_note(text)
        except Exception:
            log.exception("on_note failed")

    def _note_failure(self, error: Exception) -> None:
        """Say what went wrong, once until things work again; keep the traceback in the log."""
        log.debug("build-folder watcher failure", exc_info=error)
        what = str(error) if isinstance(error, EspdfuError) else f"{type(error).__name__}: {error}"
        text = f"Watching {self._build_dir} failed ({what}); still watching."
        if text != self._last_failure:
            self._last_failure = text
            self._note(text)


class _Folders(FileSystemEventHandler):
    """The folders watched, the files' own and never recursively (an ESP-IDF build folder
    holds thousands), and which of their events may change what the watcher reads.

    Its events come on watchdog's thread: they only call ``on_change`` (and ``on_renamed``
    when a dfu.bin was renamed into place), which wake the watcher's worker.
    """

    def __init__(
        self, dfu_path: Path, on_change: Callable[[], None], on_renamed: Callable[[], None]
    ) -> None:
        self._dfu_path = str(dfu_path)
        self._on_change = on_change
        self._on_renamed = on_renamed
        self._files: frozenset[str] = frozenset()
        self._folders: frozenset[str] = frozenset()
        self._watches: dict[Path, tuple[ObservedWatch, tuple[int, int]]] = {}

    def forget(self) -> None:
        """A new observer watches nothing yet."""
        self._watches.clear()

    def schedule(self, observer: BaseObserver, files: tuple[Path, ...]) -> None:
        """Watch the folders of ``files``; re-watch folders made anew."""
        wanted: dict[Path, tuple[int, int]] = {}
        for folder in {path.parent for path in files}:
            identity = _identity(folder)
            if identity is not None:
                wanted[folder] = identity
        for folder, (watch, identity) in list(self._watches.items()):
            if wanted.get(folder) != identity:
                observer.unschedule(watch)
                del self._watches[folder]
        for folder, identity in wanted.items():
            if folder not in self._watches:
                watch = observer.schedule(self, str(folder), recursive=False)
                self._watches[folder] = (watch, identity)
        self._files = frozenset(str(path) for path in files)
        self._folders = frozenset(str(path.parent) for path in files)

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = {os.fsdecode(event.src_path), os.fsdecode(event.dest_path)}
        kind = event.event_type
        if kind == "moved" and os.fsdecode(event.dest_path) == self._dfu_path:
            self._on_renamed()
        if (kind in _CONTENT_EVENTS and not paths.isdisjoint(self._files)) or (
            kind in _FOLDER_EVENTS and event.is_directory and not paths.isdisjoint(self._folders)
        ):
            self._on_change()


def _made_note(dfu_path: Path, artifact: Artifact, stale: Stale | None) -> str:
    """What is said of a dfu.bin made in place of ``artifact``: why, and the flash size taken
    from flasher_args.json when flash_params.dat said another."""
    made = f"made a new one from {FLASHER_ARGS}"
    if stale is None:
        shown = f"{dfu_path.parent.name}/{dfu_path.name}"  # as Stale shows it: build/dfu.bin
        return f"{shown} is not usable ({artifact.problem.rstrip('.')}): {made}."
    if stale.flash_size:
        made += f", for its {stale.flash_size} flash"
    return f"{stale.said()}: {made}."


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None if there is none: a folder made anew is another."""
    try:
        stat = folder.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if S_ISDIR(stat.st_mode) else None
