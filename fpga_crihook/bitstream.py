"""Bitstream files: the store's layout, GBS parsing and metadata validation.

DESIGN.md section 4 has the formats. A GBS file is mapped, not read: the raw
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
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook import jsondocs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.ids import InvalidIdError, canonical_id
from fpga_crihook.sysfs import is_within

GBS_MAGIC = b"XeonFPGA\xb7GBSv001"
ELF_MAGIC = b"\x7fELF"
GBS_HEADER = struct.Struct("<16sI")  # magic, u32 metadata length (little endian)
MAX_METADATA_BYTES = 1 << 20
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


@dataclasses.dataclass(frozen=True)
class GbsMetadata:
    """The validated metadata block of a GBS file."""

    document: Mapping[str, Any]
    interface_id: str | None
    afu_ids: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def platform_name(self) -> str | None:
        """The ``platform-name`` field, when the packager wrote one."""
        name = self.document.get("platform-name")
        return name if isinstance(name, str) else None


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
    if kind is BitstreamKind.AOCX:
        from fpga_crihook import aocx  # noqa: PLC0415 (pyelftools only when needed)

        with aocx.open_aocx(path, store) as bitstream:
            yield bitstream
        return
    with _open_gbs_file(path, store) as bitstream:
        yield bitstream


@contextlib.contextmanager
def _open_gbs_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    with _map_file(path, store) as mapping, memoryview(mapping) as view:
        bitstream = parse_gbs(view, path)
        try:
            yield dataclasses.replace(bitstream, gbs_path=path)
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
    if len(view) < GBS_HEADER.size:
        raise BitstreamError(
            f"{source} is truncated: {len(view)} bytes is shorter than the "
            f"{GBS_HEADER.size}-byte GBS header"
        )
    magic, length = GBS_HEADER.unpack_from(view)
    if magic != GBS_MAGIC:
        raise BitstreamError(f"{source} is not a GBS file: wrong magic bytes")
    end = GBS_HEADER.size + length
    if length == 0:
        raise BitstreamError(f"{source}: the GBS metadata length is zero")
    if length > MAX_METADATA_BYTES:
        raise BitstreamError(
            f"{source}: the GBS metadata length {length} is larger than "
            f"the {MAX_METADATA_BYTES}-byte limit"
        )
    if end > len(view):
        raise BitstreamError(
            f"{source}: the GBS metadata length {length} runs past the end "
            f"of the file ({len(view)} bytes)"
        )
    if end == len(view):
        raise BitstreamError(f"{source}: there is no raw bitstream after the GBS metadata")
    with view[GBS_HEADER.size : end] as metadata_bytes:
        metadata = parse_metadata(bytes(metadata_bytes), source)
    return Bitstream(source, BitstreamKind.GBS, metadata, length, view[end:])


def parse_metadata(raw: bytes, source: Path) -> GbsMetadata:
    """Decode, validate (JSON Schema shipped in the package) and extract the IDs."""
    try:
        document = jsondocs.decode(raw)
    except jsondocs.JsonProblem as problem:
        raise BitstreamError(f"{source}: the GBS metadata {problem}") from None
    _validate_against_schema(document, source)
    image = document["afu-image"]
    clusters = image["accelerator-clusters"]
    interface = image.get("interface-uuid")
    return GbsMetadata(
        document=document,
        interface_id=None if interface is None else _metadata_id(interface, source),
        afu_ids=tuple(_metadata_id(c["accelerator-type-uuid"], source) for c in clusters),
        names=tuple(cluster["name"] for cluster in clusters),
    )


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


def _metadata_id(value: str, source: Path) -> str:
    try:
        return canonical_id(value)
    except InvalidIdError as error:
        raise BitstreamError(f"{source}: the GBS metadata has an invalid ID: {error}") from None


def _validate_against_schema(document: Any, source: Path) -> None:
    from jsonschema.exceptions import best_match  # noqa: PLC0415 (only when a file is checked)

    error = best_match(jsondocs.schema_validator("gbs-metadata").iter_errors(document))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "top level"
        raise BitstreamError(
            f"{source}: the GBS metadata breaks the schema at {where}: {_shorten(error.message)}"
        )


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
