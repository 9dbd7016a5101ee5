"""Settings from TOML files: precedence, every key, the labels file, errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from espdfu.bench.settings import workbench_settings
from espdfu.config import (
    DEFAULT_COMMAND,
    LABELS_FILE,
    PROJECT_FILE,
    SHELL,
    USER_FILE,
    ConfigError,
    Settings,
    config_dir,
    load_settings,
    save_label,
)
from espdfu.flashing.flasher import FlashOptions
from espdfu.usb.trace import TraceFolder

BINDINGS = {"build", "flash", "flash_all", "quit"}


@pytest.fixture
def user(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def _load(project: Path | None, user: Path, overrides: dict[str, object] | None = None) -> Settings:
    return load_settings(project, config_dir=user, overrides=overrides, binding_ids=BINDINGS)


def _error(project: Path, user: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(project, user)
    return caught.value


def test_without_files_the_defaults(project: Path, user: Path) -> None:
    settings = _load(project, user)
    assert settings == Settings(project_dir=project, build_dir=project / "build")
    assert settings.build_command == DEFAULT_COMMAND == ("idf.py", "dfu")
    assert not settings.build_shell and settings.build_argv == DEFAULT_COMMAND
    assert settings.sources == ()


def test_no_project_no_build_dir(user: Path) -> None:
    assert _load(None, user).build_dir is None


def test_precedence_defaults_user_project_overrides(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text(
        "[flash]\nauto = true\ndetach_wait = 20\n[ui]\nmouse = false\nmonitor_interval = 1\n"
    )
    (project / PROJECT_FILE).write_text("[flash]\ndetach_wait = 5.5\n[ui]\nmouse = true\n")
    settings = _load(project, user, overrides={"mouse": False, "auto_flash": None})
    assert settings.auto_flash is True  # user file, an override of None is no override
    assert settings.detach_wait_s == 5.5  # project over user
    assert settings.monitor_interval_s == 1.0  # user over default
    assert settings.mouse is False  # override over project
    assert settings.make_dfu is True  # default
    assert settings.sources == (user / USER_FILE, project / PROJECT_FILE)


def test_every_key(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text(
        """
[build]
command = ["make", "-C", "fw", "dfu"]
dir = "out/build"
shell = false

[flash]
auto = true
arm_new_boards = false
changes_only = false
trust_base = true
detach_wait = 3
make_dfu = false

[ui]
mouse = false
monitor_interval = 0.25

[keys]
build = "ctrl+b"
flash_all = "F,f5"

