"""programmers: the PR ioctl at the byte level, checked against <linux/fpga-dfl.h>."""

import ctypes
import errno
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, REGION_A, LockOf, busy_limit
from simnode import SimNode, add_card, write_gbs

from fpga_crihook.bitstream import open_bitstream
from fpga_crihook.devices import Port, port_from_sysfs_dir
from fpga_crihook.errors import DeviceError, ProgrammingError
from fpga_crihook.programmers import (
    DFL_FPGA_FME_PORT_PR,
    DFL_PORT_PR_STRUCT,
    OPAE_PORT_PR_STRUCT,
    IoctlProgrammer,
    SimProgrammer,
)
from fpga_crihook.settings import Settings
from fpga_crihook.store import BitstreamKind

DFL_HEADER = Path("/usr/include/linux/fpga-dfl.h")


class KernelCall:
    """Stands in for fcntl.ioctl and records what the kernel would have been given."""

    def __init__(self, fail_with: int | None = None) -> None:
        self.fail_with = fail_with
        self.fd_target = ""
        self.request = -1
        self.argument = b""
        self.buffer = b""

    def __call__(self, fd: int, request: int, argument: bytearray) -> object:
        self.fd_target = Path(f"/proc/self/fd/{fd}").readlink().name
        self.request = request
        self.argument = bytes(argument)
        address, size = _address_and_size(request, self.argument)
        self.buffer = ctypes.string_at(address, size)  # read while the buffer is alive
        if self.fail_with is not None:
            raise OSError(self.fail_with, "simulated failure")
        return 0


def _address_and_size(request: int, argument: bytes) -> tuple[int, int]:
    layout = DFL_PORT_PR_STRUCT if request == DFL_FPGA_FME_PORT_PR else OPAE_PORT_PR_STRUCT
    fields = layout.unpack(argument)
    return fields[4], fields[3]


def _port(node: SimNode, driver: str, port_index: int = 0) -> Port:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    return port_from_sysfs_dir(
        card.ports[port_index].sysfs_dir, Settings(sysfs=node.sysfs, devfs=node.devfs)
    )


RAW = bytes(range(251)) * 1000 + b"tail"


@pytest.mark.parametrize("port_index", [0, 1])
def test_dfl_ioctl_gets_the_exact_request_and_struct(
    node: SimNode, lock_of: LockOf, port_index: int
) -> None:
    port = _port(node, "dfl", port_index)
    kernel = KernelCall()
    path = write_gbs(node, REGION_A, AFU_2, raw=RAW)

    with open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream:
        IoctlProgrammer(busy_limit(), ioctl=kernel).program(port, bitstream, lock_of(port))

    assert kernel.fd_target == "dfl-fme.0"
    assert kernel.request == 0xB680
    assert len(kernel.argument) == 24
    argsz, flags, port_id, size, address = DFL_PORT_PR_STRUCT.unpack(kernel.argument)
    assert (argsz, flags, port_id, size) == (24, 0, port_index, len(RAW))
    assert address != 0
    assert kernel.buffer == RAW


def test_opae_ioctl_gets_the_exact_request_and_struct(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "opae", 1)
    kernel = KernelCall()
    path = write_gbs(node, REGION_A, AFU_2, raw=RAW)

    with open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream:
        IoctlProgrammer(busy_limit(), ioctl=kernel).program(port, bitstream, lock_of(port))

    assert kernel.fd_target == "intel-fpga-fme.0"
    assert kernel.request == 0xB580
    assert len(kernel.argument) == 32
    argsz, flags, port_id, size, _address, status = OPAE_PORT_PR_STRUCT.unpack(kernel.argument)
    assert (argsz, flags, port_id, size, status) == (32, 0, 1, len(RAW), 0)
    assert kernel.buffer == RAW


