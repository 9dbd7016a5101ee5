"""Boards coming and going: DETACH re-enumeration, resets, cables; handles to old enumerations."""

from __future__ import annotations

import errno

import pytest
import usb.core

from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb.protocol import Request, State
from tests.helpers.simhost import Host, ModelClock, device_at, devices, one_board


def no_device(call: object) -> int:
    with pytest.raises(usb.core.USBError) as gone:
        call()  # type: ignore[operator]
    assert gone.value.backend_error_code == -4
    return int(gone.value.errno)


def test_detach_brings_the_board_back_in_dfu_mode_at_the_same_port() -> None:
    bus, board, runtime = one_board("esp32s2", BoardKind.ROM)
    old = Host(runtime, interface=2)
    assert old.status().state is State.APP_IDLE
    assert old.out(Request.DETACH, 1000) == 0
    assert no_device(old.status) == errno.ENODEV
    assert board.mode == "dfu" and board.present
    (dfu,) = devices(bus)
    assert dfu.port_numbers == runtime.port_numbers and dfu.address != runtime.address
    assert dfu.get_active_configuration()[(0, 0)].bInterfaceProtocol == 2
    assert Host(dfu).status().state is State.DFU_IDLE


def test_an_app_reboots_into_the_rom_dfu_mode_on_detach() -> None:
    bus, board, app = one_board("esp32s3", BoardKind.APP)
    Host(app, interface=2).out(Request.DETACH, 1000)
    (dfu,) = devices(bus)
    assert (board.mode, dfu.idProduct) == ("dfu", 0x0009)


def test_the_board_comes_back_only_after_the_reenumeration_time() -> None:
    """On the model clock: absent until 5 ms after the DETACH's reply, there from then on."""
    model, clock = TimeModel.scaled(0.01), ModelClock()  # 5 ms
    bus, board, runtime = one_board("esp32s2", BoardKind.ROM, model, clock)
    Host(runtime, interface=2, clock=clock).out(Request.DETACH, 1000)
    back = clock.now() + model.reenumerate_delay_s
    assert devices(bus) == [] and not board.present and [board.mode] == [None]
    clock.sleep(model.reenumerate_delay_s - 0.0001)
    assert devices(bus) == [] and not board.present
    clock.sleep(back - clock.now())
    assert board.mode == "dfu"
    assert [d.idProduct for d in devices(bus)] == [0x0002]


def test_descriptors_of_an_enumeration_stay_readable_after_it_left() -> None:
    _, board, dev = one_board("esp32s2", BoardKind.DFU)
    board.unplug()
    assert dev[0][(0, 0)].bInterfaceClass == 0xFE  # as libusb, which keeps them
    assert no_device(lambda: dev.ctrl_transfer(0xA1, 3, 0, 0, 6)) == errno.ENODEV


def test_unplug_and_replug() -> None:
    bus, board, dev = one_board("esp32s2", BoardKind.ROM)
    bus.unplug(board.path)
    assert devices(bus) == [] and not board.present
    assert bus.boards == {board.path: board}  # still known by its port
    with pytest.raises(usb.core.USBError) as gone:
        SimBackend(bus).open_device(dev._ctx.dev)
    assert gone.value.errno == errno.ENODEV
    board.replug()
    (back,) = devices(bus)
    assert back.port_numbers == dev.port_numbers and back.address != dev.address
    assert board.mode == "rom"


def test_a_replugged_dfu_board_starts_its_download_afresh() -> None:
    bus, board, dev = one_board("esp32s2", BoardKind.DFU)
    Host(dev).dnload(0, b"070701")
    board.replug()
    assert Host(device_at(SimBackend(bus), board.path)).state() is State.DFU_IDLE


@pytest.mark.parametrize(
    ("kind", "boot", "mode"),
    [
        (BoardKind.ROM, True, "rom"),
        (BoardKind.DFU, True, "rom"),
        (BoardKind.APP, True, "rom"),
        (BoardKind.APP, False, "app"),
        (BoardKind.ROM, False, None),  # its application has no USB
        (BoardKind.DFU, False, None),
        (BoardKind.JTAG, True, "jtag"),
        (BoardKind.JTAG, False, "jtag"),
    ],
)
def test_the_reset_button(kind: BoardKind, boot: bool, mode: str | None) -> None:
    chip = "esp32s3" if kind is BoardKind.JTAG else "esp32s2"
    bus, board, dev = one_board(chip, kind)
    board.press_reset(boot=boot)
    assert board.mode == mode
    assert len(devices(bus)) == (mode is not None)
    assert no_device(lambda: dev.ctrl_transfer(0x80, 8, 0, 0, 1)) == errno.ENODEV


def test_an_unplugged_board_ignores_the_reset_button() -> None:
    _, board, _ = one_board("esp32s2", BoardKind.ROM)
    board.unplug()
    board.press_reset(boot=True)
    assert not board.present


def test_every_enumeration_gets_a_new_address() -> None:
    bus = SimBus(TimeModel.instant())
    first, second = bus.plug(VirtualBoard("esp32s2")), bus.plug(VirtualBoard("esp32s3"))
    addresses = [d.address for d in devices(bus)]
    first.replug()
    second.press_reset(boot=True)
    addresses += sorted(d.address for d in devices(bus))
    assert addresses == [2, 3, 4, 5]


def test_addresses_wrap_around_and_skip_those_in_use() -> None:
    bus = SimBus(TimeModel.instant())
    keeper = bus.plug(VirtualBoard("esp32s2"))  # address 2, for good
    cycler = bus.plug(VirtualBoard("esp32s2"))
    for _ in range(200):
        cycler.replug()
    addresses = {d.address for d in devices(bus)}
    assert len(addresses) == 2 and all(2 <= a <= 127 for a in addresses)
    kept = keeper.enumeration()
    assert kept is not None and kept.descriptor.address == 2


def test_a_usb_reset_returns_dfu_mode_to_idle() -> None:
    _, _, dev = one_board("esp32s2", BoardKind.DFU)
    host = Host(dev)
    host.dnload(0, bytes(64))
    assert host.state() is State.DNLOAD_SYNC
    dev.reset()
    assert host.state() is State.DFU_IDLE


def test_plugging_is_checked() -> None:
    bus = SimBus(TimeModel.instant())
    board = bus.plug(VirtualBoard("esp32s2"), path="1-1.1")
    with pytest.raises(ValueError, match="already on a bus"):
        bus.plug(board, path="1-1.2")
    assert list(bus.boards) == ["1-1.1"]
    with pytest.raises(Exception, match="already a board"):
        bus.plug(VirtualBoard("esp32s2"), path="1-1.1")
    with pytest.raises(Exception, match="not a USB port path"):
        bus.plug(VirtualBoard("esp32s2"), path="1.1")
    with pytest.raises(KeyError):
        bus.board("1-9.9")
    with pytest.raises(RuntimeError):
        VirtualBoard("esp32s2").replug()
