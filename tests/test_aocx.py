"""aocx: the GBS inside an AOCX is found, inflated, validated and programmed."""

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes, elf_bytes, fpga_bin_bytes, gzip_bytes
from helpers import AFU_1, AFU_2, AFU_3, REGION_A, REGION_B, RunHook
from simnode import SimNode, add_card, gbs_bytes, gbs_metadata, state_json, write_bundle

from fpga_crihook.aocx import MAX_GBS_BYTES
from fpga_crihook.bitstream import detect_kind, open_bitstream
from fpga_crihook.errors import BitstreamError, ExitStatus
from fpga_crihook.store import BitstreamKind

BOARD_AFU = AFU_3  # what the embedded GBS reports: the OpenCL BSP's AFU ID
RAW = bytes(range(256)) * 64


def _embedded_gbs(interface_id: str = REGION_A) -> bytes:
    return gbs_bytes(interface_id, BOARD_AFU, raw=RAW, name="opencl_bsp")


def _write(tmp_path: Path, data: bytes, name: str = "kernel.aocx") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _open_error(path: Path) -> str:
    with (
        pytest.raises(BitstreamError) as caught,
        open_bitstream(path, BitstreamKind.AOCX, None),
    ):
        pass
    return str(caught.value)


def test_aocx_yields_the_embedded_gbs_raw_part_and_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, aocx_bytes(_embedded_gbs()))

    with open_bitstream(path, detect_kind(path), None) as bitstream:
        assert bitstream.kind is BitstreamKind.AOCX
        assert bitstream.source == path
        assert bitstream.interface_id == REGION_A
        assert bitstream.afu_id == BOARD_AFU
        assert bytes(bitstream.raw) == RAW
        assert not bitstream.raw.readonly  # ctypes needs a writable buffer for the ioctl
        assert bytes(bitstream.image) == _embedded_gbs()


def test_aocx_text_sections_are_in_details(tmp_path: Path) -> None:
    data = aocx_bytes(
        _embedded_gbs(),
        board="pac_s10_dc",
        target="s10gx",
        version="20.3.0",
        rand_hash="f00d",
        board_package="/opt/intel/bsp\0",
    )
    path = _write(tmp_path, data)

    with open_bitstream(path, BitstreamKind.AOCX, None) as bitstream:
        assert dict(bitstream.details) == {
            "board": "pac_s10_dc",
            "target": "s10gx",
            "version": "20.3.0",
            "hash": "f00d",
            "board_package": "/opt/intel/bsp",
        }


def test_aocx_outside_the_store_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    outside = _write(tmp_path, aocx_bytes(_embedded_gbs()))
    (store / "link.aocx").symlink_to(outside)

    with (
        pytest.raises(BitstreamError, match="link.aocx is a symbolic link: the hook follows no"),
        open_bitstream(store / "link.aocx", BitstreamKind.AOCX, store),
    ):
        pass


def test_corrupt_outer_elf_is_reported(tmp_path: Path) -> None:
    data = bytearray(aocx_bytes(_embedded_gbs()))
    data[4] = 7  # EI_CLASS: neither 32 nor 64 bit

    message = _open_error(_write(tmp_path, bytes(data)))

    assert "the AOCX file is not a valid ELF file" in message


