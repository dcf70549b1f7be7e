"""Putting a bitstream into a port's region (DESIGN.md section 5).

``ioctl`` is the native path: the FME's partial-reconfiguration ioctl with
the driver's argument struct, pointing the kernel straight at the raw
bitstream in the (mapped) file. ``sim`` does every step but the kernel call
and writes the new AFU ID into the simulated sysfs tree.
"""

import errno
import fcntl
import os
import struct
import zlib
from collections.abc import Callable
from typing import Protocol

import structlog

from fpga_crihook.bitstream import Bitstream
from fpga_crihook.devices import Driver, Port
from fpga_crihook.errors import ProgrammingError, SettingsError
from fpga_crihook.settings import ProgrammerKind, Settings

# <linux/fpga-dfl.h>: DFL_FPGA_FME_PORT_PR = _IO(DFL_FPGA_MAGIC 0xB6, DFL_FME_BASE 0x80 + 0)
DFL_FPGA_FME_PORT_PR = 0xB680
# struct dfl_fpga_fme_port_pr { u32 argsz, flags, port_id, buffer_size; u64 buffer_address; }
DFL_PORT_PR_STRUCT = struct.Struct("=IIIIQ")
# OPAE intel-fpga.h: FPGA_FME_PORT_PR = _IO(FPGA_MAGIC 0xB5, FME_BASE 0x80 + 0)
OPAE_FPGA_FME_PORT_PR = 0xB580
# struct fpga_fme_port_pr { u32 argsz, flags, port_id, buffer_size; u64 buffer_address, status; }
OPAE_PORT_PR_STRUCT = struct.Struct("=IIIIQQ")

MAX_BUFFER_SIZE = 0xFFFFFFFF  # buffer_size is a u32

_ERRNO_HINTS = {
    errno.EIO: "the hardware reported a partial-reconfiguration error",
    errno.ENOTTY: "the device does not accept the FPGA PR ioctl (is it really an FME?)",
    errno.ENODEV: "the device is gone",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EBUSY: "the FME or port is busy",
    errno.EINVAL: "the driver rejected the request (port id or bitstream)",
}


class Programmer(Protocol):
    """Something that programs one port with one bitstream."""

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Program *bitstream* into *port*'s region or raise :class:`ProgrammingError`."""

    def rehearse(self, port: Port, bitstream: Bitstream) -> None:
        """A dry run: every check :meth:`program` makes, without changing the port."""


def port_pr_request(
    driver: Driver, port_id: int, buffer_address: int, buffer_size: int
) -> tuple[int, bytearray]:
    """The ioctl request number and argument bytes for a port PR on *driver*."""
    if driver is Driver.DFL:
        layout, request = DFL_PORT_PR_STRUCT, DFL_FPGA_FME_PORT_PR
        fields: tuple[int, ...] = (layout.size, 0, port_id, buffer_size, buffer_address)
    else:
        layout, request = OPAE_PORT_PR_STRUCT, OPAE_FPGA_FME_PORT_PR
        fields = (layout.size, 0, port_id, buffer_size, buffer_address, 0)
    return request, bytearray(layout.pack(*fields))


class IoctlProgrammer:
    """Programs through the FME device node with the driver's PR ioctl."""

    def __init__(
        self, busy_timeout: float, ioctl: Callable[[int, int, bytearray], object] | None = None
    ) -> None:
        self._busy_timeout = busy_timeout
        self._ioctl = ioctl or _kernel_ioctl

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Issue the PR ioctl on the port's FME with the raw bitstream."""
        port_id = self._prepare(port, bitstream)
        fd = _open_fme(port, bitstream)
        try:
            self._call(fd, port, port_id, bitstream)
        finally:
            os.close(fd)

    def rehearse(self, port: Port, bitstream: Bitstream) -> None:
        """Check the request and open the FME, as :meth:`program` would."""
        self._prepare(port, bitstream)
        os.close(_open_fme(port, bitstream))

    def _prepare(self, port: Port, bitstream: Bitstream) -> int:
        """The checks before the device is opened; returns the port's id for the ioctl."""
        port_id = port.read_port_id(self._busy_timeout)
        size = len(bitstream.raw)
        if size > MAX_BUFFER_SIZE:
            raise ProgrammingError(
                f"{bitstream.source}: the raw bitstream ({size} bytes) is "
                "larger than the PR ioctl can take"
            )
        return port_id

    def _call(self, fd: int, port: Port, port_id: int, bitstream: Bitstream) -> None:
        import ctypes  # noqa: PLC0415 (2 ms at every start otherwise; only this path needs it)

        buffer = (ctypes.c_char * len(bitstream.raw)).from_buffer(bitstream.raw)
        try:
            request, argument = port_pr_request(
                port.driver, port_id, ctypes.addressof(buffer), len(bitstream.raw)
            )
            self._ioctl(fd, request, argument)
        except OSError as error:
            raise ProgrammingError(_failure(port, bitstream, error)) from None
        finally:
            del buffer  # the mapping under the bitstream cannot close while this exists
        if port.driver is Driver.OPAE:
            status = OPAE_PORT_PR_STRUCT.unpack(argument)[-1]
            if status:
                raise ProgrammingError(
                    f"programming port {port.name} through {port.fme.name} "
                    f"with {bitstream.source}: the driver reported PR "
                    f"status {status:#x}"
                )


