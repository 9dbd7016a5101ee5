"""Files and folders that are missing, damaged or forged: a sentence each, nothing else.

Every reader of the project's inputs (dfu.bin, a build folder's JSON and images, the TOML
configuration) is given what a broken disk, a build still running or somebody else's files
could give it. Each must refuse with one of espdfu's errors, worded for people, and must never
hang, read without end or raise anything else.
"""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espdfu.cli import main
from espdfu.config import PROJECT_FILE, ConfigError, load_settings, save_label
from espdfu.errors import DfuFormatError, EspdfuError, InputError
from espdfu.files import dfufile
from espdfu.files.idfbuild import BuildFolder, flash_files_from_json
from tests.conftest import missing
from tests.helpers.archive import archive, record, with_suffix

GB = 1024**3
MB = 1024**2
ENDS_WITHIN_S = 30.0
"""Not a speed goal: long enough for any machine, short enough to call a hang a hang."""


def _error_of(action: Callable[[], object]) -> EspdfuError:
    """The error ``action`` raises, on a thread, so that a hang fails the test instead."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            action()
        except BaseException as error:  # handed to the test to judge
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(ENDS_WITHIN_S)
    assert not thread.is_alive(), "it hung"
    error = outcome[0]
    assert isinstance(error, EspdfuError), f"expected espdfu's error, got {error!r}"
    assert error.message.endswith((".", "?")), error.message  # a sentence
    return error


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        missing("named pipes need a POSIX system")
    os.mkfifo(path)
    return path


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        file.truncate(size)  # a hole: costs no disk and no time
    return path


def _build_folder(root: Path, flash_files: dict[str, str], target: str = "esp32s2") -> Path:
    build = root / "build"
    build.mkdir()
    (build / "app.bin").write_bytes(b"\xe9" * 4096)
    args = {"flash_files": flash_files, "flash_settings": {"flash_size": "4MB"}}
    (build / "flasher_args.json").write_text(json.dumps(args))
    (build / "project_description.json").write_text(json.dumps({"target": target}))
    return build


# --- dfu.bin ----------------------------------------------------------------------------------


def test_a_2_gb_dfu_bin_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "dfu.bin", 2 * GB)
    tracemalloc.start()
    try:
        error = _error_of(lambda: dfufile.load(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, InputError)
    assert error.message == (
        f"{path} is 2 GB: far too large to be a dfu.bin (the limit is 256 MB)."
    )
    assert error.hint == f"Check that {path} is the file you meant."
    assert peak < MB  # not read: refused from its size alone


def test_a_dfu_bin_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = _fifo(tmp_path / "dfu.bin")
    error = _error_of(lambda: dfufile.load(path))
    assert error.message == f"{path} is a device, pipe or socket, not a dfu.bin."


def test_a_device_that_never_ends_is_refused(tmp_path: Path) -> None:
    if not Path("/dev/zero").exists():
        missing("there is no /dev/zero")
    (tmp_path / "dfu.bin").symlink_to("/dev/zero")
    error = _error_of(lambda: dfufile.load(tmp_path / "dfu.bin"))
    assert "is a device, pipe or socket, not a dfu.bin" in error.message


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dfu.bin").symlink_to(tmp_path / "dfu.bin")
    error = _error_of(lambda: dfufile.load(tmp_path / "dfu.bin"))
    assert error.message.startswith(f"Cannot read {tmp_path / 'dfu.bin'}: ")


def test_a_nul_in_a_file_name_is_refused(tmp_path: Path) -> None:
    error = _error_of(lambda: dfufile.load(tmp_path / "dfu\0.bin"))
    assert "holds a NUL character" in error.message


def test_a_file_with_more_bytes_than_its_size_said_is_not_half_read() -> None:
    """A /proc file says 0 bytes and has more, as a file still growing would have."""
    path = Path("/proc/self/cmdline")
    if not path.is_file():
        missing("there is no /proc")
    error = _error_of(lambda: dfufile.load(path))
    assert error.message == (
        f"{path} changed while it was being read: something is still writing it."
    )
    assert error.hint == "Wait until the build (or copy) has finished, then try again."


def test_a_dfu_bin_replaced_while_read_gives_one_version_whole(tmp_path: Path) -> None:
    """Replaced by a rename, as builds and espdfu replace files, in a loop while it is read:
    every read gives one version or the other, never a mix."""
    versions = [
        dfufile.pack([dfufile.FlashFile(0x10000, "app.bin", bytes([n]) * (300_000 + n))], pid=2)
        for n in (1, 2)
    ]
    path = tmp_path / "dfu.bin"
    dfufile.save(path, versions[0])
    stop = threading.Event()

    def replace_for_ever() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            dfufile.save(path, versions[number % 2])

    writer = threading.Thread(target=replace_for_ever, daemon=True)
    writer.start()
    try:
        seen = {dfufile.load(path).raw for _ in range(200)}
    finally:
        stop.set()
        writer.join(ENDS_WITHIN_S)
    assert seen <= set(versions)


def test_names_in_a_dfu_bin_never_reach_the_terminal_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged name with escape sequences (clear the screen, set the title) is shown escaped."""
    evil = b"app\x1b[2J\x1b]0;pwned\x07.bin"
    stray = b"\xc2\x9b31mred"  # CSI, the C1 form of ESC ["
    payload = archive([record(0x10000, evil, b"x"), record(0, stray, b"")], [(evil, b"x")])
    path = tmp_path / "dfu.bin"
    path.write_bytes(with_suffix(payload))

    image = dfufile.load(path, strict=False)
    assert image.entries[0].name == "app\\x1b[2J\\x1b]0;pwned\\x07.bin"
    assert "'\\x9b31mred'" in image.problems[0]
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "app\\x1b[2J" in out
    assert not any(char in out + err for char in "\x1b\x07\x9b")