def test_section_table_past_the_end_is_reported(tmp_path: Path) -> None:
    data = aocx_bytes(_embedded_gbs())
    truncated = data[: len(data) // 2]  # the section header table is at the end

    message = _open_error(_write(tmp_path, truncated))

    assert "cannot read the section table of the AOCX file" in message


def test_missing_fpga_bin_section_is_named(tmp_path: Path) -> None:
    data = aocx_bytes(_embedded_gbs(), outer_sections=[(".acl.board", b"pac_a10")])

    message = _open_error(_write(tmp_path, data))

    assert "the AOCX file has no .acl.fpga.bin section" in message


def test_fpga_bin_that_is_not_elf_is_reported(tmp_path: Path) -> None:
    data = aocx_bytes(_embedded_gbs(), fpga_bin=b"not an ELF at all")

    message = _open_error(_write(tmp_path, data))

    assert "its .acl.fpga.bin section is not a valid ELF file" in message


def test_missing_gbs_gz_section_is_named(tmp_path: Path) -> None:
    inner = fpga_bin_bytes(b"", sections=[(".acl.sof", b"\0" * 64)])

    message = _open_error(_write(tmp_path, aocx_bytes(_embedded_gbs(), fpga_bin=inner)))

    assert "its .acl.fpga.bin section has no .acl.gbs.gz section" in message


def test_section_without_data_is_refused(tmp_path: Path) -> None:
    inner = elf_bytes(
        [(".acl.gbs.gz", gzip_bytes(_embedded_gbs()))], nobits=frozenset({".acl.gbs.gz"})
    )

    message = _open_error(_write(tmp_path, aocx_bytes(_embedded_gbs(), fpga_bin=inner)))

    assert "the .acl.gbs.gz section does not hold plain data" in message


def test_data_that_is_not_gzip_is_refused(tmp_path: Path) -> None:
    data = aocx_bytes(_embedded_gbs(), gbs_gz=_embedded_gbs())  # stored, not compressed

    message = _open_error(_write(tmp_path, data))

    assert "the .acl.gbs.gz section is not gzip data" in message


def test_corrupt_gzip_data_fails_its_check(tmp_path: Path) -> None:
    compressed = bytearray(gzip_bytes(_embedded_gbs()))
    compressed[-8] ^= 0xFF  # the CRC-32 in the trailer

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=bytes(compressed))))

    assert "the .acl.gbs.gz section holds corrupt gzip data" in message
    assert "incorrect data check" in message


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    noise = random.Random(0).randbytes(64 * 1024)  # incompressible: deflate stores it
    compressed = gzip_bytes(gbs_bytes(REGION_A, BOARD_AFU, raw=noise))
    # Cut the stream in the middle; keep a trailer-like ISIZE so the size check passes.
    cut = compressed[: len(compressed) // 2] + compressed[-4:]

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=cut)))

    assert "the .acl.gbs.gz section is truncated: the gzip stream does not end" in message


def test_isize_smaller_than_the_data_is_caught_before_overflowing(tmp_path: Path) -> None:
    gbs = _embedded_gbs()
    compressed = gzip_bytes(gbs)[:-4] + struct.pack("<I", len(gbs) - 100)

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=compressed)))

    assert f"inflates to more than the {len(gbs) - 100} bytes its gzip trailer declares" in message


def test_isize_larger_than_the_data_fails_the_length_check(tmp_path: Path) -> None:
    gbs = _embedded_gbs()
    compressed = gzip_bytes(gbs)[:-4] + struct.pack("<I", len(gbs) + 100)

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=compressed)))

    assert "the .acl.gbs.gz section holds corrupt gzip data" in message
    assert "incorrect length check" in message


def test_isize_beyond_the_limit_is_refused_before_allocating(tmp_path: Path) -> None:
    compressed = gzip_bytes(_embedded_gbs())[:-4] + struct.pack("<I", MAX_GBS_BYTES + 1)

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=compressed)))

    assert f"declares an uncompressed size of {MAX_GBS_BYTES + 1} bytes" in message


def test_isize_more_than_the_data_can_inflate_to_is_refused_before_allocating(
    tmp_path: Path,
) -> None:
    noise = random.Random(0).randbytes(128 * 1024)  # incompressible: deflate stores it
    compressed = gzip_bytes(gbs_bytes(REGION_A, BOARD_AFU, raw=noise))
    claimed = len(compressed) * 2000  # deflate cannot expand more than about 1032 times
    corrupt = compressed[:-4] + struct.pack("<I", claimed)
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from fpga_crihook.bitstream import open_bitstream\n"
        "from fpga_crihook.store import BitstreamKind\n"
        "from fpga_crihook.errors import BitstreamError\n"
        "try:\n"
        "    with open_bitstream(Path(sys.argv[1]), BitstreamKind.AOCX, None):\n"
        "        pass\n"
        "except BitstreamError as error:\n"
        "    print(error)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    path = _write(tmp_path, aocx_bytes(b"", gbs_gz=corrupt))

    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    message, peak_kib = result.stdout.splitlines()
    assert f"declares an uncompressed size of {claimed} bytes" in message
    assert f"more than the {len(compressed)} bytes of gzip data can hold" in message
    assert int(peak_kib) * 1024 < claimed  # the claimed size was never allocated


