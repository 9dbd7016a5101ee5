"""The build-folder watcher on real folders, with the real watchdog observer."""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver

from espdfu.bench.artifacts import Artifact, ArtifactWatcher
from espdfu.chips import chip_by_name
from espdfu.errors import InputError
from espdfu.files import dfufile
from espdfu.files.idfbuild import BuildFolder, read_flash_files
from tests.conftest import missing
from tests.helpers.buildfolder import NEWER_APP, fake_build, one_mtime, stale_build

SETTLE_S = 0.15
MB = 1024 * 1024
WAIT_S = 5.0


def _dfu(content: bytes = b"\xe9app") -> bytes:
    chip = chip_by_name("esp32s2")
    assert chip is not None
    app = dfufile.FlashFile(0x10000, "app.bin", content * 1000)
    return dfufile.pack([app], pid=chip.dfu_pid)


class Watching:
    """A started watcher whose reports arrive in queues, and whose settled rounds (its looks
    at the folder once the files were still: every report but a rename's comes from one) are
    counted."""

    def __init__(self, build_dir: Path, settle_s: float = SETTLE_S, make_dfu: bool = True) -> None:
        self.artifacts: queue.Queue[Artifact] = queue.Queue()
        self.notes: queue.Queue[str] = queue.Queue()
        self.unmade: queue.Queue[str] = queue.Queue()
        self.watcher = ArtifactWatcher(
            build_dir,
            self.artifacts.put,
            settle_s=settle_s,
            make_dfu=make_dfu,
            on_note=self.notes.put,
            on_unmade=self.unmade.put,
        )
        self.rounds = threading.Condition()
        self.started = self.ended = 0
        settled = self.watcher._settled

        def counted(observer: BaseObserver) -> None:
            with self.rounds:
                self.started += 1
            try:
                settled(observer)
            finally:
                with self.rounds:
                    self.ended += 1
                    self.rounds.notify_all()

        self.watcher._settled = counted  # type: ignore[method-assign]

    def next(self) -> Artifact:
        return self.artifacts.get(timeout=WAIT_S)

    def nothing_more(self, touch: Path | None = None, rounds: int = 1) -> None:
        """Nothing is reported up to the end of ``rounds`` settled rounds begun after ``touch``
        was written again, the same bytes (the watcher must look again), which a late report
        of anything before would precede; without ``touch``, up to the end of the round under
        way (the one that said what the test waited for)."""
        with self.rounds:
            if touch is None:
                wanted = self.started
            else:
                touch.write_bytes(touch.read_bytes())
                wanted = self.started + rounds
            assert self.rounds.wait_for(lambda: self.ended >= wanted, WAIT_S), "settled rounds"
        with pytest.raises(queue.Empty):
            reported = self.artifacts.get_nowait()
            pytest.fail(f"unexpected report: {reported}")

    def note(self) -> str:
        return self.notes.get(timeout=WAIT_S)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "build"
    folder.mkdir()
    return folder


@pytest.fixture
def watching(build_dir: Path) -> Iterator[Watching]:
    """A watcher started on ``build_dir`` (without making dfu.bin), stopped afterwards."""
    before = set(threading.enumerate())
    watching = Watching(build_dir, make_dfu=False)
    watching.watcher.start()
    yield watching
    watching.watcher.stop()
    assert set(threading.enumerate()) <= before


def test_the_dfu_bin_there_is_reported_at_start(build_dir: Path) -> None:
    (build_dir / "dfu.bin").write_bytes(_dfu())
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.artifacts.get_nowait()  # reported before start() returned
        assert artifact.valid and not artifact.made_here and artifact.problem == ""
        assert artifact.path == (build_dir / "dfu.bin").absolute()
        assert artifact.image is not None and artifact.image.chip_name == "esp32s2"
        assert watching.watcher.current == artifact
        assert watching.watcher.check_now() == artifact  # read again: the same artifact
        watching.nothing_more(build_dir / "dfu.bin")
    finally:
        watching.watcher.stop()


