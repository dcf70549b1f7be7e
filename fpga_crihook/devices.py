"""FPGA cards, FMEs and ports in sysfs, for the DFL and the OPAE driver.

docs/design.md#sysfs has the two layouts. A port given to a container is
found only by its numbers: a ``linux.devices`` entry of type ``c`` whose
``<sysfs>/dev/char/MAJOR:MINOR`` is an FPGA port whose ``dev`` says the same
numbers (the container's path for the node may differ from the host's). An
entry whose name looks like a port but is not one that way is an error: the
hook never programs a port by its name alone.
"""

import enum
import os
import re
from pathlib import Path
from typing import NamedTuple

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.errors import DeviceError, InputError
from fpga_crihook.oci import Device
from fpga_crihook.settings import Settings
from fpga_crihook.sysfs import is_within, read_attribute, read_id, read_int

_PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


class DriverLayout(NamedTuple):
    """Where one driver puts things in sysfs and /dev."""

    class_dir: str
    fme_prefix: str
    port_prefix: str
    interface_id_glob: str  # relative to the FME's sysfs directory

    def is_port_name(self, name: str) -> bool:
        """True for ``<port prefix><number>``."""
        number = name.removeprefix(self.port_prefix)
        return number != name and number.isascii() and number.isdecimal()


class Driver(enum.Enum):
    """The two kernel drivers for Intel FPGA cards."""

    DFL = DriverLayout(
        "class/fpga_region",
        "dfl-fme.",
        "dfl-port.",
        "dfl-fme-region.*/fpga_region/region*/compat_id",
    )
    OPAE = DriverLayout("class/fpga", "intel-fpga-fme.", "intel-fpga-port.", "pr/interface_id")

    @property
    def label(self) -> str:
        """The driver's short name, as shown to operators."""
        return self.name.lower()

    @classmethod
    def for_port_name(cls, name: str) -> "Driver | None":
        """The driver whose ports are called like *name*, if any."""
        return next((driver for driver in cls if driver.value.is_port_name(name)), None)


class Fme(NamedTuple):
    """An FPGA management engine: it owns partial reconfiguration of its card."""

    driver: Driver
    name: str
    sysfs_dir: Path
    device_node: Path

    def read_interface_id(self, busy: TimeLimit) -> str:
        """The interface ID of the card's reconfigurable region."""
        matches = sorted(self.sysfs_dir.glob(self.driver.value.interface_id_glob))
        if len(matches) != 1:
            found = "none" if not matches else f"{len(matches)}"
            raise DeviceError(
                f"FME {self.name} at {self.sysfs_dir}: expected one region "
                f"interface ID ({self.driver.value.interface_id_glob}), found {found}"
            )
        return read_id(matches[0], busy)


class Port(NamedTuple):
    """An FPGA port: the slot that holds one accelerator function (AFU)."""

    driver: Driver
    name: str
    sysfs_dir: Path
    device_node: Path
    fme: Fme

    def read_afu_id(self, busy: TimeLimit) -> str:
        """The ID of the AFU the port holds now."""
        return read_id(self.sysfs_dir / "afu_id", busy)

    def read_port_id(self, busy: TimeLimit) -> int:
        """The port's number inside its card, as the PR ioctl wants it."""
        return read_int(self.sysfs_dir / "id", busy)

    def read_dev(self, busy: TimeLimit) -> str:
        """``MAJOR:MINOR`` of the port's device node."""
        return read_attribute(self.sysfs_dir / "dev", busy)

    @property
    def pci_address(self) -> str | None:
        """The card's PCI address (``0000:5e:00.0``), from the nearest PCI ancestor."""
        return pci_address_of(self.sysfs_dir)


def pci_address_of(sysfs_dir: Path) -> str | None:
    """The name of the nearest ancestor directory that is a PCI device."""
    for ancestor in Path(os.path.realpath(sysfs_dir)).parents:
        if _PCI_ADDRESS.fullmatch(ancestor.name):
            return ancestor.name
    return None


