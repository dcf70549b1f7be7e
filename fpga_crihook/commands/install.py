"""Putting a bitstream into the store under the name the hook looks up (docs/design.md#store).

A GBS goes to ``<interface-id>/<afu-id>.gbs`` from its own metadata. An AOCX
carries its board's AFU ID, shared by every OpenCL kernel of that board, so
the operator names the ID it is requested by: ``<interface-id>/<ID>.aocx``.

The copy is validated as the hook would validate it and appears under its
name in one rename: a hook never sees a half-written bitstream. What install
creates passes the store's rule (``0755`` directories, a ``0644`` file of the
user running it, whatever the umask), and it refuses to install where the
hook would refuse to program.
"""

import contextlib
import enum
import filecmp
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import click

from fpga_crihook.bitstream import detect_kind, inspect_bitstream
from fpga_crihook.commands import output
from fpga_crihook.errors import BitstreamError, InputError
from fpga_crihook.ids import InvalidIdError, requested_id
from fpga_crihook.inforce import SettingsInForce
from fpga_crihook.snapshot import open_regular_file
from fpga_crihook.store import BitstreamKind, open_directory, open_entry
from fpga_crihook.sysfs import is_within

_COPY_CHUNK = 1 << 20


class InstallStatus(enum.StrEnum):
    """What :func:`install_file` did."""

    INSTALLED = "installed"
    REPLACED = "replaced"
    IDENTICAL = "identical"  # the store already held the same bytes


class InstallResult(NamedTuple):
    """Where the file went, and anything the operator should know about it."""

    target: Path
    status: InstallStatus
    shadowed_by: Path | None  # a .gbs of the same name, which the hook takes first


def install_file(source: Path, store: Path, afu_id: str | None, force: bool) -> InstallResult:
    """Copy *source* into *store* under its canonical name.

    A different file already there is replaced only with *force*.
    """
    kind = detect_kind(source)
    interface_id, stored_afu = _identify(source, kind, afu_id)
    target = store / interface_id / f"{stored_afu}.{kind}"
    if not is_within(target.parent, store):
        raise BitstreamError(
            f"{target.parent} resolves outside the bitstream store {store}: the hook "
            "refuses bitstreams there, so nothing is installed"
        )
    _make_directories(target.parent)
    os.close(open_directory(store, [interface_id]))  # what the hook would refuse, install does
    status = InstallStatus.INSTALLED
    if os.path.lexists(target):
        # A link is never the same file: the hook follows none in the store.
        same = not os.path.islink(target) and filecmp.cmp(source, target, shallow=False)
        if same and _accepted(store, target):
            return InstallResult(target, InstallStatus.IDENTICAL, _shadow(target, kind))
        if not (same or force):
            problem = (
                "it is a symbolic link, which the hook does not follow"
                if os.path.islink(target)
                else "it holds a different bitstream"
            )
            raise BitstreamError(f"refusing to replace {target}: {problem} (--force replaces it)")
        status = InstallStatus.REPLACED
    _copy_atomically(source, target, kind, (interface_id, stored_afu), afu_id)
    return InstallResult(target, status, _shadow(target, kind))


def _accepted(store: Path, target: Path) -> bool:
    """True when the hook would take *target* from the store (owner, mode, no link)."""
    try:
        os.close(open_entry(store, target))
    except BitstreamError:
        return False
    return True


def _make_directories(directory: Path) -> None:
    """Make *directory* and its missing parents with mode ``0755`` (less what the umask
    takes away), never group-writable: a store directory others can write to is one
    the hook refuses, and ``mkdir -p`` would give the parents ``0777`` less the umask."""
    missing = [path for path in (directory, *directory.parents) if not path.exists()]
    try:
        for path in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another install made it meanwhile
                os.mkdir(path, 0o755)
    except OSError as error:
        raise BitstreamError(f"cannot create {error.filename}: {error.strerror}") from None


