"""What a GBS or AOCX file holds, as the ``gbs-info`` command shows it.

The file is validated exactly as the hook would (schema, IDs, a raw
bitstream present); only the store confinement does not apply. A file that
breaks a rule of OPAE's runtime is still shown, with the rules it breaks in
``opae_refusal``; the command then fails, as the hook would.
"""

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from fpga_crihook.bitstream import detect_kind, read_bitstream_facts
from fpga_crihook.commands import output, tables
from fpga_crihook.errors import BitstreamError
from fpga_crihook.gbs import GBS_HEADER, ClockRequest, as_written
from fpga_crihook.store import BitstreamKind


@dataclasses.dataclass(frozen=True)
class BitstreamInfo:
    """The facts an operator checks before installing or programming a bitstream."""

    path: Path
    kind: BitstreamKind
    interface_id: str | None
    afu_ids: tuple[str, ...]
    names: tuple[str, ...]
    platform_name: str | None
    file_bytes: int
    gbs_bytes: int  # the (embedded, for an AOCX) GBS: header, metadata and raw part
    metadata_bytes: int
    raw_bytes: int
    file_sha256: str
    raw_sha256: str  # of the raw bitstream, the bytes the kernel is handed
    details: Mapping[str, str]  # AOCX text sections: board, target, version, hash, ...
    clocks: tuple[ClockRequest, ...] = ()  # user clocks high, low
    power: Any = None  # afu-image.power as written (None: absent)
    magic_no: Any = None  # afu-image.magic-no as written (None: absent)
    opae_refusal: str | None = None  # why OPAE's runtime would refuse the file


def describe(path: Path) -> BitstreamInfo:
    """Open and validate *path*; raise :class:`BitstreamError` when it cannot be shown."""
    kind = detect_kind(path)
    bitstream = read_bitstream_facts(path, kind, None)
    metadata = bitstream.metadata
    return BitstreamInfo(
        path=path,
        kind=kind,
        interface_id=metadata.interface_id,
        afu_ids=metadata.afu_ids,
        names=metadata.names,
        platform_name=metadata.platform_name,
        file_bytes=os.stat(path).st_size,
        gbs_bytes=GBS_HEADER.size + bitstream.metadata_size + bitstream.raw_size,
        metadata_bytes=bitstream.metadata_size,
        raw_bytes=bitstream.raw_size,
        details=dict(bitstream.details),
        clocks=metadata.clocks,
        power=metadata.power,
        magic_no=metadata.magic_no,
        opae_refusal=bitstream.opae_refusal,
        file_sha256=bitstream.digests.file_sha256,
        raw_sha256=bitstream.digests.raw_sha256,
    )


@dataclasses.dataclass(frozen=True)
class UserClocksJson:
    high: str | float | None  # as written
    low: str | float | None
    set_before_programming: bool


@dataclasses.dataclass(frozen=True)
class BitstreamJson:
    """The ``--json`` output."""

    path: str
    kind: str
    interface_id: str | None
    afu_ids: tuple[str, ...]
    names: tuple[str, ...]
    platform_name: str | None
    file_bytes: int
    gbs_bytes: int
    metadata_bytes: int
    raw_bytes: int
    details: dict[str, str]
    file_sha256: str
    raw_sha256: str
    user_clocks: UserClocksJson
    power: Any  # as written in the metadata
    magic_no: Any
    opae_refusal: str | None


def to_json(info: BitstreamInfo) -> BitstreamJson:
    """The ``--json`` output."""
    clocks = UserClocksJson(
        high=info.clocks[0].value if info.clocks else None,
        low=info.clocks[1].value if info.clocks else None,
        set_before_programming=_sets_clocks(info),
    )
    return BitstreamJson(
        path=str(info.path),
        kind=str(info.kind),
        interface_id=info.interface_id,
        afu_ids=info.afu_ids,
        names=info.names,
        platform_name=info.platform_name,
        file_bytes=info.file_bytes,
        gbs_bytes=info.gbs_bytes,
        metadata_bytes=info.metadata_bytes,
        raw_bytes=info.raw_bytes,
        details=dict(info.details),
        file_sha256=info.file_sha256,
        raw_sha256=info.raw_sha256,
        user_clocks=clocks,
        power=info.power,
        magic_no=info.magic_no,
        opae_refusal=info.opae_refusal,
    )


def text(info: BitstreamInfo) -> str:
    """The facts for people, one per line."""
    pairs = [
        ("file", str(info.path)),
        ("kind", str(info.kind)),
        ("interface id", info.interface_id or "-"),
        ("afu id" if info.kind is BitstreamKind.GBS else "board afu id", ", ".join(info.afu_ids)),
        ("name", ", ".join(info.names)),
        ("platform", info.platform_name or "-"),
        ("user clocks", _clocks_text(info)),
        ("power", _as_written(info.power) + (" W" if _is_number(info.power) else "")),
        ("magic-no", _as_written(info.magic_no)),
        ("file size", _bytes(info.file_bytes)),
    ]
    if info.kind is BitstreamKind.AOCX:
        pairs.append(("embedded gbs", _bytes(info.gbs_bytes)))
    pairs += [("metadata", _bytes(info.metadata_bytes)), ("raw bitstream", _bytes(info.raw_bytes))]
    pairs += [("file sha-256", info.file_sha256), ("raw sha-256", info.raw_sha256)]
    pairs += [(key.replace("_", " "), value) for key, value in info.details.items()]
    return tables.fields(pairs)


def _sets_clocks(info: BitstreamInfo) -> bool:
    return any(clock.asks_for_clock for clock in info.clocks)


def _clocks_text(info: BitstreamInfo) -> str:
    text = ", ".join(f"{clock.field.rsplit('-', 1)[1]} {clock}" for clock in info.clocks)
    if _sets_clocks(info):
        text += " (set before programming: only the fpgaconf programmer does that)"
    return text or "-"


def _as_written(value: Any) -> str:
    """A metadata value as JSON text ("-" when absent), cut short."""
    return "-" if value is None else as_written(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bytes(count: int) -> str:
    return f"{count} bytes"


@click.command("gbs-info")
@output.JSON_OPTION
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def gbs_info(file: Path, as_json: bool) -> None:
    """Show what a GBS or AOCX bitstream holds, after validating it like the hook.

    Kind, interface ID, AFU ID(s), accelerator name(s), platform, the user
    clocks it asks for, power, magic-no, sizes (file, metadata, raw
    bitstream) and, for an AOCX, its board, target, version and hash. A
    file OPAE's runtime would refuse is shown, then the command fails with
    the rules it breaks.

    \b
    Example:
        fpga-crihook gbs-info /srv/intel.com/fpga/ce48.../d842....gbs
    """
    info = describe(file)
    if as_json:
        output.echo_json(to_json(info))
    else:
        output.echo(text(info))
    if info.opae_refusal is not None:
        raise BitstreamError(info.opae_refusal)
