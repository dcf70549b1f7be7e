"""Every FPGA card under the sysfs root, as the ``devices`` command shows it.

Cards are the class directories of both drivers (docs/design.md#sysfs) that
hold an FME or a port; a reading that fails is reported with its health
instead of stopping the scan, so one broken card does not hide the others.
The resource names are the ones the device plugin announces
(docs/design.md#resources).
"""

import base64
import dataclasses
import enum
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import click

from fpga_crihook.commands import output, tables
from fpga_crihook.devices import Driver, Fme, pci_address_of, port_from_sysfs_dir
from fpga_crihook.errors import DeviceBusyError, DeviceError
from fpga_crihook.ids import is_unhealthy
from fpga_crihook.inforce import SettingsInForce
from fpga_crihook.settings import Settings

_NUMBERED = re.compile(r"(.*?)(\d+)")
RESOURCE_NAMESPACE = "fpga.intel.com"
MAX_RESOURCE_NAME = 63  # Kubernetes' limit for the name after the namespace


class Health(enum.StrEnum):
    """What reading a device's ID said about it."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # all-ones ID: the card's firmware crashed
    BUSY = "busy"  # EBUSY for the whole busy timeout
    UNREADABLE = "unreadable"


class IdReading(NamedTuple):
    """An interface or AFU ID, or why it could not be read."""

    value: str | None
    health: Health
    problem: str | None = None


@dataclasses.dataclass(frozen=True)
class FmeInfo:
    """A card's FME and its region's interface ID."""

    name: str
    device_node: Path
    interface: IdReading


@dataclasses.dataclass(frozen=True)
class PortInfo:
    """A port, the AFU it holds, and the af-mode resource it is announced under."""

    name: str
    port_id: int | None
    device_node: Path
    afu: IdReading
    health: Health  # the port's own, or its FME's when that is worse
    af_resource: str | None


@dataclasses.dataclass(frozen=True)
class CardInfo:
    """One card: a class directory of one driver."""

    driver: Driver
    name: str
    pci_address: str | None
    fme: FmeInfo | None
    ports: tuple[PortInfo, ...]
    region_resource: str | None
    problem: str | None = None


def scan(settings: Settings) -> list[CardInfo]:
    """All cards of both drivers under ``settings.sysfs``, in a stable order."""
    cards = []
    for driver in Driver:
        class_root = settings.sysfs / driver.value.class_dir
        if not class_root.is_dir():
            continue
        for card_dir in sorted(class_root.iterdir(), key=_natural_order):
            card = _scan_card(driver, card_dir, settings)
            if card is not None:
                cards.append(card)
    return cards


# Per port, how often the hook programmed it, skipped it and failed on it (metrics state).
Counts = dict[str, dict[str, int]]
COUNTED = ("programmed", "skipped", "failed")


# The --json output, a shape scripts may rely on: ``health`` is one of Health's values; an
# ID, ``id`` and ``pci_address`` are null when they could not be read, and ``problem`` says why.


@dataclasses.dataclass(frozen=True)
class FmeJson:
    name: str
    device_node: str
    interface_id: str | None
    health: str
    problem: str | None


@dataclasses.dataclass(frozen=True)
class PortJson:
    name: str
    id: int | None
    device_node: str
    afu_id: str | None
    health: str
    problem: str | None
    resources: list[str]  # the device plugin's resource names, none unless healthy


@dataclasses.dataclass(frozen=True)
class RunCounts:
    programmed: int
    skipped: int
    failed: int


@dataclasses.dataclass(frozen=True)
class CountedPortJson(PortJson):
    counts: RunCounts  # the hook's runs on the port, when a metrics directory is set


@dataclasses.dataclass(frozen=True)
class CardJson:
    driver: str  # dfl or opae
    name: str  # its class directory
    pci_address: str | None
    fme: FmeJson | None
    ports: tuple[PortJson, ...]
    problem: str | None


@dataclasses.dataclass(frozen=True)
class DevicesJson:
    cards: tuple[CardJson, ...]


def to_json(cards: list[CardInfo], counts: Counts | None = None) -> DevicesJson:
    """The scan as the ``--json`` output; with *counts* (a metrics directory is set), each
    port also has ``counts``, the hook's runs on it."""
    return DevicesJson(tuple(_card_json(card, counts) for card in cards))


