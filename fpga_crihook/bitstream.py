"""Bitstream files: opening a GBS or AOCX file, and what both yield.

docs/design.md#gbs and docs/design.md#aocx have the formats;
:mod:`fpga_crihook.gbs` parses a GBS image and :mod:`fpga_crihook.aocx` digs
the GBS image out of an AOCX file; this module is the only one that knows
both.

What is programmed is what was validated. A file is read once, into one
private buffer (an anonymous mapping for a GBS file, the inflated image for
an AOCX: :mod:`fpga_crihook.snapshot`); header and metadata are validated
from that buffer, and that same buffer is what the kernel or fpgaconf is
handed. Writes to the store file afterwards cannot reach it, a truncation
cannot kill the hook (a mapping of the file would do both), and a file that
changes while it is being read is refused. Only a look at the facts (a dry
run, ``gbs-info``) skips a GBS file's raw part: it reads the header and
metadata alone.
"""

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from fpga_crihook import gbs, snapshot
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, GBS_MAGIC, GbsMetadata
from fpga_crihook.snapshot import ELF_MAGIC, Digests, open_regular_file
from fpga_crihook.store import BitstreamKind


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
    head = snapshot.read_gbs_head(path, store)
    metadata = gbs.parse_metadata(head.metadata, path)
    length = len(head.metadata)
    raw_size = head.file_size - GBS_HEADER.size - length
    return BitstreamFacts(path, BitstreamKind.GBS, metadata, length, raw_size, {}, head.digests)


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
    image, digests = snapshot.read_gbs_file(path, store)
    with image, memoryview(image) as view:
        bitstream = parse_gbs(view, path, digests)
        try:
            yield bitstream
        finally:
            bitstream.raw.release()


@contextlib.contextmanager
def _open_aocx_file(path: Path, store: Path | None) -> Iterator[Bitstream]:
    """The GBS embedded in an AOCX, inflated into one buffer and validated like any GBS."""
    embedded, file_sha256 = snapshot.extract_aocx(path, store)
    with memoryview(embedded.gbs_image) as image_view:
        bitstream = parse_gbs(image_view, Path(f"{path} (embedded GBS)"), file_sha256=file_sha256)
        try:
            yield dataclasses.replace(
                bitstream, source=path, kind=BitstreamKind.AOCX, details=embedded.details
            )
        finally:
            bitstream.raw.release()


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
