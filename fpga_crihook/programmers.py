"""Putting a bitstream into a port's region (docs/design.md#pr).

``ioctl`` is the native path, taken the way OPAE's own library takes it: the
FME and then the port are opened exclusively (the drivers answer EBUSY while
another process holds either, so a port in use is never reprogrammed), the
port's errors are read and cleared, and the FME's partial-reconfiguration
ioctl gets the driver's argument struct, pointing the kernel straight at the
raw bitstream in the hook's private snapshot of the file. A failed PR is
explained with what the driver reports. ``sim`` does every step but the
kernel call and writes the new AFU ID into the simulated sysfs tree.

Neither sets a port's user clocks (that takes OPAE's PLL tables), so both
refuse a bitstream that asks for them; the ``fpgaconf`` programmer sets them.
Every programmer runs while the hook holds the FME's lock, and is handed that
lock for any child process it starts.
"""

from __future__ import annotations  # the bitstream types below are for the type checker only

import contextlib
import errno
import fcntl
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Driver, Fme, Port
from fpga_crihook.errors import BitstreamError, DeviceError, ProgrammingError, SettingsError
from fpga_crihook.locking import FmeLock
from fpga_crihook.settings import ProgrammerKind, Settings, declared
from fpga_crihook.sysfs import read_attribute, retry_while_busy

if TYPE_CHECKING:  # the skip path imports this module, and must not pay for file formats
    from fpga_crihook.bitstream import Bitstream, BitstreamFacts

# <linux/fpga-dfl.h>: DFL_FPGA_FME_PORT_PR = _IO(DFL_FPGA_MAGIC 0xB6, DFL_FME_BASE 0x80 + 0)
DFL_FPGA_FME_PORT_PR = 0xB680
# struct dfl_fpga_fme_port_pr { u32 argsz, flags, port_id, buffer_size; u64 buffer_address; }
DFL_PORT_PR_STRUCT = struct.Struct("=IIIIQ")
# OPAE intel-fpga.h: FPGA_FME_PORT_PR = _IO(FPGA_MAGIC 0xB5, FME_BASE 0x80 + 0)
OPAE_FPGA_FME_PORT_PR = 0xB580
# struct fpga_fme_port_pr { u32 argsz, flags, port_id, buffer_size; u64 buffer_address, status; }
OPAE_PORT_PR_STRUCT = struct.Struct("=IIIIQQ")

MAX_BUFFER_SIZE = 0xFFFFFFFF  # buffer_size is a u32
# OPAE driver, include/uapi/linux/intel-fpga.h (DEFINE_FPGA_PR_ERR_MSG): on EIO the driver puts
# the FME's PR error bits into fpga_fme_port_pr.status; bit N means OPAE_PR_STATUS_BITS[N].
OPAE_PR_STATUS_BITS = (
    "operation error",
    "CRC error",
    "incompatible bitstream",
    "IP protocol error",
    "FIFO overflow",
    "timeout",
    "secure load error",
)
# The DFL driver keeps those bits behind the FME's FPGA manager, as lines of text such as
# "reconfig CRC error" (Documentation/ABI/testing/sysfs-class-fpga-manager, dfl-fme-mgr.c).
DFL_PR_STATUS_GLOB = "dfl-fme-mgr.*/fpga_manager/fpga*/status"
# The port's errors ("0x%llx"), and where they are written back to clear them, as OPAE's
# xfpga plugin does before PR: the DFL driver's errors/errors is read-write
# (Documentation/ABI/testing/sysfs-platform-dfl-port); the OPAE driver's is read-only, with a
# write-only errors/clear (afu-error.c). Both are optional.
PORT_ERRORS = "errors/errors"
PORT_ERRORS_CLEAR = {Driver.DFL: "errors/errors", Driver.OPAE: "errors/clear"}
# How OPAE opens the FME and the port around PR (xfpga open.c: no FPGA_OPEN_SHARED).
EXCLUSIVE = os.O_RDWR | os.O_EXCL | os.O_CLOEXEC

_ERRNO_HINTS = {
    errno.EIO: "the hardware reported a partial-reconfiguration error",
    errno.ENOTTY: "the device does not accept the FPGA PR ioctl (is it really an FME?)",
    errno.ENODEV: "the device is gone",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EBUSY: "the FME or port is busy",
    errno.EINVAL: "the driver rejected the request (port id or bitstream)",
    errno.ENXIO: "no driver serves this device number",
}


