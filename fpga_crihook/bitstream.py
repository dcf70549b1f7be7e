"""Bitstream files: the store's layout, opening a GBS or AOCX file, and what both yield.

DESIGN.md section 4 has the formats; :mod:`fpga_crihook.gbs` parses a GBS
image and :mod:`fpga_crihook.aocx` digs the GBS image out of an AOCX file;
this module is the only one that knows both. A GBS file is mapped, not read: the raw
bitstream handed to the kernel is a view into a private (copy-on-write)
mapping of the file, so tens of MiB are never copied in user space, and a
dry run or a metadata check never touches the raw bytes at all.
"""

import contextlib
import dataclasses
import enum
import mmap
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from fpga_crihook import gbs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, GBS_MAGIC, MAX_METADATA_BYTES, GbsMetadata
from fpga_crihook.sysfs import is_within

ELF_MAGIC = b"\x7fELF"
# buffer_size of the PR ioctl is a u32 (DESIGN.md section 5): no larger raw bitstream can be
# programmed, and mapping a larger file could fail for lack of memory.
MAX_GBS_FILE_BYTES = GBS_HEADER.size + MAX_METADATA_BYTES + 0xFFFFFFFF


class BitstreamKind(enum.StrEnum):
    """The two file formats, named by their file extension."""

    GBS = "gbs"
    AOCX = "aocx"


class StoreEntry(NamedTuple):
    """A bitstream file found in the store for a request."""

    path: Path
    kind: BitstreamKind


@dataclasses.dataclass(frozen=True, eq=False)
class Bitstream:
    """A parsed bitstream whose raw part is ready to be handed to the kernel.

    ``raw`` is a writable view (ctypes needs one to take its address); nobody
    writes to it. It is valid only inside the ``with`` block that opened it.
    """

    source: Path
    kind: BitstreamKind
    metadata: GbsMetadata
    metadata_size: int
    raw: memoryview
    gbs_path: Path | None = None  # a GBS file holding exactly these bytes, if one exists
    details: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def interface_id(self) -> str:
        """The region interface ID the bitstream was built for (required to program)."""
        if self.metadata.interface_id is None:
            raise BitstreamError(
                f"{self.source}: the metadata has no afu-image.interface-uuid, "
                "so the region it fits cannot be checked"
            )
        return self.metadata.interface_id

    @property
    def afu_id(self) -> str:
        """The accelerator-type-uuid a port reports once programmed (exactly one cluster)."""
        if len(self.metadata.afu_ids) != 1:
            raise BitstreamError(
                f"{self.source}: the metadata has "
                f"{len(self.metadata.afu_ids)} accelerator clusters; "
                "exactly one is needed to program a port"
            )
        return self.metadata.afu_ids[0]


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


def detect_kind(path: Path) -> BitstreamKind:
    """Tell a GBS from an AOCX file by its first bytes."""
    fd = open_regular_file(path, None)
    try:
        head = os.read(fd, len(GBS_MAGIC))
    finally:
        os.close(fd)
    if head.startswith(ELF_MAGIC):
        return BitstreamKind.AOCX
    if head == GBS_MAGIC:
        return BitstreamKind.GBS
    raise BitstreamError(f"{path} is neither a GBS file nor an AOCX (ELF) file")


@contextlib.contextmanager
def open_bitstream(path: Path, kind: BitstreamKind, store: Path | None) -> Iterator[Bitstream]:
    """Open and validate a bitstream; with *store*, the file must resolve inside it."""
    opener = _open_aocx_file if kind is BitstreamKind.AOCX else _open_gbs_file
    with opener(path, store) as bitstream:
        yield bitstream


@contextlib.contextmanager
def _open_gbs_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    with _map_file(path, store) as mapping, memoryview(mapping) as view:
        bitstream = parse_gbs(view, path)
        try:
            yield dataclasses.replace(bitstream, gbs_path=path)
        finally:
            bitstream.raw.release()


@contextlib.contextmanager
def _open_aocx_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    """The GBS embedded in an AOCX, inflated into one buffer and validated like any GBS."""
    from fpga_crihook import aocx  # noqa: PLC0415 (pyelftools only when needed)

    fd = open_regular_file(path, store)
    try:
        size = os.fstat(fd).st_size
        if size < len(ELF_MAGIC):
            raise BitstreamError(f"{path} is not an AOCX file: {size} bytes is too short for ELF")
        mapping = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    with mapping:
        embedded = aocx.extract(mapping, path)
    with memoryview(embedded.gbs_image) as image_view:
        bitstream = parse_gbs(image_view, Path(f"{path} (embedded GBS)"))
        try:
            yield dataclasses.replace(
                bitstream, source=path, kind=BitstreamKind.AOCX, details=embedded.details
            )
        finally:
            bitstream.raw.release()


def _map_file(path: Path, store: Path | None) -> mmap.mmap:
    """A private (copy-on-write) mapping of a GBS file of a size the kernel can take."""
    fd = open_regular_file(path, store)
    try:
        size = os.fstat(fd).st_size
        if size < GBS_HEADER.size:
            raise BitstreamError(
                f"{path} is truncated: {size} bytes is shorter than the "
                f"{GBS_HEADER.size}-byte GBS header"
            )
        if size > MAX_GBS_FILE_BYTES:
            raise BitstreamError(
                f"{path} is {size} bytes: larger than any GBS the PR ioctl can "
                f"take ({MAX_GBS_FILE_BYTES} bytes at most)"
            )
        return mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    except OSError as error:
        raise BitstreamError(f"cannot map {path} into memory: {error.strerror}") from None
    finally:
        os.close(fd)


def parse_gbs(view: memoryview, source: Path) -> Bitstream:
    """Parse a GBS image held in *view*; the result's ``raw`` is a slice of it."""
    image = gbs.parse(view, source)
    return Bitstream(source, BitstreamKind.GBS, image.metadata, image.metadata_size, image.raw)


def open_regular_file(path: Path, store: Path | None) -> int:
    """Open *path* read-only, refusing anything but a regular file (and, with *store*,
    anything that resolves outside the store)."""
    real_path = os.path.realpath(path)  # resolved once: what is checked is what is opened
    if store is not None and not is_within(Path(real_path), store):
        raise BitstreamError(f"{path} resolves outside the bitstream store {store}: refusing it")
    try:
        fd = os.open(real_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise BitstreamError(f"cannot open {path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BitstreamError(f"{path} is not a regular file")
    return fd
