"""What the workbench is set to do, and the one path to it from the configuration.

``espdfu-tui`` and ``espdfu watch`` both load :class:`~espdfu.config.Settings` (the files,
then their own flags as overrides) and turn them into :class:`WorkbenchSettings` here, so a
setting means the same in both and each default has one home.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from ..config import DEFAULT_COMMAND, Settings, is_port_path, traces_dir
from ..consoles.ports import console_finder
from ..errors import InputError
from ..flashing.flasher import FlashOptions
from ..usb.trace import TraceFolder
from ..usb.transport import Usb

_V = TypeVar("_V")

AWAY_S = 5.0
"""How long a board that leaves by what may be a RESET may take to come back (its app's
console after a flash, download mode after its app) before it counts as unplugged."""


@dataclass(frozen=True)
class WorkbenchSettings:
    build_dir: Path
    project_dir: Path | None = None
    build_command: tuple[str, ...] = DEFAULT_COMMAND
    auto_flash: bool = False
    make_dfu: bool = True
    arm_new_boards: bool = True
    arm_only: frozenset[str] = frozenset()
    """When given, only the boards at these port paths are armed as they appear."""
    labels: dict[str, str] = field(default_factory=dict)
    flash: FlashOptions = field(default_factory=FlashOptions)
    monitor_interval_s: float = 0.5
    settle_s: float = 0.25
    consoles: bool = True
    """Read each board's app console when it has one (its USB CDC port at the board's path)."""
    console_ports: dict[str, str] = field(default_factory=dict)
    """Board (port path or label) → its console's serial port when not on its own USB: a
    device (/dev/ttyUSB0, COM5) or the USB port path of its USB-UART bridge."""
    away_s: float = AWAY_S
    """How long a board that left by what may be a RESET is looked for (:data:`AWAY_S`)."""
    bridge_reset: bool = True
    """Reset a board whose console is on its USB-UART bridge through the bridge's lines."""
    resets: dict[str, bool] = field(default_factory=dict)
    """Board (port path or label) → whether it is reset through its bridge, for that board."""
    changes_only: bool = True
    """Send a board only the sectors changed since the build it was seen running (its base)."""
    trust_base: bool = False
    """A board's last good flash is its base without a boot that confirmed it."""


def workbench_settings(
    config: Settings,
    *,
    arm_only: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    flash: FlashOptions | None = None,
) -> WorkbenchSettings:
    """The workbench ``config`` describes, with what only the front end knows.

    ``arm_only``: the port paths of the only boards armed as they appear (none: as
    ``config.arm_new_boards`` says). ``labels``: the board labels, when not the configured ones
    (the demo keeps its own). ``flash``: the flash options the configuration does not set; its
    ``detach_wait_s`` is the configuration's, and so is its trace (``[flash] trace``: a file
    per flash in :func:`~espdfu.config.traces_dir`). Without a configured build folder, it is the
    project's ``build``, or the current folder's without a project.
    """
    project_dir = config.project_dir
    return WorkbenchSettings(
        build_dir=build_folder(config.build_dir or (project_dir or Path.cwd()) / "build"),
        project_dir=project_dir,
        build_command=config.build_argv,
        auto_flash=config.auto_flash,
        make_dfu=config.make_dfu,
        arm_new_boards=config.arm_new_boards,
        arm_only=frozenset(arm_only),
        labels=dict(config.labels if labels is None else labels),
        console_ports=dict(config.consoles),
        bridge_reset=config.bridge_reset,
        resets=dict(config.resets),
        changes_only=config.changes_only,
        trust_base=config.trust_base,
        flash=replace(
            flash or FlashOptions(),
            detach_wait_s=config.detach_wait_s,
            trace=TraceFolder(traces_dir()) if config.trace else None,
        ),
        monitor_interval_s=config.monitor_interval_s,
    )


def board_setting(table: Mapping[str, _V], path: str, label: str) -> _V | None:
    """What ``table`` (a setting by board: ``[consoles]``, ``[resets]``) gives the board at
    ``path``, by its port path, else by its label."""
    if path in table:
        return table[path]
    return table.get(label) if label else None


def bridged(settings: WorkbenchSettings, path: str, label: str) -> bool:
    """Whether the board's console is on a bridge it is reset through: a console link, and
    resets on for it (its own setting, else the global one)."""
    linked = board_setting(settings.console_ports, path, label) is not None
    wanted = board_setting(settings.resets, path, label)
    return linked and (settings.bridge_reset if wanted is None else wanted)


def console_at(
    settings: WorkbenchSettings, path: str, label: str, usb_world: Usb
) -> Callable[[], str | None]:
    """Where the console of the board at ``path`` is, each time it is asked: the serial port
    the settings give it (by port path or by its label; a USB port path names a bridge's,
    whatever name the system gives it), else its app's own USB port at ``path``."""
    given = board_setting(settings.console_ports, path, label)
    if given is None:
        return console_finder(path, usb_world)
    if is_port_path(given):
        return console_finder(given)
    return lambda: given


def build_folder(path: Path) -> Path:
    """``path``, refused when it cannot be a build folder, now or once a build makes it."""
    if path.exists() and not path.is_dir():
        raise InputError(
            f"The build folder {path} is a file, not a folder.",
            "Name the folder a build writes dfu.bin and flasher_args.json to (such as build).",
        )
    if not path.exists() and not path.parent.is_dir():
        raise InputError(
            f"The build folder {path} does not exist, and neither does {path.parent}.",
            "Check the path: a build makes its build folder, not the folders around it.",
        )
    return path