def test_a_name_longer_than_any_file_name_is_damage(tmp_path: Path) -> None:
    name = b"n" * 5000
    with pytest.raises(DfuFormatError, match="declares a name of 5,001 bytes"):
        dfufile.parse(with_suffix(archive([], [(name, b"")])))


# --- build folders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "names the file '', which cannot exist"),
        ("app\0.bin", "names the file 'app\\x00.bin', which cannot exist"),
    ],
)
def test_flasher_args_naming_what_a_build_cannot_hold(
    tmp_path: Path, name: str, words: str
) -> None:
    build = _build_folder(tmp_path, {"0x10000": name})
    error = _error_of(lambda: BuildFolder.open(build))
    assert words in error.message


@pytest.mark.parametrize("name", ["/no/such/dir/x.bin", "../../../../../../no/such/x.bin"])
def test_a_missing_image_anywhere_is_named_with_its_key(tmp_path: Path, name: str) -> None:
    """Paths out of the build folder are the user's own build's (as mkdfu.py trusts them);
    one that leads nowhere is named with the key that named it."""
    build = _build_folder(tmp_path, {"0x10000": name})
    error = _error_of(lambda: BuildFolder.open(build).make_dfu())
    assert error.message.startswith(f'{build / "flasher_args.json"} names "{name}" under "0x10000"')
    assert error.message.endswith("does not exist.")


def test_a_forged_image_name_never_reaches_the_terminal_raw(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, {"0x10000": "\x1b[2J/../../app\x1b[2J.bin"})
    error = _error_of(lambda: BuildFolder.open(build).make_dfu())
    assert error.message == (
        f'{build / "flasher_args.json"} names "\\x1b[2J/../../app\\x1b[2J.bin" under "0x10000", '
        f"but {build}/\\x1b[2J/../../app\\x1b[2J.bin does not exist."
    )
    assert "\x1b" not in str(error)


@pytest.mark.parametrize("where", ["boot.bin", "../boot.bin"])
def test_an_image_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path: Path, where: str) -> None:
    build = _build_folder(tmp_path, {"0x10000": "app.bin", "0x1000": where})
    _fifo(build / where)
    error = _error_of(lambda: BuildFolder.open(build).make_dfu())
    assert error.message == (
        f'{build / "flasher_args.json"} names "{where}" under "0x1000", but {build / where} '
        "is a pipe, device or socket, not a file."
    )
    assert "idf.py build" in error.hint


def test_a_build_folder_that_is_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "build").symlink_to(tmp_path / "build")
    error = _error_of(lambda: BuildFolder.open(tmp_path / "build"))
    assert (
        error.message == f"The build folder {tmp_path / 'build'} does not exist or is not a folder."
    )


def test_a_flasher_args_json_that_is_a_symlink_loop(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, {"0x10000": "app.bin"})
    (build / "flasher_args.json").unlink()
    (build / "flasher_args.json").symlink_to(build / "flasher_args.json")
    error = _error_of(lambda: BuildFolder.open(build))
    assert "has no flasher_args.json" in error.message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[" * 100_000, "nests lists or objects too deeply"),
        ('{"flash_files": ' * 50_000, "nests lists or objects too deeply"),
        (b"\x00\xff\xfe junk \x80".decode("latin-1"), "is not valid JSON"),
        ('{"flash_files": {"0x1" : "app.bin"}, "x": 1' + "9" * 10_000 + "}", "is not valid JSON"),
        ('{"flash_files": ["app.bin"]}', "no 'flash_files' object"),
        ('{"flash_files": {"-0x1000": "app.bin"}}', "does not fit the 32-bit flash space"),
    ],
    ids=["deep-list", "deep-object", "binary", "huge-number", "list", "negative-address"],
)
def test_hostile_flasher_args_json(tmp_path: Path, content: str, words: str) -> None:
    build = _build_folder(tmp_path, {})
    (build / "flasher_args.json").write_text(content, encoding="latin-1")
    error = _error_of(lambda: BuildFolder.open(build).make_dfu())
    assert words in error.message


