"""bitstream: the store's layout, GBS parsing and validation, and the private snapshot
of a file that is what gets programmed."""

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, REGION_A
from simnode import (
    SimNode,
    dashed,
    gbs_bytes,
    gbs_metadata,
    metadata_of_size,
    nested_arrays,
    write_gbs,
)

from fpga_crihook import aocx, snapshot
from fpga_crihook.bitstream import (
    detect_kind,
    inspect_bitstream,
    open_bitstream,
    read_bitstream_facts,
)
from fpga_crihook.errors import BitstreamError
from fpga_crihook.store import BitstreamKind, locate, missing_message


def test_gbs_is_found_before_aocx(node: SimNode) -> None:
    write_gbs(node, REGION_A, AFU_1)
    (node.store / REGION_A / f"{AFU_1}.aocx").write_bytes(b"\x7fELF")
    entry = locate(node.store, REGION_A, AFU_1)
    assert entry is not None
    assert (entry.path.name, entry.kind) == (f"{AFU_1}.gbs", BitstreamKind.GBS)


def test_aocx_is_the_fallback(node: SimNode) -> None:
    (node.store / REGION_A).mkdir(parents=True)
    (node.store / REGION_A / f"{AFU_1}.aocx").write_bytes(b"\x7fELF")
    entry = locate(node.store, REGION_A, AFU_1)
    assert entry is not None
    assert entry.kind is BitstreamKind.AOCX


def test_missing_bitstream_message_names_both_candidates(node: SimNode) -> None:
    assert locate(node.store, REGION_A, AFU_1) is None
    message = missing_message(node.store, REGION_A, AFU_1)
    assert f"expected {REGION_A}/{AFU_1}.gbs or {REGION_A}/{AFU_1}.aocx" in message


def test_gbs_metadata_ids_and_raw_bitstream(node: SimNode) -> None:
    raw = bytes(range(256)) * 8
    path = write_gbs(node, REGION_A, AFU_1, raw=raw, name="nlb_0")
    with open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream:
        assert (bitstream.interface_id, bitstream.afu_id) == (REGION_A, AFU_1)
        assert bitstream.metadata.names == ("nlb_0",)
        assert bytes(bitstream.raw) == raw
        assert bitstream.metadata_size == len(json.dumps(gbs_metadata(REGION_A, AFU_1, "nlb_0")))
        assert bytes(bitstream.image) == path.read_bytes()


def test_detect_kind(tmp_path: Path) -> None:
    gbs = tmp_path / "a.gbs"
    gbs.write_bytes(gbs_bytes(REGION_A, AFU_1))
    elf = tmp_path / "a.aocx"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    other = tmp_path / "x"
    other.write_bytes(b"hello world, not a bitstream")
    assert detect_kind(gbs) is BitstreamKind.GBS
    assert detect_kind(elf) is BitstreamKind.AOCX
    with pytest.raises(BitstreamError, match="neither a GBS file nor an AOCX"):
        detect_kind(other)


