"""OpenCL AOCX files: a gzip-compressed GBS inside an ELF inside an ELF (docs/design.md#aocx).

An ``.aocx`` file is an ELF whose ``.acl.fpga.bin`` section is itself an ELF
whose ``.acl.gbs.gz`` section is a gzip-compressed GBS. Both ELF layers are
read with ``pread`` from the caller's descriptor (a mapping of the file would
show later writes to it, and die with SIGBUS if it were truncated), and the
GBS is inflated chunk by chunk straight into the one buffer that is later
handed to the kernel, sized from the gzip trailer: the process holds about
one copy of the GBS.

This module knows ELF and gzip, not the GBS format: what the GBS image says
is :mod:`fpga_crihook.gbs`'s business, and opening files is
:mod:`fpga_crihook.bitstream`'s, the only importer of this module (and so
of pyelftools).
"""

import dataclasses
import io
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, NamedTuple, cast

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from fpga_crihook.errors import BitstreamError

FPGA_BIN_SECTION = ".acl.fpga.bin"
GBS_GZ_SECTION = ".acl.gbs.gz"
# Text sections shown to operators, under the names Bitstream.details uses.
TEXT_SECTIONS = {
    "board": ".acl.board",
    "target": ".acl.target",
    "version": ".acl.version",
    "hash": ".acl.rand_hash",
    "board_package": ".acl.board_package",
}
MAX_GBS_BYTES = 1 << 30  # far above any real GBS; bounds what a gzip trailer can make us allocate
MIN_GBS_BYTES = 21  # a 20-byte GBS header and at least one byte after it
MAX_TEXT_BYTES = 64 * 1024
MAX_SECTIONS = 4096
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_MIN_BYTES = 18  # 10-byte header + 8-byte trailer
_MAX_DEFLATE_RATIO = 1032  # zlib's bound: deflate output never exceeds ~1032 x its input
_CHUNK = 1 << 20
_GZIP_WINDOW = 31  # zlib wbits for a gzip wrapper (header, CRC-32 and size checked)
_SHF_COMPRESSED = 0x800


class EmbeddedGbs(NamedTuple):
    """What an AOCX file carries: the inflated GBS image and its ``.acl.*`` text sections."""

    gbs_image: bytearray
    details: Mapping[str, str]


class _Extent(NamedTuple):
    """*size* bytes of the open file *fd*, from *offset* on."""

    fd: int
    offset: int
    size: int

    def part(self, start: int, size: int) -> "_Extent":
        """The *size* bytes from *start* (relative to this extent)."""
        return _Extent(self.fd, self.offset + start, size)

    def read(self, start: int, size: int) -> bytes:
        """Up to *size* bytes from *start* (relative), fewer only at the extent's or file's end."""
        size = max(0, min(size, self.size - start))
        return os.pread(self.fd, size, self.offset + start) if size else b""


def extract(fd: int, size: int, path: Path) -> EmbeddedGbs:
    """Read both ELF layers of the AOCX file open at *fd* (*size* bytes) and inflate its GBS.

    *path* names the file in error messages. The GBS image is not validated
    here; the caller parses it like any other GBS. A file that is shorter
    than *size* by the time a part is read is reported like a truncated file.
    """
    details, compressed = _read_layers(_Extent(fd, 0, size), path)
    return EmbeddedGbs(_gunzip(compressed, path), details)


def _read_layers(whole: _Extent, path: Path) -> tuple[dict[str, str], _Extent]:
    """The text sections, and where the compressed GBS lies in the file."""
    outer = _ElfLayer.open(whole, path, "the AOCX file")
    details = {
        key: text for key, name in TEXT_SECTIONS.items() if (text := outer.text(name)) is not None
    }
    inner = _ElfLayer.open(outer.section(FPGA_BIN_SECTION), path, f"its {FPGA_BIN_SECTION} section")
    return details, inner.section(GBS_GZ_SECTION)


