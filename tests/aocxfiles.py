"""Builders for OpenCL AOCX files: an ELF whose ``.acl.fpga.bin`` is an ELF holding ``.acl.gbs.gz``.

pyelftools only reads ELF, so this writes ELF64 little-endian bytes with
``struct``: the file header, the sections' data, ``.shstrtab``, then the
section header table. Each layer can be replaced to build corrupt files.
"""

import gzip
import struct

# ELF64 file header: e_ident, e_type, e_machine, e_version, e_entry, e_phoff,
# e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
_FILE_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
# ELF64 section header: sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size,
# sh_link, sh_info, sh_addralign, sh_entsize.
_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")
_IDENT = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, version 1
ET_REL = 1
SHT_PROGBITS = 1
SHT_STRTAB = 3
SHT_NOBITS = 8


def elf_bytes(sections: list[tuple[str, bytes]], *, nobits: frozenset[str] = frozenset()) -> bytes:
    """An ELF64 file holding *sections* (name, data) in order, plus ``.shstrtab``.

    Sections named in *nobits* get type SHT_NOBITS (no data in the file).
    """
    names = [name for name, _ in sections] + [".shstrtab"]
    strtab = b"\0"
    name_offsets = []
    for name in names:
        name_offsets.append(len(strtab))
        strtab += name.encode() + b"\0"
    contents = [data for _, data in sections] + [strtab]
    body = bytearray()
    placed = []
    for data in contents:
        body += bytes(-(len(body) + _FILE_HEADER.size) % 8)
        placed.append(_FILE_HEADER.size + len(body))
        body += data
    body += bytes(-(len(body) + _FILE_HEADER.size) % 8)
    table_offset = _FILE_HEADER.size + len(body)
    table = bytearray(_SECTION_HEADER.size)  # index 0: the null section
    for index, (name, data) in enumerate(zip(names, contents, strict=True)):
        kind = SHT_STRTAB if name == ".shstrtab" else SHT_PROGBITS
        kind = SHT_NOBITS if name in nobits else kind
        table += _SECTION_HEADER.pack(
            name_offsets[index], kind, 0, 0, placed[index], len(data), 0, 0, 1, 0
        )
    header = _FILE_HEADER.pack(
        _IDENT,
        ET_REL,
        0,
        1,
        0,
        0,
        table_offset,
        0,
        _FILE_HEADER.size,
        0,
        0,
        _SECTION_HEADER.size,
        len(names) + 1,
        len(names),
    )
    return header + bytes(body) + bytes(table)


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (mtime 0), as the demo tree must rebuild byte for byte."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def fpga_bin_bytes(gbs_gz: bytes, *, sections: list[tuple[str, bytes]] | None = None) -> bytes:
    """The inner ELF (``.acl.fpga.bin``): by default ``.acl.gbs.gz`` holding *gbs_gz*."""
    if sections is None:
        sections = [(".acl.gbs.gz", gbs_gz)]
    return elf_bytes(sections)


def aocx_bytes(
    gbs: bytes,
    *,
    board: str = "pac_a10",
    target: str = "a10gx",
    version: str = "19.4.0",
    rand_hash: str = "8c5f3a7e0b9d41c2a6e8f7d3b1c0a9e5",
    board_package: str | None = None,
    gbs_gz: bytes | None = None,
    fpga_bin: bytes | None = None,
    outer_sections: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """An AOCX file embedding *gbs*; the ``gbs_gz``/``fpga_bin``/``outer_sections``
    overrides replace one layer to build corrupt variants."""
    if gbs_gz is None:
        gbs_gz = gzip_bytes(gbs)
    if fpga_bin is None:
        fpga_bin = fpga_bin_bytes(gbs_gz)
    if outer_sections is None:
        outer_sections = [
            (".acl.board", board.encode()),
            (".acl.target", target.encode()),
            (".acl.version", version.encode()),
            (".acl.rand_hash", rand_hash.encode()),
            (".acl.fpga.bin", fpga_bin),
        ]
        if board_package is not None:
            outer_sections.append((".acl.board_package", board_package.encode()))
    return elf_bytes(outer_sections)
