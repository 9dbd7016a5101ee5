"""Settings from TOML files, layered: defaults < user file < project file < command line.

The user file is ``config.toml`` in the platform's config folder (``~/.config/espdfu`` on
Linux; ``ESPDFU_CONFIG_DIR`` names another); the project file is ``espdfu.toml`` in the
project folder. Board labels the app writes go to ``labels.toml`` beside ``config.toml``, so
the hand-edited file is never rewritten and never loses its comments. A file that is missing
is skipped; a file that is wrong stops the program with the file, the line and the key, since
a setting silently ignored (``auto = "yes"``) is worse than none. Every key, with its type and
default (docs/configuration.md says the same for users)::

    [build]
    command = ["idf.py", "dfu"]  # a list of words, run without a shell; a string is split
                                 # into words as a shell would, or run by the shell if shell = true
    dir = "build"                # the build folder; relative paths are in the project folder
    shell = false                # run the command through the shell (/bin/sh; cmd on Windows)

    [flash]
    auto = false                 # re-flash the armed boards after every rebuild
    arm_new_boards = true        # arm boards for auto-flash as they are plugged in
    changes_only = true          # send a board only the 4 KiB sectors changed since the build
                                 # it was seen running (its boot named it), then check its boot
    detach_wait = 10.0           # seconds (0.5 to 300) for a board to come back in DFU mode
    make_dfu = true              # make dfu.bin from flasher_args.json after a plain idf.py build
    reset = true                 # reset a board whose console is on its USB-UART bridge
                                 # ([consoles]) into download mode before a flash, into its app
                                 # after, through the bridge's DTR/RTS (boards in [resets] aside)
    trust_base = false           # also take a flash that no boot confirmed as a board's base
                                 # (boards with no console; a wrong base is then not caught)
    trace = false                # write each flash's USB requests and decisions to a file in
                                 # the state folder's traces/ (the newest 30 are kept)

    [ui]
    mouse = true                 # let the app take mouse events
    monitor_interval = 0.5       # seconds (0.05 to 10) between two looks at the USB bus

    [keys]                       # binding id = Textual key name(s), "b" or "ctrl+b,f5"
    build = "b"

    [labels]                     # USB port path = label ("" removes a label from a lower file)
    "1-1.2" = "left jig"

    [consoles]                   # board (port path or label) = its console's serial port, when
    "left jig" = "/dev/ttyUSB0"  # not its own USB: a device, or the USB port path of a bridge

    [resets]                     # board (port path or label) = false: never reset through its
    "left jig" = false           # bridge (a board being debugged); true turns one back on

Labels merge entry by entry, as do keys, consoles and resets: config.toml < espdfu.toml <
labels.toml, the last being what the user typed into the app most recently.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import platformdirs
import tomli_w

from .errors import EspdfuError, InputError, printable
from .fsutil import atomic_write, read_bytes

DEFAULT_COMMAND = ("idf.py", "dfu")
"""The build command: what makes build/dfu.bin in an ESP-IDF project."""

if sys.version_info >= (3, 11):
    import tomllib
else:
    # Type-checked for 3.10 from a newer Python, where tomli is not installed.
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

CONFIG_DIR_ENV = "ESPDFU_CONFIG_DIR"
STATE_DIR_ENV = "ESPDFU_STATE_DIR"
USER_FILE = "config.toml"
LABELS_FILE = "labels.toml"
PROJECT_FILE = "espdfu.toml"
_FILE_LIMIT = 1024 * 1024
SHELL = ("cmd", "/c") if os.name == "nt" else ("/bin/sh", "-c")
"""What runs a build command when ``[build] shell = true``: the command is its last argument."""
_LABELS_HEADER = (
    "# Board labels by USB port path, written by espdfu-tui when you name a board.\n"
    "# They win over [labels] in config.toml and espdfu.toml.\n\n"
)


@dataclass(frozen=True)
class Settings:
    """Everything the app and ``espdfu watch`` take from configuration, already checked."""

    project_dir: Path | None = None
    build_dir: Path | None = None
    """The build folder; without configuration, ``project_dir / "build"``."""
    build_command: tuple[str, ...] = DEFAULT_COMMAND
    build_shell: bool = False
    """The command is one string for the shell: only when a configuration file asks for it."""
    auto_flash: bool = False
    make_dfu: bool = True
    bridge_reset: bool = True
    """Reset boards through their USB-UART bridge (:mod:`espdfu.consoles.bridge`)."""
    trace: bool = False
    """Trace every flash into :func:`traces_dir` (:mod:`espdfu.usb.trace`)."""
    changes_only: bool = True
    """Send a board only the sectors changed since the build it was seen running."""
    trust_base: bool = False
    """A board's last good flash is its base even when no boot confirmed it."""
    arm_new_boards: bool = True
    detach_wait_s: float = 10.0
    monitor_interval_s: float = 0.5
    mouse: bool = True
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Binding id → Textual key name(s)."""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """USB port path → label."""
    consoles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Board (USB port path or label) → its console's serial port (a device, or the USB port
    path of the USB-UART bridge), for boards whose console is not on their own USB."""
    resets: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    """Board (USB port path or label) → whether it is reset through its bridge (above
    ``bridge_reset``, for that board)."""
    sources: tuple[Path, ...] = ()
    """The files that were read, lowest precedence first."""

    @property
    def build_argv(self) -> tuple[str, ...]:
        """What the build runs: the command's words, or the shell given the command's string."""
        if self.build_shell:
            return (*SHELL, " ".join(self.build_command))
        return self.build_command


