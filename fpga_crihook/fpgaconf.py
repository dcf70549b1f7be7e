"""OPAE's ``fpgaconf`` tool as programmer (docs/design.md#fpgaconf).

fpgaconf picks the card by PCI address, which comes from the port's place in
the sysfs device tree, and always programs port 0 of that card's FME (its
``main()`` passes slot 0 in every release): any other port is refused.
Its options (OPAE ``tools/fpgaconf``): ``--segment``, ``-B`` bus, ``-D``
device, ``-F`` function, each a number that C's ``strtoul(..., 0)`` reads,
so hex with ``0x``. (``-S`` is the socket ID in fpgaconf, not the PCI
segment.) It is never given ``--skip-usrclk``: it sets the user clocks a GBS
asks for.

fpgaconf is handed what the hook validated, never the store file: the
hook's snapshot of the GBS (an AOCX's embedded one included) is written to
``<lock dir>/<fme>.gbs`` while the FME is locked, and removed afterwards.
It must be a real file: fpgaconf canonicalizes the path and refuses symlinks
and anything but a regular file, so neither ``/dev/fd/N`` nor ``/proc``
paths of a memfd would do. One name per FME keeps what a killed hook leaves
there to one file, which the next programming of that FME replaces.

The child must never program unlocked: it runs in its own process group,
gets SIGKILL from the kernel when the hook dies (``PR_SET_PDEATHSIG``), is
killed with its whole group on every way out of
:meth:`FpgaconfProgrammer.program`, and inherits the FME lock's descriptors,
so the lock stays held while it (or anything it started) lives.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

import structlog

from fpga_crihook.bitstream import Bitstream, BitstreamFacts
from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port
from fpga_crihook.errors import DeadlineError, DeviceError, ProgrammingError, SettingsError
from fpga_crihook.locking import FmeLock
from fpga_crihook.settings import DEFAULT_PATH, Settings, declared

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_SECONDS = 0.01

OUTPUT_LINES = 5  # of fpgaconf's output, the last lines go into an error
OUTPUT_LINE_CHARS = 200
OUTPUT_TAIL_BYTES = 4096


class PciAddress(NamedTuple):
    """``SSSS:BB:DD.F``, split into the numbers fpgaconf wants."""

    segment: int
    bus: int
    device: int
    function: int

    @classmethod
    def parse(cls, text: str) -> "PciAddress":
        """Split ``0000:5e:00.0`` (the form sysfs directory names have)."""
        segment, bus, rest = text.split(":")
        device, function = rest.split(".")
        return cls(int(segment, 16), int(bus, 16), int(device, 16), int(function, 16))

    def fpgaconf_options(self) -> list[str]:
        """The options that select this card, in hex as OPAE writes them."""
        return [
            "--segment",
            f"0x{self.segment:04x}",
            "-B",
            f"0x{self.bus:02x}",
            "-D",
            f"0x{self.device:02x}",
            "-F",
            f"0x{self.function:x}",
        ]


class FpgaconfProgrammer:
    """Programs a port's card by running ``fpgaconf`` on the bitstream."""

    def __init__(self, settings: Settings) -> None:
        self._executable = find_executable(settings.fpgaconf)
        self._limit: TimeLimit = settings.fpgaconf_limit
        self._busy: TimeLimit = settings.busy_limit

    def program(self, port: Port, bitstream: Bitstream, lock: FmeLock) -> None:
        """Run fpgaconf for *port*'s card; raise :class:`ProgrammingError` when it fails."""
        address = self._card_address(port)
        with _gbs_file(bitstream, lock) as gbs_path:
            argv = [self._executable, *address.fpgaconf_options(), str(gbs_path)]
            structlog.get_logger().debug("running fpgaconf", argv=argv)
            self._run(argv, f"fpgaconf programming port {port.name} with {bitstream.source}", lock)

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
        """Check that fpgaconf could be told to program *port*, without running it."""
        self._card_address(port)

    def _card_address(self, port: Port) -> PciAddress:
        """The PCI address that makes fpgaconf program *port*, which must be port 0."""
        require_port_zero(port, self._busy)
        address = port.pci_address
        if address is None:
            raise DeviceError(
                f"port {port.name}: no PCI device above {port.sysfs_dir}, so "
                "fpgaconf cannot be told which card to program"
            )
        return PciAddress.parse(address)

    def _run(self, argv: list[str], what: str, lock: FmeLock) -> None:
        # Its output goes to the lock directory (root's, not TMPDIR); fpgaconf gets PATH and
        # nothing else of the environment: OPAE's library reads WITH_ASE, LIBOPAE_LOG and
        # LIBOPAE_LOGFILE from it (libopae-c init.c), and under crun the hook's environment
        # is the runtime's own.
        with tempfile.TemporaryFile(dir=lock.path.parent) as output:
            try:
                child = subprocess.Popen(
                    argv,
                    env={"PATH": os.environ.get("PATH") or DEFAULT_PATH},
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                    pass_fds=lock.fds,
                    preexec_fn=_dies_with(os.getpid()),  # noqa: PLW1509 (the hook has no threads)
                )
            except OSError as error:
                raise ProgrammingError(f"{what}: cannot run {argv[0]}: {error.strerror}") from None
            except subprocess.SubprocessError as error:
                raise ProgrammingError(f"{what}: cannot start {argv[0]}: {error}") from None
            countdown = self._limit.start()
            try:
                finished = _exits_within(child, countdown.left())
            finally:
                _kill_group(child)
            if not finished:
                kind = ProgrammingError if countdown.cut_by is None else DeadlineError
                raise kind(
                    f"{what} did not finish within {countdown.span()}, so it was killed"
                    f"{_output_tail(output)}"
                )
            if child.returncode != 0:
                raise ProgrammingError(
                    f"{what} failed with {_exit_status(child.returncode)}{_output_tail(output)}"
                )


