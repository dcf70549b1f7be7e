"""The bitstream store: there and readable, what it holds, and what the hook would refuse.

The hook programs only from a store only root can change
(:mod:`fpga_crihook.store`): each region directory and bitstream file it
would refuse (owner, mode, a symbolic link) is an error, said once per
directory rather than again for each of its files. A card's region with
nothing in the store is a warning: a container asking for it cannot start.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from fpga_crihook.commands.check.findings import Finding, Level
from fpga_crihook.commands.devices import CardInfo
from fpga_crihook.errors import BitstreamError
from fpga_crihook.store import open_directory, open_entry


def store_findings(store: Path, cards: list[CardInfo]) -> Iterator[Finding]:
    """Findings for *store*, and for each region of *cards* it holds nothing for."""
    if not store.is_dir() or not os.access(store, os.R_OK | os.X_OK):
        yield Finding(Level.ERROR, f"bitstream store {store} is missing or not readable")
        return
    bitstreams = [path for path in store.glob("*/*") if path.suffix in (".gbs", ".aocx")]
    yield Finding(Level.OK, f"bitstream store {store}: {len(bitstreams)} bitstream(s)")
    yield from _refused_store_entries(store)
    for card in cards:
        region = card.fme.interface.value if card.fme is not None else None
        if region is not None and not (store / region).is_dir():
            yield Finding(
                Level.WARNING,
                f"bitstream store {store} has nothing for region {region} "
                f"({card.driver.label} card {card.name})",
            )


def _refused_store_entries(store: Path) -> Iterator[Finding]:
    """An error for each store directory and bitstream file the hook would refuse to program
    from (owner, mode, a symbolic link): once per directory, not again for its files."""
    try:
        os.close(open_directory(store, []))
    except BitstreamError as error:
        yield Finding(Level.ERROR, f"bitstream store: {error}")
        return
    for region in sorted(os.scandir(store), key=lambda entry: entry.name):
        try:
            os.close(open_directory(store, [region.name]))
        except BitstreamError as error:
            if region.is_dir():  # a link to a directory counts; a stray file does not
                yield Finding(Level.ERROR, f"bitstream store: {error}")
            continue
        for name in sorted(os.listdir(region.path)):
            if name.endswith((".gbs", ".aocx")):
                yield from _refused_store_file(store, Path(region.path) / name)


def _refused_store_file(store: Path, path: Path) -> Iterator[Finding]:
    try:
        os.close(open_entry(store, path))
    except BitstreamError as error:
        yield Finding(Level.ERROR, f"bitstream store: {error}")