def table(cards: list[CardInfo], sysfs: Path, counts: Counts | None = None) -> str:
    """The scan for people: one row per port (with *counts*, the hook's runs on it),
    then the resources and any problems."""
    if not cards:
        return f"no FPGA cards under {sysfs} (looked in class/fpga_region and class/fpga)"
    rows = [row for card in cards for row in _card_rows(card, counts)]
    headers = [*_HEADERS, *(outcome.upper() for outcome in COUNTED if counts is not None)]
    parts = [tables.aligned(headers, rows)]
    resources = _resources(cards)
    if resources:
        parts.append(
            tables.aligned(
                ("RESOURCE", "PORTS"), [(name, ", ".join(ports)) for name, ports in resources]
            )
        )
    problems = [f"problem: {output.printable(problem)}" for problem in _problems(cards)]
    if problems:
        parts.append("\n".join(problems))
    return "\n\n".join(parts)


_HEADERS = ("DRIVER", "PCI ADDRESS", "FME", "INTERFACE ID", "PORT", "ID", "AFU ID", "HEALTH")


def _counted(port_name: str | None, counts: Counts | None) -> tuple[str, ...]:
    if counts is None:
        return ()
    if port_name is None:
        return ("-",) * len(COUNTED)
    port = counts.get(port_name, {})
    return tuple(str(port.get(outcome, 0)) for outcome in COUNTED)


def _card_rows(card: CardInfo, counts: Counts | None) -> list[tuple[str, ...]]:
    fme_node = "-" if card.fme is None else str(card.fme.device_node)
    interface = "-" if card.fme is None else _shown(card.fme.interface)
    front = (card.driver.label, card.pci_address or "-", fme_node, interface)
    if not card.ports:
        health = Health.UNREADABLE if card.fme is None else card.fme.interface.health
        return [(*front, "-", "-", "-", str(health), *_counted(None, counts))]
    return [
        (
            *front,
            str(port.device_node),
            "-" if port.port_id is None else str(port.port_id),
            _shown(port.afu),
            str(port.health),
            *_counted(port.name, counts),
        )
        for port in card.ports
    ]


def _shown(reading: IdReading) -> str:
    return reading.value or "-"


def _resources(cards: list[CardInfo]) -> list[tuple[str, list[str]]]:
    """Each announced resource with the ports behind it, in order of appearance."""
    ports_by_resource: dict[str, list[str]] = {}
    for card in cards:
        for port in card.ports:
            for resource in _port_resources(card, port):
                ports_by_resource.setdefault(resource, []).append(port.name)
    return list(ports_by_resource.items())


def _port_resources(card: CardInfo, port: PortInfo) -> list[str]:
    if port.health is not Health.HEALTHY:
        return []
    return [name for name in (card.region_resource, port.af_resource) if name is not None]


def _problems(cards: list[CardInfo]) -> list[str]:
    found = [card.problem for card in cards if card.problem]
    for card in cards:
        readings = [port.afu for port in card.ports]
        if card.fme is not None:
            readings.insert(0, card.fme.interface)
        found.extend(reading.problem for reading in readings if reading.problem)
    return found


def _card_json(card: CardInfo, counts: Counts | None) -> CardJson:
    fme = None
    if card.fme is not None:
        interface = card.fme.interface
        fme = FmeJson(
            card.fme.name,
            str(card.fme.device_node),
            interface.value,
            str(interface.health),
            interface.problem,
        )
    ports = tuple(_port_json(card, port, counts) for port in card.ports)
    return CardJson(card.driver.label, card.name, card.pci_address, fme, ports, card.problem)


def _port_json(card: CardInfo, port: PortInfo, counts: Counts | None) -> PortJson:
    node, health, resources = str(port.device_node), str(port.health), _port_resources(card, port)
    shown = (port.name, port.port_id, node, port.afu.value, health, port.afu.problem, resources)
    if counts is None:
        return PortJson(*shown)
    runs = counts.get(port.name, {})
    return CountedPortJson(*shown, RunCounts(*(runs.get(outcome, 0) for outcome in COUNTED)))


def region_resource(interface_id: str) -> str:
    """The device plugin's region-mode resource for a region."""
    return _checked(f"region-{interface_id}")


def af_resource(interface_id: str, afu_id: str) -> str:
    """The device plugin's af-mode resource: the IDs would not fit 63 characters plainly."""
    digest = base64.urlsafe_b64encode(bytes.fromhex(interface_id + afu_id)).rstrip(b"=")
    return _checked(f"af-{interface_id[:3]}.{afu_id[:3]}.{digest.decode('ascii')}")


def _checked(name: str) -> str:
    if len(name) > MAX_RESOURCE_NAME:
        raise ValueError(f"resource name {name} is longer than {MAX_RESOURCE_NAME} characters")
    return f"{RESOURCE_NAMESPACE}/{name}"


