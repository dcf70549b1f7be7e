"""devices: finding a container's ports, their FME and card in sysfs, on both drivers."""

import os
from pathlib import Path

import pytest
from helpers import AFU_1, REGION_A, REGION_B, busy_limit
from simnode import SimNode, add_card

from fpga_crihook.commands.program import find_port
from fpga_crihook.devices import Driver, resolve_ports
from fpga_crihook.errors import DeviceError, HookError, InputError
from fpga_crihook.oci import Device, parse_device
from fpga_crihook.settings import Settings


def _settings(node: SimNode) -> Settings:
    return Settings(sysfs=node.sysfs, devfs=node.devfs, bitstreams=node.store)


@pytest.mark.parametrize(
    ("driver", "port_name", "fme_name"),
    [("dfl", "dfl-port.0", "dfl-fme.0"), ("opae", "intel-fpga-port.0", "intel-fpga-fme.0")],
)
def test_port_is_found_by_device_numbers_with_its_fme(
    node: SimNode, driver: str, port_name: str, fme_name: str
) -> None:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    device = parse_device(card.ports[0].device("/dev/whatever-in-container"))

    [port] = resolve_ports([device], _settings(node))

    assert port.name == port_name
    assert port.driver is Driver[driver.upper()]
    assert port.fme.name == fme_name
    assert port.device_node == node.devfs / port_name
    assert port.fme.device_node == node.devfs / fme_name
    assert port.pci_address == "0000:5e:00.0"
    assert port.read_afu_id(busy_limit()) == AFU_1
    assert port.fme.read_interface_id(busy_limit()) == REGION_A
    assert port.read_port_id(busy_limit()) == 0


@pytest.mark.parametrize(
    ("entry", "words", "kind"),
    [
        ({"type": "b"}, "is a linux.devices entry of type 'b', not a character", InputError),
        ({"type": "p"}, "is a linux.devices entry of type 'p', not a character", InputError),
        ({"type": "u"}, "is a linux.devices entry of type 'u', not a character", InputError),
        ({"type": None}, "is a linux.devices entry of type 'none', not a character", InputError),
        ({"major": None}, "has no major and minor numbers", InputError),
        ({"minor": None}, "has no major and minor numbers", InputError),
        ({"minor": 7}, "is device 511:7, which is no FPGA port", DeviceError),
        ({"major": 1, "minor": 3}, "is device 1:3, which is no FPGA port", DeviceError),
    ],
)
def test_an_entry_named_like_a_port_is_one_only_by_type_c_and_its_numbers(
    node: SimNode, entry: dict[str, object], words: str, kind: type[HookError]
) -> None:
    """A runtime's entry that is not the port's character device never gets it programmed:
    a malformed entry is the container's input, numbers that lead to no port the host's."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    fields = card.ports[0].device() | entry
    device = parse_device({key: value for key, value in fields.items() if value is not None})

    with pytest.raises(kind) as caught:
        resolve_ports([device], _settings(node))

    assert f"the container's /dev/dfl-port.0 {words}" in str(caught.value)


def test_a_port_whose_dev_disagrees_with_its_dev_char_link_is_refused(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    (card.ports[0].sysfs_dir / "dev").write_text("511:9\n")
    with pytest.raises(DeviceError, match="whose dev is 511:9: refusing to guess"):
        resolve_ports([parse_device(card.ports[0].device())], _settings(node))


def test_other_devices_are_ignored(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    devices = [
        Device(path="/dev/null", type="c", major=1, minor=3),
        Device(path="/dev/fuse"),
        parse_device(card.ports[0].device()),
        parse_device(card.ports[0].device("/dev/again")),
    ]
    assert [port.name for port in resolve_ports(devices, _settings(node))] == ["dfl-port.0"]


def test_fme_device_numbers_are_not_a_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    device = Device(path="/dev/dfl-fme.0", type="c", major=510, minor=0)
    assert resolve_ports([device], _settings(node)) == []


def test_a_port_name_with_numbers_of_no_device_is_an_error(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    with pytest.raises(DeviceError, match="/dev/dfl-port.9 is device 511:9, which is no FPGA"):
        resolve_ports(
            [Device(path="/dev/dfl-port.9", type="c", major=511, minor=9)], _settings(node)
        )


def test_two_ports_share_one_fme(node: SimNode) -> None:
    card = add_card(node, "dfl", index=1, interface_id=REGION_B, afu_ids=[AFU_1, AFU_1])
    devices = [parse_device(port.device()) for port in card.ports]
    ports = resolve_ports(devices, _settings(node))
    assert [port.name for port in ports] == ["dfl-port.0", "dfl-port.1"]
    assert ports[0].fme == ports[1].fme


def test_dev_char_link_out_of_sysfs_is_refused(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    outside = tmp_path / "elsewhere" / "dfl-port.0"
    outside.mkdir(parents=True)
    link = node.sysfs / "dev" / "char" / "511:0"
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(DeviceError, match="points outside"):
        resolve_ports(
            [Device(path="/dev/dfl-port.0", type="c", major=511, minor=0)], _settings(node)
        )


def test_a_port_named_by_an_operator_outside_sysfs_is_refused(
    node: SimNode, tmp_path: Path
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    class_link = node.sysfs / "class" / "fpga_region" / "region0"
    outside = tmp_path / "elsewhere" / "region0"
    outside.parent.mkdir()
    Path(os.path.realpath(class_link)).rename(outside)
    class_link.unlink()
    class_link.symlink_to(outside)
    with pytest.raises(DeviceError, match="resolves outside"):
        find_port("dfl-port.0", _settings(node))


def test_fme_without_interface_id_is_an_error(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    card.interface_file.unlink()
    [port] = resolve_ports([parse_device(card.ports[0].device())], _settings(node))
    with pytest.raises(DeviceError, match="expected one region interface ID"):
        port.fme.read_interface_id(busy_limit())


def test_port_without_a_single_fme_beside_it_is_an_error(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    (card.fme_dir.parent / "intel-fpga-fme.9").mkdir()
    with pytest.raises(DeviceError, match="expected one intel-fpga-fme.N"):
        resolve_ports([parse_device(card.ports[0].device())], _settings(node))


def test_garbage_in_afu_id_is_a_device_error(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=["not-an-id"])
    [port] = resolve_ports([parse_device(card.ports[0].device())], _settings(node))
    with pytest.raises(DeviceError, match="afu_id: 'not-an-id' is not a 32-hex-digit ID"):
        port.read_afu_id(busy_limit())