def test_a_huge_flasher_args_json_is_refused_by_its_size(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "flasher_args.json", 2 * GB)
    error = _error_of(lambda: flash_files_from_json(path))
    assert error.message == f"{path} is 2 GB: far too large to be a JSON file (the limit is 16 MB)."


def test_a_target_name_with_shell_words_is_only_a_name(tmp_path: Path) -> None:
    build = _build_folder(tmp_path, {"0x10000": "app.bin"}, target="esp32s2; rm -rf ~")
    error = _error_of(lambda: BuildFolder.open(build))
    assert error.message.startswith("The target esp32s2; rm -rf ~ has no USB DFU")


# --- configuration ----------------------------------------------------------------------------


def _config_error(tmp_path: Path, content: str | bytes) -> ConfigError:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    path = project / PROJECT_FILE
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    error = _error_of(lambda: load_settings(project, config_dir=tmp_path / "config"))
    assert isinstance(error, ConfigError) and error.path == path
    return error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a = " + "[" * 50_000, "lists or tables are nested too deeply to be settings."),
        ("a = " + "{b = " * 20_000, "lists or tables are nested too deeply to be settings."),
        (b"\x7fELF\x02\x01\x01\x00\xff\xff", "line 1: the file is not UTF-8 text."),
        (
            '[build]\ncommand = ["idf.py\\u0000", "dfu"]\n',
            "line 2: [build] command cannot hold a NUL",
        ),
        (
            '[build]\ndir = "build\\u0000"\n',
            'line 2: [build] dir must be a folder name, got "build',
        ),
        ('[build]\ndir = "~no-such-user-here/build"\n', "names the home folder of an unknown user"),
        ("[flash]\nauto = 1\n", "line 2: [flash] auto must be true or false, got 1."),
        ("[ui]\nmonitor_interval = nan\n", "must be a number of seconds from 0.05 to 10, got nan."),
        ('[build]\n"sh\\u001b[2Jell" = true\n', "unknown key [build] sh\\x1b[2Jell."),
        ('["\\u001b]0;x\\u0007"]\n', "unknown section [\\x1b]0;x\\x07]."),
        ('[labels]\n"1-1" = "jig\\u001b[31m"\n', "must be a label on one line, without control"),
        ("[[build]]\ncommand = 'x'\n", "line 1: build must be a section, got a list."),
    ],
    ids=[
        "deep-list",
        "deep-table",
        "binary",
        "nul-command",
        "nul-dir",
        "unknown-user",
        "wrong-type",
        "nan",
        "escape-key",
        "escape-section",
        "escape-label",
        "table-array",
    ],
)
def test_hostile_config_files(tmp_path: Path, content: str | bytes, message: str) -> None:
    error = _config_error(tmp_path, content)
    assert message in error.message
    assert error.hint
    assert not any(char in str(error) for char in "\x00\x07\x1b")


def test_a_huge_config_file_is_refused_by_its_size(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    _sparse(tmp_path / "project" / PROJECT_FILE, 2 * GB)
    error = _error_of(lambda: load_settings(tmp_path / "project", config_dir=tmp_path))
    assert "is 2 GB: far too large to be a configuration file (the limit is 1 MB)" in error.message


def test_a_config_file_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    path = _fifo(tmp_path / "config" / "config.toml")
    error = _error_of(lambda: load_settings(None, config_dir=tmp_path / "config"))
    assert error.message == f"{path} is a device, pipe or socket, not a configuration file."


def test_a_label_with_control_characters_is_not_saved(tmp_path: Path) -> None:
    error = _error_of(lambda: save_label("1-1", "jig\x1b[2J", config_dir=tmp_path))
    assert error.message == "The label must be a label on one line, without control characters."
    assert not (tmp_path / "labels.toml").exists()


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300) | st.text(max_size=300))
def test_any_config_file_gives_settings_or_a_config_error(
    tmp_path: Path, content: bytes | str
) -> None:
    project = tmp_path / "any"
    project.mkdir(exist_ok=True)
    path = project / PROJECT_FILE
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        load_settings(project, config_dir=tmp_path / "no-config")
    except ConfigError as error:
        assert error.message.startswith(f"{path}")
        assert not any(char in str(error) for char in "\x00\x07\x1b")