def resolve_ports(devices: list[Device], settings: Settings) -> list[Port]:
    """The FPGA ports among a container's devices, each once, in the given order."""
    ports: dict[Path, Port] = {}
    for device in devices:
        port = _port_for_device(device, settings)
        if port is not None:
            ports.setdefault(port.sysfs_dir, port)
    return list(ports.values())


def port_from_sysfs_dir(port_dir: Path, settings: Settings) -> Port:
    """Build a :class:`Port` (and its FME) from the port's sysfs directory."""
    real_dir = Path(os.path.realpath(port_dir))
    if not is_within(real_dir, settings.sysfs):
        raise DeviceError(f"{port_dir} resolves outside {settings.sysfs}: refusing it")
    driver = Driver.for_port_name(real_dir.name)
    if driver is None:
        raise DeviceError(f"{port_dir} is not an FPGA port directory")
    return Port(
        driver,
        real_dir.name,
        real_dir,
        settings.devfs / real_dir.name,
        _fme_beside(real_dir, driver, settings),
    )


def find_port_by_name(name: str, settings: Settings) -> Path | None:
    """The sysfs directory of the port called *name* under either driver's class dirs."""
    driver = Driver.for_port_name(name)
    if driver is None:
        return None
    matches = sorted((settings.sysfs / driver.value.class_dir).glob(f"*/{name}"))
    return matches[0] if matches else None


def _port_for_device(device: Device, settings: Settings) -> Port | None:
    """The FPGA port *device* is, ``None`` for any other device; an error when in doubt:
    the container's entry itself (:class:`InputError`), or what the host has at its
    numbers (:class:`DeviceError`)."""
    named_like_a_port = Driver.for_port_name(os.path.basename(device.path)) is not None
    if device.type != "c":
        if named_like_a_port:
            raise InputError(
                f"the container's {device.path} is a linux.devices entry of type "
                f"{device.type or 'none'!r}, not a character device (c): it is no FPGA "
                "port, and the hook does not program a port found by its name alone"
            )
        return None
    if device.major is None or device.minor is None:
        if named_like_a_port:
            raise InputError(
                f"the container's {device.path} has no major and minor numbers in "
                "linux.devices: an FPGA port is known by its numbers, and the hook does "
                "not program a port found by its name alone"
            )
        return None
    by_number = _sysfs_dir_by_number(device.major, device.minor, settings)
    if by_number is None or Driver.for_port_name(by_number.name) is None:
        if named_like_a_port:
            raise DeviceError(
                f"the container's {device.path} is device {device.major}:{device.minor}, "
                f"which is no FPGA port under {settings.sysfs}: refusing to guess which "
                "port is meant"
            )
        return None  # some other character device: not ours to look at
    port = port_from_sysfs_dir(by_number, settings)
    _check_device_numbers(device.major, device.minor, port, settings)
    return port


def _sysfs_dir_by_number(major: int, minor: int, settings: Settings) -> Path | None:
    link = settings.sysfs / "dev" / "char" / f"{major}:{minor}"
    if not os.path.lexists(link):
        return None
    if not is_within(link, settings.sysfs):
        raise DeviceError(f"{link} points outside {settings.sysfs}")
    return Path(os.path.realpath(link))


def _check_device_numbers(major: int, minor: int, port: Port, settings: Settings) -> None:
    expected = f"{major}:{minor}"
    actual = port.read_dev(settings.busy_limit)
    if actual != expected:
        raise DeviceError(
            f"{settings.sysfs}/dev/char/{expected} leads to port {port.name}, whose dev "
            f"is {actual}: refusing to guess which port is meant"
        )


def _fme_beside(port_dir: Path, driver: Driver, settings: Settings) -> Fme:
    fme_dirs = sorted(port_dir.parent.glob(driver.value.fme_prefix + "*"))
    if len(fme_dirs) != 1:
        raise DeviceError(
            f"port {port_dir.name}: expected one {driver.value.fme_prefix}N "
            f"beside it in {port_dir.parent}, found {len(fme_dirs)}"
        )
    name = fme_dirs[0].name
    return Fme(driver, name, fme_dirs[0], settings.devfs / name)
