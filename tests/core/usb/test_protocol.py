"""The DFU download on its own: scripted and random device replies, no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from espdfu.usb import driver
from espdfu.usb.protocol import (
    Blocks,
    BusyTooLongError,
    DeviceGone,
    DeviceStatusError,
    Ending,
    Exchange,
    FunctionalDescriptor,
    ProtocolError,
    Reply,
    Request,
    Sent,
    State,
    Status,
    StatusReply,
    Step,
    download,
    each_request,
    recover,
)


def ok(state: State, poll: int = 0) -> StatusReply:
    return StatusReply(Status.OK, poll, state)


@dataclass
class Run:
    """What a generator asked for, and how it ended."""

    steps: list[Step] = field(default_factory=list)
    result: object = None
    error: BaseException | None = None


def drive(
    steps: Exchange[object],
    answer: Callable[[Step], Reply],
    limit: int = 1_000_000,
) -> Run:
    """Drive ``steps`` with the flasher's loop, ``answer`` as the device, no time spent waiting;
    ``answer`` may raise DeviceGone to model a vanished board."""
    run = Run()

    def perform(step: Step) -> Reply:
        if len(run.steps) == limit:
            raise AssertionError("the download never ended")
        run.steps.append(step)
        return answer(step)

    try:
        run.result = driver.drive(steps, perform, wait=_no_wait)
    except (ProtocolError, DeviceStatusError, BusyTooLongError, DeviceGone) as error:
        run.error = error
    return run


def _no_wait(seconds: float) -> None:
    pass


class Device:
    """A well-behaved DFU device: busy once per block, then idle; manifests through MANIFEST."""

    def __init__(
        self, start: State = State.DFU_IDLE, busy_poll: int = 7, busy: bool = True
    ) -> None:
        self.state = start
        self.busy_poll = busy_poll
        self.busy = busy
        self.received = bytearray()
        self.blocks: list[int] = []
        self.pending_busy = False

    def __call__(self, step: Step) -> Reply:
        if step.request is Request.GETSTATUS:
            if self.state is State.DNLOAD_SYNC:
                if self.pending_busy:
                    self.pending_busy = False
                    return ok(State.DNBUSY, self.busy_poll)
                self.state = State.DNLOAD_IDLE
            elif self.state is State.MANIFEST_SYNC:
                self.state = State.MANIFEST
                return ok(State.MANIFEST, 3)
            elif self.state is State.MANIFEST:
                self.state = State.DFU_IDLE
            return ok(self.state)
        if step.request is Request.DNLOAD:
            self.blocks.append(step.value)
            if step.data:
                self.received += step.data
                self.state = State.DNLOAD_SYNC
                self.pending_busy = self.busy
            else:
                self.state = State.MANIFEST_SYNC
        elif step.request is Request.CLRSTATUS or step.request is Request.ABORT:
            self.state = State.DFU_IDLE
        return None


def test_a_download_sends_every_byte_in_blocks_and_manifests() -> None:
    payload = bytes(range(256)) * 5
    device = Device()
    run = drive(download(payload, 64), device)
    assert run.error is None and run.result is Ending.IDLE
    assert bytes(device.received) == payload
    assert device.blocks == [*range(20), 20]  # 20 blocks, then the zero-length one
    dnloads = [s for s in run.steps if s.request is Request.DNLOAD]
    assert [s.offset for s in dnloads] == [*range(0, 1280, 64), 1280]


def test_poll_timeouts_become_waits_before_the_next_request() -> None:
    run = drive(download(b"x" * 10, 64), Device(busy_poll=42))
    waits = [(s.request, s.wait_ms) for s in run.steps]
    assert waits == [
        (Request.GETSTATUS, 0),  # the starting state
        (Request.DNLOAD, 0),
        (Request.GETSTATUS, 0),  # -> dfuDNBUSY, poll 42 ms
        (Request.GETSTATUS, 42),  # -> dfuDNLOAD-IDLE
        (Request.DNLOAD, 0),  # the end
        (Request.GETSTATUS, 0),  # -> dfuMANIFEST, poll 3 ms
        (Request.GETSTATUS, 3),  # -> dfuIDLE
    ]


def test_a_poll_timeout_with_an_idle_state_holds_nothing_back() -> None:
    """Only a busy device's poll timeout is waited out (as dfu-util does)."""

    def answer(step: Step) -> Reply:
        if step.request is Request.GETSTATUS:
            return ok(State.DNLOAD_IDLE if seen else State.DFU_IDLE, 5)
        seen.append(step)
        return None

    seen: list[Step] = []
    steps = drive(download(b"x" * 200, 64), answer, limit=12).steps
    dnloads = [s.wait_ms for s in steps if s.request is Request.DNLOAD]
    statuses = [s.wait_ms for s in steps if s.request is Request.GETSTATUS]
    assert dnloads and set(dnloads) == {0}
    assert set(statuses) == {0}


