"""`espdfu watch` as a CI rig runs it: a real process, a real folder, virtual boards."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from espdfu.demo.project import app_image
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from tests.helpers.boardworld import image_files
from tests.helpers.command import Command, espdfu, labelled


@pytest.fixture
def start_watch(tmp_path: Path) -> Iterator[object]:
    watches: list[Command] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Command:
        watches.append(Command("watch", tmp_path / "build", *args, env=env))
        return watches[-1]

    yield start
    for watch in watches:
        watch.close()


def _publish(build_dir: Path, seed: int, app_size: int = 40 * 1024) -> None:
    """A new dfu.bin, renamed into place as `idf.py dfu` leaves it complete."""
    build_dir.mkdir(exist_ok=True)
    temporary = build_dir / "dfu.bin.tmp"
    temporary.write_bytes(dfufile.pack(image_files(seed=seed, app_size=app_size), pid=2))
    temporary.replace(build_dir / "dfu.bin")


def test_every_new_dfu_bin_is_flashed_until_ctrl_c(tmp_path: Path, start_watch: object) -> None:
    watch = start_watch("--all", "--sim", "esp32s2*2")  # type: ignore[operator]
    watch.expect("Watching")
    watch.expect("1-1.2: esp32s2, ROM download.")
    _publish(tmp_path / "build", seed=1)
    watch.expect("New dfu.bin: esp32s2")
    flashed = {watch.expect("Flashed").split()[1].rstrip(":") for _ in range(2)}
    assert flashed == {"1-1.1", "1-1.2"}
    _publish(tmp_path / "build", seed=2)
    watch.expect("New dfu.bin")
    watch.expect("Flashed")
    code, err = watch.stop(signal.SIGINT)
    assert code == 130
    assert "espdfu: stopped by SIGINT: " in err


@pytest.mark.parametrize("name", ["1-1.2", "left jig"])
def test_only_the_chosen_board_is_flashed(
    tmp_path: Path, start_watch: object, left_jig: dict[str, str], name: str
) -> None:
    """By its port path, or by its label (which chose no board at all)."""
    watch = start_watch("--path", name, "--sim", "esp32s2*2", env=left_jig)  # type: ignore[operator]
    watch.expect("(1-1.2): esp32s2, ROM download.")
    _publish(tmp_path / "build", seed=1)
    line = watch.expect("Flashed")
    assert "left jig" in line
    assert watch.stop(signal.SIGTERM)[0] == 143  # a CI runner stopping the job
    assert not any("1-1.1: Flashed" in line for line in watch.seen)


@pytest.fixture
def left_jig(tmp_path: Path) -> dict[str, str]:
    return labelled(tmp_path / "config", {"1-1.2": "left jig"})


def test_labels_name_the_boards_and_other_chips_are_said(
    tmp_path: Path, start_watch: object, left_jig: dict[str, str]
) -> None:
    watch = start_watch("--sim", "esp32s2*2,esp32s3", env=left_jig)  # type: ignore[operator]
    watch.expect("left jig (1-1.2): esp32s2, ROM download.")
    _publish(tmp_path / "build", seed=1)
    watch.expect("1-1.3: not flashed: The file is for esp32s2 but the board at 1-1.3 is esp32s3.")
    watch.expect("left jig: Flashed")
    assert watch.stop(signal.SIGINT)[0] == 130


def test_a_build_folder_not_there_yet_is_said(start_watch: object) -> None:
    watch = start_watch("--sim", "esp32s2")  # type: ignore[operator]
    watch.expect("which does not exist yet: a build makes it (Ctrl-C to stop).")
    assert watch.stop(signal.SIGINT)[0] == 130


@pytest.mark.parametrize(
    ("folder", "said"),
    [
        ("/nonexistent/build", "The build folder /nonexistent/build does not exist, and neither "
         "does /nonexistent."),
        ("{file}", "The build folder {file} is a file, not a folder."),
    ],
)  # fmt: skip
def test_what_cannot_be_a_build_folder_is_refused(tmp_path: Path, folder: str, said: str) -> None:
    """It started, watching for ever what could never hold a dfu.bin."""
    file = tmp_path / "some.bin"
    file.write_bytes(b"")
    result = espdfu("watch", folder.format(file=file), "--sim", "esp32s2")
    assert result.returncode == 2 and f"espdfu: {said.format(file=file)}" in result.stderr


def test_a_build_missing_an_image_is_said_in_mkdfus_words(
    tmp_path: Path, start_watch: object
) -> None:
    """It said nothing, and the app "no build/dfu.bin yet", where mkdfu says what is wrong."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "project_description.json").write_text('{"target": "esp32s2"}')
    (build / "flasher_args.json").write_text('{"flash_files": {"0x10000": "app.bin"}}')
    mkdfu = espdfu("mkdfu", "--build-dir", build)
    message = mkdfu.stderr.splitlines()[0].removeprefix("espdfu: ")
    assert mkdfu.returncode == 2 and "app.bin does not exist" in message
    watch = start_watch("--sim", "esp32s2")  # type: ignore[operator]
    watch.expect(message)
    assert watch.stop(signal.SIGINT)[0] == 130


