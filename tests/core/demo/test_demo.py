"""The demo project: its build command is a real process that makes a new dfu.bin each time."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from espdfu.bench.settings import workbench_settings
from espdfu.config import load_settings
from espdfu.demo.project import BRIDGED, DEMO_BOARDS, DemoProject, main, make_demo_project
from espdfu.files import dfufile
from espdfu.files.idfbuild import BuildFolder
from espdfu.sim import SimBus
from espdfu.sim.firmware import app_info
from espdfu.sim.spec import parse_boards, parse_spec


def _build(demo: DemoProject) -> subprocess.CompletedProcess[str]:
    """Run the demo's build command as the app's build runner would: in the project folder."""
    return subprocess.run(
        demo.build_command,
        cwd=demo.project_dir,
        env={**os.environ, "ESPDFU_DEMO_BUILD_S": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def demo(tmp_path: Path) -> DemoProject:
    return make_demo_project(tmp_path)


def test_the_project_looks_like_an_esp_idf_project(demo: DemoProject) -> None:
    assert demo.build_dir == demo.project_dir / "build"
    assert demo.config_dir.parent == demo.project_dir.parent  # in the throw-away folder
    assert (demo.project_dir / "CMakeLists.txt").is_file()
    assert (demo.project_dir / "main" / "app_main.c").is_file()
    sdkconfig = (demo.project_dir / "sdkconfig").read_text()
    assert 'CONFIG_IDF_TARGET="esp32s2"' in sdkconfig
    assert 'CONFIG_ESPTOOLPY_FLASHSIZE="4MB"' in sdkconfig


def test_the_demo_boards(demo: DemoProject) -> None:
    assert demo.sim_spec == DEMO_BOARDS
    boards = [(chip, kind.value) for chip, kind in parse_spec(DEMO_BOARDS)]
    assert boards.count(("esp32s2", "rom")) == 3
    assert ("esp32s3", "rom") in boards and ("esp32s2", "app") in boards
    (app,) = [board for board in parse_boards(DEMO_BOARDS) if board.kind.value == "app"]
    assert app.settings == {"app": "panic-once"}  # the demo shows a panic kept on its panel


def test_the_demos_bridged_boards_are_linked_to_their_bridges_in_its_project_file(
    demo: DemoProject,
) -> None:
    """Two S2 DevKits reset through their bridge, one left to the finger: the demo shows both."""
    bus = SimBus.from_spec(DEMO_BOARDS)
    bridged = [path for path, board in bus.boards.items() if board.bridge is not None]
    assert bridged == list(BRIDGED) and len(bus.boards) > len(bridged)
    settings = load_settings(demo.project_dir)
    assert {path: settings.consoles[path] for path in bridged} == {
        path: f"espdfusim://{path}" for path in BRIDGED
    }
    assert workbench_settings(settings).bridge_reset


def test_a_build_makes_a_dfu_bin_like_idf_py_dfu(demo: DemoProject) -> None:
    result = _build(demo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    progress = [line for line in lines if re.match(r"\[\d+/\d+\] ", line)]
    assert progress[0].startswith("[1/24] ") and progress[-1] == (
        "[24/24] Generating binary image from built executable"
    )
    assert any(line.startswith("-- ") for line in lines) and lines[-1] == "Done"
    image = dfufile.load(demo.build_dir / "dfu.bin")
    assert image.valid and image.chip_name == "esp32s2" and image.flash_size == 4 * 1024 * 1024
    assert [(entry.name, entry.address) for entry in image.entries] == [
        ("bootloader.bin", 0x1000),
        ("partition-table.bin", 0x8000),
        ("app.bin", 0x10000),
    ]
    # The same bytes espdfu (and so idf.py) makes from that build folder.
    assert image.raw == BuildFolder.open(demo.build_dir).make_dfu()
    # The app names its project, as an ESP-IDF app does in its esp_app_desc_t
    app = (demo.build_dir / "app.bin").read_bytes()
    assert app[0] == 0xE9 and app_info(app).project == "espdfu-demo"


def test_every_build_gives_new_content(demo: DemoProject) -> None:
    assert _build(demo).returncode == 0
    first = (demo.build_dir / "dfu.bin").read_bytes()
    args = demo.build_dir / "flasher_args.json"
    args_written = args.stat().st_mtime_ns
    assert _build(demo).returncode == 0
    assert (demo.build_dir / "dfu.bin").read_bytes() != first
    assert args.stat().st_mtime_ns == args_written  # unchanged, so not rewritten


def test_a_failed_build_leaves_the_dfu_bin_alone(demo: DemoProject) -> None:
    assert _build(demo).returncode == 0
    before = (demo.build_dir / "dfu.bin").read_bytes()
    (demo.project_dir / "main" / "FAIL").touch()
    result = _build(demo)
    assert result.returncode == 2
    assert re.search(r"main/app_main\.c:7:5: error: ", result.stdout)
    assert "ninja: build stopped: subcommand failed." in result.stdout
    assert "Done" not in result.stdout
    assert (demo.build_dir / "dfu.bin").read_bytes() == before


def test_not_the_demo_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(tmp_path)]) == 2
    assert "is not the demo project" in capsys.readouterr().err


def test_a_bad_build_time(
    demo: DemoProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "soon")
    assert main(["build", str(demo.project_dir)]) == 2
    assert "ESPDFU_DEMO_BUILD_S='soon' is not a number" in capsys.readouterr().err