def test_the_driver_waits_only_what_is_left_of_a_busy_poll_timeout() -> None:
    """The poll timeout counts from the busy answer: the host's own time since is not waited
    again, and a timeout already past is not waited at all."""
    looks = itertools.count(0, 0.005)  # each look at the clock finds 5 ms more
    waits: list[float] = []
    device = Device(busy_poll=42)  # then dfuMANIFEST with 3 ms
    ending = driver.drive(download(b"x" * 10, 64), device, waits.append, lambda: next(looks))
    assert ending is Ending.IDLE and bytes(device.received) == b"x" * 10
    assert waits == [pytest.approx(0.037)]


def test_block_numbers_wrap_at_16_bits() -> None:
    device = Device(busy_poll=0)
    run = drive(download(bytes(65_540), 1), device)
    assert run.result is Ending.IDLE
    assert device.blocks[65_535:65_541] == [65_535, 0, 1, 2, 3, 4]


def test_the_blocks_between_two_slow_ones_go_as_one_run() -> None:
    """A slow block (an erase) goes alone, with its timeout; the others in runs between."""
    payload = bytes(range(256)) * 3  # 12 blocks
    device = Device(busy=False)
    runs: list[Blocks] = []

    def send_blocks(blocks: Blocks) -> Sent:
        runs.append(blocks)
        return each_request(blocks, device)

    steps = download(payload, 64, slow={0: 500, 5: 900})
    assert driver.drive(steps, device, _no_wait, send_blocks=send_blocks) is Ending.IDLE
    assert bytes(device.received) == payload and device.blocks == [*range(12), 12]
    assert [(r.first, r.block_count, r.offset, len(r.data)) for r in runs] == [
        (1, 4, 64, 256),
        (6, 6, 384, 384),
    ]


def test_a_run_cut_short_goes_on_from_the_block_after() -> None:
    """A run that ended at a busy answer: that block is waited out, a new run takes the rest."""
    device = Device(busy_poll=42)
    runs: list[Blocks] = []
    waits: list[float] = []

    def send_blocks(blocks: Blocks) -> Sent:
        runs.append(blocks)
        return each_request(blocks, device)

    steps = download(b"x" * 150, 64)
    ending = driver.drive(steps, device, waits.append, lambda: 0.0, send_blocks)
    assert ending is Ending.IDLE and bytes(device.received) == b"x" * 150
    assert [(r.first, r.block_count) for r in runs] == [(0, 3), (1, 2), (2, 1)]
    assert device.blocks == [0, 1, 2, 3]
    assert waits == [0.042] * 3 + [0.003]  # each block's busy answer, then dfuMANIFEST's


def test_a_run_reports_the_first_answer_that_is_not_plain() -> None:
    answers = iter([ok(State.DNLOAD_IDLE, 2), ok(State.DNLOAD_IDLE), ok(State.DNBUSY, 5)])

    def answer(step: Step) -> Reply:
        return next(answers) if step.request is Request.GETSTATUS else None

    blocks = Blocks(7, memoryview(bytes(300)), 448, 64)
    assert each_request(blocks, answer) == Sent(2, ok(State.DNBUSY, 5))
    assert each_request(blocks, lambda step: ok(State.DNLOAD_IDLE)) == Sent(5)
    with pytest.raises(ProtocolError, match="no reply"):
        each_request(blocks, lambda step: None)


def test_a_run_is_sent_as_its_requests_with_wrapping_numbers() -> None:
    sent: list[Step] = []

    def answer(step: Step) -> Reply:
        sent.append(step)
        return ok(State.DNLOAD_IDLE) if step.request is Request.GETSTATUS else None

    each_request(Blocks(65_534, memoryview(bytes(range(150))), 1000, 64), answer)
    dnloads = [(s.value, bytes(s.data), s.offset) for s in sent if s.request is Request.DNLOAD]
    assert dnloads == [
        (65_534, bytes(range(64)), 1000),
        (65_535, bytes(range(64, 128)), 1064),
        (0, bytes(range(128, 150)), 1128),
    ]
    assert [s.request for s in sent[1::2]] == [Request.GETSTATUS] * 3


