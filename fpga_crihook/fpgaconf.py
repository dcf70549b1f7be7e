"""OPAE's ``fpgaconf`` tool as programmer (DESIGN.md section 5).

fpgaconf picks the card by PCI address, which comes from the port's place in
the sysfs device tree, and always programs port 0 of that card's FME (its
``main()`` passes slot 0 in every release): any other port is refused.
Its options (OPAE ``tools/fpgaconf``): ``--segment``, ``-B`` bus, ``-D``
device, ``-F`` function, each a number that C's ``strtoul(..., 0)`` reads,
so hex with ``0x``. (``-S`` is the socket ID in fpgaconf, not the PCI
segment.) It is never given ``--skip-usrclk``: it sets the user clocks a GBS
asks for. fpgaconf is handed what the hook validated, never the store file:
the hook's snapshot of the GBS (an AOCX's embedded one included) is written
to a private temporary file for the call.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

import structlog

from fpga_crihook.bitstream import Bitstream, BitstreamFacts
from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port
from fpga_crihook.errors import ProgrammingError, SettingsError
from fpga_crihook.settings import Settings

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

    def program(self, port: Port, bitstream: Bitstream) -> None:
        """Run fpgaconf for *port*'s card; raise :class:`ProgrammingError` when it fails."""
        address = self._card_address(port)
        with _gbs_file(bitstream) as gbs_path:
            argv = [self._executable, *address.fpgaconf_options(), str(gbs_path)]
            structlog.get_logger().debug("running fpgaconf", argv=argv)
            self._run(argv, port, bitstream)

    def rehearse(self, port: Port, bitstream: BitstreamFacts) -> None:
        """Check that fpgaconf could be told to program *port*, without running it."""
        self._card_address(port)

    def _card_address(self, port: Port) -> PciAddress:
        """The PCI address that makes fpgaconf program *port*, which must be port 0."""
        require_port_zero(port, self._busy)
        address = port.pci_address
        if address is None:
            raise ProgrammingError(
                f"port {port.name}: no PCI device above {port.sysfs_dir}, so "
                "fpgaconf cannot be told which card to program"
            )
        return PciAddress.parse(address)

    def _run(self, argv: list[str], port: Port, bitstream: Bitstream) -> None:
        what = f"fpgaconf programming port {port.name} with {bitstream.source}"
        with tempfile.TemporaryFile() as output:
            countdown = self._limit.start()
            try:
                finished = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=countdown.left(),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise ProgrammingError(
                    f"{what} did not finish within {countdown.span()}, so it was killed"
                    f"{_output_tail(output)}"
                ) from None
            except OSError as error:
                raise ProgrammingError(f"{what}: cannot run {argv[0]}: {error.strerror}") from None
            if finished.returncode != 0:
                raise ProgrammingError(
                    f"{what} failed with {_exit_status(finished.returncode)}{_output_tail(output)}"
                )


def require_port_zero(port: Port, busy: TimeLimit) -> None:
    """Refuse a port fpgaconf cannot program: it would reprogram port 0 of the FME instead."""
    port_id = port.read_port_id(busy)
    if port_id != 0:
        raise ProgrammingError(
            f"port {port.name} is port {port_id} of {port.fme.name}, and fpgaconf always "
            "programs port 0 of an FME: it would reprogram another port, which the container "
            f"may not own, instead of {port.name}. Use the ioctl programmer "
            "(FPGA_CRIHOOK_PROGRAMMER=ioctl), which programs any port"
        )


def find_executable(name: str) -> str:
    """The fpgaconf to run: *name* itself when it holds a slash, else looked up on PATH."""
    if os.sep in name:
        if os.access(name, os.X_OK) and os.path.isfile(name):
            return name
        raise SettingsError(
            f"the fpgaconf programmer needs {name}, which is not an executable "
            "file: install OPAE's fpgaconf or fix FPGA_CRIHOOK_FPGACONF"
        )
    found = shutil.which(name)
    if found is None:
        raise SettingsError(
            f"the fpgaconf programmer needs {name!r}, which is not on PATH "
            f"({os.environ.get('PATH', '')}): install OPAE's fpgaconf or set "
            "FPGA_CRIHOOK_FPGACONF to its path"
        )
    return found


@contextlib.contextmanager
def _gbs_file(bitstream: Bitstream) -> Iterator[Path]:
    """A private temporary copy of the hook's snapshot of the GBS image."""
    try:
        fd, name = tempfile.mkstemp(prefix="fpga-crihook-", suffix=".gbs")  # mode 0600
    except OSError as error:
        raise _temporary_gbs_error(bitstream, error) from None
    try:
        try:
            with os.fdopen(fd, "wb") as gbs:
                gbs.write(bitstream.image)
        except OSError as error:  # e.g. ENOSPC: tens of MiB go to the temporary directory
            raise _temporary_gbs_error(bitstream, error) from None
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _temporary_gbs_error(bitstream: Bitstream, error: OSError) -> ProgrammingError:
    return ProgrammingError(
        f"cannot write the GBS of {bitstream.source} to a temporary file for "
        f"fpgaconf in {tempfile.gettempdir()}: {error.strerror} (TMPDIR chooses the directory)"
    )


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