class Programmer(Protocol):
    """Something that programs one port with one bitstream."""

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Program *bitstream* into *port*'s region or raise :class:`ProgrammingError`.

        The caller holds *lock* (the port's FME); a child process that does the
        programming must be given ``lock.fds``, so that it holds the lock too.
        """

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
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
        self, busy: TimeLimit, ioctl: Callable[[int, int, bytearray], object] | None = None
    ) -> None:
        self._busy = busy
        self._ioctl = ioctl or _kernel_ioctl

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Issue the PR ioctl on the port's FME with the raw bitstream (we hold *lock*)."""
        port_id = _prepare(port, bitstream, ProgrammerKind.IOCTL, self._busy)
        with _exclusive_opens(port, bitstream, self._busy) as fme_fd:
            clear_port_errors(port, self._busy)
            self._call(fme_fd, port, port_id, bitstream)

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
        """Check the request and open the FME and the port exclusively, as :meth:`program`."""
        _prepare(port, bitstream, ProgrammerKind.IOCTL, self._busy)
        with _exclusive_opens(port, bitstream, self._busy):
            pass

    def _call(self, fd: int, port: Port, port_id: int, bitstream: Bitstream) -> None:
        import ctypes  # noqa: PLC0415 (2 ms at every start otherwise; only this path needs it)

        buffer = (ctypes.c_char * len(bitstream.raw)).from_buffer(bitstream.raw)
        try:
            request, argument = port_pr_request(
                port.driver, port_id, ctypes.addressof(buffer), len(bitstream.raw)
            )
            try:
                self._ioctl(fd, request, argument)
            except OSError as error:  # fcntl.ioctl copies the struct back even then
                raise ProgrammingError(
                    _pr_failure(port, bitstream, error, argument, self._busy)
                ) from None
        finally:
            del buffer  # the mapping under the bitstream cannot close while this exists
        status = _opae_status(port, argument)
        if status:
            raise ProgrammingError(
                f"programming port {port.name} through {port.fme.name} "
                f"with {bitstream.source}: the driver reported {describe_pr_status(status)}"
            )


class SimProgrammer:
    """For simulated nodes: every step of ``ioctl`` but the kernel call, then ``afu_id``."""

    def __init__(self, busy: TimeLimit) -> None:
        self._busy = busy

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
        """Check the request and open the FME and the port exclusively, as :meth:`program`."""
        _prepare(port, bitstream, ProgrammerKind.SIM, self._busy)
        with _exclusive_opens(port, bitstream, self._busy):
            pass

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Do what the ioctl path does in user space, then fake the kernel's part."""
        _prepare(port, bitstream, ProgrammerKind.SIM, self._busy)
        with _exclusive_opens(port, bitstream, self._busy):
            clear_port_errors(port, self._busy)
            checksum = zlib.crc32(bitstream.raw)  # touches every byte once, as the kernel would
            _write_afu_id(port, bitstream.afu_id)
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

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Build the programmer if needed, then program."""
        self._built().program(port, bitstream, lock)

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
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
        return SimProgrammer(settings.busy_limit)
    if settings.programmer is ProgrammerKind.FPGACONF:
        from fpga_crihook.fpgaconf import FpgaconfProgrammer  # noqa: PLC0415

        return FpgaconfProgrammer(settings)
    if settings.programmer is ProgrammerKind.IOCTL:
        return IoctlProgrammer(settings.busy_limit)
    raise SettingsError(f"unknown programmer {settings.programmer!r}")


def _kernel_ioctl(fd: int, request: int, argument: bytearray) -> object:
    return fcntl.ioctl(fd, request, argument, True)


def describe_pr_status(status: int) -> str:
    """The OPAE driver's PR status bits in words, e.g. ``PR status 0x2 (CRC error)``."""
    words = [
        OPAE_PR_STATUS_BITS[bit] if bit < len(OPAE_PR_STATUS_BITS) else f"unknown bit {bit}"
        for bit in range(status.bit_length())
        if status >> bit & 1
    ]
    return f"PR status {status:#x} ({', '.join(words)})"


def clear_port_errors(port: Port, busy: TimeLimit) -> None:
    """Read the port's errors, log them, and write them back to clear them, as OPAE does.

    The attributes are optional: without them there is nothing to do. A
    failure to read or clear is a warning, not a reason to stop programming.
    """
    errors_file = port.sysfs_dir / PORT_ERRORS
    if not os.path.lexists(errors_file):
        return
    log = structlog.get_logger().bind(port=port.name)
    try:
        errors = int(read_attribute(errors_file, busy), 16)
    except (DeviceError, ValueError) as problem:
        log.warning("cannot read the port errors before programming", problem=str(problem))
        return
    if not errors:
        return
    clear_file = port.sysfs_dir / PORT_ERRORS_CLEAR[port.driver]
    try:
        _write_attribute(clear_file, f"0x{errors:x}")
    except OSError as error:
        log.warning(
            "cannot clear the port errors before programming",
            errors=f"0x{errors:x}",
            attribute=str(clear_file),
            reason=error.strerror,
        )
        return
    log.info("port errors cleared before programming", errors=f"0x{errors:x}")


def _prepare(port: Port, bitstream: BitstreamFacts, kind: ProgrammerKind, busy: TimeLimit) -> int:
    """The checks before any device is opened; returns the port's id for the ioctl."""
    if bitstream.metadata.sets_user_clocks:
        high, low = bitstream.metadata.clocks
        raise SettingsError(
            f"{bitstream.source} asks for user clocks (high {high}, low {low}) to be "
            f"set before programming; the {kind} programmer cannot set them, and the AFU "
            "would run at the clocks the previous one left. The fpgaconf programmer "
            f"({declared('programmer').env_var}=fpgaconf) sets them"
        )
    port_id = port.read_port_id(busy)
    size = bitstream.raw_size
    if size > MAX_BUFFER_SIZE:
        raise BitstreamError(
            f"{bitstream.source}: the raw bitstream ({size} bytes) is "
            "larger than the PR ioctl can take"
        )
    return port_id


@contextlib.contextmanager
def _exclusive_opens(port: Port, bitstream: BitstreamFacts, busy: TimeLimit) -> Iterator[int]:
    """The FME's descriptor, with the FME and then the port held open exclusively."""
    with contextlib.ExitStack() as opened:
        fds = []
        for node in (port.fme.device_node, port.device_node):
            fds.append(_open_exclusive(node, port, bitstream, busy))
            opened.callback(os.close, fds[-1])
        yield fds[0]


def _open_exclusive(node: Path, port: Port, bitstream: BitstreamFacts, busy: TimeLimit) -> int:
    countdown = busy.start()
    try:
        return retry_while_busy(lambda: _open_device(node, EXCLUSIVE), countdown)
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise countdown.still_busy(
                f"programming port {port.name} with {bitstream.source} failed: {node} is in "
                f"use by another process (EBUSY for {countdown.span()}), and a device in use "
                "is not reprogrammed"
            ) from None
        raise DeviceError(_failure(port, bitstream, error, "opening", node)) from None


def _open_device(node: Path, flags: int) -> int:
    """One open of a device node (a seam for fault-injection tests)."""
    return os.open(node, flags)


def _write_attribute(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # never creates it
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def _write_afu_id(port: Port, afu_id: str) -> None:
    afu_file = port.sysfs_dir / "afu_id"
    staged = afu_file.with_name(f".afu_id.{os.getpid()}")
    try:
        staged.write_text(afu_id + "\n", encoding="ascii")
        # Other hooks read afu_id without the FME lock: show them the old or the
        # new ID, as the kernel does, never a truncated file.
        os.replace(staged, afu_file)
    except OSError as error:
        staged.unlink(missing_ok=True)
        raise ProgrammingError(
            f"sim programmer: cannot write {afu_file}: {error.strerror}"
        ) from None


def _opae_status(port: Port, argument: bytearray) -> int:
    if port.driver is not Driver.OPAE:
        return 0
    status: int = OPAE_PORT_PR_STRUCT.unpack(argument)[-1]
    return status


def _pr_failure(
    port: Port, bitstream: Bitstream, error: OSError, argument: bytearray, busy: TimeLimit
) -> str:
    """Why the PR ioctl failed: for EIO, the driver's own report of the hardware's error."""
    message = _failure(port, bitstream, error)
    if error.errno != errno.EIO:
        return message
    if port.driver is Driver.OPAE:
        status = _opae_status(port, argument)
        cause = describe_pr_status(status) if status else None
    else:
        cause = _dfl_pr_status(port.fme, TimeLimit(0, busy.deadline))  # one read, no waiting
    return f"{message}: {cause}" if cause else message


def _dfl_pr_status(fme: Fme, no_wait: TimeLimit) -> str | None:
    """The DFL FPGA manager's PR error lines, when the FME has that attribute."""
    matches = sorted(fme.sysfs_dir.glob(DFL_PR_STATUS_GLOB))
    if len(matches) != 1:
        return None
    try:
        text = read_attribute(matches[0], no_wait)
    except DeviceError:
        return None
    lines = [line.strip()[:80] for line in text.splitlines() if line.strip()][:8]
    if not lines:
        return None
    return f"{'; '.join(lines)} ({matches[0].relative_to(fme.sysfs_dir)})"


def _failure(
    port: Port,
    bitstream: BitstreamFacts,
    error: OSError,
    step: str = "the PR ioctl on",
    node: Path | None = None,
) -> str:
    hint = _ERRNO_HINTS.get(error.errno or 0, error.strerror or "unknown error")
    name = errno.errorcode.get(error.errno or 0, str(error.errno))
    return (
        f"programming port {port.name} with {bitstream.source} failed: {step} "
        f"{node or port.fme.device_node}: {name}: {hint}"
    )
