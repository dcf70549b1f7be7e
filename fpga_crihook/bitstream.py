"""Bitstream files: opening a GBS or AOCX file, and what both yield.

DESIGN.md section 4 has the formats; :mod:`fpga_crihook.gbs` parses a GBS
image and :mod:`fpga_crihook.aocx` digs the GBS image out of an AOCX file;
this module is the only one that knows both.

What is programmed is what was validated. A file is read once, into one
private buffer (an anonymous mapping for a GBS file, the inflated image for
an AOCX); header and metadata are validated from that buffer, and that same
buffer is what the kernel or fpgaconf is handed. Writes to the store file
afterwards cannot reach it, a truncation cannot kill the hook (a mapping of
the file would do both), and a file that changes while it is being read is
refused. Only a look at the facts (a dry run, ``gbs-info``) skips a GBS
file's raw part: it reads the header and metadata alone.
"""

import contextlib
import dataclasses
import mmap
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fpga_crihook import gbs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, GBS_MAGIC, MAX_METADATA_BYTES, GbsMetadata
from fpga_crihook.store import BitstreamKind, open_entry

if TYPE_CHECKING:
    from fpga_crihook.aocx import EmbeddedGbs

ELF_MAGIC = b"\x7fELF"
# buffer_size of the PR ioctl is a u32 (DESIGN.md section 5): no larger raw bitstream can be
# programmed, and reading a larger file could fail for lack of memory.
MAX_GBS_FILE_BYTES = GBS_HEADER.size + MAX_METADATA_BYTES + 0xFFFFFFFF


@dataclasses.dataclass(frozen=True, eq=False)
class BitstreamFacts:
    """What a validated bitstream file says about itself: no bytes to program."""

    source: Path
    kind: BitstreamKind
    metadata: GbsMetadata
    metadata_size: int
    raw_size: int
    details: Mapping[str, str]  # an AOCX's text sections (board, target, ...)

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


@dataclasses.dataclass(frozen=True, eq=False)
class Bitstream(BitstreamFacts):
    """A validated bitstream and the private snapshot of its bytes, ready to program.

    ``image`` is the whole GBS image (header, metadata, raw part), ``raw`` the
    part handed to the kernel, a view into ``image``. Both are writable
    views (ctypes needs one to take its address); nobody writes to them. They
    are valid only inside the ``with`` block that opened the bitstream.
    """

    image: memoryview
    raw: memoryview


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


def inspect_bitstream(path: Path, kind: BitstreamKind, store: Path | None) -> BitstreamFacts:
    """Validate a bitstream file's header and metadata; with *store*, it must be a store
    file the store's rule allows.

    For a GBS file the raw part is not read; an AOCX is inflated (its
    metadata is inside the compressed GBS) and the image dropped.
    """
    if kind is BitstreamKind.AOCX:
        with _open_aocx_file(path, store) as bitstream:
            return _facts(bitstream)
    fd = open_regular_file(path, store)
    try:
        size = _gbs_file_size(fd, path)
        length = gbs.metadata_length(_pread(fd, GBS_HEADER.size, 0, path), size, path)
        block = _pread(fd, length, GBS_HEADER.size, path)
    finally:
        os.close(fd)
    if len(block) != length:
        raise _changed_size(path)
    metadata = gbs.parse_metadata(block, path)
    raw_size = size - GBS_HEADER.size - length
    return BitstreamFacts(path, BitstreamKind.GBS, metadata, length, raw_size, {})


@contextlib.contextmanager
def open_bitstream(path: Path, kind: BitstreamKind, store: Path | None) -> Iterator[Bitstream]:
    """Read a bitstream file into a private snapshot and validate it from there.

    With *store*, the file must be a store file the store's rule allows.
    """
    opener = _open_aocx_file if kind is BitstreamKind.AOCX else _open_gbs_file
    with opener(path, store) as bitstream:
        yield bitstream


@contextlib.contextmanager
def _open_gbs_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    with _read_gbs_file(path, store) as snapshot, memoryview(snapshot) as view:
        bitstream = parse_gbs(view, path)
        try:
            yield bitstream
        finally:
            bitstream.raw.release()


@contextlib.contextmanager
def _open_aocx_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    """The GBS embedded in an AOCX, inflated into one buffer and validated like any GBS."""
    embedded = _extract_aocx(path, store)
    with memoryview(embedded.gbs_image) as image_view:
        bitstream = parse_gbs(image_view, Path(f"{path} (embedded GBS)"))
        try:
            yield dataclasses.replace(
                bitstream, source=path, kind=BitstreamKind.AOCX, details=embedded.details
            )
        finally:
            bitstream.raw.release()