def test_a_file_written_in_pieces_is_reported_once_complete(build_dir: Path) -> None:
    """Pieces 25 ms apart, each one seen by the watcher, within a settle time forty times as
    long (not six: a loaded machine's stall between two pieces must not end the settling)."""
    watching = Watching(build_dir, settle_s=1.0, make_dfu=False)
    watching.watcher.start()
    data = _dfu()
    pieces = [data[n : n + len(data) // 5 + 1] for n in range(0, len(data), len(data) // 5 + 1)]
    try:
        with (build_dir / "dfu.bin").open("wb") as file:
            for piece in pieces:
                file.write(piece)
                file.flush()
                time.sleep(0.025)
        artifact = watching.next()
        assert artifact.valid and artifact.size == len(data)
        watching.nothing_more(build_dir / "dfu.bin")
    finally:
        watching.watcher.stop()


def test_a_file_renamed_into_place(build_dir: Path, watching: Watching) -> None:
    temporary = build_dir / "dfu.bin.tmp"
    temporary.write_bytes(_dfu())
    temporary.replace(build_dir / "dfu.bin")  # as os.replace
    assert watching.next().valid
    watching.nothing_more(build_dir / "dfu.bin")


def test_a_rename_into_place_is_reported_without_waiting_to_settle(build_dir: Path) -> None:
    """A renamed file is complete: waiting for it to settle would only delay the flash."""
    slow = ArtifactWatcher(build_dir, (reports := queue.Queue[Artifact]()).put, settle_s=30.0)
    slow.start()
    try:
        temporary = build_dir / "dfu.bin.part"
        temporary.write_bytes(_dfu(b"renamed"))
        temporary.replace(build_dir / "dfu.bin")
        artifact = reports.get(timeout=WAIT_S)  # far sooner than the 30 s settle
        assert artifact.valid and artifact.path == build_dir / "dfu.bin"
    finally:
        slow.stop()


def test_the_same_content_is_one_artifact(build_dir: Path, watching: Watching) -> None:
    (build_dir / "dfu.bin").write_bytes(_dfu(b"one"))
    first = watching.next()
    (build_dir / "dfu.bin").write_bytes(_dfu(b"one"))
    watching.nothing_more(build_dir / "dfu.bin")
    (build_dir / "dfu.bin").write_bytes(_dfu(b"two"))
    second = watching.next()
    assert second.valid and second.digest != first.digest
    assert watching.watcher.current == second


def test_a_file_that_stays_cut_short_is_one_invalid_artifact(
    build_dir: Path, watching: Watching
) -> None:
    data = _dfu()
    (build_dir / "dfu.bin").write_bytes(data[: len(data) // 2])
    artifact = watching.next()
    assert not artifact.valid and artifact.image is None
    assert "cut short" in artifact.problem
    watching.nothing_more(build_dir / "dfu.bin")


def test_a_deleted_dfu_bin_keeps_the_last_artifact(build_dir: Path, watching: Watching) -> None:
    (build_dir / "dfu.bin").write_bytes(_dfu())
    artifact = watching.next()
    (build_dir / "dfu.bin").unlink()
    assert "deleted" in watching.note()
    assert watching.watcher.current == artifact
    watching.nothing_more()  # dfu.bin is gone: nothing to touch


def test_a_build_folder_made_after_start(tmp_path: Path) -> None:
    watching = Watching(tmp_path / "build")
    watching.watcher.start()
    try:
        (tmp_path / "build").mkdir()
        (tmp_path / "build" / "dfu.bin").write_bytes(_dfu())
        assert watching.next().valid
    finally:
        watching.watcher.stop()


def test_a_build_folder_removed_and_made_again(build_dir: Path, watching: Watching) -> None:
    (build_dir / "dfu.bin").write_bytes(_dfu(b"old"))
    watching.next()
    shutil.rmtree(build_dir)  # idf.py fullclean
    assert "was removed" in watching.note()
    build_dir.mkdir()
    (build_dir / "dfu.bin").write_bytes(_dfu(b"new"))
    assert watching.next().valid


def test_a_plain_build_gets_its_dfu_bin_made(build_dir: Path) -> None:
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        fake_build(build_dir)
        artifact = watching.next()
        assert artifact.valid and artifact.made_here
        expected = BuildFolder.open(build_dir).make_dfu()
        assert (build_dir / "dfu.bin").read_bytes() == expected
        assert artifact.image is not None and artifact.image.raw == expected
        watching.nothing_more(
            build_dir / "dfu.bin"
        )  # made once, and the dfu.bin it wrote is not new again

        # A rebuilt bootloader alone is not made into a dfu.bin with the old app, and the one
        # with the old bootloader is not usable any more ...
        bootloader = build_dir / "bootloader" / "bootloader.bin"
        bootloader.write_bytes(b"\xe9new bootloader")
        note = watching.note()
        assert note.startswith(
            "build/dfu.bin holds an older bootloader than build/bootloader/bootloader.bin; "
        )
        assert "app.bin is not" in note and "`idf.py dfu`" in note
        held = watching.next()
        assert held.digest == artifact.digest and not held.valid
        assert held.problem.startswith("it holds an older bootloader than build/bootloader/")
        watching.nothing_more(bootloader)  # the bootloader stays the newer: a build runs
        # ... but a rebuilt app is, with the new bootloader.
        (build_dir / "app.bin").write_bytes(b"\xe9new app" * 300)
        rebuilt = watching.next()
        assert rebuilt.made_here and rebuilt.digest != artifact.digest
        assert rebuilt.image is not None
        assert {entry.name for entry in rebuilt.image.entries} >= {"bootloader.bin", "app.bin"}
        assert (build_dir / "dfu.bin").read_bytes() == BuildFolder.open(build_dir).make_dfu()
    finally:
        watching.watcher.stop()


def test_a_missing_image_is_said_in_mkdfus_words_until_it_comes(build_dir: Path) -> None:
    """The app and `espdfu watch` showed "no dfu.bin yet" where `espdfu mkdfu --build-dir`
    says which image flasher_args.json names that is not there: they say the same now."""
    fake_build(build_dir)
    bootloader = build_dir / "bootloader" / "bootloader.bin"
    kept = bootloader.read_bytes()
    bootloader.unlink()
    with pytest.raises(InputError) as mkdfu:
        BuildFolder.open(build_dir).make_dfu()
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        said = watching.unmade.get(timeout=WAIT_S)
        assert said == str(mkdfu.value) and "bootloader.bin does not exist" in said
        bootloader.write_bytes(kept)  # the build finishes: the dfu.bin is made, the words gone
        assert watching.next().made_here
        assert watching.unmade.get(timeout=WAIT_S) == ""
    finally:
        watching.watcher.stop()


# --- a dfu.bin of an older build -------------------------------------------------------------
# `idf.py build` does not remake dfu.bin: public ESP-IDF projects commit build folders whose
# dfu.bin holds an older app than the images beside it. Only content tells: a copy gives every
# file one mtime, a touch makes an image newer.


@pytest.mark.parametrize("copied", ["with one mtime", "with the images newer"])
def test_a_dfu_bin_holding_an_older_app_is_never_reported_but_made_anew(
    build_dir: Path, copied: str
) -> None:
    """It was reported (and flashed by auto-flash) as the watcher started; with the images
    newer, the right one was made only after it."""
    stale = stale_build(build_dir)
    one_mtime(build_dir, older=build_dir / "dfu.bin" if copied.endswith("newer") else None)
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()  # the first report
        assert artifact.made_here and artifact.valid and artifact.image is not None
        assert artifact.image.raw == BuildFolder.open(build_dir).make_dfu() != stale
        assert (build_dir / "dfu.bin").read_bytes() == artifact.image.raw
        assert watching.note() == (
            "build/dfu.bin holds an older app than build/app.bin: made a new one from "
            "flasher_args.json."
        )
        watching.nothing_more(build_dir / "app.bin")
    finally:
        watching.watcher.stop()


def test_a_dfu_bin_that_says_less_flash_than_the_build_is_made_anew_with_the_builds(
    build_dir: Path,
) -> None:
    """As in an ESP32-S3 restful_server's build folder: flash_params.dat says 2MB, its parts
    reach past 2 MB, and flasher_args.json says 4MB."""
    fake_build(build_dir)
    app = build_dir / "app.bin"
    app.write_bytes(b"\xe9" + bytes(range(256)) * 8200)  # from 0x10000 to past 2 MB
    folder = BuildFolder.open(build_dir)
    files = read_flash_files(folder.flash_files)  # as ESP-IDF writes it, past its flash
    (build_dir / "dfu.bin").write_bytes(dfufile.pack(files, pid=2, flash_size=2 * MB))
    one_mtime(build_dir)
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()
        assert artifact.made_here and artifact.image is not None
        assert artifact.image.flash_size == 4 * MB and artifact.image.warnings == ()
        assert artifact.image.raw == folder.make_dfu()
        assert watching.note() == (
            "build/dfu.bin says 2 MB of flash in flash_params.dat where flasher_args.json says "
            "4MB: made a new one from flasher_args.json, for its 4MB flash."
        )
    finally:
        watching.watcher.stop()


def test_a_dfu_bin_that_holds_the_build_is_reported_as_it_is_and_left_alone(
    build_dir: Path,
) -> None:
    """Images newer than dfu.bin, with the content it holds (a touch, a checkout back): nothing
    is made, and the file is not rewritten, though it was made in parts of 1 KiB where espdfu
    makes them of 512 KiB."""
    fake_build(build_dir)
    dfu = build_dir / "dfu.bin"
    dfu.write_bytes(BuildFolder.open(build_dir).make_dfu(part_size=1024))
    one_mtime(build_dir, older=dfu)
    before = dfu.read_bytes(), dfu.stat().st_mtime_ns
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()
        assert artifact.valid and not artifact.made_here and artifact.image is not None
        assert [entry.name for entry in artifact.image.entries][-2:] == ["app.bin", "app.bin.1"]
        watching.nothing_more(build_dir / "flasher_args.json", rounds=2)  # the plan's, the images'
        assert (dfu.read_bytes(), dfu.stat().st_mtime_ns) == before
        assert watching.notes.empty()
    finally:
        watching.watcher.stop()


def test_a_dfu_bin_holding_an_older_app_that_cannot_be_made_anew_is_not_usable(
    build_dir: Path,
) -> None:
    """An image flasher_args.json names is missing: no new dfu.bin can be made, and the old one
    is reported not usable, with why; the note says why none is made and what to do."""
    stale = stale_build(build_dir)
    (build_dir / "partition_table" / "partition-table.bin").unlink()
    one_mtime(build_dir)
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()
        assert not artifact.valid and artifact.image is not None and artifact.image.raw == stale
        assert artifact.problem == (
            "it holds an older app than build/app.bin (`idf.py dfu` makes it again)"
        )
        note = watching.note()
        assert note.startswith("build/dfu.bin holds an older app than build/app.bin; ")
        assert "partition-table.bin does not exist" in note and "`idf.py build`" in note
        watching.nothing_more(build_dir / "app.bin")
        assert (build_dir / "dfu.bin").read_bytes() == stale
        (build_dir / "app.bin").write_bytes(NEWER_APP[:-1])  # rebuilt: the same words, once
        watching.nothing_more(build_dir / "app.bin")
        assert watching.notes.empty()
    finally:
        watching.watcher.stop()


def test_a_dfu_bin_cut_short_beside_a_whole_build_is_made_anew(build_dir: Path) -> None:
    """It was reported not usable and left so, the images being no newer than it."""
    fake_build(build_dir)
    whole = BuildFolder.open(build_dir).make_dfu()
    (build_dir / "dfu.bin").write_bytes(whole[: len(whole) // 2])
    one_mtime(build_dir)
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()
        assert artifact.made_here and artifact.valid and artifact.image is not None
        assert artifact.image.raw == whole
        note = watching.note()
        assert note.startswith("build/dfu.bin is not usable (The file is cut short")
        assert note.endswith("): made a new one from flasher_args.json.")
    finally:
        watching.watcher.stop()


def test_nothing_is_made_while_paused(build_dir: Path) -> None:
    watching = Watching(build_dir)
    watching.watcher.paused = True
    watching.watcher.start()
    try:
        fake_build(build_dir)
        watching.nothing_more(build_dir / "flasher_args.json", rounds=2)  # the plan's, the images'
        assert not (build_dir / "dfu.bin").exists()
    finally:
        watching.watcher.stop()


def test_a_target_without_dfu_is_said_not_raised(build_dir: Path) -> None:
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        fake_build(build_dir, target="esp32c3")
        assert "esp32c3 has no USB DFU" in watching.note()
        watching.nothing_more(build_dir / "flasher_args.json", rounds=2)
        assert not (build_dir / "dfu.bin").exists()
    finally:
        watching.watcher.stop()


def test_stop_leaves_no_thread(tmp_path: Path) -> None:
    """stop() joins the watcher's threads (how promptly: benchmarks/bench_stop.py)."""
    before = set(threading.enumerate())
    for folder in (tmp_path, tmp_path / "not yet"):  # watching, and waiting for the folder
        watcher = ArtifactWatcher(folder, lambda artifact: None, settle_s=SETTLE_S)
        watcher.start()
        assert set(threading.enumerate()) > before
        watcher.stop()
        assert set(threading.enumerate()) <= before


# --- hostile build folders --------------------------------------------------------------------


def _name_image(build_dir: Path, address: str, name: str) -> None:
    args = json.loads((build_dir / "flasher_args.json").read_text())
    args["flash_files"][address] = name
    (build_dir / "flasher_args.json").write_text(json.dumps(args))


def test_an_image_from_the_source_tree_goes_into_the_dfu_bin(build_dir: Path) -> None:
    """ESP-IDF names images from the project's source tree as ../main/...: taken, as mkdfu.py
    takes them."""
    certs = build_dir.parent / "main" / "certs"
    certs.mkdir(parents=True)
    (certs / "client.crt").write_bytes(b"-----BEGIN CERTIFICATE-----")
    fake_build(build_dir)
    _name_image(build_dir, "0x300000", "../main/certs/client.crt")
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        artifact = watching.next()
        assert artifact.valid and artifact.made_here and artifact.image is not None
        assert ("client.crt", 0x300000) in [(e.name, e.address) for e in artifact.image.entries]
    finally:
        watching.watcher.stop()


def test_an_image_that_is_a_named_pipe_gets_no_dfu_bin_and_is_named(build_dir: Path) -> None:
    if not hasattr(os, "mkfifo"):
        missing("named pipes need a POSIX system")
    os.mkfifo(build_dir.parent / "pipe")
    fake_build(build_dir)
    _name_image(build_dir, "0x20000", "../pipe")
    watching = Watching(build_dir)
    watching.watcher.start()
    try:
        note = watching.note()
        assert 'names "../pipe" under "0x20000", but' in note
        assert "is a pipe, device or socket, not a file." in note
        assert not (build_dir / "dfu.bin").exists()
    finally:
        watching.watcher.stop()


def test_a_dfu_bin_that_is_a_named_pipe_is_reported_not_waited_on(build_dir: Path) -> None:
    if not hasattr(os, "mkfifo"):
        missing("named pipes need a POSIX system")
    os.mkfifo(build_dir / "dfu.bin")
    watching = Watching(build_dir, make_dfu=False)
    starting = threading.Thread(target=watching.watcher.start, daemon=True)
    starting.start()
    starting.join(WAIT_S)
    try:
        assert not starting.is_alive(), "start() hung on the pipe"
        artifact = watching.next()
        assert not artifact.valid and artifact.image is None
        assert artifact.problem.endswith("dfu.bin is a device, pipe or socket, not a dfu.bin.")
    finally:
        watching.watcher.stop()
