"""The bitstream store's layout (DESIGN.md section 4): where a request's file lies.

``<store>/<interface-id>/<afu-id>.gbs``, else ``.aocx``. Looking a file up
opens nothing: a port that already holds its AFU (every restart of an FPGA
pod) needs no more than this, so this module stays apart from the file
formats in :mod:`fpga_crihook.bitstream` and costs a container start nothing.
"""

import enum
import os
from pathlib import Path
from typing import NamedTuple


class BitstreamKind(enum.StrEnum):
    """The two file formats, named by their file extension."""

    GBS = "gbs"
    AOCX = "aocx"


class StoreEntry(NamedTuple):
    """A bitstream file found in the store for a request."""

    path: Path
    kind: BitstreamKind


def locate(store: Path, interface_id: str, afu_id: str) -> StoreEntry | None:
    """The store's file for a request: ``<region>/<afu>.gbs``, else ``<region>/<afu>.aocx``.

    Both IDs must already be canonical (32 hex digits), so the path cannot
    leave the store by its name; symlinks are checked when the file is opened.
    """
    for kind in BitstreamKind:
        candidate = store / interface_id / f"{afu_id}.{kind}"
        if os.path.lexists(candidate):
            return StoreEntry(candidate, kind)
    return None


def missing_message(store: Path, interface_id: str, afu_id: str) -> str:
    """The error for a request whose bitstream is not in the store."""
    stem = f"{interface_id}/{afu_id}"
    return (
        f"no bitstream for region {interface_id}, AFU {afu_id} in {store}: "
        f"expected {stem}.gbs or {stem}.aocx"
    )
