"""A throw-away project whose build really makes a new dfu.bin: ``espdfu-tui --demo``.

The demo shows every key working without hardware and without ESP-IDF: virtual boards from
the simulator, and a project whose build command is a real subprocess that behaves like
``idf.py dfu`` — it prints CMake and ninja ``[n/m]`` lines over about two seconds, then writes
the build folder an ESP-IDF build leaves (images, flasher_args.json, project_description.json)
and a dfu.bin made exactly as ``idf.py dfu`` makes it. So the app's build runner, progress bar,
watcher and flashing all run their real code against it. Every build's app.bin differs (a
build number and a time are inside), so every build is a new artifact worth flashing.

Creating ``main/FAIL`` in the demo project makes the next build fail with a compiler error,
leaving dfu.bin as it was: the way to see a failed build in the app.

``python -m espdfu.demo.project build PROJECT`` is the fake ``idf.py dfu``; ``ESPDFU_DEMO_BUILD_S``
sets how long it takes (0 for tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import PROJECT_FILE
from ..errors import EspdfuError
from ..files import dfufile
from ..files.espimage import AppDesc, app_desc_bytes, write_image
from ..files.idfbuild import FLASHER_ARGS, PROJECT_DESCRIPTION, BuildFolder
from ..files.partitions import APP, DATA, Partition, write_table
from ..fsutil import atomic_write
from ..sim.bridge import bridge_url

DEMO_BOARDS = "esp32s2*2:bridge,esp32s2,esp32s3,esp32s2-app:panic-once"
"""Three S2 in ROM download mode, the first two DevKits with a USB-UART bridge (linked in the
project's espdfu.toml: reset through it, no button pressed), the third reset by the demo's
finger; an S3 (the wrong chip for the demo's S2 build, so the app shows why it is skipped) and
an S2 running an application with a DFU runtime, which panics once after it started (so the
demo shows a panic kept on its panel until it is looked at)."""
BRIDGED = ("1-1.1", "1-1.2")
"""Where the bridged boards of :data:`DEMO_BOARDS` are plugged (the first two ports)."""
BUILD_TIME_ENV = "ESPDFU_DEMO_BUILD_S"
DEFAULT_BUILD_S = 2.0
PROJECT_NAME = "espdfu-demo"
FAIL_FLAG = Path("main") / "FAIL"
EXIT_BUILD_FAILED = 2  # what idf.py returns when ninja fails

_TARGET = "esp32s2"
_CHIP_ID = 0x0002  # esp_chip_id_t of the ESP32-S2
_FLASH_SIZE = "4MB"
_APP_SIZE = 96 * 1024
_EDIT = 2 * 1024
"""Bytes a demo build's edit changes in its code."""
_COUNTER = ".espdfu-demo-builds"
_IMAGES = (  # address, path in the build folder: where an ESP32-S2 build puts them
    (0x1000, "bootloader/bootloader.bin"),
    (0x8000, "partition_table/partition-table.bin"),
    (0x10000, "app.bin"),
)
_COMPONENTS = (
    "log/log.c",
    "heap/heap_caps.c",
    "newlib/time.c",
    "freertos/FreeRTOS-Kernel/tasks.c",
    "freertos/FreeRTOS-Kernel/queue.c",
    "freertos/FreeRTOS-Kernel/timers.c",
    "esp_hw_support/cpu.c",
    "esp_hw_support/sleep_modes.c",
    "esp_system/startup.c",
    "esp_system/panic.c",
    "esp_timer/src/esp_timer.c",
    "spi_flash/flash_ops.c",
    "esp_partition/partition.c",
    "hal/spi_flash_hal.c",
    "soc/esp32s2/gpio_periph.c",
    "driver/gpio/gpio.c",
    "vfs/vfs.c",
)
_APP_MAIN_C = """\
/* The espdfu-tui demo application (built by a stand-in for idf.py, not by ESP-IDF). */
#include <stdio.h>
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

void app_main(void) {
    printf("Hello from the espdfu-tui demo\\n");
    for (;;) {
        vTaskDelay(pdMS_TO_TICKS(1000));
    }
}
"""


@dataclass(frozen=True)
class DemoProject:
    """What the app needs to run on the demo: where it is, how to build it, which boards."""

    project_dir: Path
    build_dir: Path
    build_command: tuple[str, ...]
    sim_spec: str
    config_dir: Path
    """Where the demo keeps its board labels: its boards are not the user's (the user's own
    labels.toml is neither read nor written)."""


def make_demo_project(root: Path) -> DemoProject:
    """Write the demo project into ``root`` (a temporary folder the caller removes)."""
    root = root.resolve()  # the build command runs in another folder
    project = root / PROJECT_NAME
    (project / "main").mkdir(parents=True, exist_ok=True)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\n"
        "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\n"
        f"project({PROJECT_NAME})\n"
    )
    (project / "sdkconfig").write_text(
        "# The espdfu-tui demo project's configuration.\n"
        f'CONFIG_IDF_TARGET="{_TARGET}"\n'
        f"CONFIG_IDF_TARGET_{_TARGET.upper()}=y\n"
        f'CONFIG_ESPTOOLPY_FLASHSIZE="{_FLASH_SIZE}"\n'
    )
    (project / "main" / "CMakeLists.txt").write_text(
        'idf_component_register(SRCS "app_main.c" INCLUDE_DIRS ".")\n'
    )
    (project / "main" / "app_main.c").write_text(_APP_MAIN_C)
    links = "".join(f'"{path}" = "{bridge_url(path)}"\n' for path in BRIDGED)
    (project / PROJECT_FILE).write_text(
        "# The demo's first two boards are DevKits whose UART connector (a USB-UART bridge) is\n"
        "# linked here: espdfu-tui reads their console there and resets them through it.\n"
        f"[consoles]\n{links}"
    )
    return DemoProject(
        project_dir=project,
        build_dir=project / "build",
        build_command=(sys.executable, "-m", "espdfu.demo.project", "build", str(project)),
        sim_spec=DEMO_BOARDS,
        config_dir=root / "config",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m espdfu.demo.project build PROJECT``: the demo project's ``idf.py dfu``."""
    parser = argparse.ArgumentParser(
        prog="python -m espdfu.demo.project",
        description="Build the espdfu-tui demo project as `idf.py dfu` would, without ESP-IDF.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the demo project and make its dfu.bin")
    build.add_argument("project", type=Path, help="the demo project's folder")
    args = parser.parse_args(argv)
    try:
        return _build(args.project, _build_seconds())
    except EspdfuError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUILD_FAILED


def _build_seconds() -> float:
    text = os.environ.get(BUILD_TIME_ENV)
    if text is None:
        return DEFAULT_BUILD_S
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise EspdfuError(
            f"{BUILD_TIME_ENV}={text!r} is not a number of seconds.",
            f"Unset {BUILD_TIME_ENV}, or set it to a number such as 0.5.",
        ) from None


def _build(project: Path, seconds: float) -> int:
    """Print what ``idf.py dfu`` prints, then write what it writes; idf.py's exit status."""
    if not (project / "CMakeLists.txt").is_file():
        raise EspdfuError(
            f"{project} is not the demo project (it has no CMakeLists.txt).",
            "Make one with espdfu.demo.project.make_demo_project.",
        )
    build_dir = project / "build"
    failing = (project / FAIL_FLAG).exists()
    steps = _ninja_steps(failing)
    preamble = _cmake_lines(project, build_dir)
    pause = seconds / (len(preamble) + len(steps))
    for line in preamble + steps:
        time.sleep(pause)
        print(line, flush=True)
    if failing:
        for line in _compiler_error(project):
            print(line, flush=True)
        return EXIT_BUILD_FAILED
    _write_build(project, build_dir)
    print(f"Generated {build_dir / 'dfu.bin'}", flush=True)
    print("Done", flush=True)
    return 0


def _cmake_lines(project: Path, build_dir: Path) -> list[str]:
    return [
        "Executing action: dfu",
        f"Running cmake in directory {build_dir}",
        f'Executing "cmake -G Ninja -DIDF_TARGET={_TARGET} {project}"...',
        f"-- Building ESP-IDF components for target {_TARGET}",
        f"-- Project sdkconfig file {project / 'sdkconfig'}",
        "-- Configuring done",
        "-- Generating done",
        f"-- Build files have been written to: {build_dir}",
        f"Running ninja in directory {build_dir}",
        'Executing "ninja dfu"...',
    ]


def _ninja_steps(failing: bool) -> list[str]:
    """The ``[n/m]`` lines; a failing build stops after compiling main/app_main.c."""
    objects = [*_COMPONENTS, "main/app_main.c"]
    actions = [
        "Generating ../../partition_table/partition-table.bin",
        *(f"Building C object {_object(source)}" for source in objects),
        "Linking C static library esp-idf/freertos/libfreertos.a",
        "Linking C static library esp-idf/main/libmain.a",
        "Performing build step for 'bootloader'",
        f"Linking CXX executable {PROJECT_NAME}.elf",
        "Generating binary image from built executable",
    ]
    lines = [f"[{n}/{len(actions)}] {action}" for n, action in enumerate(actions, 1)]
    return lines[: len(objects) + 1] if failing else lines


def _object(source: str) -> str:
    """Where ninja puts the object of an ESP-IDF component's source file."""
    component, _, path = source.partition("/")
    return f"esp-idf/{component}/CMakeFiles/__idf_{component}.dir/{path}.obj"


def _compiler_error(project: Path) -> list[str]:
    source = project / "main" / "app_main.c"
    return [
        f"FAILED: {_object('main/app_main.c')}",
        f"{source}: In function 'app_main':",
        f"{source}:7:5: error: implicit declaration of function 'printf' "
        "[-Wimplicit-function-declaration]",
        '    7 |     printf("Hello from the espdfu-tui demo\\n");',
        "      |     ^~~~~~",
        f"{source}:7:5: note: include '<stdio.h>' or provide a declaration of 'printf'",
        "ninja: build stopped: subcommand failed.",
        "ninja failed with exit code 1",
    ]


def _write_build(project: Path, build_dir: Path) -> None:
    """The files of a finished ``idf.py dfu``, dfu.bin last, each renamed into place."""
    number = _next_build_number(build_dir)
    app = app_image(f"build {number}", time.localtime())
    contents = {  # the bootloader and partition table never change
        "bootloader/bootloader.bin": bootloader_image(),
        "partition_table/partition-table.bin": write_table(PARTITIONS),
        "app.bin": app,
    }
    for name, data in contents.items():
        (build_dir / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(build_dir / name, data)
    _write_json_if_changed(
        build_dir / FLASHER_ARGS,
        {
            "flash_settings": {"flash_mode": "dio", "flash_size": _FLASH_SIZE, "flash_freq": "80m"},
            "flash_files": {f"0x{address:x}": name for address, name in _IMAGES},
            "extra_esptool_args": {"before": "default_reset", "after": "no_reset", "chip": _TARGET},
        },
    )
    _write_json_if_changed(
        build_dir / PROJECT_DESCRIPTION,
        {
            "project_name": PROJECT_NAME,
            "project_path": str(project),
            "build_dir": str(build_dir),
            "target": _TARGET,
            "app_bin": "app.bin",
        },
    )
    dfufile.save(build_dir / "dfu.bin", BuildFolder.open(build_dir).make_dfu())


def app_image(version: str, built: time.struct_time, size: int = _APP_SIZE, seed: int = 0) -> bytes:
    """A whole ESP32-S2 app image of ``size`` bytes (about) as ESP-IDF builds one: its
    esp_app_desc_t (naming the project, the version, the build time and an ELF's SHA-256)
    first in its flash-mapped data, then data, RAM and code segments at the chip's addresses,
    the checksum and the SHA-256 (esp_app_format.h; esptool's image-info reads it).

    The builds of one ``seed`` (one source tree) share their code but for an edit of the same
    size somewhere in it, a different one each ``version``: a rebuild after a same-size edit
    (most real edits move the code after them, see docs/benchmarks.md)."""
    noise = random.Random(f"{PROJECT_NAME} {seed}")
    elf = hashlib.sha256(f"{PROJECT_NAME} {version} {seed}".encode()).digest()
    date = f"{time.strftime('%b', built)} {built.tm_mday:2d} {built.tm_year}"  # C's __DATE__
    clock = time.strftime("%H:%M:%S", built)
    desc = AppDesc(PROJECT_NAME, version, "v5.3", date, clock, elf)
    code = bytearray(noise.randbytes(max(size - 28 * 1024, 4096) // 4 * 4))
    edit = random.Random(f"{PROJECT_NAME} {version} edit")
    at = edit.randrange(len(code) - _EDIT) // 4 * 4
    code[at : at + _EDIT] = edit.randbytes(_EDIT)
    segments = [
        (0x3F000020, app_desc_bytes(desc) + noise.randbytes(8 * 1024)),  # DROM: rodata
        (0x3FFBE000, noise.randbytes(2 * 1024)),  # DRAM: initialised data
        (0x40024000, noise.randbytes(16 * 1024)),  # IRAM: code run from RAM
        (0x40080020, bytes(code)),  # IROM: code run from flash
    ]
    return write_image(_CHIP_ID, segments, entry=0x40024AD8)


def bootloader_image() -> bytes:
    """The 2nd-stage bootloader the demo's builds carry: the same bytes every build, at the
    load addresses the ROM prints for ESP-IDF v5.3's (see the virtual firmware's boot lines)."""
    noise = random.Random(f"{PROJECT_NAME} bootloader")
    segments = [(0x3FFE6100, noise.randbytes(0x17A4)), (0x4004B000, noise.randbytes(0xC70)),
                (0x4004F000, noise.randbytes(0x2DD8))]  # fmt: skip
    return write_image(_CHIP_ID, segments, entry=0x4004B1EC)


PARTITIONS = (  # ESP-IDF's partitions_singleapp.csv
    Partition("nvs", DATA, 0x02, 0x9000, 0x6000),
    Partition("phy_init", DATA, 0x01, 0xF000, 0x1000),
    Partition("factory", APP, 0x00, 0x10000, 0x100000),
)


def _next_build_number(build_dir: Path) -> int:
    counter = build_dir / _COUNTER
    try:
        number = int(counter.read_text()) + 1
    except (OSError, ValueError):
        number = 1
    build_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(counter, f"{number}\n".encode())
    return number


def _write_json_if_changed(path: Path, content: object) -> None:
    """Like CMake's generated files: rewritten only when they change, so their age means news."""
    data = (json.dumps(content, indent=4) + "\n").encode()
    if not path.is_file() or path.read_bytes() != data:
        atomic_write(path, data)


if __name__ == "__main__":
    sys.exit(main())
