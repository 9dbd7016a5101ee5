"""Boot the real-USB guest, run a scenario in it against emulated boards, and collect the results.

A run is one QEMU boot (software emulation, a few seconds to a prompt): the guest loads
dummy_hcd with one UDC per board, guest/gadget.py puts an emulated ESP ROM on each, and the
scenario, a bash snippet using the helpers of guest/lib.sh, drives espdfu and dfu-util
against them. The guest powers itself off; this waits for that within a deadline, then reads
the run folder: each step's output, exit code and times, each board's report and flash
image, and the guest's timeline. See docs/real-usb.md.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from espdfu.chips import chip_by_name
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile

HERE = Path(__file__).resolve().parent
GUEST = HERE / "guest"
SETUP = HERE / "setup.sh"
KIB = 1024
MIB = 1024 * KIB
BOOT_ALLOWANCE_S = 45.0
"""Of a run's deadline, what is kept for booting, bringing the boards up and powering off."""
CONSOLE_TAIL = 40
SECTOR = 4096


def cache_dir() -> Path:
    """Where setup.sh keeps the guest kernel, initramfs, udevd and venv."""
    default = Path.home() / ".cache" / "espdfu-realusb"
    return Path(os.environ.get("ESPDFU_REALUSB_CACHE", default)).resolve()


