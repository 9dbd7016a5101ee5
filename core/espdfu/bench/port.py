"""One USB port's life, as one state machine: what is there, what runs on it, what is shown.

A board is named by its port path and keeps its name across DETACH, RESET and re-enumeration,
so everything the workbench knows of a board lives here, in one :class:`Port` with one
:class:`Life`: nothing there, on the bus, being flashed, running its app (seen through its
console only), or away and looked for. The port is sans-IO, like the DFU protocol: each
method is what happened, and returns what to do (:data:`Effect`), which the workbench does:
show or hide the board, say a line, read its console or stop, look for it until a deadline.
Its states and transitions are drawn in docs/design.md and tested as a table
(tests/core/bench/test_port.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Concatenate, ParamSpec

from ..chips import Chip
from ..consoles.health import RunState
from ..errors import EspdfuError
from ..files.dfufile import DfuImage
from ..files.espimage import AppDesc
from ..flashing.flasher import (
    Failure,
    FlashResult,
    Outcome,
    Phase,
    Progress,
    incompatibility,
    reset_step,
)
from ..flashing.jobs import Job
from ..usb.boards import Access, Board, Mode
from .artifacts import Artifact
from .base import Base, Sending
from .feed import ConsoleView
from .settings import AWAY_S
from .verify import Check, Verdict, check
from .views import BoardView, Life

_ROM_MODES = (Mode.ROM, Mode.DFU)
"""Modes whose serial port, if any, is the ROM's (the serial bootloader), not the app's."""
_NEVER_ENUMERATED = 0
"""The address of a device no host has enumerated (USB gives each one an address from 1)."""


def unseen_board(path: str) -> Board:
    """What stands for a board known from its console only, until it comes on the bus."""
    return Board(
        path, 0, 0, _NEVER_ENUMERATED, None, Mode.NO_DFU, None, None, Access.OK,
        hint="Seen on its console only: its chip shows once it is on the bus.",
    )  # fmt: skip


# --- what the workbench does for a port ------------------------------------------------------


@dataclass(frozen=True)
class Show:
    """Report the board as it is now."""


@dataclass(frozen=True)
class Hide:
    """The board is no longer shown."""


@dataclass(frozen=True)
class Say:
    """A line for the log (``level``: info, warning, error)."""

    text: str
    level: str = "info"


@dataclass(frozen=True)
class ReadConsole:
    """Read the board's console (it is looked for until there), or stop reading it."""

    on: bool


@dataclass(frozen=True)
class ResetIntoApp:
    """Reset the board into its app through its bridge, on its console's port once open (its
    start-up is read from the first line); then call :meth:`Port.reset_into_app_done`."""


@dataclass(frozen=True)
class FlashWhole:
    """Flash the whole of ``artifact`` now: its changes only did not give its build."""

    artifact: Artifact


@dataclass(frozen=True)
class LookFor:
    """Call :meth:`Port.timed_out` with this look's number after ``seconds``."""

    seconds: float
    look: int


Effect = Show | Hide | Say | ReadConsole | ResetIntoApp | FlashWhole | LookFor


@dataclass(frozen=True)
class Policy:
    """What the settings decide for a port."""

    consoles: bool = True
    """Read the board's app console when it may run."""
    arm: bool = True
    """A board that appears here is armed for auto-flash."""
    away_s: float = AWAY_S
    trust_base: bool = False
    """A good flash is the board's base without a boot that confirms it."""


_P = ParamSpec("_P")


def _transition(
    step: Callable[Concatenate[Port, _P], list[Effect] | None],
) -> Callable[Concatenate[Port, _P], list[Effect]]:
    """A transition: ``step`` moves the state on and returns the lines to say (None: nothing
    changed); the rest of what the workbench must do follows from the states before and after."""

    def transition(port: Port, /, *args: _P.args, **kwargs: _P.kwargs) -> list[Effect]:
        before = (port.shown, port.console is not None, port.life is Life.AWAY)
        says = step(port, *args, **kwargs)
        return [] if says is None else port._effects(*before) + says

    transition.__name__, transition.__doc__ = step.__name__, step.__doc__
    return transition


