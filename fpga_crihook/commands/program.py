"""Programming one port by hand (the ``program`` command), with the hook's checks.

The operator names a port and a bitstream file; the port's region must be
the one the file was built for, the card must be healthy, the FME lock is
taken, and the port must report the file's AFU afterwards: the same
check-program-verify as the hook's, through :func:`hook.ensure_port`.
"""

import dataclasses
import os
import stat
from pathlib import Path
from typing import NamedTuple

import click

from fpga_crihook.bitstream import detect_kind, inspect_bitstream
from fpga_crihook.commands import output
from fpga_crihook.devices import Port, find_port_by_name, port_from_sysfs_dir, resolve_ports
from fpga_crihook.errors import BitstreamError, DeviceError
from fpga_crihook.hook import Outcome, ensure_port
from fpga_crihook.inforce import SettingsInForce
from fpga_crihook.oci import Device
from fpga_crihook.plan import Assignment, survey
from fpga_crihook.programmers import make_programmer
from fpga_crihook.requests import Request
from fpga_crihook.settings import Settings
from fpga_crihook.store import StoreEntry

REQUEST_NAME = "manual"  # stands where FPGA_AFU_<N>'s suffix would in logs


class ManualResult(NamedTuple):
    """What happened to the port."""

    port: Port
    afu_id: str
    outcome: Outcome


def program_file(device: str, path: Path, settings: Settings, force: bool) -> ManualResult:
    """Program *path* into the port *device* (``/dev/dfl-port.0`` or ``dfl-port.0``).

    Unless *force*, a port that already holds the file's AFU is left alone
    (an AOCX is always programmed, as in the hook).
    """
    port = find_port(device, settings)
    kind = detect_kind(path)
    bitstream = inspect_bitstream(path, kind, None)
    interface_id, afu_id = bitstream.interface_id, bitstream.afu_id
    [view] = survey([port], settings.busy_limit)
    if view.interface_id != interface_id:
        raise BitstreamError(
            f"{path} was built for region {interface_id}, but port {port.name} "
            f"belongs to {port.fme.name}, whose region is {view.interface_id}"
        )
    programmer = make_programmer(settings)  # a dry run, too, checks that it can program
    result = ensure_port(
        Assignment(Request(REQUEST_NAME, interface_id, afu_id), port),
        programmer,
        settings,
        force=force,
        bitstream_file=StoreEntry(path, kind),
    )
    return ManualResult(port, afu_id, result.outcome)


def find_port(device: str, settings: Settings) -> Port:
    """The port a device path (mapped onto the devfs root) or a port name designates.

    A path to a character device is resolved by its device numbers, as the
    hook resolves a container's devices, so a udev symlink such as
    ``/dev/fpga/port0`` names its port; anything else by its name.
    """
    if "/" in device:
        node = settings.host_path(device)
        try:
            status = os.stat(node)
        except FileNotFoundError:
            raise DeviceError(f"{device} does not exist (looked for {node})") from None
        except OSError as error:
            raise DeviceError(
                f"{device} is not usable (looked for {node}): {error.strerror}"
            ) from None
        if stat.S_ISCHR(status.st_mode):
            rdev = status.st_rdev
            numbers = Device(path=device, type="c", major=os.major(rdev), minor=os.minor(rdev))
            ports = resolve_ports([numbers], settings)
            if not ports:
                raise DeviceError(f"{device} is a character device but not an FPGA port")
            return ports[0]
    name = os.path.basename(os.path.normpath(device))
    port_dir = find_port_by_name(name, settings)
    if port_dir is None:
        raise DeviceError(
            f"no FPGA port called {name} under {settings.sysfs}: "
            "`fpga-crihook devices` lists the ports of this node"
        )
    return port_from_sysfs_dir(port_dir, settings)


def summary(result: ManualResult, path: Path) -> str:
    """One line for the operator."""
    port = result.port.name
    if result.outcome is Outcome.SKIPPED:
        return f"{port} already holds AFU {result.afu_id}: left alone (--force programs it anyway)"
    if result.outcome is Outcome.WOULD_PROGRAM:
        return f"dry run: {port} would be programmed with {path} (AFU {result.afu_id})"
    return f"{port} programmed with {path}: it now holds AFU {result.afu_id}"


@click.command("program")
@click.option(
    "--port",
    "device",
    required=True,
    metavar="DEV",
    help="The port: a device path (/dev/dfl-port.0) or a port name (dfl-port.0).",
)
@click.option("--dry-run", is_flag=True, help="Do every check but program nothing.")
@click.option("--force", is_flag=True, help="Program even if the port holds the AFU already.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def program(given: SettingsInForce, device: str, dry_run: bool, force: bool, file: Path) -> None:
    """Program one port with a bitstream file by hand, with the hook's checks.

    The file must be built for the region of the port's FME, the card must be
    healthy, the FME lock is taken, and the port must report the file's AFU
    afterwards. The programmer is the one the settings name.

    \b
    Example:
        fpga-crihook program --port /dev/dfl-port.0 nlb_3.gbs
    """
    settings = given.settings
    settings = dataclasses.replace(settings, dry_run=settings.dry_run or dry_run)
    settings.check()
    # One line whatever the path holds: it is escaped before echo splits lines.
    output.echo(output.printable(summary(program_file(device, file, settings, force), file)))
