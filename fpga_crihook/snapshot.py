"""Reading a bitstream file once: what :mod:`fpga_crihook.bitstream` validates and programs.

A GBS file to program is read whole into a private snapshot (an anonymous
mapping of its size), hashed as it arrives; a look at the facts reads the
header and metadata alone and hashes the rest a chunk at a time; an AOCX's
embedded GBS is inflated by :mod:`fpga_crihook.aocx` and the file hashed in
a pass of its own. Each read is of one descriptor, from a file opened as
the store's rule allows (or named by hand), and a file whose size or times
change meanwhile is refused: it is being written.
"""

import hashlib
import mmap
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from fpga_crihook import files, gbs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, MAX_METADATA_BYTES
from fpga_crihook.store import open_entry

if TYPE_CHECKING:
    from fpga_crihook.aocx import EmbeddedGbs

ELF_MAGIC = b"\x7fELF"
# buffer_size of the PR ioctl is a u32 (docs/design.md#pr): no larger raw bitstream can be
# programmed, and reading a larger file could fail for lack of memory.
MAX_GBS_FILE_BYTES = GBS_HEADER.size + MAX_METADATA_BYTES + 0xFFFFFFFF
# Reads of this size are hashed as they arrive, while the bytes are still in the CPU's cache.
_CHUNK = 1 << 20


class Digests(NamedTuple):
    """Which image it is: the SHA-256 (hex) of the file, and of its raw bitstream, the bytes
    handed to the kernel (for an AOCX, the raw part of the GBS inside it)."""

    file_sha256: str
    raw_sha256: str


def open_regular_file(path: Path, store: Path | None) -> int:
    """Open *path* read-only, refusing anything but a regular file; with *store*, only as
    the store's rule allows (:func:`fpga_crihook.store.open_entry`)."""
    if store is not None:
        return open_entry(store, path)
    try:
        return files.open_regular(path, follow_links=True)
    except files.NotRegularFile:
        raise BitstreamError(f"{path} is not a regular file") from None
    except OSError as error:
        raise BitstreamError(f"cannot open {path}: {error.strerror}") from None


class Snapshot(NamedTuple):
    """A GBS file read once into an anonymous mapping, and its digests taken on the way."""

    image: mmap.mmap
    digests: Digests


def read_gbs_file(path: Path, store: Path | None) -> Snapshot:
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
            digests = _read_all(fd, snapshot, path)
            _require_unchanged(fd, before, path)
            complete = True
        finally:
            if not complete:
                snapshot.close()
    finally:
        os.close(fd)
    return Snapshot(snapshot, digests)


class GbsHead(NamedTuple):
    """A GBS file's metadata block, read alone, its size, and its digests."""

    metadata: bytes
    file_size: int
    digests: Digests


def read_gbs_head(path: Path, store: Path | None) -> GbsHead:
    """The metadata block of a GBS file, with its size and digests: the raw part is only
    hashed, a chunk at a time, so nothing the size of the file is held."""
    fd = open_regular_file(path, store)
    try:
        before = os.fstat(fd)
        size = _gbs_file_size(fd, path)
        length = gbs.metadata_length(_pread(fd, GBS_HEADER.size, 0, path), size, path)
        block = _pread(fd, length, GBS_HEADER.size, path)
        digests = _stream_digests(fd, size, GBS_HEADER.size + length, path)
        _require_unchanged(fd, before, path)
    finally:
        os.close(fd)
    if len(block) != length:
        raise _changed_size(path)
    return GbsHead(block, size, digests)


def extract_aocx(path: Path, store: Path | None) -> tuple["EmbeddedGbs", str]:
    """The GBS inside an AOCX file, and the file's SHA-256: the ELF layers are read where
    they lie, so the file is hashed in a pass of its own over the same descriptor."""
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
        file_sha256, _ = _stream_digests(fd, before.st_size, before.st_size, path)
        _require_unchanged(fd, before, path)
    finally:
        os.close(fd)
    return embedded, file_sha256


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


def _read_all(fd: int, snapshot: mmap.mmap, path: Path) -> Digests:
    """Fill *snapshot* from *fd*, hashing it as it arrives; the file must end exactly where
    the snapshot does."""
    filled = 0
    with memoryview(snapshot) as view:
        hashing = _GbsHashing(view)
        while filled < len(view):
            with view[filled : filled + _CHUNK] as rest:
                count = _read_into(fd, rest, path)
            if count == 0:
                raise _changed_size(path)  # it shrank
            filled += count
            hashing.arrived(filled)
        digests = hashing.digests()
    if _read_into(fd, memoryview(bytearray(1)), path):
        raise _changed_size(path)  # it grew
    return digests


class _GbsHashing:
    """SHA-256 of a GBS image arriving in *view*, and of its raw part, which starts where
    the header's metadata length says (the same bytes :func:`gbs.parse` reads it from)."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._whole, self._raw = hashlib.sha256(), hashlib.sha256()
        self._hashed = 0

    def arrived(self, end: int) -> None:
        """The bytes up to *end* are in: hash those not hashed yet."""
        with self._view[self._hashed : end] as new:
            self._whole.update(new)
        if end >= GBS_HEADER.size:
            _, length = GBS_HEADER.unpack_from(self._view)
            start = max(self._hashed, GBS_HEADER.size + length)
            if start < end:
                with self._view[start:end] as raw:
                    self._raw.update(raw)
        self._hashed = end

    def digests(self) -> Digests:
        return Digests(self._whole.hexdigest(), self._raw.hexdigest())


def _stream_digests(fd: int, size: int, raw_start: int, path: Path) -> Digests:
    """The digests of the *size* bytes of *fd*, whose raw part starts at *raw_start*, read
    a chunk at a time into one small buffer."""
    whole, raw = hashlib.sha256(), hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = _pread(fd, min(_CHUNK, size - offset), offset, path)
        if not chunk:
            raise _changed_size(path)
        whole.update(chunk)
        if offset + len(chunk) > raw_start:
            raw.update(chunk[max(0, raw_start - offset) :])
        offset += len(chunk)
    return Digests(whole.hexdigest(), raw.hexdigest())


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