class Port:
    """Everything the workbench knows of one USB port; it outlives the board's presence."""

    def __init__(self, path: str, label: str = "", policy: Policy | None = None) -> None:
        self.path = path
        self.label = label
        self.policy = policy or Policy()
        self.life = Life.ABSENT
        self.board: Board | None = None
        """The board last seen here (None: none yet)."""
        self.on_bus = False
        self.chip: Chip | None = None
        """The chip seen here since the board was plugged in: the app it runs after a RESET has
        descriptors (a USB console, a DFU runtime) that do not name it."""
        self.said: Mode | None = None
        """The mode last said in the log, so that each change is said once."""
        self.armed = False
        self.job: Job[Sending, Outcome] | None = None
        self.waiting: Artifact | None = None
        """The latest artifact asked for while a flash ran: flashed after it."""
        self.progress: Progress | None = None
        self.last: FlashResult | None = None
        self.last_at: float | None = None
        """When the last flash ended (time.time())."""
        self.flashed: str | None = None
        """The digest of the artifact last flashed here successfully."""
        self.flashed_app: AppDesc | None = None
        """What the app of that artifact says of itself: the build a boot must name."""
        self.checked: Check | None = None
        """What the log last said of the build running here since that flash."""
        self.base: Base | None = None
        """What the board holds, as its boots confirm (:mod:`espdfu.bench.base`)."""
        self.unconfirmed: Sending | None = None
        """The last good flash, until a boot names its build (then it is the base)."""
        self.console: ConsoleView | None = None
        """Its app's console while it is read (None: not read)."""
        self.look = 0
        """The number of the current look for the board (see :meth:`timed_out`)."""
        self.bridged = False
        """Its console is on its USB-UART bridge, and it is reset through the bridge's lines:
        into download mode before a flash, into its app after (the settings say)."""

    @property
    def title(self) -> str:
        return self.label or self.path

    @property
    def shown(self) -> bool:
        return self.life is not Life.ABSENT

    @property
    def flashing(self) -> bool:
        return self.life is Life.FLASHING

    def view(self, image: DfuImage | None, force: bool) -> BoardView:
        """The board as the user sees it, with whether ``image`` (the usable artifact's) fits."""
        assert self.board is not None, "a port is shown once a board was seen there"
        fits = image is not None and incompatibility(self.board, image, force) is None
        return BoardView(
            board=self.board,
            life=self.life,
            present=self.on_bus,
            label=self.label,
            armed=self.armed,
            progress=self.progress,
            last=self.last,
            last_at=self.last_at,
            fits=fits and self.on_bus,
            artifact_chip=image.chip_name if image else None,
            console=self.console,
            check=check(self.flashed_app, self.console),
            bridged=self.bridged,
        )

    # --- what happens here: each a transition, which says what to do about it ----------------

    @_transition
    def seen(self, board: Board) -> list[Effect] | None:
        """The hot-plug monitor sees ``board`` here (it came, or it changed)."""
        return self._seen(board)

    @_transition
    def left(self) -> list[Effect] | None:
        """The hot-plug monitor no longer sees a board here."""
        if not self.on_bus:
            return None
        self.on_bus = False
        if self.life is Life.FLASHING:
            return []  # DETACH takes it to DFU mode, or a cable: the flash will say which
        if self.console is not None and (self.console.open or self.console.problem):
            self.life = Life.APP
        elif self.last is not None and self.last.ok and self.policy.consoles:
            self.life = Life.AWAY  # RESET after the flash: its app is coming
        else:
            self.life = Life.ABSENT
            return [Say(f"{self.title} unplugged.")]
        return []

    @_transition
    def linked(self) -> list[Effect] | None:
        """The settings link the board's console (its USB-UART bridge): it is read from the
        start, so that a board that runs its app off the bus (a DevKit's app has no USB) is seen
        there, and flashed through its bridge, without having been on the bus first."""
        if self.board is not None:
            return None
        self.board = unseen_board(self.path)
        self.armed = self.bridged and self.policy.arm
        return []

    @property
    def unseen(self) -> bool:
        """Known from its console only: never on the bus yet, its chip unknown."""
        return self.board is not None and self.board.address == _NEVER_ENUMERATED

    @property
    def startable(self) -> bool:
        """A flash may start here now: the board is on the bus, or a bridged board runs its
        app (or is on its way to it), which its bridge resets into download mode first."""
        if self.life is Life.PRESENT:
            return True
        return self.bridged and self.board is not None and self.life in (Life.APP, Life.AWAY)

    @_transition
    def flash_started(self, job: Job[Sending, Outcome], total: int) -> list[Effect] | None:
        """Our flash of ``total`` bytes starts here (:attr:`startable`)."""
        if not self.startable:
            return None
        self.life, self.job = Life.FLASHING, job
        self.progress = Progress(self.path, Phase.CONNECTING, 0, total)
        return []

    @_transition
    def progressed(self, progress: Progress) -> list[Effect] | None:
        if self.life is not Life.FLASHING:
            return None
        self.progress = progress
        return []

    @_transition
    def ended(self, outcome: Outcome, sent: Sending) -> list[Effect] | None:
        """The flash of ``sent`` ended; the board as it left the port."""
        if self.life is not Life.FLASHING:
            return None
        result = outcome.result
        self.job, self.progress = None, None
        self.last, self.last_at = result, time.time()
        image = sent.artifact.image
        app = image.contents.app if image is not None else None
        self.flashed_app = app if result.ok else None  # a failed flash leaves no known build
        self.checked = None
        self.base, self.unconfirmed = None, sent if result.ok else None  # the flash changed it
        if result.ok and self.policy.trust_base and image is not None:
            self.base = Base(image, self.last_at)
        if result.ok:
            self.flashed = sent.digest
            says: list[Effect] = [Say(f"{self.title}: {result.headline}")]  # RESET: once a round
        else:
            cancelled = result.error is not None and result.error.kind is Failure.CANCELLED
            says = [Say(f"{self.title}: {result.message}", "info" if cancelled else "error")]
        if outcome.board is not None:
            self._seen(outcome.board)
            self.life = Life.PRESENT
            if result.ok and self.bridged:  # no RESET to ask for: the bridge does it
                says.append(ResetIntoApp())
        elif (result.ok or self.bridged) and self.policy.consoles:
            # RESET after the flash: its app is coming; or a bridged board's app still runs
            # (its bridge did not reset it): its console says so
            self.on_bus, self.life = False, Life.AWAY
        else:
            self.on_bus, self.life = False, Life.ABSENT
            says.append(Say(f"{self.title} unplugged."))
        return says

    @_transition
    def console_changed(self, view: ConsoleView) -> list[Effect] | None:
        """The board's console now (it opened, went, was refused, or printed)."""
        if self.console is None:
            return None  # no longer read (a flash started): what it said before is moot
        there = view.open or bool(view.problem)
        news = self._trouble(self.console, view) + self._checked(view)
        self.console = view
        if self.on_bus or self.life is Life.FLASHING:
            return news
        if there and self.life is Life.ABSENT and view.open:
            self.life = Life.APP
            return [Say(f"{self.title}: its app's console is on {view.device}."), *news]
        if there:
            self.life = Life.APP
        elif self.life is Life.APP:
            self.life = Life.AWAY if self.policy.consoles else Life.ABSENT  # RESET, or the cable
        return news

    @_transition
    def reset_into_app_done(self, error: EspdfuError | None) -> list[Effect] | None:
        """The reset into the app through the bridge was done, or why not (``error``). Done,
        the ROM's DFU mode is over: the board is off the bus from now on (its app may come
        back on it), whether or not the monitor has looked since, so that a flash that comes
        at once starts from its app, through its bridge."""
        if error is None:
            if self.life is Life.PRESENT:
                self.on_bus, self.life = False, Life.APP if self.console else Life.AWAY
            return [Say(f"{self.title}: reset into its app through its UART bridge.")]
        why = f"{error.message} {error.hint}".strip()
        return [Say(f"{self.title}: not reset into its app: {why} {reset_step()}", "warning")]

    @_transition
    def timed_out(self, look: int) -> list[Effect] | None:
        """The deadline of the look numbered ``look`` passed."""
        if self.life is not Life.AWAY or look != self.look:
            return None  # a look that has been answered
        self.life = Life.ABSENT
        return [Say(f"{self.title} unplugged.")]

    # --- the parts of the transitions ---------------------------------------------------------

    def _effects(self, shown: bool, console: bool, looking: bool) -> list[Effect]:
        """What the workbench must do once the state moved on from one where the board was
        ``shown``, its ``console`` read, the board ``looking`` for."""
        effects: list[Effect] = []
        wanted = self._console_wanted()
        if wanted != console:
            self.console = ConsoleView() if wanted else None
            effects.append(ReadConsole(wanted))
        if self.life is Life.AWAY and not looking:
            self.look += 1
            effects.append(LookFor(self.policy.away_s, self.look))
        if self.shown:
            effects.append(Show())
        elif shown:
            effects.append(Hide())
            self.chip = self.said = None  # what comes here next may be another board
            self.base = self.unconfirmed = None
        return effects

    def _seen(self, board: Board) -> list[Effect]:
        if board.chip is None:
            board = replace(board, chip=self.chip)
        self.chip, self.board, self.on_bus = board.chip, board, True
        if self.life is Life.FLASHING:
            self.said = board.mode  # the flash's own re-enumeration: nothing to say
            return []
        if self.life is not Life.PRESENT:  # it appears: armed as the settings say
            self.armed = board.flashable and self.policy.arm
        self.life = Life.PRESENT
        if board.mode is self.said:
            return []
        self.said = board.mode
        where = f"{self.label} ({self.path})" if self.label else self.path
        said = f"{where}: {board.chip_name}, {board.mode.value}."
        if not board.hint:
            return [Say(said)]
        # The panel has room for the hint's first words only. A running app without DFU is
        # usual; a board that cannot be opened is a warning.
        return [Say(f"{said} {board.hint}", level="info" if board.accessible else "warning")]

    def _trouble(self, before: ConsoleView, now: ConsoleView) -> list[Effect]:
        """The log says once when the board gets into trouble (a panic, a crash at boot, a
        refusal, a brownout): the panel's note goes once looked at, the log keeps it."""
        state = now.state
        if state is before.state or not state.troubled:
            return []
        ours = check(self.flashed_app, now)
        if ours is not None and ours.verdict is Verdict.NOT_BOOTED:
            return []  # said once, of the build flashed here (:meth:`_checked`)
        return [
            Say(f"{self.title}: {now.words}.", "warning" if state is RunState.POWER else "error")
        ]

    def _checked(self, now: ConsoleView) -> list[Effect]:
        """The log says what the boots after our flash showed, each change once: the build
        runs, another one does, it did not boot, or nothing said which."""
        said = check(self.flashed_app, now)
        if said is None or said == self.checked:
            return []
        self.checked = said
        then = self._based(said.verdict)
        app = self.flashed_app
        assert app is not None
        words = {
            Verdict.VERIFIED: f"{self.title}: verified: it runs {app.project} {app.version} "
            f"(ELF {app.elf_prefix[:8]}…), the build flashed here.",
            Verdict.OTHER: f"{self.title}: {said.words}: not the build flashed here.",
            Verdict.NOT_BOOTED: f"{self.title}: the build flashed here {said.words}.",
            Verdict.UNVERIFIED: f"{self.title}: not verified: its app runs, but no start-up "
            "banner (ESP-IDF's `ELF file SHA256:` line) was seen to say which build.",
        }[said.verdict]
        level = {Verdict.VERIFIED: "info", Verdict.UNVERIFIED: "warning"}.get(said.verdict, "error")
        return [Say(words, level), *then]

    def _based(self, verdict: Verdict) -> list[Effect]:
        """The base follows the boots: one that names the build flashed last makes that flash
        the base; one that names another build, or fails, takes the base away and, after a
        flash of changes only (whose base was then wrong), has the whole file sent at once."""
        sent, self.unconfirmed = self.unconfirmed, None
        if verdict is Verdict.VERIFIED:
            image = sent.artifact.image if sent is not None else None
            if image is not None:
                self.base = Base(image, self.last_at or time.time())
            return []
        if verdict is Verdict.UNVERIFIED:
            self.unconfirmed = sent  # nothing said which build: a later boot may
            return []
        self.base = None
        if sent is None or sent.base is None:
            return []
        why = (
            f"{self.title}: the changes since {sent.base.since} did not give the build: the "
            "board did not hold what espdfu flashed there then; sending the whole file."
        )
        return [Say(why, "warning"), FlashWhole(sent.artifact)]

    def _console_wanted(self) -> bool:
        """Read the board's console when its app may run: not in the ROM's download or DFU
        mode (its USB serial is the ROM's then), not while it is flashed. A bridge's console
        is the chip's UART whatever it runs: read in download mode too (the ROM says so)."""
        board = self.board
        return (
            self.policy.consoles
            and board is not None
            and self.life is not Life.FLASHING
            and (self.bridged or not (self.on_bus and board.mode in _ROM_MODES))
        )