class SimProgrammer:
    """For simulated nodes: opens the FME node, reads every byte, writes ``afu_id``."""

    def rehearse(self, port: Port, bitstream: Bitstream) -> None:
        """Open the FME node, as :meth:`program` would."""
        os.close(_open_fme(port, bitstream))

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Do what the ioctl path does in user space, then fake the kernel's part."""
        os.close(_open_fme(port, bitstream))
        checksum = zlib.crc32(bitstream.raw)  # touches every byte once, as the kernel would
        afu_file = port.sysfs_dir / "afu_id"
        staged = afu_file.with_name(f".afu_id.{os.getpid()}")
        try:
            staged.write_text(bitstream.afu_id + "\n", encoding="ascii")
            # Other hooks read afu_id without the FME lock: show them the old or the
            # new ID, as the kernel does, never a truncated file.
            os.replace(staged, afu_file)
        except OSError as error:
            staged.unlink(missing_ok=True)
            raise ProgrammingError(
                f"sim programmer: cannot write {afu_file}: {error.strerror}"
            ) from None
        structlog.get_logger().debug(
            "sim programmer wrote afu_id",
            port=port.name,
            raw_bytes=len(bitstream.raw),
            crc32=f"{checksum:08x}",
        )


class LazyProgrammer:
    """The configured programmer, built when a port first needs programming.

    Ports that already hold their AFU need no programmer: a container whose
    ports are all in place starts even where, say, fpgaconf is missing.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._programmer: Programmer | None = None

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Build the programmer if needed, then program."""
        self._built().program(port, bitstream)

    def rehearse(self, port: Port, bitstream: Bitstream) -> None:
        """Build the programmer if needed, then rehearse."""
        self._built().rehearse(port, bitstream)

    def _built(self) -> Programmer:
        if self._programmer is None:
            self._programmer = make_programmer(self._settings)
        return self._programmer


def make_programmer(settings: Settings) -> Programmer:
    """The programmer the settings name."""
    if settings.programmer is ProgrammerKind.SIM:
        settings.check()
        return SimProgrammer()
    if settings.programmer is ProgrammerKind.FPGACONF:
        from fpga_crihook.fpgaconf import FpgaconfProgrammer  # noqa: PLC0415

        return FpgaconfProgrammer(settings)
    if settings.programmer is ProgrammerKind.IOCTL:
        return IoctlProgrammer(settings.busy_timeout)
    raise SettingsError(f"unknown programmer {settings.programmer!r}")


def _kernel_ioctl(fd: int, request: int, argument: bytearray) -> object:
    return fcntl.ioctl(fd, request, argument, True)


def _open_fme(port: Port, bitstream: Bitstream) -> int:
    try:
        return os.open(port.fme.device_node, os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        raise ProgrammingError(_failure(port, bitstream, error, "opening")) from None


def _failure(
    port: Port, bitstream: Bitstream, error: OSError, step: str = "the PR ioctl on"
) -> str:
    hint = _ERRNO_HINTS.get(error.errno or 0, error.strerror or "unknown error")
    name = errno.errorcode.get(error.errno or 0, str(error.errno))
    return (
        f"programming port {port.name} with {bitstream.source} failed: {step} "
        f"{port.fme.device_node}: {name}: {hint}"
    )