def test_data_after_the_gzip_stream_is_refused(tmp_path: Path) -> None:
    gbs = _embedded_gbs()
    doubled = gzip_bytes(gbs) + gzip_bytes(gbs)  # two members: the last ISIZE fits the first

    message = _open_error(_write(tmp_path, aocx_bytes(b"", gbs_gz=doubled)))

    assert "has data after the end of its gzip stream" in message


def test_embedded_gbs_failing_the_schema_is_reported_as_embedded(tmp_path: Path) -> None:
    metadata = gbs_metadata(REGION_A, BOARD_AFU)
    del metadata["afu-image"]["accelerator-clusters"]
    gbs = gbs_bytes(metadata=metadata, raw=RAW)
    path = _write(tmp_path, aocx_bytes(gbs))

    message = _open_error(path)

    assert message.startswith(f"{path} (embedded GBS): the GBS metadata breaks the schema")
    assert "accelerator-clusters" in message


def test_embedded_file_that_is_not_a_gbs_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, aocx_bytes(b"PK\x03\x04" + bytes(100)))

    assert f"{path} (embedded GBS) is not a GBS file" in _open_error(path)


def test_gbs_path_does_not_import_pyelftools(node: SimNode) -> None:
    path = node.store / "a.gbs"
    path.parent.mkdir(parents=True)
    path.write_bytes(gbs_bytes(REGION_A, AFU_1))
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fpga_crihook.bitstream import open_bitstream\n"
        "from fpga_crihook.store import BitstreamKind\n"
        f"with open_bitstream(Path({str(path)!r}), BitstreamKind.GBS, None) as b:\n"
        "    assert len(b.raw) > 0\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'elftools'))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def _aocx_request(
    node: SimNode, tmp_path: Path, *, port_holds: str, request_afu: str = AFU_2
) -> tuple[str, Path]:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[port_holds])
    aocx = node.store / REGION_A / f"{request_afu}.aocx"
    aocx.parent.mkdir(parents=True, exist_ok=True)
    aocx.write_bytes(aocx_bytes(_embedded_gbs()))
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={request_afu}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle), card.ports[0].afu_file


def test_hook_programs_an_aocx_and_verifies_the_embedded_afu(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, afu_file = _aocx_request(node, tmp_path, port_holds=AFU_1)

    result = run_hook(node, state)

    assert result.returncode == 0, result.stderr
    assert afu_file.read_text().strip() == BOARD_AFU
    last = json.loads(result.stderr.splitlines()[-1])
    assert last["event"] == "port programmed"
    assert last["bitstream"].endswith(f"{AFU_2}.aocx")


def test_hook_programs_an_aocx_even_when_the_port_holds_the_requested_id(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, afu_file = _aocx_request(node, tmp_path, port_holds=AFU_2)

    result = run_hook(node, state)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["event"] == "port programmed"
    assert afu_file.read_text().strip() == BOARD_AFU


def test_hook_refuses_an_aocx_built_for_another_region(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, afu_file = _aocx_request(node, tmp_path, port_holds=AFU_1)
    aocx = node.store / REGION_A / f"{AFU_2}.aocx"
    aocx.write_bytes(aocx_bytes(_embedded_gbs(REGION_B)))

    result = run_hook(node, state)

    assert result.returncode == ExitStatus.BITSTREAM_REFUSED
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert f"was built for region {REGION_B}, not the requested {REGION_A}" in error
    assert afu_file.read_text().strip() == AFU_1


def test_hook_reports_a_corrupt_aocx_and_leaves_the_port_alone(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    state, afu_file = _aocx_request(node, tmp_path, port_holds=AFU_1)
    aocx = node.store / REGION_A / f"{AFU_2}.aocx"
    aocx.write_bytes(aocx_bytes(b"", gbs_gz=b"\x1f\x8b" + bytes(40)))

    result = run_hook(node, state)

    assert result.returncode == ExitStatus.BITSTREAM_REFUSED
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert ".acl.gbs.gz section" in error
    assert afu_file.read_text().strip() == AFU_1
