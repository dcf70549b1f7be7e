"""The node: its FPGA drivers and cards, each card's FME device node and the IDs it reads.

The cards are found by the same scan as the ``devices`` command
(:func:`fpga_crihook.commands.devices.scan`): a node with no card under
either driver's class directory is an error, as is a card whose FME device
node is missing (nothing can be programmed on it) or whose IDs read as
crashed firmware or not at all; a port busy for the whole busy timeout is a
warning. With the fpgaconf programmer, which always programs port 0 of an
FME, the other ports are a warning: the hook refuses them.
"""

import os
from collections.abc import Iterator

from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.commands.devices import CardInfo, Health
from fpga_crihook.devices import Driver
from fpga_crihook.settings import ProgrammerKind, Settings, declared


def node_findings(cards: list[CardInfo], settings: Settings) -> Iterator[Finding]:
    """Findings for the drivers, then for each card of *cards* (the node's scan)."""
    yield from _driver_findings(cards, settings)
    for card in cards:
        yield from _card_findings(card)
        yield from _fpgaconf_port_findings(card, settings)


def _driver_findings(cards: list[CardInfo], settings: Settings) -> Iterator[Finding]:
    if not cards:
        yield Finding(
            Level.ERROR,
            f"no FPGA cards under {settings.sysfs}: neither the dfl driver "
            "(class/fpga_region) nor the OPAE driver (class/fpga) shows one",
        )
        return
    for driver in Driver:
        count = sum(1 for card in cards if card.driver is driver)
        if count:
            where = settings.sysfs / driver.value.class_dir
            yield Finding(Level.OK, f"{driver.label} driver: {count} card(s) under {where}")


def _card_label(card: CardInfo) -> str:
    return f"{card.driver.label} card {card.name} ({card.pci_address or 'no PCI address'})"


def _card_findings(card: CardInfo) -> Iterator[Finding]:
    name = _card_label(card)
    if card.fme is None:
        yield Finding(Level.ERROR, f"{name}: {card.problem}")
        return
    if os.path.exists(card.fme.device_node):
        yield Finding(Level.OK, f"{name}: FME device node {card.fme.device_node} present")
    else:
        yield Finding(
            Level.ERROR,
            f"{name}: FME device node {card.fme.device_node} is missing: "
            "nothing can be programmed on this card",
        )
    readings = [card.fme.interface, *(port.afu for port in card.ports)]
    for reading in readings:
        if reading.health is Health.HEALTHY:
            continue
        level = Level.WARNING if reading.health is Health.BUSY else Level.ERROR
        detail = reading.problem or "it reports all-ones IDs: the firmware has crashed"
        yield Finding(level, f"{name}: {reading.health}: {detail}")


def _fpgaconf_port_findings(card: CardInfo, settings: Settings) -> Iterator[Finding]:
    """fpgaconf programs port 0 of an FME only: the hook refuses the others under it."""
    if settings.programmer is not ProgrammerKind.FPGACONF:
        return
    others = [port.name for port in card.ports if port.port_id != 0]
    if others:
        yield Finding(
            Level.WARNING,
            f"{_card_label(card)}: the fpgaconf programmer always programs port 0 of the "
            f"FME, so the hook refuses {', '.join(others)} "
            f"({declared('programmer').env_var}=ioctl programs every port)",
        )