class ConfigError(InputError):
    """A configuration file or setting that cannot be used; the message says where and why."""

    def __init__(
        self, message: str, hint: str = "", *, path: Path | None = None, line: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.path = path
        self.line = line


def config_dir() -> Path:
    """The folder of the user's config.toml and labels.toml."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("espdfu"))


def state_dir() -> Path:
    """The folder of what espdfu keeps for the user (saved consoles, the app's traces): the
    platform's state folder (``~/.local/state/espdfu`` on Linux; ``ESPDFU_STATE_DIR`` names
    another), one place the user is told, never the current folder (often a repository)."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_state_dir("espdfu"))


def traces_dir() -> Path:
    """Where the app's flashes are traced, when ``[flash] trace = true``."""
    return state_dir() / "traces"


# The parameters named ``config_dir`` below shadow the function.
_default_config_dir = config_dir


def load_settings(
    project_dir: Path | None,
    *,
    config_dir: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    binding_ids: Collection[str] = (),
) -> Settings:
    """The settings for ``project_dir``, from the files and then ``overrides``.

    ``overrides`` come from command-line flags: keys are :class:`Settings` field names, and a
    value of None (a flag not given) is ignored. A path among them is used as given, relative
    to the current folder. ``binding_ids`` are the ids ``[keys]`` may name; when empty, the
    ids are not checked (for a caller without key bindings).
    """
    folder = _default_config_dir() if config_dir is None else config_dir
    files = [(folder / USER_FILE, _ALL_SECTIONS)]
    if project_dir is not None:
        files.append((project_dir / PROJECT_FILE, _ALL_SECTIONS))
    files.append((folder / LABELS_FILE, ("labels",)))
    merged = _Layer()
    sources = []
    for path, sections in files:
        layer = _read_file(path, sections, binding_ids)
        if layer is None:
            continue
        sources.append(path)
        build_dir = layer.values.get("build_dir")
        if isinstance(build_dir, Path) and project_dir is not None:
            layer.values["build_dir"] = project_dir / build_dir
        merged.update(layer)
    if overrides:
        merged.update(_read_overrides(overrides))
    return _settings(project_dir, merged, tuple(sources))


def load_labels(config_dir: Path) -> dict[str, str]:
    """The labels of ``config_dir``'s labels.toml alone: the demo's, kept apart from the user's."""
    layer = _read_file(config_dir / LABELS_FILE, ("labels",), ())
    return {port: text for port, text in (layer.labels if layer else {}).items() if text}


def save_label(port_path: str, label: str | None, *, config_dir: Path | None = None) -> Path:
    """Label the board at ``port_path`` in labels.toml (None or "" removes it); the file's path.

    The other labels there are kept. The file is rewritten whole through a temporary file, so
    a crash leaves the old labels or the new ones, never half a file.
    """
    folder = _default_config_dir() if config_dir is None else config_dir
    path = folder / LABELS_FILE
    try:
        _check_port_path(port_path)
    except _Invalid as invalid:
        raise ConfigError(f"'{port_path}' {invalid.expected}.", invalid.hint) from None
    try:
        label = _label(label or "")
    except _Invalid as invalid:
        raise ConfigError(f"The label {invalid.expected}.", invalid.hint) from None
    existing = _read_file(path, ("labels",), ())
    labels = {port: text for port, text in (existing.labels if existing else {}).items() if text}
    if label:
        labels[port_path] = label
    else:
        labels.pop(port_path, None)
    hint = f"Make {folder} writable, or set {CONFIG_DIR_ENV} to a folder that is."
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"Cannot create {folder}: {error.strerror or error}."
        raise ConfigError(f"The label was not saved. {message}", hint) from None
    try:
        atomic_write(path, (_LABELS_HEADER + tomli_w.dumps({"labels": labels})).encode())
    except EspdfuError as error:
        raise ConfigError(f"The label was not saved. {error.message}", hint) from None
    return path


# --- the keys and their checks ----------------------------------------------------------------


class _Invalid(Exception):
    """A value that does not fit: what it must be, and how to write one that does."""

    def __init__(self, expected: str, hint: str) -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid("must be true or false", "Write true or false, without quotes.")


def _seconds(low: float, high: float) -> Callable[[object], float]:
    def read(value: object) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
            return float(value)
        raise _Invalid(
            f"must be a number of seconds from {low:g} to {high:g}",
            "Write a number without quotes, such as 2 or 2.5.",
        )

    return read


def _command(value: object) -> str | tuple[str, ...]:
    """A command as written: a string (split later, unless for the shell) or a list of words."""
    hint = 'Write a list of words, such as ["idf.py", "-p", "x", "dfu"], or one string.'
    if _holds_nul(value):
        raise _Invalid("cannot hold a NUL character (\\u0000): no program takes one", hint)
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as error:  # "No closing quotation"
            raise _Invalid(f"cannot be split into words ({error})", hint) from None
        if words:
            return value
    elif (
        isinstance(value, (list, tuple))
        and value
        and value[0]
        and all(isinstance(word, str) for word in value)
    ):
        return tuple(value)
    raise _Invalid("must name a program to run, with its arguments", hint)


def _path(value: object) -> Path:
    hint = 'Write a path in quotes, such as "build".'
    if isinstance(value, Path) or (isinstance(value, str) and value and not _holds_nul(value)):
        try:
            return Path(value).expanduser()
        except RuntimeError:  # "~someone" without such a user
            raise _Invalid("names the home folder of an unknown user", hint) from None
    raise _Invalid("must be a folder name", hint)


def _holds_nul(value: object) -> bool:
    """Whether a word, or a list of words, holds the one character no OS path or argument can."""
    words = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(word, str) and "\0" in word for word in words)


