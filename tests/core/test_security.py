"""What espdfu must never do, whatever the names, files and settings it is given.

It never lets a shell read a name it did not write, never puts into a dfu.bin what a build
names unless it is a readable regular file (never waiting on a pipe, never a folder or a
device), never grants USB access beyond Espressif's boards and the local user,
never writes a file others may read when the user's umask says they may not, and never logs
the environment it runs a build in.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import stat
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from espdfu.bench.build import BuildResult, BuildRunner
from espdfu.cli import main
from espdfu.config import LABELS_FILE, PROJECT_FILE, load_settings, save_label
from espdfu.files import dfufile
from espdfu.fsutil import atomic_write
from espdfu.udev import rule_text

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
HOSTILE_WORDS = (
    "two words",
    "; touch pwned-semicolon",
    "$(touch pwned-dollar)",
    "`touch pwned-backtick`",
    "| touch pwned-pipe && touch pwned-and",
    "> pwned-redirect",
    "$HOME * ? ~ 'quote\" \\",
    "",
)
"""Arguments a shell would act on; espdfu must hand each to the program as it is."""

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell and paths")


# --- the build command runs without a shell ---------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose very name is a shell command, with a script that shows its argv."""
    folder = tmp_path / "proj; touch pwned-folder $(touch pwned-folder2)"
    folder.mkdir()
    (folder / "show_argv.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd()}))
            """
        )
    )
    return folder


def _run(command: tuple[str, ...], cwd: Path) -> tuple[list[str], Path]:
    """Run ``command`` with the build runner; the arguments and folder the script got."""
    lines: list[str] = []
    results: list[BuildResult] = []
    runner = BuildRunner(
        command, cwd, on_line=lines.append, on_progress=print, on_done=results.append
    )
    runner.start()
    result = runner.wait(WAIT_S)
    assert result is not None and result.ok, lines
    shown = json.loads(lines[0])
    return list(shown["argv"]), Path(shown["cwd"])


def _pwned(tmp_path: Path) -> list[str]:
    return [path.name for path in tmp_path.rglob("*pwned*") if not path.is_dir()]


def test_names_with_shell_metacharacters_are_each_one_argument(
    tmp_path: Path, project: Path
) -> None:
    argv, cwd = _run((sys.executable, "show_argv.py", *HOSTILE_WORDS, str(project)), project)
    assert argv == [*HOSTILE_WORDS, str(project)]
    assert cwd == project
    assert _pwned(tmp_path) == []


def test_a_configured_command_reaches_the_program_word_for_word(
    tmp_path: Path, project: Path
) -> None:
    listed = [sys.executable, "show_argv.py", *HOSTILE_WORDS]
    (project / PROJECT_FILE).write_text(f"[build]\ncommand = {json.dumps(listed)}\n")
    settings = load_settings(project, config_dir=tmp_path / "config")
    assert not settings.build_shell
    assert _run(settings.build_command, project)[0] == list(HOSTILE_WORDS)
    assert _pwned(tmp_path) == []


def test_a_configured_string_is_split_into_words_and_never_expanded(
    tmp_path: Path, project: Path
) -> None:
    line = f"'{sys.executable}' show_argv.py 'a; touch pwned-s' \"$(touch pwned-t)\" $HOME '*'"
    (project / PROJECT_FILE).write_text(f"[build]\ncommand = {json.dumps(line)}\n")
    settings = load_settings(project, config_dir=tmp_path / "config")
    argv = _run(settings.build_command, project)[0]
    assert argv == ["a; touch pwned-s", "$(touch pwned-t)", "$HOME", "*"]
    assert _pwned(tmp_path) == []


@posix_only
def test_with_shell_true_a_list_is_quoted_so_the_shell_gives_back_the_words(
    tmp_path: Path, project: Path
) -> None:
    """The one case a shell runs: the user's file asks. Words from a list stay words even so."""
    listed = [sys.executable, "show_argv.py", *HOSTILE_WORDS]
    (project / PROJECT_FILE).write_text(f"[build]\nshell = true\ncommand = {json.dumps(listed)}\n")
    settings = load_settings(project, config_dir=tmp_path / "config")
    assert settings.build_shell and len(settings.build_command) == 1
    argv = _run(("/bin/sh", "-c", settings.build_command[0]), project)[0]
    assert argv == list(HOSTILE_WORDS)
    assert _pwned(tmp_path) == []


def _sources() -> Iterator[Path]:
    for package in (ROOT / "core" / "espdfu", ROOT / "tui" / "espdfu_tui"):
        yield from sorted(package.rglob("*.py"))


def test_no_code_runs_a_shell_or_builds_a_command_line_from_strings() -> None:
    """The whole product, read as code: every process it starts gets a list of words."""
    shells = {"system", "popen", "create_subprocess_shell", "getoutput", "getstatusoutput"}
    starters = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec"}
    starts, faults = [], []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if node.func.attr in shells:
                faults.append(f"{where}: {node.func.attr}() runs a shell")
            if node.func.attr not in starters or not node.args:
                continue
            starts.append(where)
            if any(keyword.arg == "shell" for keyword in node.keywords):
                faults.append(f"{where}: shell= is given")
            if isinstance(node.args[0], (ast.JoinedStr, ast.BinOp, ast.Constant)):
                faults.append(f"{where}: the command is one string, not a list of words")
    assert faults == []
    assert len(starts) >= 2, "the build runner and the udev installer start processes"


# --- what a build folder names ----------------------------------------------------------------
#
# The build is the user's own: like ESP-IDF's mkdfu.py, espdfu takes any path flasher_args.json
# names, in the build folder or not (images from the source tree come as ../main/...), as long
# as it is a readable regular file. Anything else is refused, named with its key, unread.


def _build_naming(tmp_path: Path, name: str) -> Path:
    build = tmp_path / "build"
    build.mkdir()
    (build / "link").symlink_to(tmp_path)
    args = {"flash_files": {"0x10000": name}, "extra_esptool_args": {"chip": "esp32s2"}}
    (build / "flasher_args.json").write_text(json.dumps(args))
    return build


@posix_only
@pytest.mark.parametrize("name", ["ABSOLUTE", "../main/cert.pem", "link/main/cert.pem"])
def test_mkdfu_takes_a_regular_file_a_build_names_outside_itself(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "cert.pem").write_bytes(b"certificate")
    name = str(tmp_path / "main" / "cert.pem") if name == "ABSOLUTE" else name
    build = _build_naming(tmp_path, name)
    assert main(["mkdfu", "--build-dir", str(build)]) == 0, capsys.readouterr().err
    image = dfufile.load(build / "dfu.bin")
    assert [(e.name, e.address, e.size) for e in image.entries] == [("cert.pem", 0x10000, 11)]


@posix_only
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../pipe", "is a pipe, device or socket, not a file."),
        ("/dev/null", "is a pipe, device or socket, not a file."),
        ("..", "is a folder, not a file."),
        ("link/gone.bin", "does not exist."),
    ],
)
def test_mkdfu_refuses_what_is_not_a_regular_file_with_its_key(
    tmp_path: Path, name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "pipe")
    build = _build_naming(tmp_path, name)
    assert main(["mkdfu", "--build-dir", str(build)]) == 2  # returns: the pipe is never waited on
    err = capsys.readouterr().err
    assert f'names "{name}" under "0x10000", but ' in err and kind in err
    assert not (build / "dfu.bin").exists()