def summary(result: InstallResult, source: Path) -> str:
    """What happened, for the operator."""
    lines = {
        InstallStatus.INSTALLED: f"installed {source} as {result.target}",
        InstallStatus.REPLACED: f"replaced {result.target} with {source}",
        InstallStatus.IDENTICAL: f"{result.target} already holds this file: nothing to do",
    }
    text = output.printable(lines[result.status])  # a path's line break stays escaped
    if result.shadowed_by is not None:
        text += "\n" + output.printable(
            f"note: {result.shadowed_by} exists too and the hook takes it first; "
            "remove it to have the AOCX programmed"
        )
    return text


def _identify(source: Path, kind: BitstreamKind, afu_id: str | None) -> tuple[str, str]:
    """Validate *source*; return the interface ID and the AFU ID it is stored under."""
    if kind is BitstreamKind.GBS and afu_id is not None:
        raise InputError(
            f"{source} is a GBS: it is installed under the AFU ID of its own "
            "metadata, so --afu-id is refused"
        )
    if kind is BitstreamKind.AOCX and afu_id is None:
        raise InputError(
            f"{source} is an AOCX: give the AFU ID that pods request it by "
            "with --afu-id (the embedded ID is the board's, shared by all its kernels)"
        )
    bitstream = inspect_bitstream(source, kind, None)
    interface_id, embedded_afu = bitstream.interface_id, bitstream.afu_id
    return interface_id, embedded_afu if afu_id is None else _requested_id(afu_id)


def _requested_id(text: str) -> str:
    try:
        return requested_id(text)
    except InvalidIdError as error:
        raise InputError(f"--afu-id: {error}") from None


def _copy_atomically(
    source: Path,
    target: Path,
    kind: BitstreamKind,
    expected: tuple[str, str],
    afu_id: str | None,
) -> None:
    """Copy to a temporary file beside *target*, check the copy, fsync, rename."""
    try:
        fd, name = tempfile.mkstemp(prefix=".installing-", suffix=f".{kind}", dir=target.parent)
    except OSError as error:
        raise BitstreamError(f"cannot write into {target.parent}: {error.strerror}") from None
    staged = Path(name)
    try:
        _copy_into(source, fd)
        # The copy, not the source, is what lands: check it, as the source may have changed.
        if _identify(staged, kind, afu_id) != expected:
            raise BitstreamError(f"{source} changed while it was being installed: try again")
        os.chmod(staged, 0o644)
        os.replace(staged, target)
    except OSError as error:
        raise BitstreamError(f"cannot install {target}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
    _sync_directory(target.parent)


def _copy_into(source: Path, fd: int) -> None:
    with open(fd, "wb") as writer, open(open_regular_file(source, None), "rb") as reader:
        shutil.copyfileobj(reader, writer, _COPY_CHUNK)
        writer.flush()
        os.fsync(writer.fileno())


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shadow(target: Path, kind: BitstreamKind) -> Path | None:
    if kind is not BitstreamKind.AOCX:
        return None
    gbs = target.with_suffix(f".{BitstreamKind.GBS}")
    return gbs if os.path.lexists(gbs) else None


@click.command("install")
@click.option(
    "--afu-id",
    default=None,
    metavar="ID",
    help="For an AOCX (required there, refused for a GBS): the AFU ID pods request it by.",
)
@click.option("--force", is_flag=True, help="Replace a different file installed under that name.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def install(given: SettingsInForce, afu_id: str | None, force: bool, file: Path) -> None:
    """Copy a GBS or AOCX into the bitstream store under the name the hook looks up.

    A GBS goes to <interface-id>/<afu-id>.gbs from its metadata; an AOCX to
    <interface-id>/<ID>.aocx with --afu-id ID. The file is validated first
    and appears in one atomic rename; an identical file already there is
    left alone, a different one is only replaced with --force.

    \b
    Example:
        fpga-crihook install nlb_3.gbs
        fpga-crihook install --afu-id 18b79ffa2ee54aa096ef4230dafacb5f vector_add.aocx
    """
    result = install_file(file, given.settings.bitstreams, afu_id, force)
    output.echo(summary(result, file))
