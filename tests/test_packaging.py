"""The two distributions as users get them: wheels built from a clean copy of the sources, offline.

``espdfu`` (core/pyproject.toml) is the library and the ``espdfu`` command, without Textual;
``espdfu-tui`` (pyproject.toml) is the app on top of it. What pipx or pip puts on a
machine is these two wheels, so each must hold its own package with its data files (the app's
stylesheet, the py.typed markers) and nothing else of the repository (tests, benchmarks, docs,
the other package), the right metadata, and commands that run. They are released together: the
app requires the core at exactly its own version, by name, so that the wheels install anywhere.
Everything else users install asks for version ranges; the exact pins the tests run with are in
.ci/constraints.txt.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import espdfu
from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "core", "tui")
"""What a build reads: a copy of it is built, so that nothing is written into the checkout."""
VERSION = espdfu.__version__
CORE = "espdfu"
APP = "espdfu-tui"
PACKAGES = {
    CORE: ("espdfu", ROOT / "core" / "espdfu"),
    APP: ("espdfu_tui", ROOT / "tui" / "espdfu_tui"),
}
CORE_NEEDS = {
    "pyusb",
    "watchdog",
    "libusb-package",
    "platformdirs",
    "pyserial",
    "pyelftools",
    "tomli",
    "tomli-w",
}
UI = {"textual", "textual-serve", "rich", "espdfu-tui"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(origin, copy / name, ignore=ignore)
        else:
            shutil.copy2(origin, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheels(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, by distribution name, built offline with the backend of the dev extra."""
    try:
        importlib.metadata.version("hatchling")
    except importlib.metadata.PackageNotFoundError:
        missing("hatchling cannot build the wheels offline: it is not installed (the dev extra)")
    out = tmp_path_factory.mktemp("wheels")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "--wheel-dir", str(out), str(source / "core"), str(source)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    found = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert sorted(found) == ["espdfu", "espdfu_tui"], sorted(found)
    return {CORE: found["espdfu"], APP: found["espdfu_tui"]}


