"""OpenCL AOCX bitstreams (not built yet: see the open issue on AOCX support)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fpga_crihook.bitstream import Bitstream
from fpga_crihook.errors import BitstreamError


@contextlib.contextmanager
def open_aocx(path: Path, store: Path | None) -> Iterator[Bitstream]:
    """Refuse AOCX files until their support exists."""
    raise BitstreamError(f"{path}: AOCX bitstreams are not supported by this version")
    yield  # pragma: no cover