def test_a_run_is_cut_into_parts() -> None:
    blocks = Blocks(10, memoryview(bytes(range(200))), 640, 64)
    parts = list(blocks.parts(2))
    assert [(p.first, p.offset, bytes(p.data), p.size) for p in parts] == [
        (10, 640, bytes(range(128)), 64),
        (12, 768, bytes(range(128, 200)), 64),
    ]
    assert [p.block_count for p in parts] == [2, 2] and blocks.block_count == 4


def test_vanishing_during_a_run_is_a_failure() -> None:
    def send_blocks(blocks: Blocks) -> Sent:
        raise DeviceGone("cable pulled")

    with pytest.raises(DeviceGone):
        driver.drive(download(b"a" * 200, 64), Device(), _no_wait, send_blocks=send_blocks)


@pytest.mark.parametrize(
    ("start", "clearing"),
    [(State.ERROR, Request.CLRSTATUS), (State.DNLOAD_IDLE, Request.ABORT)],
)
def test_a_leftover_state_is_cleared_first(start: State, clearing: Request) -> None:
    device = Device(start=start)
    run = drive(download(b"abc", 64), device)
    assert run.result is Ending.IDLE
    assert [s.request for s in run.steps[:3]] == [Request.GETSTATUS, clearing, Request.GETSTATUS]


def test_a_runtime_device_cannot_take_a_download() -> None:
    run = drive(download(b"abc", 64), Device(start=State.APP_IDLE))
    assert isinstance(run.error, ProtocolError) and "appIDLE" in str(run.error)


def test_an_error_status_is_reported_by_name() -> None:
    def answer(step: Step) -> Reply:
        if step.request is Request.GETSTATUS and any(
            s.request is Request.DNLOAD for s in run_steps
        ):
            return StatusReply(Status.VERIFY, 0, State.ERROR)
        run_steps.append(step)
        return ok(State.DFU_IDLE) if step.request is Request.GETSTATUS else None

    run_steps: list[Step] = []
    run = drive(download(b"abc", 64), answer)
    assert isinstance(run.error, DeviceStatusError)
    assert run.error.status is Status.VERIFY and "errVERIFY" in str(run.error)


def test_endless_busy_ends_with_a_timeout() -> None:
    def answer(step: Step) -> Reply:
        if step.request is Request.GETSTATUS:
            return ok(State.DNBUSY, 100) if step.wait_ms or seen else ok(State.DFU_IDLE)
        seen.append(step)
        return None

    seen: list[Step] = []
    run = drive(download(b"abc", 64, busy_limit_ms=5_000), answer)
    assert isinstance(run.error, BusyTooLongError)
    assert 45 <= len(run.steps) <= 60  # about 5 s of 100 ms polls, not forever
    assert str(run.error) == "stayed busy (dfuDNBUSY) for over 5 s during the download"


def test_a_busy_limit_under_a_second_is_named_as_it_is() -> None:
    run = drive(download(b"abc", 64, busy_limit_ms=250), lambda step: ok(State.DNBUSY, 100))
    assert str(run.error) == "stayed busy (dfuDNBUSY) for over 0.25 s"


def test_vanishing_after_the_final_block_is_a_success() -> None:
    device = Device()

    def answer(step: Step) -> Reply:
        if step.request is Request.GETSTATUS and device.state is State.MANIFEST_SYNC:
            raise DeviceGone("reset itself")
        return device(step)

    run = drive(download(b"a" * 100, 64), answer)
    assert run.result is Ending.VANISHED


def test_vanishing_during_the_data_is_a_failure() -> None:
    device = Device()

    def answer(step: Step) -> Reply:
        if step.request is Request.DNLOAD and step.offset == 64:
            raise DeviceGone("cable pulled")
        return device(step)

    run = drive(download(b"a" * 200, 64), answer)
    assert isinstance(run.error, DeviceGone)


def test_a_device_that_waits_for_reset_ends_so() -> None:
    device = Device()

    def answer(step: Step) -> Reply:
        if step.request is Request.GETSTATUS and device.state is State.MANIFEST:
            return ok(State.MANIFEST_WAIT_RESET)
        return device(step)

    assert drive(download(b"abc", 64), answer).result is Ending.WAIT_RESET