def _key_names(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Invalid(
        "must be a key name",
        'Write Textual key names in quotes, such as "b", "ctrl+b" or "f5"; '
        'several keys are separated by commas ("b,f5").',
    )


def _label(value: object) -> str:
    hint = 'Write the label in quotes, such as "left jig".'
    if not isinstance(value, str):
        raise _Invalid("must be a label", hint)
    if not value.isprintable():
        raise _Invalid("must be a label on one line, without control characters", hint)
    return value.strip()


def _console_port(value: object) -> str:
    hint = 'Write the serial port in quotes, such as "/dev/ttyUSB0", "COM5" or "1-1.4".'
    if not isinstance(value, str) or not value.isprintable() or "\0" in value:
        raise _Invalid("must be a serial port on one line", hint)
    return value.strip()


_PORT_PATH = re.compile(r"\d+-\d+(?:\.\d+)*", re.ASCII)


def is_port_path(text: str) -> bool:
    """Whether ``text`` is a USB port path ("1-1.2": bus, dash, ports separated by dots)."""
    return _PORT_PATH.fullmatch(text) is not None


def _check_port_path(text: str) -> None:
    if not is_port_path(text):
        raise _Invalid(
            "is not a USB port path",
            'Port paths look like "1-1.2" (bus, dash, ports separated by dots), as '
            "`espdfu list` shows them.",
        )


@dataclass(frozen=True)
class _Option:
    setting: str
    read: Callable[[object], object]


_OPTIONS: dict[str, dict[str, _Option]] = {
    "build": {
        "command": _Option("build_command", _command),
        "dir": _Option("build_dir", _path),
        "shell": _Option("build_shell", _boolean),
    },
    "flash": {
        "auto": _Option("auto_flash", _boolean),
        "arm_new_boards": _Option("arm_new_boards", _boolean),
        "changes_only": _Option("changes_only", _boolean),
        "trust_base": _Option("trust_base", _boolean),
        "detach_wait": _Option("detach_wait_s", _seconds(0.5, 300)),
        "make_dfu": _Option("make_dfu", _boolean),
        "reset": _Option("bridge_reset", _boolean),
        "trace": _Option("trace", _boolean),
    },
    "ui": {
        "mouse": _Option("mouse", _boolean),
        "monitor_interval": _Option("monitor_interval_s", _seconds(0.05, 10)),
    },
}
_ALL_SECTIONS = (*_OPTIONS, "keys", "labels", "consoles", "resets")
_BY_FIELD = {option.setting: option for section in _OPTIONS.values() for option in section.values()}


# --- reading ----------------------------------------------------------------------------------


@dataclass
class _Layer:
    """What one source sets: scalar fields replace, keys and labels merge entry by entry."""

    values: dict[str, object] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    consoles: dict[str, str] = field(default_factory=dict)
    resets: dict[str, bool] = field(default_factory=dict)

    def update(self, other: _Layer) -> None:
        self.values.update(other.values)
        self.keys.update(other.keys)
        self.labels.update(other.labels)
        self.consoles.update(other.consoles)
        self.resets.update(other.resets)


def _read_file(
    path: Path, sections: Collection[str], binding_ids: Collection[str]
) -> _Layer | None:
    """The settings in the file at ``path``, or None if there is no such file."""
    if not path.exists():
        return None
    try:
        data = read_bytes(path, limit=_FILE_LIMIT, what="configuration file")
    except InputError as error:
        raise ConfigError(error.message, error.hint, path=path) from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: the file is not UTF-8 text.",
            "Save it as UTF-8, as TOML requires.",
            path=path,
            line=line,
        ) from None
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(path, error) from None
    except RecursionError:  # a = [[[[... deeper than the parser's stack
        raise ConfigError(
            f"{path}: lists or tables are nested too deeply to be settings.",
            "Each setting is a word, a number, true, false or a list of words.",
            path=path,
        ) from None
    layer = _Layer()
    for section, table in document.items():
        known = [f"[{name}]" for name in sections]
        if not isinstance(table, dict):
            if section in sections:
                message = f"{section} must be a section, got {_describe(table)}."
                hint = f"Write [{section}] on a line of its own and its keys below it."
            else:
                message = f"{section} is outside any section."
                hint = f"Every setting goes below its section: {', '.join(known)}."
            raise _located(path, text, (section,), message, hint)
        if section not in sections:
            message = f"unknown section [{section}]."
            raise _unknown(path, text, (section,), message, "The sections are", known)
        for key, value in table.items():
            _check_name(path, text, section, key, binding_ids)
            try:
                _set(layer, section, key, value)
            except _Invalid as invalid:
                message = f"[{section}] {key} {invalid.expected}, got {_describe(value)}."
                raise _located(path, text, (section, key), message, invalid.hint) from None
    return layer