def _metadata(**image: object) -> dict[str, object]:
    document = gbs_metadata(REGION_A, AFU_1)
    document["afu-image"].update(image)
    return document


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"XeonFPGA", "truncated"),
        (b"NotAGBSfileAtAll" + bytes(100), "wrong magic"),
        (gbs_bytes(metadata=b"", raw=b"x"), "metadata length is zero"),
        (gbs_bytes(metadata=b"{}")[:-4096] + b"", "no raw bitstream"),
        (gbs_bytes(REGION_A, AFU_1)[:20] + b"{}", "runs past the end"),
        (gbs_bytes(metadata=b"{not json"), "metadata is not valid JSON"),
        (gbs_bytes(metadata=b"\xff\xfe"), "not UTF-8"),
        (gbs_bytes(metadata=b"[1]"), "breaks the schema at top level"),
        (gbs_bytes(metadata={"version": 1}), "'afu-image' is a required property"),
        (gbs_bytes(metadata=_metadata(**{"interface-uuid": "nope"})), "interface-uuid"),
        (gbs_bytes(metadata=_metadata(**{"clock-frequency-high": "fast"})), "clock-frequency"),
        (gbs_bytes(metadata=_metadata(**{"accelerator-clusters": []})), "accelerator-clusters"),
        (gbs_bytes(metadata=b'{"version": NaN}'), "NaN is not a JSON number"),
        (
            gbs_bytes(metadata=json.dumps(_metadata(power=7)).replace("7,", "1e999,").encode()),
            "large",
        ),
        (gbs_bytes(metadata=json.dumps(_metadata(power=float("inf"))).encode()), "Infinity"),
    ],
)
def test_invalid_gbs_files_are_refused(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.gbs"
    path.write_bytes(content)
    with (
        pytest.raises(BitstreamError, match=words),
        open_bitstream(path, BitstreamKind.GBS, None),
    ):
        pass
    with pytest.raises(BitstreamError, match=words):  # a dry run's look at it, too
        inspect_bitstream(path, BitstreamKind.GBS, None)


def test_a_look_at_a_gbs_reports_what_opening_it_does(node: SimNode) -> None:
    path = write_gbs(node, REGION_A, AFU_1, raw=os.urandom(5000), name="nlb_7")

    facts = inspect_bitstream(path, BitstreamKind.GBS, node.store)

    with open_bitstream(path, BitstreamKind.GBS, node.store) as opened:
        assert (facts.interface_id, facts.afu_id) == (opened.interface_id, opened.afu_id)
        assert (facts.metadata, facts.metadata_size) == (opened.metadata, opened.metadata_size)
        assert facts.raw_size == len(opened.raw) == 5000


MISSING = object()


def _with(path: str, value: object, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """The builders' metadata with the field at *path* (``a/b/0/c``) set to *value*, or
    removed when *value* is ``MISSING``."""
    document = document or gbs_metadata(REGION_A, AFU_1)
    *parents, key = path.split("/")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is MISSING:
        del target[key]
    else:
        target[key] = value
    return document


_MAGIC = "afu-image.magic-no must be the JSON integer 488605312 (0x1D1F8680)"
_UUID = "afu-image.interface-uuid must be a UUID in the dashed 36-character form (8-4-4-4-12 hex"
_CONTEXTS = "afu-image.accelerator-clusters[0].total-contexts must be a JSON integer"
_VERSION = "version must be the JSON integer 1, 640 or 650"


@pytest.mark.parametrize(
    ("metadata", "reasons"),
    [
        (_with("version", 2), f"{_VERSION}, not 2"),
        (_with("version", 1.0), f"{_VERSION}, not 1.0"),
        (_with("version", MISSING), f"{_VERSION} (it is missing)"),
        (_with("afu-image/magic-no", MISSING), f"{_MAGIC} (it is missing)"),
        (_with("afu-image/magic-no", 0x1D1F8681), f"{_MAGIC}, not 488605313"),
        (_with("afu-image/magic-no", 488605312.0), f"{_MAGIC}, not 488605312.0"),
        (_with("afu-image/magic-no", "488605312"), f'{_MAGIC}, not "488605312"'),
        (_with("afu-image/interface-uuid", REGION_A), f'{_UUID} digits), not "{REGION_A}"'),
        (_with("afu-image/interface-uuid", MISSING), f"{_UUID} digits) (it is missing)"),
        (_with("afu-image/accelerator-clusters/0/total-contexts", 1.0), f"{_CONTEXTS}, not 1.0"),
        (
            _with("afu-image/accelerator-clusters/0/total-contexts", MISSING),
            f"{_CONTEXTS} (it is missing)",
        ),
        (
            metadata_of_size(gbs_metadata(REGION_A, AFU_1), 8192),
            "the metadata must be shorter than 8192 bytes, not 8192",
        ),
        (
            _with("afu-image/afu-top-interface", nested_arrays(30)),  # in 2 objects: 32 deep
            "the metadata must nest JSON objects and arrays fewer than 32 deep (json-c's limit), "
            "not 32",
        ),
        (
            _with("version", 650.0, _with("afu-image/interface-uuid", 7)),
            f"{_VERSION}, not 650.0; {_UUID} digits), not 7",
        ),
    ],
    ids=[
        "version-2",
        "version-float",
        "version-missing",
        "magic-no-missing",
        "magic-no-other",
        "magic-no-float",
        "magic-no-string",
        "interface-uuid-undashed",
        "interface-uuid-missing",
        "total-contexts-float",
        "total-contexts-missing",
        "metadata-8192-bytes",
        "nested-32-deep",
        "two-rules",
    ],
)
def test_a_gbs_opaes_runtime_refuses_is_refused_with_the_rules_it_breaks(
    tmp_path: Path, metadata: dict[str, Any] | bytes, reasons: str
) -> None:
    path = tmp_path / "refused.gbs"
    path.write_bytes(gbs_bytes(metadata=metadata))
    sentence = f"{path}: OPAE's runtime would refuse this GBS: {reasons}"

    with pytest.raises(BitstreamError) as refused, open_bitstream(path, BitstreamKind.GBS, None):
        pass
    with pytest.raises(BitstreamError) as looked_at:  # a dry run's look at it, too
        inspect_bitstream(path, BitstreamKind.GBS, None)

    assert str(refused.value) == str(looked_at.value) == sentence


@pytest.mark.parametrize(
    "metadata",
    [
        _with("version", 640),
        _with("version", 650),
        _with("afu-image/interface-uuid", dashed(REGION_A).upper()),
        metadata_of_size(gbs_metadata(REGION_A, AFU_1), 8191),
        _with("afu-image/afu-top-interface", nested_arrays(29)),
        _with("afu-image/power", MISSING),
        _with("afu-image/power", "high"),
        _with("afu-image/power", -1),
        _with("afu-image/accelerator-clusters/0/total-contexts", 0),
        _with("afu-image/accelerator-clusters/0/total-contexts", 2**70),
        _with("afu-image/accelerator-clusters/0/name", ""),
        _with("platform-name", 5),
        _with("afu-image/afu-top-interface", "ccip_std_afu"),
    ],
    ids=[
        "version-640",
        "version-650",
        "interface-uuid-upper-case",
        "metadata-8191-bytes",
        "nested-31-deep",
        "power-missing",
        "power-string",
        "power-negative",
        "total-contexts-0",
        "total-contexts-huge",
        "name-empty",
        "platform-name-number",
        "afu-top-interface-string",
    ],
)
def test_a_gbs_opaes_runtime_programs_is_accepted(
    tmp_path: Path, metadata: dict[str, Any] | bytes
) -> None:
    path = tmp_path / "accepted.gbs"
    path.write_bytes(gbs_bytes(metadata=metadata))

    with open_bitstream(path, BitstreamKind.GBS, None) as opened:
        assert (opened.interface_id, opened.afu_id) == (REGION_A, AFU_1)
    assert inspect_bitstream(path, BitstreamKind.GBS, None).afu_id == AFU_1


@pytest.mark.parametrize(
    ("high", "low", "shown", "opae_mhz", "sets_clocks"),
    [
        ("auto", "auto", ["auto", "auto"], [0, 0], False),
        ("auto-312", "auto-156.25", ["auto-312", "auto-156.25"], [0, 0], False),
        (312, "auto", ["312 MHz", "auto"], [312, 0], True),
        ("auto", 156.25, ["auto", "156.25 MHz"], [0, 156], True),
        (None, None, ["-", "-"], [0, 0], False),
        (0, 0, ["0 (no clock)", "0 (no clock)"], [0, 0], False),
        (0, 100, ["0 (no clock)", "100 MHz"], [0, 100], True),
        (-5, "auto", ["-5 (no clock)", "auto"], [-5, 0], False),
        (0.5, "auto", ["0.5 (no clock)", "auto"], [0, 0], False),  # xfpga cuts the fraction
        (4294967296, 0, ["4294967296 (no clock)", "0 (no clock)"], [0, 0], False),  # a C int
    ],
    ids=[
        "auto",
        "auto-n",
        "high-int",
        "low-float",
        "absent",
        "zero",
        "high-zero-low-set",
        "negative",
        "below-1",
        "beyond-c-int",
    ],
)
def test_the_user_clocks_a_gbs_asks_for(
    tmp_path: Path,
    high: object,
    low: object,
    shown: list[str],
    opae_mhz: list[int],
    sets_clocks: bool,
) -> None:
    document = _metadata(**{"clock-frequency-high": high, "clock-frequency-low": low})
    for field, value in (("clock-frequency-high", high), ("clock-frequency-low", low)):
        if value is None:
            del document["afu-image"][field]  # type: ignore[attr-defined]
    path = tmp_path / "clocked.gbs"
    path.write_bytes(gbs_bytes(metadata=document))
    with open_bitstream(path, BitstreamKind.GBS, None) as bitstream:
        assert [str(clock) for clock in bitstream.metadata.clocks] == shown
        assert [clock.opae_mhz for clock in bitstream.metadata.clocks] == opae_mhz
        assert bitstream.metadata.sets_user_clocks is sets_clocks


def test_huge_metadata_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.gbs"
    path.write_bytes(b"XeonFPGA\xb7GBSv001" + (0xFFFFFFF0).to_bytes(4, "little") + b"{}")
    with (
        pytest.raises(BitstreamError, match="larger than the 1048576-byte limit"),
        open_bitstream(path, BitstreamKind.GBS, None),
    ):
        pass


def test_a_gbs_too_large_for_the_pr_ioctl_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.gbs"
    path.write_bytes(gbs_bytes(REGION_A, AFU_1))
    os.truncate(path, 1 << 36)  # sparse: 64 GiB, more than a u32 buffer_size can hand over
    with (
        pytest.raises(BitstreamError, match=r"huge\.gbs is 68719476736 bytes: larger than"),
        open_bitstream(path, BitstreamKind.GBS, None),
    ):
        pass


def test_ids_are_required_only_for_programming(tmp_path: Path) -> None:
    document = gbs_metadata(None, AFU_1)
    document["afu-image"]["accelerator-clusters"].append(
        {"name": "two", "total-contexts": 1, "accelerator-type-uuid": AFU_2}
    )
    path = tmp_path / "two.gbs"
    path.write_bytes(gbs_bytes(metadata=document))
    facts = read_bitstream_facts(path, BitstreamKind.GBS, None)  # OPAE's rules not applied
    assert facts.metadata.afu_ids == (AFU_1, AFU_2)
    with pytest.raises(BitstreamError, match="no afu-image.interface-uuid"):
        _ = facts.interface_id
    with pytest.raises(BitstreamError, match="2 accelerator clusters"):
        _ = facts.afu_id


def test_store_symlink_out_of_the_store_is_refused(node: SimNode, tmp_path: Path) -> None:
    outside = tmp_path / "outside.gbs"
    outside.write_bytes(gbs_bytes(REGION_A, AFU_1))
    (node.store / REGION_A).mkdir(parents=True)
    link = node.store / REGION_A / f"{AFU_1}.gbs"
    link.symlink_to(outside)
    with (
        pytest.raises(BitstreamError, match="is a symbolic link: the hook follows no link"),
        open_bitstream(link, BitstreamKind.GBS, node.store),
    ):
        pass


def test_a_symlink_inside_the_store_is_refused_too(node: SimNode) -> None:
    real = write_gbs(node, REGION_A, AFU_1)
    link = node.store / REGION_A / "alias.gbs"
    link.symlink_to(real.name)
    with (
        pytest.raises(BitstreamError, match="alias.gbs is a symbolic link"),
        open_bitstream(link, BitstreamKind.GBS, node.store),
    ):
        pass


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_store_entries_that_are_not_regular_files_are_refused(node: SimNode, kind: str) -> None:
    path = node.store / REGION_A / f"{AFU_1}.gbs"
    path.parent.mkdir(parents=True)
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    with (
        pytest.raises(BitstreamError, match="not a regular file"),
        open_bitstream(path, BitstreamKind.GBS, node.store),
    ):
        pass


# --- what is programmed is what was validated --------------------------------------------


def test_bytes_written_into_the_store_file_after_it_was_opened_do_not_reach_the_kernel(
    node: SimNode,
) -> None:
    raw = os.urandom(1 << 20)
    path = write_gbs(node, REGION_A, AFU_1, raw=raw)

    with open_bitstream(path, BitstreamKind.GBS, node.store) as opened:
        with path.open("r+b") as store_file:  # e.g. rsync --inplace over the store
            store_file.seek(-len(raw), os.SEEK_END)
            store_file.write(bytes(len(raw)))
        assert bytes(opened.raw) == raw
        assert zlib.crc32(opened.image) == zlib.crc32(gbs_bytes(REGION_A, AFU_1, raw=raw))


_TRUNCATE_WHILE_OPEN = """
import sys, zlib
from pathlib import Path
from fpga_crihook.bitstream import open_bitstream
from fpga_crihook.store import BitstreamKind
path = Path(sys.argv[1])
with open_bitstream(path, BitstreamKind.GBS, None) as opened:
    with path.open("r+b") as store_file:
        store_file.truncate(100)
    print(zlib.crc32(opened.raw))
"""


def test_a_store_file_truncated_while_it_is_open_kills_nothing(node: SimNode) -> None:
    raw = os.urandom(1 << 20)
    path = write_gbs(node, REGION_A, AFU_1, raw=raw)

    result = subprocess.run(
        [sys.executable, "-c", _TRUNCATE_WHILE_OPEN, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr  # a mapping of the file would die of SIGBUS
    assert result.stdout.strip() == str(zlib.crc32(raw))


def _change_after_the_first_read(monkeypatch: pytest.MonkeyPatch, path: Path, change: str) -> None:
    """The file changes between two of the reads that take its snapshot."""
    read = snapshot._read_into
    changed: list[str] = []

    def read_a_little_then_change(fd: int, target: memoryview, source: Path) -> int:
        with target[:4096] as part:
            count = read(fd, part, source)
        if not changed:
            changed.append(change)
            time.sleep(0.05)  # past the file system's timestamp granularity
            with path.open("r+b") as store_file:
                if change == "shrink":
                    store_file.truncate(8192)
                elif change == "grow":
                    store_file.seek(0, os.SEEK_END)
                    store_file.write(b"more")
                else:
                    store_file.seek(-10, os.SEEK_END)
                    store_file.write(b"overwrite!")
        return count

    monkeypatch.setattr(snapshot, "_read_into", read_a_little_then_change)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("shrink", "changed size while it was being read"),
        ("grow", "changed size while it was being read"),
        ("overwrite", "was written to while it was being read"),
    ],
)
def test_a_gbs_file_that_changes_while_it_is_read_is_refused(
    node: SimNode, monkeypatch: pytest.MonkeyPatch, change: str, words: str
) -> None:
    path = write_gbs(node, REGION_A, AFU_1, raw=os.urandom(1 << 16))
    _change_after_the_first_read(monkeypatch, path, change)

    with (
        pytest.raises(BitstreamError, match=f"{path} {words}: refusing a bitstream"),
        open_bitstream(path, BitstreamKind.GBS, node.store),
    ):
        pass


def test_an_aocx_file_truncated_while_it_is_read_is_refused(
    node: SimNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = node.store / "kernel.aocx"
    path.parent.mkdir(parents=True)
    path.write_bytes(aocx_bytes(gbs_bytes(REGION_A, AFU_1, raw=os.urandom(1 << 16))))
    read = aocx._Extent.read

    def truncate_then_read(extent: aocx._Extent, start: int, size: int) -> bytes:
        os.truncate(path, 64)
        return read(extent, start, size)

    monkeypatch.setattr(aocx._Extent, "read", truncate_then_read)

    with (
        pytest.raises(BitstreamError, match="changed size while it was being read"),
        open_bitstream(path, BitstreamKind.AOCX, node.store),
    ):
        pass
