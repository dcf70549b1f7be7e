"""The GBS format (OPAE "green bitstream", DESIGN.md section 4): header, metadata, raw part.

This module knows one file format and nothing of the store, of AOCX files
or of how the bytes reached memory: it parses an image held in a buffer and
hands back views into that same buffer, so the raw part is never copied.
"""

import dataclasses
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook import jsondocs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.ids import InvalidIdError, canonical_id

GBS_MAGIC = b"XeonFPGA\xb7GBSv001"
GBS_HEADER = struct.Struct("<16sI")  # magic, u32 metadata length (little endian)
MAX_METADATA_BYTES = 1 << 20
# afu-image.magic-no: OPAE (libbitstream's metadata reader, the xfpga plugin) refuses a GBS
# whose metadata lacks this JSON integer or holds another one (DESIGN.md section 4).
METADATA_MAGIC_NO = 488605312  # 0x1D1F8680
CLOCK_FIELDS = ("clock-frequency-high", "clock-frequency-low")
_INT64_RANGE = (-(1 << 63), (1 << 63) - 1)


class ClockRequest(NamedTuple):
    """What a GBS asks of one of its port's user clocks.

    OPAE's xfpga plugin (reconf.c, xfpga_fpgaReconfigureSlot) sets the user
    clocks before programming when either frequency, as its read_gbs_metadata
    holds it, is above 0: 0 and negative numbers mean "no clock", and so do
    the strings ``"auto"`` and ``"auto-<n>"`` (it reads them as 0).
    """

    field: str
    value: str | float | None  # as written; None: the field is absent

    @property
    def opae_mhz(self) -> int:
        """The frequency xfpga's read_gbs_metadata holds: 0 for a string or an absent field.

        It takes ``json_object_get_int64`` of the number (a fraction cut off, values beyond
        64 bits clamped) into a C ``int``, which keeps the low 32 bits: 312.5 is 312, 0.5 is 0.
        """
        if isinstance(self.value, str) or self.value is None:
            return 0
        wide = min(max(math.trunc(self.value), _INT64_RANGE[0]), _INT64_RANGE[1])
        return (wide + (1 << 31)) % (1 << 32) - (1 << 31)

    @property
    def asks_for_clock(self) -> bool:
        """True when OPAE sets this clock before programming."""
        return self.opae_mhz > 0

    def __str__(self) -> str:
        if self.value is None:
            return "-"
        if isinstance(self.value, str):
            return self.value
        return f"{self.value} MHz" if self.asks_for_clock else f"{self.value} (no clock)"


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

    @property
    def clocks(self) -> tuple[ClockRequest, ...]:
        """The high and low user clock requests, in that order."""
        image = self.document["afu-image"]
        return tuple(ClockRequest(field, image.get(field)) for field in CLOCK_FIELDS)

    @property
    def sets_user_clocks(self) -> bool:
        """True when programming must first set the port's user clocks, as OPAE does."""
        return any(clock.asks_for_clock for clock in self.clocks)


class GbsImage(NamedTuple):
    """A parsed GBS: its metadata, the metadata's length, and a view of the raw part."""

    metadata: GbsMetadata
    metadata_size: int
    raw: memoryview


def parse(view: memoryview, source: Path) -> GbsImage:
    """Parse a GBS image held in *view*; the result's ``raw`` is a slice of it."""
    with view[: GBS_HEADER.size] as header:
        length = metadata_length(header, len(view), source)
    end = GBS_HEADER.size + length
    with view[GBS_HEADER.size : end] as metadata_bytes:
        metadata = parse_metadata(bytes(metadata_bytes), source)
    return GbsImage(metadata, length, view[end:])


def metadata_length(header: bytes | memoryview, image_size: int, source: Path) -> int:
    """Check the header of a GBS image of *image_size* bytes; return its metadata length.

    *header* holds the image's first bytes (the header's 20, or fewer if the image is shorter).
    """
    if image_size < GBS_HEADER.size or len(header) < GBS_HEADER.size:
        raise BitstreamError(
            f"{source} is truncated: {image_size} bytes is shorter than the "
            f"{GBS_HEADER.size}-byte GBS header"
        )
    magic, length = GBS_HEADER.unpack_from(header)
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
    if end > image_size:
        raise BitstreamError(
            f"{source}: the GBS metadata length {length} runs past the end "
            f"of the file ({image_size} bytes)"
        )
    if end == image_size:
        raise BitstreamError(f"{source}: there is no raw bitstream after the GBS metadata")
    return int(length)


def parse_metadata(raw: bytes, source: Path) -> GbsMetadata:
    """Decode, validate (JSON Schema shipped in the package) and extract the IDs."""
    try:
        document = jsondocs.decode(raw)
    except jsondocs.JsonProblem as problem:
        raise BitstreamError(f"{source}: the GBS metadata {problem}") from None
    _validate_against_schema(document, source)
    image = document["afu-image"]
    _check_magic_no(image.get("magic-no"), source)
    clusters = image["accelerator-clusters"]
    interface = image.get("interface-uuid")
    return GbsMetadata(
        document=document,
        interface_id=None if interface is None else _metadata_id(interface, source),
        afu_ids=tuple(_metadata_id(c["accelerator-type-uuid"], source) for c in clusters),
        names=tuple(cluster["name"] for cluster in clusters),
    )


def _metadata_id(value: str, source: Path) -> str:
    try:
        return canonical_id(value)
    except InvalidIdError as error:
        raise BitstreamError(f"{source}: the GBS metadata has an invalid ID: {error}") from None


def _check_magic_no(magic_no: Any, source: Path) -> None:
    expected = f"JSON integer {METADATA_MAGIC_NO} (0x{METADATA_MAGIC_NO:08X}) that OPAE requires"
    if magic_no is None:
        raise BitstreamError(
            f"{source}: the GBS metadata has no afu-image.magic-no, not the {expected}: "
            "OPAE would refuse this file, and so does the hook"
        )
    if type(magic_no) is not int or magic_no != METADATA_MAGIC_NO:  # OPAE: 488605312.0 is not
        raise BitstreamError(
            f"{source}: the GBS metadata's afu-image.magic-no is {_shorten(str(magic_no), 40)}, "
            f"not the {expected}: OPAE would refuse this file, and so does the hook"
        )


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