def unavailable() -> str | None:
    """Why the real-USB tier cannot run on this machine, or None when it can."""
    for program in ("qemu-system-x86_64", "dfu-util"):
        if shutil.which(program) is None:
            return f"{program} is not installed (run tests/realusb/setup.sh as root)"
    check = subprocess.run(
        ["bash", str(SETUP), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check.returncode:
        return (check.stdout + check.stderr).strip().removeprefix("realusb setup: ")
    return None


@dataclass(frozen=True)
class Image:
    """A dfu.bin made on the host, and what it must leave in a board's flash."""

    chip: str
    files: tuple[FlashFile, ...]
    data: bytes = field(repr=False)

    @property
    def payload_size(self) -> int:
        """What a host downloads: the file without its 16-byte DFU suffix."""
        return len(self.data) - dfufile.SUFFIX_LEN

    def expected_flash(self, size: int = 4 * MIB) -> bytes:
        """A board's flash after this download, from zero bytes (as the gadget starts): each
        file's sectors erased to 0xFF, then the file written."""
        flash = bytearray(size)
        for file in self.files:
            start = file.address - file.address % SECTOR
            end = -(-(file.address + len(file.data)) // SECTOR) * SECTOR
            flash[start:end] = b"\xff" * (end - start)
            flash[file.address : file.address + len(file.data)] = file.data
        return bytes(flash)


def make_image(
    chip: str,
    *,
    seed: int,
    app_size: int = 40 * KIB,
    part_size: int = dfufile.DEFAULT_PART_SIZE,
) -> Image:
    """A bootloader, a partition table and an app of random bytes, as `idf.py dfu` lays out."""
    found = chip_by_name(chip)
    if found is None:
        raise ValueError(f"unknown chip {chip!r}")
    rng = random.Random(seed)
    files = (
        FlashFile(0x1000 if chip == "esp32s2" else 0x0, "bootloader.bin", rng.randbytes(9000)),
        FlashFile(0x8000, "partition-table.bin", rng.randbytes(3 * KIB)),
        FlashFile(0x10000, "app.bin", rng.randbytes(app_size)),
    )
    data = dfufile.pack(files, pid=found.dfu_pid, flash_size=4 * MIB, part_size=part_size)
    return Image(chip, files, data)


@dataclass(frozen=True)
class BoardSpec:
    """One emulated board: its chip, flash, timing and faults (guest/rom.py's Timing, Faults)."""

    chip: str = "esp32s2"
    flash_size: int = 4 * MIB
    timing: Mapping[str, object] = field(default_factory=dict)
    faults: Mapping[str, object] = field(default_factory=dict)
    dfu_pid: int | None = None
    """The PID of the DFU-mode device, when not the one espdfu.usb.rom assumes."""
    bridge: bool = False
    """A USB-UART bridge on a USB port of its own, wired to EN and GPIO0 (a DevKit's)."""
    start: str = "rom"
    """How it powers on: "rom" (ROM download mode, as with BOOT held) or "app"."""
    app: str = "idf"
    """What its app does when it runs (espdfu.sim.firmware.APPS)."""
    preload: tuple[FlashFile, ...] = ()
    """What its flash holds at power-on, from an earlier flash (each file's sectors erased, as
    the ROM erases them, then written; zero bytes elsewhere)."""

    @property
    def on_bus(self) -> bool:
        """Whether the board is on the guest's USB at power-on: in ROM download mode, or an app
        with its own USB console (a board without a bridge)."""
        return self.start == "rom" or not self.bridge

    def config(self, index: int) -> dict[str, object]:
        preload = [(file.address, f"preload{index}-{n}.bin") for n, file in enumerate(self.preload)]
        return {
            "chip": self.chip,
            "flash_size": self.flash_size,
            "timing": dict(self.timing),
            "faults": dict(self.faults),
            "dfu_pid": self.dfu_pid,
            "bridge": self.bridge,
            "start": self.start,
            "app": self.app,
            "preload": [(address, f"inputs/{name}") for address, name in preload],
        }


@dataclass(frozen=True, repr=False)
class Step:
    """One command the scenario ran with lib.sh's ``step`` (or ``start``/``stop``)."""

    name: str
    rc: int
    stdout: str
    stderr: str
    start: float
    """Guest uptime, seconds."""
    end: float
    cpu_s: float | None = None
    """User and system CPU time of the command and its children (not for ``start``)."""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def __repr__(self) -> str:
        """What an assertion message shows: the whole story of the step."""
        return (
            f"step {self.name}: exit {self.rc} after {self.seconds:.1f} s\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}---"
        )


@dataclass(frozen=True)
class Board:
    """A board's report (guest/rom.py's Rom.report) and its flash at the end of the run."""

    report: dict[str, Any]
    flash: bytes = field(repr=False)

    @property
    def path(self) -> str:
        return str(self.report["path"])

    @property
    def downloads(self) -> list[dict[str, Any]]:
        return list(self.report["downloads"])

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.report["events"] if event["event"] == kind]


class GuestError(AssertionError):
    """The guest did not run the scenario to its end (hung, crashed, or failed to boot)."""


@dataclass(frozen=True)
class GuestRun:
    """Everything a run left: steps by name, boards in order, the console and timings."""

    folder: Path
    steps: dict[str, Step]
    boards: list[Board]
    scenario_rc: int
    scenario_log: str
    console: str
    timeline: dict[str, float]
    """Guest uptime at boot.sh's marks: boot, modules, udevd, gadget, ready, scenario."""
    wall_s: float
    """From starting QEMU to its exit."""

    def step(self, name: str) -> Step:
        try:
            return self.steps[name]
        except KeyError:
            raise AssertionError(
                f"the scenario has no step {name!r} (exit {self.scenario_rc}); its log:\n"
                f"{self.scenario_log}"
            ) from None

    def describe(self) -> str:
        """Timings in one line, for reports."""
        marks = ", ".join(f"{name} {at:.1f}" for name, at in self.timeline.items())
        return f"wall {self.wall_s:.1f} s; guest uptime at {marks}"


def boot(
    scenario: str,
    *,
    boards: Sequence[BoardSpec] = (BoardSpec(),),
    inputs: Mapping[str, bytes] | None = None,
    udev: bool = False,
    timeout_s: float = 300.0,
    workdir: Path | None = None,
) -> GuestRun:
    """Boot the guest with ``boards``, run ``scenario`` (bash, after guest/lib.sh), power off.

    ``inputs`` are files the scenario finds in $INPUTS. ``udev`` runs udevd in the guest, as
    on a desktop (dfu-util's libusb learns of re-enumerated devices only through it). Raises
    :class:`GuestError`, with the end of the console, when the guest does not finish within
    ``timeout_s``.
    """
    if not boards:
        raise ValueError("a run needs at least one board")
    cache = cache_dir()
    folder = Path(tempfile.mkdtemp(prefix="realusb-", dir=workdir))
    for path in (cache, GUEST, folder):
        if any(character.isspace() for character in str(path)):
            raise ValueError(f"{path}: the guest takes paths without spaces")
    _write_run(folder, scenario, boards, inputs or {}, udev, timeout_s)
    console = folder / "console.log"
    start = time.monotonic()
    with console.open("wb") as sink:
        qemu = subprocess.Popen(
            _qemu_command(cache, folder), stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
        try:
            qemu.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
            raise GuestError(
                f"the guest did not power off within {timeout_s:g} s; the end of its console:\n"
                + _tail(console)
            ) from None
    wall = time.monotonic() - start
    return _collect(folder, len(boards), wall)


def _write_run(
    folder: Path,
    scenario: str,
    boards: Sequence[BoardSpec],
    inputs: Mapping[str, bytes],
    udev: bool,
    timeout_s: float,
) -> None:
    scenario_timeout = max(int(timeout_s - BOOT_ALLOWANCE_S), 10)
    udcs = len(boards) + sum(board.bridge for board in boards)
    devices = sum(board.on_bus for board in boards) + sum(board.bridge for board in boards)
    (folder / "run.env").write_text(
        f"UDCS={udcs}\nDEVICES={devices}\nUDEV={int(udev)}\nSCENARIO_TIMEOUT={scenario_timeout}\n"
    )
    config = {"boards": [board.config(index) for index, board in enumerate(boards)]}
    (folder / "gadget.json").write_text(json.dumps(config, indent=1))
    (folder / "scenario.sh").write_text(scenario)
    (folder / "inputs").mkdir()
    for name, data in inputs.items():
        (folder / "inputs" / name).write_bytes(data)
    for index, board in enumerate(boards):
        for n, file in enumerate(board.preload):
            (folder / "inputs" / f"preload{index}-{n}.bin").write_bytes(file.data)


def _qemu_command(cache: Path, folder: Path) -> list[str]:
    accel = os.environ.get("ESPDFU_REALUSB_ACCEL", "tcg,thread=multi")
    append = (
        "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=4 "
        f"espdfu.cache={cache} espdfu.guest={GUEST} espdfu.run={folder}"
    )
    shares = [("usr", Path("/usr"), True), ("etc", Path("/etc"), True)]
    shares += [("cache", cache, True), ("guest", GUEST, True), ("run", folder, False)]
    command = [
        "qemu-system-x86_64",
        *("-accel", accel, "-cpu", "max", "-smp", "2", "-m", "1024"),
        *("-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"),
        *("-kernel", str(cache / "kernel" / "vmlinuz")),
        *("-initrd", str(cache / "initramfs.cpio.gz")),
        *("-append", append),
    ]
    for tag, path, readonly in shares:
        options = f"local,path={path},mount_tag={tag},security_model=none,multidevs=remap"
        command += ["-virtfs", options + (",readonly=on" if readonly else "")]
    return command


def _collect(folder: Path, board_count: int, wall: float) -> GuestRun:
    out = folder / "out"
    console = (folder / "console.log").read_text(errors="replace").replace("\r", "")
    rc_file = out / "scenario.rc"
    if not rc_file.is_file():
        boot_log = _read(out / "boot.log")
        raise GuestError(
            f"the guest powered off without running the scenario ({boot_log.strip()}); "
            f"the end of its console:\n{_tail(folder / 'console.log')}"
        )
    steps = {}
    for record in sorted((out / "steps").glob("*.json")):
        info = json.loads(record.read_text())
        name = info["name"]
        steps[name] = Step(
            name,
            info["rc"],
            _read(out / "steps" / f"{name}.out"),
            _read(out / "steps" / f"{name}.err"),
            float(info["start"]),
            float(info["end"]),
            _cpu(out / "steps" / f"{name}.cpu"),
        )
    boards = []
    for index in range(board_count):
        report_file = out / f"board{index}.json"
        if not report_file.is_file():
            raise GuestError(
                f"board {index} left no report; the gadget's log:\n{_read(out / 'gadget.log')}"
            )
        report = json.loads(report_file.read_text())
        boards.append(Board(report, (out / report["flash_file"]).read_bytes()))
    timeline = {}
    for line in _read(out / "timeline").splitlines():
        name, at = line.split()
        timeline[name] = float(at)
    return GuestRun(
        folder=folder,
        steps=steps,
        boards=boards,
        scenario_rc=int(rc_file.read_text()),
        scenario_log=_read(out / "scenario.log"),
        console=console,
        timeline=timeline,
        wall_s=wall,
    )


def _cpu(path: Path) -> float | None:
    """bash's `time` with TIMEFORMAT '%U %S': user and system seconds."""
    fields = _read(path).split()
    return sum(float(value) for value in fields[-2:]) if len(fields) >= 2 else None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path) -> str:
    lines = _read(path).replace("\r", "").splitlines()
    return "\n".join(lines[-CONSOLE_TAIL:])