def _check_name(
    path: Path, text: str, section: str, key: str, binding_ids: Collection[str]
) -> None:
    """Refuse a key the section does not have, saying which ones it has."""
    if section == "keys" and binding_ids and key not in binding_ids:
        message = f"unknown binding [keys] {key}."
        raise _unknown(path, text, (section, key), message, "The bindings are", binding_ids)
    if section == "labels":
        try:
            _check_port_path(key)
        except _Invalid as invalid:
            message = f"[labels] {json.dumps(key)} {invalid.expected}."
            raise _located(path, text, (section, key), message, invalid.hint) from None
    if section in _OPTIONS and key not in _OPTIONS[section]:
        message = f"unknown key [{section}] {key}."
        listing = f"The keys of [{section}] are"
        raise _unknown(path, text, (section, key), message, listing, _OPTIONS[section])


def _set(layer: _Layer, section: str, key: str, value: object) -> None:
    if section == "keys":
        layer.keys[key] = _key_names(value)
    elif section == "labels":
        layer.labels[key] = _label(value)
    elif section == "consoles":
        layer.consoles[key] = _console_port(value)
    elif section == "resets":
        layer.resets[key] = _boolean(value)
    else:
        option = _OPTIONS[section][key]
        layer.values[option.setting] = option.read(value)


