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
import hashlib
import mmap
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from fpga_crihook import files, gbs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, GBS_MAGIC, MAX_METADATA_BYTES, GbsMetadata
from fpga_crihook.store import BitstreamKind, open_entry

if TYPE_CHECKING:
    from fpga_crihook.aocx import EmbeddedGbs

ELF_MAGIC = b"\x7fELF"
# buffer_size of the PR ioctl is a u32 (DESIGN.md section 5): no larger raw bitstream can be
# programmed, and reading a larger file could fail for lack of memory.
MAX_GBS_FILE_BYTES = GBS_HEADER.size + MAX_METADATA_BYTES + 0xFFFFFFFF
# Reads of this size are hashed as they arrive, while the bytes are still in the CPU's cache.
_CHUNK = 1 << 20


class Digests(NamedTuple):
    """Which image it is: the SHA-256 (hex) of the file, and of its raw bitstream, the bytes
    handed to the kernel (for an AOCX, the raw part of the GBS inside it)."""

    file_sha256: str
    raw_sha256: str


@dataclasses.dataclass(frozen=True, eq=False)
class BitstreamFacts:
    """What a validated bitstream file says about itself: no bytes to program."""

    source: Path
    kind: BitstreamKind
    metadata: GbsMetadata
    metadata_size: int
    raw_size: int
    details: Mapping[str, str]  # an AOCX's text sections (board, target, ...)
    digests: Digests

    @property
    def opae_refusal(self) -> str | None:
        """Why OPAE's runtime would refuse to program this file, in a sentence; None if not."""
        reasons = self.metadata.opae_refusals
        if not reasons:
            return None
        what = "this GBS" if self.kind is BitstreamKind.GBS else "the GBS in this AOCX"
        return f"{self.source}: OPAE's runtime would refuse {what}: {'; '.join(reasons)}"

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

    A file OPAE's runtime would refuse is refused. A GBS file's raw part is
    only hashed, a chunk at a time: nothing the size of the file is held.
    An AOCX is inflated (its metadata is inside the
    compressed GBS) and the image dropped.
    """
    facts = read_bitstream_facts(path, kind, store)
    _refuse_what_opae_refuses(facts)
    return facts


def read_bitstream_facts(path: Path, kind: BitstreamKind, store: Path | None) -> BitstreamFacts:
    """:func:`inspect_bitstream`, but a file OPAE's runtime would refuse is returned, with the
    reasons in ``opae_refusal``: for a command that shows such a file, never to program it."""
    if kind is BitstreamKind.AOCX:
        with _open_aocx_file(path, store) as bitstream:
            return _facts(bitstream)
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
    metadata = gbs.parse_metadata(block, path)
    raw_size = size - GBS_HEADER.size - length
    return BitstreamFacts(path, BitstreamKind.GBS, metadata, length, raw_size, {}, digests)


@contextlib.contextmanager
def open_bitstream(path: Path, kind: BitstreamKind, store: Path | None) -> Iterator[Bitstream]:
    """Read a bitstream file into a private snapshot and validate it from there.

    With *store*, the file must be a store file the store's rule allows. A file
    OPAE's runtime would refuse is refused.
    """
    opener = _open_aocx_file if kind is BitstreamKind.AOCX else _open_gbs_file
    with opener(path, store) as bitstream:
        _refuse_what_opae_refuses(bitstream)
        yield bitstream


@contextlib.contextmanager
def _open_gbs_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    snapshot, digests = _read_gbs_file(path, store)
    with snapshot, memoryview(snapshot) as view:
        bitstream = parse_gbs(view, path, digests)
        try:
            yield bitstream
        finally:
            bitstream.raw.release()


@contextlib.contextmanager
def _open_aocx_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    """The GBS embedded in an AOCX, inflated into one buffer and validated like any GBS."""
    embedded, file_sha256 = _extract_aocx(path, store)
    with memoryview(embedded.gbs_image) as image_view:
        bitstream = parse_gbs(image_view, Path(f"{path} (embedded GBS)"), file_sha256=file_sha256)
        try:
            yield dataclasses.replace(
                bitstream, source=path, kind=BitstreamKind.AOCX, details=embedded.details
            )
        finally:
            bitstream.raw.release()


class _Snapshot(NamedTuple):
    """A GBS file read once into an anonymous mapping, and its digests taken on the way."""

    image: mmap.mmap
    digests: Digests


def _read_gbs_file(path: Path, store: Path | None) -> _Snapshot:
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
    return _Snapshot(snapshot, digests)


def _extract_aocx(path: Path, store: Path | None) -> tuple["EmbeddedGbs", str]:
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


def _refuse_what_opae_refuses(facts: BitstreamFacts) -> None:
    if facts.opae_refusal is not None:
        raise BitstreamError(facts.opae_refusal)


def _facts(bitstream: Bitstream) -> BitstreamFacts:
    return BitstreamFacts(
        bitstream.source,
        bitstream.kind,
        bitstream.metadata,
        bitstream.metadata_size,
        bitstream.raw_size,
        bitstream.details,
        bitstream.digests,
    )


def parse_gbs(
    view: memoryview,
    source: Path,
    digests: Digests | None = None,
    *,
    file_sha256: str | None = None,
) -> Bitstream:
    """Parse a GBS image held in *view*; the result's ``raw`` is a slice of it.

    *digests*, when the caller took them as it read the file; else the raw
    part is hashed here, and the file is *view* unless *file_sha256* (an
    AOCX's) says otherwise.
    """
    image = gbs.parse(view, source)
    if digests is None:
        whole = file_sha256 or hashlib.sha256(view).hexdigest()
        digests = Digests(whole, hashlib.sha256(image.raw).hexdigest())
    return Bitstream(
        source,
        BitstreamKind.GBS,
        image.metadata,
        image.metadata_size,
        len(image.raw),
        {},
        digests,
        view,
        image.raw,
    )


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