def names_in(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = (p for p in archive.namelist() if p.endswith(f".dist-info/{name}"))
        return archive.read(path).decode()


def metadata(wheel: Path) -> Message:
    return email.parser.Parser().parsestr(dist_info(wheel, "METADATA"))


def requires(wheel: Path) -> list[str]:
    """The wheel's requirements as written, its extras' among them."""
    return metadata(wheel).get_all("Requires-Dist") or []


def requirements(wheel: Path) -> list[Requirement]:
    """What installing the wheel installs with it (its extras left out)."""
    reqs = [Requirement(text) for text in requires(wheel)]
    return [req for req in reqs if req.marker is None or "extra" not in str(req.marker)]


def test_the_wheels_are_named_for_any_python_3(wheels: dict[str, Path]) -> None:
    assert wheels[CORE].name == f"espdfu-{VERSION}-py3-none-any.whl"
    assert wheels[APP].name == f"espdfu_tui-{VERSION}-py3-none-any.whl"


@pytest.mark.parametrize("dist", [CORE, APP])
def test_each_wheel_holds_its_package_and_nothing_else(wheels: dict[str, Path], dist: str) -> None:
    package, folder = PACKAGES[dist]
    sources = {
        f"{package}/{path.relative_to(folder).as_posix()}"
        for path in folder.rglob("*")
        if path.is_file() and path.suffix in (".py", ".tcss", ".typed")
        and "__pycache__" not in path.parts
    }  # fmt: skip
    names = names_in(wheels[dist])
    assert {name for name in names if not name.split("/")[0].endswith(".dist-info")} == sources
    tops = {name.split("/")[0] for name in names}
    assert tops == {package, f"{canonicalize_name(dist).replace('-', '_')}-{VERSION}.dist-info"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_the_data_files_are_in_them(wheels: dict[str, Path]) -> None:
    assert "espdfu/py.typed" in names_in(wheels[CORE])
    assert {"espdfu_tui/py.typed", "espdfu_tui/app.tcss"} <= names_in(wheels[APP])


@pytest.mark.parametrize("dist", [CORE, APP])
def test_common_metadata(wheels: dict[str, Path], dist: str) -> None:
    meta = metadata(wheels[dist])
    assert meta["Name"] == dist
    assert meta["Version"] == VERSION
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.10"
    assert "Flash ESP32-S2/S3 boards" in meta["Summary"]
    assert meta.get_payload(), "a README is the long description"
    assert "LICENSE" in {path.rsplit("/", 1)[-1] for path in meta.get_all("License-File") or []}
    # What users install asks for ranges: exact pins belong in .ci/constraints.txt. The one
    # exception, the app's core, released with it, is checked below.
    pinned = [
        str(req)
        for req in requirements(wheels[dist])
        if any(spec.operator in ("==", "===") for spec in req.specifier) and req.name != CORE
    ]
    assert not pinned


def test_the_core_requires_no_ui(wheels: dict[str, Path]) -> None:
    required = {canonicalize_name(req.name) for req in requirements(wheels[CORE])}
    assert required == CORE_NEEDS
    assert not [req for req in requirements(wheels[CORE]) if req.url]


def test_the_app_requires_the_core_at_its_version_and_a_textual_range(
    wheels: dict[str, Path],
) -> None:
    reqs = {str(canonicalize_name(req.name)): req for req in requirements(wheels[APP])}
    assert set(reqs) == {"espdfu", "textual", "textual-serve"}
    # The core released with it: by name (a folder of the build machine installs nowhere else),
    # at exactly the version of the core's sources, which is the core wheel's.
    assert str(reqs["espdfu"]) == f"espdfu[bridge]=={VERSION}"  # with the bridge resets
    assert metadata(wheels[CORE])["Version"] == VERSION
    textual = reqs["textual"].specifier
    assert {spec.operator for spec in textual} == {">=", "<"}, str(textual)
    assert textual.contains(importlib.metadata.version("textual"))


@pytest.mark.parametrize("dist", [CORE, APP])
def test_the_metadata_names_no_folder_of_the_build(
    wheels: dict[str, Path], source: Path, dist: str
) -> None:
    # The fields, not the long description (the README, whose examples name file:// URLs).
    fields = "\n".join(f"{key}: {value}" for key, value in metadata(wheels[dist]).items())
    assert "Requires-Dist: " in fields
    assert "file:" not in fields
    for folder in (source, ROOT, Path.home()):
        assert str(folder) not in fields


def test_the_core_license_is_the_repository_license() -> None:
    assert (ROOT / "core" / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


def test_their_commands(wheels: dict[str, Path]) -> None:
    core = dist_info(wheels[CORE], "entry_points.txt")
    assert core.split() == ["[console_scripts]", "espdfu", "=", "espdfu.cli:main"]
    # The app declares the core's command as well, so that pipx, installing the app, exposes both.
    app = dist_info(wheels[APP], "entry_points.txt")
    assert "espdfu = espdfu.cli:main" in app
    assert "espdfu-tui = espdfu_tui.__main__:main" in app


def run_from_wheels(wheels: dict[str, Path], tmp_path: Path, *args: str) -> str:
    """Run Python with both wheels' own files first on its path; the output."""
    unpacked = tmp_path / "unpacked"
    for wheel in wheels.values():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    env.pop("ESPDFU_SIM", None)
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_commands_run_from_the_wheels(wheels: dict[str, Path], tmp_path: Path) -> None:
    where = run_from_wheels(
        wheels, tmp_path, "-c", "import espdfu, espdfu_tui; print(espdfu.__file__)"
    )
    assert where.startswith(str(tmp_path / "unpacked")), "the wheel's espdfu, not the checkout's"
    version = f"espdfu {VERSION}"
    assert run_from_wheels(wheels, tmp_path, "-m", "espdfu", "--version").strip() == version
    call = "import sys; from {} import main; sys.exit(main(sys.argv[1:]))"
    assert "1-1.1" in run_from_wheels(
        wheels, tmp_path, "-c", call.format("espdfu.cli"), "list", "--sim", "esp32s2"
    )
    usage = run_from_wheels(wheels, tmp_path, "-c", call.format("espdfu_tui.__main__"), "--help")
    assert usage.startswith("usage: espdfu-tui")


# --- the core alone, in a virtual environment of its own -----------------------------------------


def repack(dist: importlib.metadata.Distribution, out: Path) -> None:
    """A wheel of an installed distribution, from its files (offline: no package index)."""
    wheel_info = dist.read_text("WHEEL") or ""
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:")
    ]
    # A wheel of several tags (pyserial: py2-none-any and py3-none-any) is named by their
    # compressed set: py2.py3-none-any.
    pythons = ".".join(dict.fromkeys(tag.split("-")[0] for tag in tags))
    tag = "-".join([pythons, *tags[0].split("-")[1:]])
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    files = [
        file
        for file in dist.files or []
        if file.parts[0] != ".." and "__pycache__" not in file.parts
        and file.name not in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
    ]  # fmt: skip
    info = next(file.parts[0] for file in files if file.parts[0].endswith(".dist-info"))
    with zipfile.ZipFile(out / f"{name}-{dist.version}-{tag}.whl", "w") as archive:
        for file in files:
            archive.write(Path(str(file.locate())), file.as_posix())
        record = "".join(f"{file.as_posix()},,\n" for file in files) + f"{info}/RECORD,,\n"
        archive.writestr(f"{info}/RECORD", record)


def dependency_wheels(wheels: list[Path], out: Path) -> set[str]:
    """Wheels of everything the wheels require, recursively, with the extras asked for (Textual
    asks for markdown-it-py[linkify]), from this environment; their names.

    The wheels' own distributions are left out: here they are installed from the checkout
    (editable), not as the files a wheel holds.
    """
    own = {canonicalize_name(metadata(wheel)["Name"]): wheel for wheel in wheels}
    followed: dict[str, set[str]] = {}
    """Each distribution repacked, and the extras whose requirements were followed ("": none)."""
    todo = [(Requirement(text), {""}) for wheel in wheels for text in requires(wheel)]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if not (
            req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in extras)
        ):
            continue
        if name in own:  # the app asks for the core's extra: what that extra requires
            asked = set(req.extras)
            todo += [(Requirement(text), asked) for text in requires(own[name]) if asked]
            continue
        new = {"", *req.extras} - followed.get(name, set())
        if not new:
            continue
        dist = importlib.metadata.distribution(name)
        if name not in followed:
            repack(dist, out)
        followed.setdefault(name, set()).update(new)
        todo += [(Requirement(text), new) for text in dist.requires or []]
    return set(followed)


@dataclass
class Installed:
    """A clean virtual environment with wheels installed by pip from a folder, without an index."""

    folder: Path
    dependencies: set[str]
    """The distributions installed besides the wheels, by name."""
    env: dict[str, str]
    cwd: Path

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """One of the environment's commands (``python``, ``espdfu``, …), as a user runs it."""
        return subprocess.run(
            [str(self.folder / "bin" / command), *args],
            env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def install_offline(wheels: list[Path], tmp_path: Path) -> Installed:
    """The wheels, by name, into a new virtual environment: ``pip install --no-index
    --find-links FOLDER NAMES``, then ``pip check``.

    FOLDER holds the wheels and, offline, wheels of their dependencies repacked from the files
    installed here (dependency_wheels): pip reads the real metadata of each and resolves the
    requirements as from an index, but can take nothing from anywhere else.
    """
    found = tmp_path / "found"
    found.mkdir()
    dependencies = dependency_wheels(wheels, found)
    for wheel in wheels:
        shutil.copy2(wheel, found)
    folder = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(folder)
    # pip as on a machine without configuration or package index: only the wheels above.
    env = {key: val for key, val in os.environ.items() if not key.startswith(("PIP_", "PYTHON"))}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("ESPDFU_SIM", None)
    installed = Installed(folder, dependencies, env, tmp_path)
    names = [metadata(wheel)["Name"] for wheel in wheels]
    pip = ("python", "-m", "pip")
    done = installed.run(*pip, "install", "--no-index", "--find-links", str(found), *names)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = installed.run(*pip, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return installed


def test_both_wheels_install_together_anywhere(wheels: dict[str, Path], tmp_path: Path) -> None:
    """The wheel that installs anywhere: the app's wheel required ``espdfu @ file:///…/core``,
    the folder it was built in, and pip went there for the core rather than take the core's
    wheel, failing wherever that folder is not (here, where it is, pip must build it, with
    hatchling from an index). Now both, built in one folder, install by name from another, as
    from an index, and their commands run."""
    installed = install_offline([wheels[APP], wheels[CORE]], tmp_path)
    assert installed.dependencies >= {"textual", "pyusb"}
    where = installed.run("python", "-c", "import espdfu_tui; print(espdfu_tui.__file__)")
    assert where.stdout.startswith(str(installed.folder)), "the venv's app, not the checkout's"
    for command in ("espdfu", "espdfu-tui"):
        version = installed.run(command, "--version")
        assert (version.returncode, version.stdout.strip()) == (0, f"{command} {VERSION}")
    listed = installed.run("espdfu", "list", "--sim", "esp32s2")
    assert listed.returncode == 0, listed.stderr
    assert "1-1.1" in listed.stdout


def test_the_core_alone_runs_its_commands_without_textual(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 13: a clean environment with only the core runs `espdfu` and has no Textual."""
    installed = install_offline([wheels[CORE]], tmp_path)
    assert not installed.dependencies & UI, "the core's dependencies bring a UI"
    assert installed.run("espdfu", "--version").stdout.strip() == f"espdfu {VERSION}"
    listed = installed.run("espdfu", "list", "--sim", "esp32s2")
    assert listed.returncode == 0, listed.stderr
    assert "1-1.1" in listed.stdout
    # A real flash, of a small dfu.bin the core writes, to a virtual board (it takes a second).
    make = (
        "import sys; from pathlib import Path; from espdfu import chips; "
        "from espdfu.files import dfufile; "
        "data = dfufile.pack([dfufile.FlashFile(0x10000, 'app.bin', bytes(4096))], "
        "pid=chips.chip_by_name('esp32s2').dfu_pid); Path(sys.argv[1]).write_bytes(data)"
    )
    made = installed.run("python", "-c", make, str(tmp_path / "dfu.bin"))
    assert made.returncode == 0, made.stderr
    flashed = installed.run("espdfu", "flash", "--sim", "esp32s2", str(tmp_path / "dfu.bin"))
    assert flashed.returncode == 0, flashed.stdout + flashed.stderr
    assert "1 of 1 board flashed." in flashed.stdout
    for command in ("flash", "watch", "station"):
        usage = installed.run("espdfu", command, "--help")
        assert usage.returncode == 0, usage.stderr
        assert usage.stdout.startswith(f"usage: espdfu {command}")
    for module in ("textual", "rich", "espdfu_tui"):
        imported = installed.run("python", "-c", f"import {module}")
        assert imported.returncode == 1
        assert f"No module named '{module}'" in imported.stderr
    where = installed.run("python", "-c", "import espdfu; print(espdfu.__file__)").stdout
    assert where.startswith(str(installed.folder)), "the venv's espdfu, not the checkout's"
