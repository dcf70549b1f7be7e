"""OpenCL AOCX files: a gzip-compressed GBS inside an ELF inside an ELF (DESIGN.md section 4).

An ``.aocx`` file is an ELF whose ``.acl.fpga.bin`` section is itself an ELF
whose ``.acl.gbs.gz`` section is a gzip-compressed GBS. Both ELF layers are
read in place through the caller's mapping of the file, and the GBS is
inflated straight into the one buffer that is later handed to the kernel,
sized from the gzip trailer: the process holds about one copy of the GBS.

This module knows ELF and gzip, not the GBS format: what the GBS image says
is :mod:`fpga_crihook.gbs`'s business, and opening files is
:mod:`fpga_crihook.bitstream`'s, the only importer of this module (and so
of pyelftools).
"""

import contextlib
import dataclasses
import io
import mmap
import zlib
from collections.abc import Generator, Iterable, Mapping
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


def extract(mapping: mmap.mmap, path: Path) -> EmbeddedGbs:
    """Read both ELF layers of the AOCX file mapped at *mapping* and inflate its GBS.

    *path* names the file in error messages. The GBS image is not validated
    here; the caller parses it like any other GBS.
    """
    with memoryview(mapping) as file_view:
        details, compressed_range = _read_layers(file_view, path)
    return EmbeddedGbs(_gunzip(mapping, compressed_range, path), details)


def _read_layers(file_view: memoryview, path: Path) -> tuple[dict[str, str], slice]:
    """The text sections, and where the compressed GBS lies in the file."""
    outer = _ElfLayer.open(file_view, path, "the AOCX file")
    details = {
        key: text for key, name in TEXT_SECTIONS.items() if (text := outer.text(name)) is not None
    }
    inner_range = outer.section_range(FPGA_BIN_SECTION)
    with file_view[inner_range] as inner_view:
        inner = _ElfLayer.open(inner_view, path, f"its {FPGA_BIN_SECTION} section")
        compressed_range = inner.section_range(GBS_GZ_SECTION)
    start = inner_range.start + compressed_range.start
    return details, slice(start, start + compressed_range.stop - compressed_range.start)


@dataclasses.dataclass(frozen=True)
class _ElfLayer:
    """One of the two ELF files, read in place from *view*."""

    elf: ELFFile
    view: memoryview
    path: Path
    what: str  # "the AOCX file" or "its .acl.fpga.bin section", for messages

    @classmethod
    def open(cls, view: memoryview, path: Path, what: str) -> "_ElfLayer":
        try:
            elf = ELFFile(cast("IO[bytes]", _ViewReader(view)))
            sections = elf.num_sections()
        except ELFError as error:
            raise BitstreamError(f"{path}: {what} is not a valid ELF file: {error}") from None
        if sections > MAX_SECTIONS:
            raise BitstreamError(
                f"{path}: {what} claims {sections} sections, more than the {MAX_SECTIONS} accepted"
            )
        return cls(elf, view, path, what)

    def section_range(self, name: str) -> slice:
        """Where section *name*'s bytes lie in the view; it must exist and hold data."""
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
        if offset + size > len(self.view):
            raise BitstreamError(
                f"{self.path}: the {name} section ({size} bytes at offset {offset}) "
                f"runs past the end of {self.what} ({len(self.view)} bytes)"
            )
        return slice(offset, offset + size)

    def text(self, name: str) -> str | None:
        """The text of section *name*, or ``None`` when there is no such section."""
        try:
            present = self.elf.has_section(name)
        except ELFError as error:
            raise self._table_error(error) from None
        if not present:
            return None
        where = self.section_range(name)
        if where.stop - where.start > MAX_TEXT_BYTES:
            raise BitstreamError(
                f"{self.path}: the {name} section is larger than the "
                f"{MAX_TEXT_BYTES} bytes expected of a text section"
            )
        with self.view[where] as text:
            return bytes(text).rstrip(b"\0").decode("utf-8", errors="replace").strip()

    def _table_error(self, error: ELFError) -> BitstreamError:
        return BitstreamError(f"{self.path}: cannot read the section table of {self.what}: {error}")


def _gunzip(mapping: mmap.mmap, section: slice, path: Path) -> bytearray:
    """Inflate the gzip member into a buffer sized by its trailer, checking CRC and size."""
    where = f"{path}: the {GBS_GZ_SECTION} section"
    length = section.stop - section.start
    if length < _GZIP_MIN_BYTES or mapping[section.start : section.start + 2] != _GZIP_MAGIC:
        raise BitstreamError(f"{where} is not gzip data")
    # ISIZE, the last four bytes: the uncompressed size modulo 2**32.
    declared = int.from_bytes(mapping[section.stop - 4 : section.stop], "little")
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
        with (
            memoryview(image) as target,
            contextlib.closing(_mapped_chunks(mapping, section)) as chunks,
        ):
            produced, consumed = _inflate(inflater, chunks, target, where)
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


def _mapped_chunks(mapping: mmap.mmap, section: slice) -> Generator[memoryview, None, None]:
    """The section's bytes in chunks, each dropped from this process once read.

    The pages stay in the page cache; dropping them keeps the compressed copy
    from adding to the process's memory next to the inflated GBS.
    """
    with memoryview(mapping) as view:
        for start in range(section.start, section.stop, _CHUNK):
            stop = min(start + _CHUNK, section.stop)
            with view[start:stop] as chunk:
                yield chunk
            page_start = start - start % mmap.PAGESIZE
            mapping.madvise(mmap.MADV_DONTNEED, page_start, stop - page_start)


def _inflate(
    inflater: "zlib._Decompress", chunks: Iterable[memoryview], target: memoryview, where: str
) -> tuple[int, int]:
    """Feed the chunks until the stream ends; return (bytes produced, input bytes consumed)."""
    produced = consumed = 0
    for chunk in chunks:
        consumed += len(chunk)
        pending: bytes | memoryview = chunk
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


class _ViewReader:
    """A seekable read-only file over a memoryview, so pyelftools reads in place.

    Not an ``io`` class on purpose: the buffered ones reject the absurd seek
    offsets a corrupt ELF holds before pyelftools can report them as ELF errors.
    """

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._position + size
        with self._view[self._position : end] as chunk:
            self._position += len(chunk)
            return bytes(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position