def _read_overrides(overrides: Mapping[str, object]) -> _Layer:
    layer = _Layer()
    for name, value in overrides.items():
        if name not in _BY_FIELD:
            raise ValueError(f"{name} is not a setting the command line can override")
        if value is None:
            continue
        try:
            layer.values[name] = _BY_FIELD[name].read(value)
        except _Invalid as invalid:
            raise ConfigError(
                f"The {name} given on the command line {invalid.expected}, got {_describe(value)}.",
                invalid.hint,
            ) from None
    return layer


def _settings(project_dir: Path | None, merged: _Layer, sources: tuple[Path, ...]) -> Settings:
    values: dict[str, Any] = dict(merged.values)
    shell = values.get("build_shell", False)
    command = values.get("build_command", Settings.build_command)
    if isinstance(command, str):
        values["build_command"] = (command,) if shell else tuple(shlex.split(command))
    elif shell:
        values["build_command"] = (shlex.join(command),)
    if "build_dir" not in values and project_dir is not None:
        values["build_dir"] = project_dir / "build"
    labels = {port: label for port, label in merged.labels.items() if label}
    consoles = {board: port for board, port in merged.consoles.items() if port}
    return Settings(
        project_dir=project_dir,
        keys=MappingProxyType(dict(merged.keys)),
        labels=MappingProxyType(labels),
        consoles=MappingProxyType(consoles),
        resets=MappingProxyType(dict(merged.resets)),
        sources=sources,
        **values,
    )


# --- messages ---------------------------------------------------------------------------------

_PART = r"""(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[A-Za-z0-9_-]+)"""
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER_LINE = re.compile(rf"\s*\[\[?\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_PARTS = re.compile(_PART)
_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")


def _line_of(text: str, key: tuple[str, ...]) -> int | None:
    """The line where ``key`` (section, name) is written; else where its section starts.

    TOML parsers do not say where a value came from, so the text is scanned for the table
    headers and key lines; a key written some rarer way (in an inline table) is found by its
    section's line instead.
    """
    table: tuple[str, ...] = ()
    fallback = None
    for number, line in enumerate(text.split("\n"), 1):  # as the parser counts lines
        if header := _HEADER_LINE.match(line):
            table = _key_parts(header.group(1))
            written = table
        elif assignment := _KEY_LINE.match(line):
            written = table + _key_parts(assignment.group(1))
        else:
            continue
        if written == key:
            return number
        if fallback is None and written == key[: len(written)]:
            fallback = number
    return fallback


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(part[1:-1] if part[0] in "\"'" else part for part in _PARTS.findall(dotted))


def _syntax_error(path: Path, error: Exception) -> ConfigError:
    """The parser's complaint, with its line and column moved to the front."""
    reason = str(error)
    match = _POSITION.search(reason)
    line = int(match.group(1)) if match and match.group(1) else None
    where = f"line {line}, column {match.group(2)}" if match and line else "the end of the file"
    reason = _POSITION.sub("", reason).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    return ConfigError(
        f"{path}, {where}: this is not valid TOML: {reason}.",
        'Each setting is written key = value under its [section]; text goes in quotes ("b"), '
        "true, false and numbers do not.",
        path=path,
        line=line,
    )


def _unknown(
    path: Path, text: str, key: tuple[str, ...], message: str, listing: str, known: Collection[str]
) -> ConfigError:
    """An unknown section, key or binding id, with the closest known one and the whole list."""
    name = f"[{key[0]}]" if len(key) == 1 else key[-1]
    close = difflib.get_close_matches(name, list(known), n=1)
    guess = f"Did you mean {close[0]}? " if close else ""
    return _located(path, text, key, message, f"{guess}{listing} {', '.join(sorted(known))}.")


def _located(path: Path, text: str, key: tuple[str, ...], message: str, hint: str) -> ConfigError:
    """An error about ``key`` in the file at ``path``, prefixed with the file and the line."""
    line = _line_of(text, key)
    where = f"{path}, line {line}" if line else str(path)
    # Names from the file are shown with their control characters escaped.
    return ConfigError(f"{where}: {printable(message)}", hint, path=path, line=line)


def _describe(value: object) -> str:
    """A value as it reads in TOML, or what it is when it is long."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a table"
    return f"{value} ({type(value).__name__})"