def test_a_dropped_session_aborts_the_running_flash(tmp_path: Path, start_watch: object) -> None:
    """SIGHUP (the SSH session dropped) mid-flash: the flash is aborted cleanly, exit 129."""
    watch = start_watch("--sim", "esp32s2", env={"ESPDFU_SIM_TIME": "1"})  # type: ignore[operator]
    watch.expect("1-1.1: esp32s2, ROM download.")
    _publish(tmp_path / "build", seed=1, app_size=200 * 1024)  # seconds to download
    watch.expect("1-1.1: downloading")  # back on the bus after its detach, in DFU mode
    code, err = watch.stop(signal.SIGHUP)
    assert code == 129
    assert "espdfu: stopped by SIGHUP: 1 flash aborted, board left ready to flash (1-1.1)." in err


def test_a_running_apps_console_is_printed_under_its_board(
    tmp_path: Path, start_watch: object
) -> None:
    watch = start_watch("--sim", "esp32s2-app")  # type: ignore[operator]
    watch.expect("1-1.1: app running")  # after the batch of lines that said so
    watch.expect("1-1.1 | W (2000) app: no Wi-Fi set")
    assert any("1-1.1 | ESP-ROM:esp32s2" in line for line in watch.seen)
    _publish(tmp_path / "build", seed=1)  # flashed: its console closes first, for the flash
    watch.expect("Flashed")
    assert watch.stop(signal.SIGINT)[0] == 130


def test_an_app_that_panics_at_every_start_is_said_crashing_at_boot(start_watch: object) -> None:
    """It was said "app panicked", then "app rebooting in a loop"."""
    watch = start_watch("--sim", "esp32s2-app:panic")  # type: ignore[operator]
    watch.expect("1-1.1: crashing at boot: LoadProhibited")
    assert watch.stop(signal.SIGINT)[0] == 130


def test_no_console_reads_none(tmp_path: Path, start_watch: object) -> None:
    watch = start_watch("--sim", "esp32s2-app", "--no-console")  # type: ignore[operator]
    watch.expect("1-1.1: unknown, app (DFU runtime).")
    _publish(tmp_path / "build", seed=1)
    watch.expect("Flashed")
    assert watch.stop(signal.SIGINT)[0] == 130
    assert not any(" | " in line for line in watch.seen)


def test_a_bridged_board_is_flashed_from_its_app_and_verified_with_no_hands(
    tmp_path: Path, start_watch: object
) -> None:
    """A DevKit's console linked to its bridge: each new dfu.bin reaches it from its app (no USB
    of its own) and its start-up is checked, as a CI rig with no one at the bench needs."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[consoles]\n"1-1.1" = "espdfusim://1-1.1"\n')
    env = {"ESPDFU_CONFIG_DIR": str(config)}
    watch = start_watch("--sim", "esp32s2:bridge", env=env)  # type: ignore[operator]
    watch.expect("1-1.1: esp32s2, ROM download.")
    build = tmp_path / "build"
    build.mkdir()
    for version in ("build 1", "build 2"):
        app = app_image(version, time.gmtime(0), 16 * 1024)
        temporary = build / "dfu.bin.tmp"
        temporary.write_bytes(dfufile.pack([FlashFile(0x10000, "app.bin", app)], pid=2))
        temporary.replace(build / "dfu.bin")
        watch.expect(f"1-1.1: verified: it runs espdfu-demo {version}")
    said = "".join(watch.seen)
    assert said.count("1-1.1: reset into its app through its UART bridge.") == 2
    assert said.count("1-1.1: reset into download mode through its UART bridge") == 1
    assert "Press RESET" not in said
    assert watch.stop(signal.SIGINT)[0] == 130