# --- the udev rule ----------------------------------------------------------------------------

_RULE_KEY = re.compile(r'\s*([A-Za-z]+(?:\{\w+\})?)(==|\+=|=)"([^"]*)"\s*(?:,|$)')


def _rule_pairs(text: str) -> list[tuple[str, str, str]]:
    """The (key, operator, value) of the one rule line in ``text``, every byte accounted for."""
    rules = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(rules) == 1, rules
    pairs: list[tuple[str, str, str]] = []
    position = 0
    while position < len(rules[0]):
        match = _RULE_KEY.match(rules[0], position)
        assert match, f"cannot read the rule from {rules[0][position:]!r}"
        pairs.append((match[1], match[2], match[3]))
        position = match.end()
    return pairs


@pytest.mark.parametrize("group", ["plugdev", None])
def test_the_udev_rule_grants_espressif_boards_to_the_local_user_only(group: str | None) -> None:
    pairs = _rule_pairs(rule_text(group))
    expected = [
        ("SUBSYSTEM", "==", "usb"),
        ("ATTR{idVendor}", "==", "303a"),
        ("MODE", "=", "0660"),
        *([("GROUP", "=", group)] if group else []),
        ("TAG", "+=", "uaccess"),
    ]
    assert pairs == expected
    mode = int({key: value for key, _, value in pairs}["MODE"], 8)
    assert not mode & 0o007  # nothing for other users


# --- files written, and what they hold ----------------------------------------------------------


@posix_only
@pytest.mark.parametrize("umask", [0o027, 0o077, 0o022])
def test_written_files_follow_the_users_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        labels = save_label("1-1", "jig", config_dir=tmp_path / "config")
        made = dfufile.save(tmp_path / "dfu.bin", dfufile.pack([], pid=2))
        replaced = atomic_write(made, b"again")
    finally:
        os.umask(previous)
    for path in (labels, made, replaced):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    leftovers = [p.name for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []  # no temporary file left behind


def test_the_labels_file_holds_labels_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_not-a-real-secret")
    path = save_label("1-1.2", "left jig", config_dir=tmp_path)
    assert path == tmp_path / LABELS_FILE
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert [line for line in lines if line] == ["[labels]", '"1-1.2" = "left jig"']


def test_a_failing_build_logs_nothing_of_its_environment(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-token-value"
    env = {**os.environ, "API_TOKEN": secret}
    (project / "fail.py").write_text("import sys\nprint('error: broken')\nsys.exit(2)\n")
    done = threading.Event()

    def explode(*_args: object) -> None:
        raise RuntimeError("a callback failed")  # makes the runner log, with a traceback

    def finished(_result: BuildResult) -> None:
        done.set()
        explode()

    caplog.set_level(logging.DEBUG)
    runner = BuildRunner(
        (sys.executable, "fail.py"),
        project,
        on_line=explode,
        on_progress=explode,
        on_done=finished,
        env=env,
    )
    runner.start()
    assert runner.wait(WAIT_S) is not None and done.is_set()
    assert "a callback failed" in caplog.text  # it did log...
    assert secret not in caplog.text  # ...and nothing of the environment