def test_recover_aborts_a_download_in_progress() -> None:
    device = Device(start=State.DNLOAD_IDLE)
    run = drive(recover(), device)
    assert run.error is None and device.state is State.DFU_IDLE
    assert [s.request for s in run.steps] == [Request.GETSTATUS, Request.ABORT, Request.GETSTATUS]


def test_status_replies_decode_and_refuse_nonsense() -> None:
    reply = StatusReply(Status.ADDRESS, 0x012345, State.ERROR)
    assert StatusReply.decode(reply.encode()) == reply
    with pytest.raises(ProtocolError, match="3 bytes"):
        StatusReply.decode(b"\0\0\0")
    with pytest.raises(ProtocolError, match="unknown codes"):
        StatusReply.decode(bytes([0, 0, 0, 0, 0xEE, 0]))


def test_functional_descriptor_is_found_among_other_descriptors() -> None:
    descriptor = FunctionalDescriptor(0x0D, 1000, 64, 0x0110)
    other = bytes([5, 0x24, 0, 0x10, 0x01])  # a CDC header descriptor before it
    found = FunctionalDescriptor.find(other + descriptor.encode())
    assert found == descriptor and found.will_detach and found.manifestation_tolerant
    assert FunctionalDescriptor.find(bytes([3, 0x21, 0])) is None
    assert FunctionalDescriptor.find(bytes([0, 0x21])) is None


# --- random devices ---------------------------------------------------------------------------

any_reply = st.builds(
    StatusReply,
    st.sampled_from(list(Status)),
    st.integers(min_value=0, max_value=50),
    st.sampled_from(list(State)),
)
SENSIBLE = {  # what a device says after each request, when it is well
    "start": [State.DFU_IDLE],
    "data": [State.DNBUSY, State.DNLOAD_IDLE],
    "end": [State.MANIFEST_SYNC, State.MANIFEST, State.DFU_IDLE, State.MANIFEST_WAIT_RESET],
}


@settings(max_examples=300)
@given(st.data(), st.binary(min_size=0, max_size=300), st.integers(min_value=1, max_value=128))
def test_random_replies_never_loop_forever_nor_fake_success(
    data: st.DataObject, payload: bytes, transfer_size: int
) -> None:
    """Whatever a device answers, the download ends, and success is only ever earned."""
    history: list[tuple[Step, Reply]] = []

    def answer(step: Step) -> Reply:
        if data.draw(st.integers(0, 200), label="vanish") == 0:
            raise DeviceGone("random")
        reply = None
        if step.request is Request.GETSTATUS:
            last = next((s for s, _ in reversed(history) if s.request is Request.DNLOAD), None)
            phase = "start" if last is None else "data" if last.data else "end"
            sensible = st.builds(ok, st.sampled_from(SENSIBLE[phase]), st.integers(0, 5))
            chaos = data.draw(st.integers(0, 30), label="chaos") == 0
            reply = data.draw(any_reply if chaos else sensible, label="reply")
        history.append((step, reply))
        return reply

    run = drive(download(payload, transfer_size, busy_limit_ms=200), answer, limit=20_000)
    event(f"ended: {type(run.error).__name__ if run.error else run.result}")
    if run.error is not None:
        return
    blocks = [step for step, _ in history if step.request is Request.DNLOAD]
    assert b"".join(bytes(step.data) for step in blocks) == payload
    assert blocks[-1].data == b""  # the end was sent
    if run.result is not Ending.VANISHED:
        final = history[-1][1]
        assert final is not None and final.status is Status.OK
        expected = Ending.IDLE if final.state is State.DFU_IDLE else Ending.WAIT_RESET
        assert final.state in (State.DFU_IDLE, State.MANIFEST_WAIT_RESET)
        assert run.result is expected
    # every data block was confirmed (dfuDNLOAD-IDLE, status OK) before the next was sent
    confirmed = iter(_confirmations(history))
    for _ in blocks[:-1]:
        assert next(confirmed, False)


def _confirmations(history: list[tuple[Step, Reply]]) -> Iterator[bool]:
    """For each DNLOAD with data: whether a GETSTATUS said dfuDNLOAD-IDLE before the next DNLOAD."""
    waiting = False
    for step, reply in history:
        if step.request is Request.DNLOAD:
            if waiting:
                yield False
            waiting = bool(step.data)
        elif waiting and reply is not None and reply.state is State.DNLOAD_IDLE:
            if reply.status is Status.OK:
                yield True
            waiting = False