def require_port_zero(port: Port, busy: TimeLimit) -> None:
    """Refuse a port fpgaconf cannot program: it would reprogram port 0 of the FME instead."""
    port_id = port.read_port_id(busy)
    if port_id != 0:
        raise SettingsError(
            f"port {port.name} is port {port_id} of {port.fme.name}, and fpgaconf always "
            "programs port 0 of an FME: it would reprogram another port, which the container "
            f"may not own, instead of {port.name}. Use the ioctl programmer "
            f"({declared('programmer').env_var}=ioctl), which programs any port"
        )


def find_executable(name: str) -> str:
    """The fpgaconf to run: *name* itself when it holds a slash, else looked up on PATH."""
    if os.sep in name:
        if os.access(name, os.X_OK) and os.path.isfile(name):
            return name
        raise SettingsError(
            f"the fpgaconf programmer needs {name}, which is not an executable "
            f"file: install OPAE's fpgaconf or fix {declared('fpgaconf').env_var}"
        )
    found = shutil.which(name)
    if found is None:
        raise SettingsError(
            f"the fpgaconf programmer needs {name!r}, which is not on PATH "
            f"({os.environ.get('PATH', '')}): install OPAE's fpgaconf or set "
            f"{declared('fpgaconf').env_var} to its path"
        )
    return found


@contextlib.contextmanager
def _gbs_file(bitstream: Bitstream, lock: FmeLock) -> Iterator[Path]:
    """The hook's snapshot of the GBS image as a file fpgaconf can open, beside the lock file."""
    path = lock.path.with_name(f"{lock.fme.name}.gbs")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a hook that was killed: this FME's lock is ours now
        fd = os.open(path, flags, 0o600)
    except OSError as error:
        raise _gbs_file_error(bitstream, path, error) from None
    try:
        try:
            with open(fd, "wb") as gbs:
                gbs.write(bitstream.image)
        except OSError as error:  # e.g. ENOSPC: tens of MiB go to the lock directory
            raise _gbs_file_error(bitstream, path, error) from None
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _gbs_file_error(bitstream: Bitstream, path: Path, error: OSError) -> ProgrammingError:
    return ProgrammingError(
        f"cannot write the GBS of {bitstream.source} to {path} for fpgaconf: "
        f"{error.strerror} (the lock directory holds it while fpgaconf runs)"
    )


def _dies_with(parent: int) -> Callable[[], None]:
    """What the child runs before exec: ask the kernel for SIGKILL when *parent* dies."""
    import ctypes  # noqa: PLC0415 (only this path needs it)

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork, called after it
    arguments = [ctypes.c_ulong(value) for value in (signal.SIGKILL, 0, 0, 0)]  # unsigned longs

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, *arguments) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the hook died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def _exits_within(child: "subprocess.Popen[bytes]", seconds: float) -> bool:
    """Wait up to *seconds* for *child* to exit, without reaping it.

    Unreaped (``WNOWAIT``), the child's PID, and so its process group's ID,
    cannot be taken by another process before :func:`_kill_group` has killed
    the group.
    """
    ends_at = time.monotonic() + seconds
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while os.waitid(os.P_PID, child.pid, flags) is None:
        left = ends_at - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_POLL_SECONDS, left))
    return True


def _kill_group(child: "subprocess.Popen[bytes]") -> None:
    """Kill the child's whole process group (the child too, if it still runs), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _exit_status(returncode: int) -> str:
    if returncode < 0:
        return f"signal {-returncode}"
    return f"exit status {returncode}"


def _output_tail(output: IO[bytes]) -> str:
    """fpgaconf's last output lines, on one line, bounded."""
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - OUTPUT_TAIL_BYTES))
    lines = [
        line.strip()[:OUTPUT_LINE_CHARS]
        for line in output.read().decode("utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    if not lines:
        return " and printed nothing"
    return ": " + " | ".join(lines[-OUTPUT_LINES:])