def test_buffer_points_into_the_snapshot_without_a_copy(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "dfl")
    kernel = KernelCall()
    path = write_gbs(node, REGION_A, AFU_2, raw=RAW)
    with open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream:
        view_address = ctypes.addressof((ctypes.c_char * 1).from_buffer(bitstream.raw))
        IoctlProgrammer(busy_limit(), ioctl=kernel).program(port, bitstream, lock_of(port))
    assert _address_and_size(kernel.request, kernel.argument)[0] == view_address


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (errno.EIO, "EIO: the hardware reported a partial-reconfiguration error"),
        (errno.EBUSY, "EBUSY"),
        (errno.ENODEV, "ENODEV"),
    ],
)
def test_kernel_errors_name_port_fme_bitstream_and_cause(
    node: SimNode, lock_of: LockOf, error: int, words: str
) -> None:
    port = _port(node, "dfl")
    path = write_gbs(node, REGION_A, AFU_2)
    with (
        open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError) as caught,
    ):
        IoctlProgrammer(busy_limit(), ioctl=KernelCall(error)).program(
            port, bitstream, lock_of(port)
        )
    message = str(caught.value)
    assert words in message
    assert "dfl-port.0" in message
    assert "dfl-fme.0" in message
    assert str(path) in message


def test_real_ioctl_on_a_regular_file_fails_cleanly(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "dfl")  # the simulated /dev/dfl-fme.0 is a regular file
    path = write_gbs(node, REGION_A, AFU_2)
    with (
        open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError, match="ENOTTY"),
    ):
        IoctlProgrammer(busy_limit()).program(port, bitstream, lock_of(port))
    assert (port.sysfs_dir / "afu_id").read_text().strip() == AFU_1


def test_missing_fme_node_is_a_device_error(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "dfl")
    port.fme.device_node.unlink()
    path = write_gbs(node, REGION_A, AFU_2)
    with (
        open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(DeviceError, match="opening .*dfl-fme.0: ENOENT"),
    ):
        IoctlProgrammer(busy_limit(), ioctl=KernelCall()).program(port, bitstream, lock_of(port))


def test_opae_nonzero_status_is_a_failure(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "opae")

    def kernel(_fd: int, _request: int, argument: bytearray) -> object:
        argument[24:32] = (0x3).to_bytes(8, "little")
        return 0

    path = write_gbs(node, REGION_A, AFU_2)
    with (
        open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream,
        pytest.raises(ProgrammingError, match="PR status 0x3"),
    ):
        IoctlProgrammer(busy_limit(), ioctl=kernel).program(port, bitstream, lock_of(port))


def test_sim_programmer_writes_the_afu_id(node: SimNode, lock_of: LockOf) -> None:
    port = _port(node, "dfl")
    path = write_gbs(node, REGION_A, AFU_2, raw=RAW)
    with open_bitstream(path, BitstreamKind.GBS, node.store) as bitstream:
        assert zlib.crc32(bitstream.raw) == zlib.crc32(RAW)
        SimProgrammer(busy_limit()).program(port, bitstream, lock_of(port))
    assert (port.sysfs_dir / "afu_id").read_text() == AFU_2 + "\n"


_LAYOUT_PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/fpga-dfl.h>
int main(void) {
    printf("%lu %zu %zu %zu %zu %zu %zu\n", (unsigned long)DFL_FPGA_FME_PORT_PR,
           sizeof(struct dfl_fpga_fme_port_pr),
           offsetof(struct dfl_fpga_fme_port_pr, argsz),
           offsetof(struct dfl_fpga_fme_port_pr, flags),
           offsetof(struct dfl_fpga_fme_port_pr, port_id),
           offsetof(struct dfl_fpga_fme_port_pr, buffer_size),
           offsetof(struct dfl_fpga_fme_port_pr, buffer_address));
    return 0;
}
"""


def test_dfl_numbers_and_layout_match_the_kernel_header(tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler, "a C compiler is needed to check <linux/fpga-dfl.h>"
    assert DFL_HEADER.exists(), "install linux-libc-dev for <linux/fpga-dfl.h>"
    source = tmp_path / "layout.c"
    source.write_text(_LAYOUT_PROGRAM)
    binary = tmp_path / "layout"
    subprocess.run([compiler, "-o", str(binary), str(source)], check=True)
    output = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    request, size, *offsets = (int(word) for word in output.split())

    # What the Python side packs: each field's offset in the packed struct.
    python_offsets = [0, 4, 8, 12, 16]
    packed = DFL_PORT_PR_STRUCT.pack(
        0x11111111, 0x22222222, 0x33333333, 0x44444444, 0x5555555555555555
    )
    assert [packed[offset] for offset in python_offsets] == [0x11, 0x22, 0x33, 0x44, 0x55]
    assert request == DFL_FPGA_FME_PORT_PR
    assert size == DFL_PORT_PR_STRUCT.size
    assert offsets == python_offsets
