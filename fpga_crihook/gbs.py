"""The GBS format (OPAE "green bitstream"): header, metadata, raw part.

This module knows one file format and nothing of the store, of AOCX files
or of how the bytes reached memory: it parses an image held in a buffer and
hands back views into that same buffer, so the raw part is never copied.

A GBS is checked at two levels. The JSON Schema shipped in the package holds
what this program needs to make sense of a file at all (clusters with IDs
and names, clocks it can read); a file that breaks it is refused everywhere.
On top of that come the rules OPAE's runtime enforces (fpgaconf reads a GBS
with ``opae-libs/libbitstream``, then programs it through the xfpga plugin,
``opae-libs/plugins/xfpga``): a file that breaks one of those is still shown
by ``gbs-info``, with the rules it breaks, but never installed or programmed.
"""

import dataclasses
import json
import math
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from fpga_crihook import jsondocs
from fpga_crihook.errors import BitstreamError
from fpga_crihook.ids import InvalidIdError, canonical_id

GBS_MAGIC = b"XeonFPGA\xb7GBSv001"
GBS_HEADER = struct.Struct("<16sI")  # magic, u32 metadata length (little endian)
MAX_METADATA_BYTES = 1 << 20  # what this program reads at all; OPAE's own limit is below
CLOCK_FIELDS = ("clock-frequency-high", "clock-frequency-low")

# OPAE's runtime rules, from its sources (opae-sdk 2.0.4's opae-libs). libbitstream bitstream.c,
# opae_bitstream_parse_metadata: "version" a JSON integer, 1 or 640 or 650 (which GBS files of
# the BBS 6.4.0 and 6.5.0 era carry by mistake; the one v1 reader reads them all).
# metadatav1.c, opae_bitstream_parse_afu_image_v1 and _accelerator_cluster_v1: "magic-no" the
# JSON integer 0x1D1F8680; "interface-uuid" a string libuuid's uuid_parse takes (36 characters,
# dashes at 8, 13, 18 and 23, hex digits elsewhere); every cluster's "total-contexts" a JSON
# integer. xfpga bitstream.c, validate_bitstream_metadata and read_gbs_metadata: metadata
# shorter than METADATA_MAX_LEN, 8192 bytes. Both parse with json-c, whose tokenizer refuses
# objects and arrays nested 32 deep (JSON_TOKENER_DEFAULT_DEPTH). Neither refuses anything
# about "power": libbitstream reads a number, or 0; nothing acts on it.
OPAE_VERSIONS = (1, 640, 650)
METADATA_MAGIC_NO = 488605312  # 0x1D1F8680
OPAE_METADATA_LIMIT = 8192
JSON_C_DEPTH_LIMIT = 32
_UUID_PARSE_FORM = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_ABSENT = object()  # a field that is not there, unlike one that holds JSON null
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
    """The metadata block of a GBS file, valid against the schema."""

    document: Mapping[str, Any]
    interface_id: str | None  # None: no afu-image.interface-uuid that reads as an ID
    afu_ids: tuple[str, ...]
    names: tuple[str, ...]
    opae_refusals: tuple[str, ...]  # the OPAE runtime rules it breaks, as clauses

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

    @property
    def power(self) -> Any:
        """``afu-image.power`` as written (watts; None when absent): OPAE does not act on it."""
        return self.document["afu-image"].get("power")

    @property
    def magic_no(self) -> Any:
        """``afu-image.magic-no`` as written (None when absent)."""
        return self.document["afu-image"].get("magic-no")


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
    """Decode, validate (JSON Schema shipped in the package), extract the IDs, and list
    the OPAE runtime rules the metadata breaks (not refused here: see :func:`opae_refusals`)."""
    try:
        document = jsondocs.decode(raw)
    except jsondocs.JsonProblem as problem:
        raise BitstreamError(f"{source}: the GBS metadata {problem}") from None
    _validate_against_schema(document, source)
    clusters = document["afu-image"]["accelerator-clusters"]
    return GbsMetadata(
        document=document,
        interface_id=_interface_id(document["afu-image"].get("interface-uuid")),
        afu_ids=tuple(_metadata_id(c["accelerator-type-uuid"], source) for c in clusters),
        names=tuple(cluster["name"] for cluster in clusters),
        opae_refusals=opae_refusals(document, len(raw)),
    )


def opae_refusals(document: Mapping[str, Any], size: int) -> tuple[str, ...]:
    """Why OPAE's runtime would refuse a GBS whose metadata (*size* bytes) is *document*.

    Each reason is a clause naming the field and the rule ("version must be ...");
    none when OPAE would read the file. *document* is valid against the schema.
    """
    image = document["afu-image"]
    magic = f"the JSON integer {METADATA_MAGIC_NO} (0x{METADATA_MAGIC_NO:08X})"
    reasons = [
        _size_reason(size),
        _depth_reason(document),
        _integer_reason(document, "version", "the JSON integer 1, 640 or 650", OPAE_VERSIONS),
        _integer_reason(image, "magic-no", magic, (METADATA_MAGIC_NO,), within="afu-image."),
        _uuid_reason(image),
    ]
    for index, cluster in enumerate(image["accelerator-clusters"]):
        within = f"afu-image.accelerator-clusters[{index}]."
        reasons.append(_integer_reason(cluster, "total-contexts", "a JSON integer", within=within))
    return tuple(reason for reason in reasons if reason)


def _size_reason(size: int) -> str | None:
    if size < OPAE_METADATA_LIMIT:
        return None
    return f"the metadata must be shorter than {OPAE_METADATA_LIMIT} bytes, not {size}"


def _depth_reason(document: Any) -> str | None:
    depth, level = 0, [document]
    while level := [value for value in level if isinstance(value, dict | list)]:
        depth += 1
        level = [child for value in level for child in _children(value)]
    if depth < JSON_C_DEPTH_LIMIT:
        return None
    return (
        f"the metadata must nest JSON objects and arrays fewer than {JSON_C_DEPTH_LIMIT} "
        f"deep (json-c's limit), not {depth}"
    )


def _children(container: dict[str, Any] | list[Any]) -> list[Any]:
    return list(container.values()) if isinstance(container, dict) else container


def _integer_reason(
    parent: Mapping[str, Any],
    key: str,
    rule: str,
    allowed: tuple[int, ...] | None = None,
    within: str = "",
) -> str | None:
    """json-c's json_type_int: 1.0 and true are not integers (Python's json agrees)."""
    value = parent.get(key, _ABSENT)
    if type(value) is int and (allowed is None or value in allowed):
        return None
    return f"{within}{key} must be {rule}{_found(value)}"


def _uuid_reason(image: Mapping[str, Any]) -> str | None:
    value = image.get("interface-uuid", _ABSENT)
    if isinstance(value, str) and _UUID_PARSE_FORM.fullmatch(value):
        return None
    return (
        "afu-image.interface-uuid must be a UUID in the dashed 36-character form "
        f"(8-4-4-4-12 hex digits){_found(value)}"
    )


def _found(value: Any) -> str:
    if value is _ABSENT:
        return " (it is missing)"
    return f", not {as_written(value)}"


def _interface_id(value: Any) -> str | None:
    """The interface ID to show, when the field reads as one (OPAE's form or not)."""
    try:
        return canonical_id(value) if isinstance(value, str) else None
    except InvalidIdError:
        return None


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


def as_written(value: Any) -> str:
    """A metadata value as its JSON text, cut short for a sentence or a table cell."""
    return _shorten(json.dumps(value), 60)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