@dataclasses.dataclass(frozen=True)
class _ElfLayer:
    """One of the two ELF files, read where it lies in the file."""

    elf: ELFFile
    extent: _Extent
    path: Path
    what: str  # "the AOCX file" or "its .acl.fpga.bin section", for messages

    @classmethod
    def open(cls, extent: _Extent, path: Path, what: str) -> "_ElfLayer":
        try:
            elf = ELFFile(cast("IO[bytes]", _ExtentReader(extent)))
            sections = elf.num_sections()
        except ELFError as error:
            raise BitstreamError(f"{path}: {what} is not a valid ELF file: {error}") from None
        if sections > MAX_SECTIONS:
            raise BitstreamError(
                f"{path}: {what} claims {sections} sections, more than the {MAX_SECTIONS} accepted"
            )
        return cls(elf, extent, path, what)

    def section(self, name: str) -> _Extent:
        """Where section *name*'s bytes lie in the file; it must exist and hold data."""
        try:
            section = self.elf.get_section_by_name(name)
        except ELFError as error:
            raise self._table_error(error) from None
        if section is None:
            raise BitstreamError(
                f"{self.path} is not a usable AOCX file: {self.what} has no {name} section "
                f"(the GBS is expected in {FPGA_BIN_SECTION}, then {GBS_GZ_SECTION})"
            )
        offset, size = section["sh_offset"], section["sh_size"]
        if section["sh_type"] == "SHT_NOBITS" or section["sh_flags"] & _SHF_COMPRESSED:
            raise BitstreamError(f"{self.path}: the {name} section does not hold plain data")
        if offset + size > self.extent.size:
            raise BitstreamError(
                f"{self.path}: the {name} section ({size} bytes at offset {offset}) "
                f"runs past the end of {self.what} ({self.extent.size} bytes)"
            )
        return self.extent.part(offset, size)

    def text(self, name: str) -> str | None:
        """The text of section *name*, or ``None`` when there is no such section."""
        try:
            present = self.elf.has_section(name)
        except ELFError as error:
            raise self._table_error(error) from None
        if not present:
            return None
        where = self.section(name)
        if where.size > MAX_TEXT_BYTES:
            raise BitstreamError(
                f"{self.path}: the {name} section is larger than the "
                f"{MAX_TEXT_BYTES} bytes expected of a text section"
            )
        text = where.read(0, where.size)
        return text.rstrip(b"\0").decode("utf-8", errors="replace").strip()

    def _table_error(self, error: ELFError) -> BitstreamError:
        return BitstreamError(f"{self.path}: cannot read the section table of {self.what}: {error}")


def _gunzip(section: _Extent, path: Path) -> bytearray:
    """Inflate the gzip member into a buffer sized by its trailer, checking CRC and size."""
    where = f"{path}: the {GBS_GZ_SECTION} section"
    length = section.size
    if length < _GZIP_MIN_BYTES or section.read(0, 2) != _GZIP_MAGIC:
        raise BitstreamError(f"{where} is not gzip data")
    # ISIZE, the last four bytes: the uncompressed size modulo 2**32.
    trailer = section.read(length - 4, 4)
    if len(trailer) != 4:
        raise BitstreamError(f"{where} is truncated: the file ends before its gzip trailer")
    declared = int.from_bytes(trailer, "little")
    if not MIN_GBS_BYTES <= declared <= MAX_GBS_BYTES:
        raise BitstreamError(
            f"{where} declares an uncompressed size of {declared} bytes, outside "
            f"the {MIN_GBS_BYTES}..{MAX_GBS_BYTES} bytes a GBS can have"
        )
    if declared > length * _MAX_DEFLATE_RATIO:  # a corrupt trailer: refuse before allocating
        raise BitstreamError(
            f"{where} declares an uncompressed size of {declared} bytes, "
            f"more than the {length} bytes of gzip data can hold"
        )
    image = bytearray(declared)
    inflater = zlib.decompressobj(wbits=_GZIP_WINDOW)
    try:
        with memoryview(image) as target:
            produced, consumed = _inflate(inflater, _chunks(section), target, where)
    except zlib.error as error:
        raise BitstreamError(f"{where} holds corrupt gzip data: {error}") from None
    if not inflater.eof:
        raise BitstreamError(f"{where} is truncated: the gzip stream does not end")
    if consumed < length:
        raise BitstreamError(f"{where} has data after the end of its gzip stream")
    if produced != declared:
        raise BitstreamError(
            f"{where} inflates to {produced} bytes, not the {declared} its trailer declares"
        )
    return image


def _chunks(section: _Extent) -> Iterator[bytes]:
    """The section's bytes, one chunk at a time; a short read ends them (a truncated file)."""
    for start in range(0, section.size, _CHUNK):
        chunk = section.read(start, _CHUNK)
        if chunk:
            yield chunk
        if len(chunk) < min(_CHUNK, section.size - start):
            return


def _inflate(
    inflater: "zlib._Decompress", chunks: Iterable[bytes], target: memoryview, where: str
) -> tuple[int, int]:
    """Feed the chunks until the stream ends; return (bytes produced, input bytes consumed)."""
    produced = consumed = 0
    for chunk in chunks:
        consumed += len(chunk)
        pending = chunk
        while not inflater.eof:
            room = len(target) - produced
            # max_length 0 would mean "no limit": ask for one byte to detect overflow.
            output = inflater.decompress(pending, max(1, min(room, _CHUNK)))
            if len(output) > room:
                raise BitstreamError(
                    f"{where} inflates to more than the {len(target)} bytes "
                    "its gzip trailer declares"
                )
            target[produced : produced + len(output)] = output
            produced += len(output)
            pending = inflater.unconsumed_tail
            if not pending and not output:
                break  # this chunk is used up and nothing is left inside zlib
        if inflater.eof:
            return produced, consumed - len(inflater.unused_data)
    return produced, consumed


class _ExtentReader:
    """A seekable read-only file over an extent, so pyelftools reads only what it needs.

    Not an ``io`` class on purpose: the buffered ones reject the absurd seek
    offsets a corrupt ELF holds before pyelftools can report them as ELF errors.
    """

    def __init__(self, extent: _Extent) -> None:
        self._extent = extent
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        wanted = self._extent.size - self._position if size < 0 else size
        chunk = self._extent.read(self._position, wanted)
        self._position += len(chunk)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._extent.size}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position