def _scan_card(driver: Driver, card_dir: Path, settings: Settings) -> CardInfo | None:
    layout = driver.value
    try:
        port_dirs = sorted(
            (path for path in card_dir.iterdir() if layout.is_port_name(path.name)),
            key=_natural_order,
        )
    except OSError as error:  # e.g. a card unplugged while it is being listed
        unlisted = f"cannot list {card_dir}: {error.strerror}"
        return CardInfo(driver, card_dir.name, None, None, (), None, unlisted)
    fme_dirs = sorted(card_dir.glob(layout.fme_prefix + "*"), key=_natural_order)
    if not fme_dirs and not port_dirs:
        return None  # e.g. the DFL FME's own PR region, which is in class/fpga_region too
    fme = None
    problem = None
    if len(fme_dirs) == 1:
        name = fme_dirs[0].name
        fme = _scan_fme(Fme(driver, name, fme_dirs[0], settings.devfs / name), settings)
    else:
        problem = f"expected one {layout.fme_prefix}N in {card_dir}, found {len(fme_dirs)}"
    region = _healthy_value(fme.interface) if fme is not None else None
    return CardInfo(
        driver=driver,
        name=card_dir.name,
        pci_address=pci_address_of(card_dir),
        fme=fme,
        ports=tuple(_scan_port(port_dir, fme, region, settings) for port_dir in port_dirs),
        region_resource=None if region is None else region_resource(region),
        problem=problem,
    )


def _scan_fme(fme: Fme, settings: Settings) -> FmeInfo:
    interface = _read(lambda: fme.read_interface_id(settings.busy_limit))
    return FmeInfo(fme.name, fme.device_node, interface)


def _scan_port(
    port_dir: Path, fme: FmeInfo | None, region: str | None, settings: Settings
) -> PortInfo:
    device_node = settings.devfs / port_dir.name
    try:
        port = port_from_sysfs_dir(port_dir, settings)
    except DeviceError as error:
        missing = IdReading(None, Health.UNREADABLE, str(error))
        return PortInfo(port_dir.name, None, device_node, missing, Health.UNREADABLE, None)
    afu = _read(lambda: port.read_afu_id(settings.busy_limit))
    try:
        port_id: int | None = port.read_port_id(settings.busy_limit)
    except DeviceError:
        port_id = None
    health = afu.health
    if health is Health.HEALTHY and fme is not None:
        health = fme.interface.health  # a port is no healthier than its FME
    afu_id = _healthy_value(afu)
    return PortInfo(
        name=port.name,
        port_id=port_id,
        device_node=port.device_node,
        afu=afu,
        health=health,
        af_resource=None if region is None or afu_id is None else af_resource(region, afu_id),
    )


def _read(read_id: Callable[[], str]) -> IdReading:
    try:
        value = read_id()
    except DeviceBusyError as error:
        return IdReading(None, Health.BUSY, str(error))
    except DeviceError as error:
        return IdReading(None, Health.UNREADABLE, str(error))
    if is_unhealthy(value):
        return IdReading(value, Health.UNHEALTHY)
    return IdReading(value, Health.HEALTHY)


def _healthy_value(reading: IdReading) -> str | None:
    return reading.value if reading.health is Health.HEALTHY else None


def _natural_order(path: Path) -> tuple[str, int]:
    """``dfl-port.10`` after ``dfl-port.2``."""
    match = _NUMBERED.fullmatch(path.name)
    return (path.name, -1) if match is None else (match[1], int(match[2]))


@click.command("devices")
@output.JSON_OPTION
@click.pass_obj
def devices(given: SettingsInForce, as_json: bool) -> None:
    """List the FPGA cards, FMEs and ports under the sysfs root.

    For each port: driver, PCI address, FME device node and region interface
    ID, port device node, port number, AFU ID and health (healthy, unhealthy,
    busy or unreadable), and with --metrics-dir how often the hook programmed,
    skipped and failed on it; then the resource names the Intel FPGA device
    plugin announces (region and af mode).

    \b
    Example:
        fpga-crihook devices
        fpga-crihook --sysfs testdata/node/sys devices --json
    """
    settings = given.settings
    cards = scan(settings)
    counts = None
    if settings.metrics_dir is not None:
        from fpga_crihook import metrics  # noqa: PLC0415 (only with a metrics directory)

        try:
            counts = metrics.port_counts(settings.metrics_dir)
        except metrics.UntrustedDirectory as problem:
            click.echo(f"warning: {output.printable(str(problem))}; counts not shown", err=True)
    if as_json:
        output.echo_json(to_json(cards, counts))
    else:
        output.echo(table(cards, settings.sysfs, counts))