[labels]
"1-1.2" = "left jig"
"""
    )
    assert _load(project, user) == Settings(
        project_dir=project,
        build_dir=project / "out" / "build",
        build_command=("make", "-C", "fw", "dfu"),
        build_shell=False,
        auto_flash=True,
        make_dfu=False,
        arm_new_boards=False,
        changes_only=False,
        trust_base=True,
        detach_wait_s=3.0,
        monitor_interval_s=0.25,
        mouse=False,
        keys={"build": "ctrl+b", "flash_all": "F,f5"},
        labels={"1-1.2": "left jig"},
        sources=(project / PROJECT_FILE,),
    )


def test_a_string_command_is_split_like_a_shell_would(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text("[build]\ncommand = \"idf.py -p '/dev/tty ACM0' dfu\"\n")
    assert _load(project, user).build_command == ("idf.py", "-p", "/dev/tty ACM0", "dfu")


def test_the_shell_only_when_asked(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[build]\ncommand = ". ~/esp/export.sh && idf.py dfu"\n')
    (project / PROJECT_FILE).write_text("[build]\nshell = true\n")
    settings = _load(project, user)
    assert settings.build_shell
    assert settings.build_command == (". ~/esp/export.sh && idf.py dfu",)
    assert settings.build_argv == (*SHELL, ". ~/esp/export.sh && idf.py dfu")


def test_a_list_command_for_the_shell_is_quoted(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text('[build]\ncommand = ["make", "a b"]\nshell = true\n')
    assert _load(project, user).build_command == ("make 'a b'",)


def test_a_command_line_command_is_split(project: Path, user: Path) -> None:
    settings = _load(project, user, overrides={"build_command": "idf.py -p x dfu"})
    assert settings.build_command == ("idf.py", "-p", "x", "dfu")


def test_build_dirs_relative_to_the_project_folder(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[build]\ndir = "cmake-build"\n')
    assert _load(project, user).build_dir == project / "cmake-build"
    (project / PROJECT_FILE).write_text('[build]\ndir = "/abs/build"\n')
    assert _load(project, user).build_dir == Path("/abs/build")
    # A folder given on the command line is the user's, relative to where they are.
    assert _load(project, user, overrides={"build_dir": Path("b")}).build_dir == Path("b")


def test_labels_merge_from_every_file(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text(
        '[labels]\n"1-1" = "user"\n"1-2" = "user"\n"1-3" = "user"\n"1-4" = "user"\n'
    )
    (project / PROJECT_FILE).write_text('[labels]\n"1-2" = "project"\n"1-3" = "project"\n')
    (user / LABELS_FILE).write_text('[labels]\n"1-3" = "app"\n"1-4" = ""\n"2-1" = "app"\n')
    assert _load(project, user).labels == {
        "1-1": "user",
        "1-2": "project",
        "1-3": "app",  # what the user typed into the app last wins
        "2-1": "app",
    }


def test_consoles_name_each_boards_serial_port_by_port_path_or_label(
    project: Path, user: Path
) -> None:
    (user / USER_FILE).write_text(
        '[consoles]\n"left jig" = "/dev/ttyUSB0"\n"1-2" = "1-4.1"\n"1-3" = "COM5"\n'
    )
    (project / PROJECT_FILE).write_text('[consoles]\n"1-3" = ""\n')  # not in this project
    settings = _load(project, user)
    assert settings.consoles == {"left jig": "/dev/ttyUSB0", "1-2": "1-4.1"}
    assert workbench_settings(settings).console_ports == dict(settings.consoles)


def test_resets_through_a_bridge_are_on_and_turned_off_per_board(project: Path, user: Path) -> None:
    """[flash] reset for every bridged board; [resets] per board (by port path or label),
    merged entry by entry: the project turns one back on that the user turned off."""
    assert _load(project, user).bridge_reset  # on unless turned off
    (user / USER_FILE).write_text(
        '[flash]\nreset = false\n[resets]\n"left jig" = false\n"1-2" = false\n'
    )
    (project / PROJECT_FILE).write_text('[resets]\n"1-2" = true\n')
    settings = _load(project, user)
    assert not settings.bridge_reset and settings.resets == {"left jig": False, "1-2": True}
    bench = workbench_settings(settings)
    assert not bench.bridge_reset and bench.resets == {"left jig": False, "1-2": True}


def test_a_reset_that_is_not_true_or_false_is_refused_at_its_line(
    project: Path, user: Path
) -> None:
    (user / USER_FILE).write_text('[resets]\n"1-2" = "no"\n')
    with pytest.raises(ConfigError, match=r"line 2: \[resets\] 1-2 must be true or false"):
        _load(project, user)


def test_a_console_port_that_is_not_text_is_refused_at_its_line(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[consoles]\n"1-2" = 115200\n')
    with pytest.raises(ConfigError, match=r"line 2: \[consoles\] 1-2 must be a serial port"):
        _load(project, user)


def test_keys_merge_entry_by_entry(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[keys]\nbuild = "B"\nquit = "ctrl+q"\n')
    (project / PROJECT_FILE).write_text('[keys]\nbuild = "f7"\n')
    assert _load(project, user).keys == {"build": "f7", "quit": "ctrl+q"}


def test_save_label_round_trip(project: Path, user: Path) -> None:
    config = '# my settings, with comments\n[labels]\n"9-9" = "hand-written"\n'
    (user / USER_FILE).write_text(config)
    path = save_label("1-1.2", "left jig", config_dir=user)
    assert path == user / LABELS_FILE
    save_label("1-1.3", " right jig ", config_dir=user)
    assert _load(project, user).labels == {
        "9-9": "hand-written",
        "1-1.2": "left jig",
        "1-1.3": "right jig",
    }
    save_label("1-1.2", None, config_dir=user)
    save_label("1-1.3", "", config_dir=user)
    save_label("1-1.4", "kept", config_dir=user)
    assert _load(project, user).labels == {"9-9": "hand-written", "1-1.4": "kept"}
    assert (user / USER_FILE).read_text() == config
    assert sorted(p.name for p in user.iterdir()) == [USER_FILE, LABELS_FILE]  # no temporary


def test_save_label_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "espdfu"
    save_label("3-1", "jig", config_dir=folder)
    assert load_settings(None, config_dir=folder).labels == {"3-1": "jig"}


def test_save_label_refuses_what_is_not_a_port_path(user: Path) -> None:
    with pytest.raises(ConfigError, match="not a USB port path"):
        save_label("/dev/ttyACM0", "jig", config_dir=user)


def test_the_config_dir_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, project: Path
) -> None:
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert config_dir() == tmp_path / "elsewhere"
    save_label("1-4", "from env", config_dir=None)
    assert (tmp_path / "elsewhere" / LABELS_FILE).is_file()
    (tmp_path / "elsewhere" / USER_FILE).write_text("[flash]\nauto = true\n")
    settings = load_settings(project)
    assert settings.auto_flash and settings.labels == {"1-4": "from env"}


def test_the_platform_config_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESPDFU_CONFIG_DIR", raising=False)
    assert config_dir().name == "espdfu"


# --- errors -----------------------------------------------------------------------------------


def test_a_syntax_error_gives_the_line_and_column(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text("[flash]\n\nauto = yes\n")
    error = _error(project, user)
    assert error.message.startswith(f"{project / PROJECT_FILE}, line 3, column 8: ")
    assert "not valid TOML" in error.message
    assert (error.path, error.line) == (project / PROJECT_FILE, 3)


def test_a_value_of_the_wrong_type(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('# comment\n[flash]\nmake_dfu = true\nauto = "yes"\n')
    error = _error(project, user)
    assert error.message == (
        f'{user / USER_FILE}, line 4: [flash] auto must be true or false, got "yes".'
    )
    assert "true or false" in error.hint


def test_a_value_out_of_range(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text("[ui]\nmonitor_interval = 0\n")
    error = _error(project, user)
    assert "line 2: [ui] monitor_interval must be a number of seconds from 0.05 to 10" in str(error)


def test_a_dotted_key_is_found_on_its_line(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text('# top\n\nbuild.shell = "no"\n\n[ui]\nmouse = true\n')
    assert "line 3: [build] shell must be true or false" in _error(project, user).message


def test_an_unknown_key(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text("[flash]\nauto = true\nauto_flash = true\n")
    error = _error(project, user)
    assert error.message == f"{project / PROJECT_FILE}, line 3: unknown key [flash] auto_flash."
    assert (
        "arm_new_boards, auto, changes_only, detach_wait, make_dfu, reset, trace, trust_base"
        in (error.hint)
    )


def test_an_unknown_section(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text("[flsh]\nauto = true\n")
    error = _error(project, user)
    assert error.message.endswith("line 1: unknown section [flsh].")
    assert error.hint.startswith("Did you mean [flash]?")


def test_an_unknown_binding_lists_the_known_ones(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[keys]\nbuild = "b"\nbiuld = "B"\n')
    error = _error(project, user)
    assert error.message == f"{user / USER_FILE}, line 3: unknown binding [keys] biuld."
    assert error.hint == "Did you mean build? The bindings are build, flash, flash_all, quit."


def test_bindings_are_not_checked_without_ids(project: Path, user: Path) -> None:
    (user / USER_FILE).write_text('[keys]\nanything = "b"\n')
    assert load_settings(project, config_dir=user).keys == {"anything": "b"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[keys]\nbuild = ""\n', 'line 2: [keys] build must be a key name, got "".'),
        ('[labels]\n"usb1" = "x"\n', 'line 2: [labels] "usb1" is not a USB port path.'),
        ("[labels]\n'1-1' = 3\n", "line 2: [labels] 1-1 must be a label, got 3."),
        ("[build]\ncommand = []\n", "line 2: [build] command must name a program"),
        ('[build]\ncommand = "idf.py \'dfu"\n', "line 2: [build] command cannot be split"),
        ("[build]\ndir = 3\n", "line 2: [build] dir must be a folder name, got 3."),
        ("build = 1\n", "line 1: build must be a section, got 1."),
        ("auto = true\n", "line 1: auto is outside any section."),
    ],
)
def test_other_bad_values(project: Path, user: Path, text: str, expected: str) -> None:
    (project / PROJECT_FILE).write_text(text)
    assert expected in _error(project, user).message


def test_an_unreadable_file(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).mkdir()
    assert "is a folder" in _error(project, user).message


def test_a_file_that_is_not_utf8(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_bytes(b'[labels]\n"1-1" = "caf\xe9"\n')
    assert "line 2: the file is not UTF-8 text" in _error(project, user).message


def test_a_bad_command_line_value(project: Path, user: Path) -> None:
    with pytest.raises(ConfigError, match="detach_wait_s given on the command line"):
        _load(project, user, overrides={"detach_wait_s": -1.0})


# --- the workbench the settings describe ------------------------------------------------------


def test_the_workbench_takes_every_setting(project: Path, user: Path) -> None:
    (project / PROJECT_FILE).write_text(
        '[build]\ncommand = "make dfu"\nshell = true\ndir = "out"\n'
        "[flash]\nauto = true\narm_new_boards = false\ndetach_wait = 3\nmake_dfu = false\n"
        '[ui]\nmonitor_interval = 0.25\n[labels]\n"1-1.2" = "left jig"\n'
    )
    options = FlashOptions(detach_wait_s=99, progress_interval_s=0.5)
    bench = workbench_settings(_load(project, user), flash=options)
    assert bench.build_dir == project / "out" and bench.project_dir == project
    assert bench.build_command == (*SHELL, "make dfu")
    assert bench.auto_flash and not bench.make_dfu and not bench.arm_new_boards
    assert bench.arm_only == frozenset() and bench.labels == {"1-1.2": "left jig"}
    assert bench.flash == FlashOptions(detach_wait_s=3.0, progress_interval_s=0.5)
    assert bench.monitor_interval_s == 0.25


def test_trace_true_traces_each_flash_into_the_state_folder(
    project: Path, user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPDFU_STATE_DIR", str(tmp_path / "state"))
    assert workbench_settings(_load(project, user)).flash.trace is None
    (user / USER_FILE).write_text("[flash]\ntrace = true\n")
    trace = workbench_settings(_load(project, user)).flash.trace
    assert isinstance(trace, TraceFolder) and trace.folder == tmp_path / "state" / "traces"


def test_the_front_ends_choices_win(project: Path, user: Path) -> None:
    """As `espdfu watch` asks: auto-flash to every board (or those at --path), whatever the
    files say; and the demo's labels instead of the configured ones."""
    (user / USER_FILE).write_text("[flash]\nauto = false\narm_new_boards = false\n")
    (user / LABELS_FILE).write_text('[labels]\n"1-1.2" = "mine"\n')
    overrides: dict[str, object] = {"auto_flash": True, "arm_new_boards": True}
    config = _load(project, user, overrides=overrides)
    bench = workbench_settings(config, arm_only=["1-1.3", "1-1.3"], labels={"1-1.1": "demo"})
    assert bench.auto_flash and bench.arm_new_boards
    assert bench.arm_only == frozenset({"1-1.3"}) and bench.labels == {"1-1.1": "demo"}
    assert bench.build_command == DEFAULT_COMMAND and bench.flash == FlashOptions()


def test_without_a_project_the_build_folder_is_the_current_ones(
    user: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bench = workbench_settings(_load(None, user))
    assert bench.build_dir == tmp_path / "build" and bench.project_dir is None