def _read_gbs_file(path: Path, store: Path | None) -> mmap.mmap:
    """The whole file, read once into an anonymous mapping of its size."""
    fd = open_regular_file(path, store)
    try:
        before = os.fstat(fd)
        _gbs_file_size(fd, path)
        try:
            snapshot = mmap.mmap(-1, before.st_size, flags=mmap.MAP_PRIVATE)
        except OSError as error:
            raise BitstreamError(
                f"cannot make room for {path} ({before.st_size} bytes): {error.strerror}"
            ) from None
        complete = False
        try:
            _read_all(fd, snapshot, path)
            _require_unchanged(fd, before, path)
            complete = True
        finally:
            if not complete:
                snapshot.close()
    finally:
        os.close(fd)
    return snapshot


def _extract_aocx(path: Path, store: Path | None) -> "EmbeddedGbs":
    from fpga_crihook import aocx  # noqa: PLC0415 (pyelftools only when needed)

    fd = open_regular_file(path, store)
    try:
        before = os.fstat(fd)
        if before.st_size < len(ELF_MAGIC):
            raise BitstreamError(
                f"{path} is not an AOCX file: {before.st_size} bytes is too short for ELF"
            )
        try:
            embedded = aocx.extract(fd, before.st_size, path)
        except BitstreamError:
            _require_unchanged(fd, before, path)  # a file being rewritten explains it best
            raise
        except OSError as error:
            raise BitstreamError(f"cannot read {path}: {error.strerror}") from None
        _require_unchanged(fd, before, path)
    finally:
        os.close(fd)
    return embedded


def _gbs_file_size(fd: int, path: Path) -> int:
    """The size of a GBS file, refused when no GBS can be that large or that small."""
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
    return size


def _read_all(fd: int, snapshot: mmap.mmap, path: Path) -> None:
    """Fill *snapshot* from *fd*; the file must end exactly where the snapshot does."""
    filled = 0
    with memoryview(snapshot) as view:
        while filled < len(view):
            with view[filled:] as rest:
                count = _read_into(fd, rest, path)
            if count == 0:
                raise _changed_size(path)  # it shrank
            filled += count
    if _read_into(fd, memoryview(bytearray(1)), path):
        raise _changed_size(path)  # it grew


def _read_into(fd: int, target: memoryview, path: Path) -> int:
    """One ``read`` into *target* (a seam for tests that change the file meanwhile)."""
    try:
        return os.readv(fd, [target])
    except OSError as error:
        raise BitstreamError(f"cannot read {path}: {error.strerror}") from None


def _pread(fd: int, size: int, offset: int, path: Path) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError as error:
        raise BitstreamError(f"cannot read {path}: {error.strerror}") from None


def _require_unchanged(fd: int, before: os.stat_result, path: Path) -> None:
    """Refuse a file that was written to (or replaced in place) while it was being read."""
    after = os.fstat(fd)
    if after.st_size != before.st_size:
        raise _changed_size(path)
    if (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns):
        raise BitstreamError(
            f"{path} was written to while it was being read: refusing a bitstream "
            "that is being changed (try again once it is complete)"
        )


def _changed_size(path: Path) -> BitstreamError:
    return BitstreamError(
        f"{path} changed size while it was being read: refusing a bitstream that is "
        "being written or truncated (try again once it is complete)"
    )


def _facts(bitstream: Bitstream) -> BitstreamFacts:
    return BitstreamFacts(
        bitstream.source,
        bitstream.kind,
        bitstream.metadata,
        bitstream.metadata_size,
        bitstream.raw_size,
        bitstream.details,
    )


def parse_gbs(view: memoryview, source: Path) -> Bitstream:
    """Parse a GBS image held in *view*; the result's ``raw`` is a slice of it."""
    image = gbs.parse(view, source)
    return Bitstream(
        source,
        BitstreamKind.GBS,
        image.metadata,
        image.metadata_size,
        len(image.raw),
        {},
        view,
        image.raw,
    )


def open_regular_file(path: Path, store: Path | None) -> int:
    """Open *path* read-only, refusing anything but a regular file; with *store*, only as
    the store's rule allows (:func:`fpga_crihook.store.open_entry`)."""
    if store is not None:
        return open_entry(store, path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise BitstreamError(f"cannot open {path}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BitstreamError(f"{path} is not a regular file")
    return fd
