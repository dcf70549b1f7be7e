"""The bitstream store (docs/design.md#store): where a request's file lies, and who may fill it.

``<store>/<interface-id>/<afu-id>.gbs``, else ``.aocx``. Looking a file up
opens nothing: a port that already holds its AFU (every restart of an FPGA
pod) needs no more than this, so this module stays apart from the file
formats in :mod:`fpga_crihook.bitstream` and costs a container start nothing.

The hook, running as root, programs whatever file it takes from the store,
into every tenant's port: only root may choose it. So a store file is opened
by walking down from the store root, each directory opened without following
a link and checked on its descriptor, then the file opened relative to its
directory without following a link and checked on the descriptor that is
read. The file and every directory from the store root down must be owned by
root (or by the user running the command: runs by hand, tests) and writable
by nobody else (:mod:`fpga_crihook.trust`); nothing can be swapped in between
the check and the read. The store root itself is opened as the setting names
it, following a link: it, and the directories above it, are the operator's.
"""

import contextlib
import enum
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from fpga_crihook import files, trust
from fpga_crihook.errors import BitstreamError

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class BitstreamKind(enum.StrEnum):
    """The two file formats, named by their file extension."""

    GBS = "gbs"
    AOCX = "aocx"


class StoreEntry(NamedTuple):
    """A bitstream file found in the store for a request."""

    path: Path
    kind: BitstreamKind


def locate(store: Path, interface_id: str, afu_id: str) -> StoreEntry | None:
    """The store's file for a request: ``<region>/<afu>.gbs``, else ``<region>/<afu>.aocx``.

    Both IDs must already be canonical (32 hex digits), so the path cannot
    leave the store by its name; symlinks are checked when the file is opened.
    """
    for kind in BitstreamKind:
        candidate = store / interface_id / f"{afu_id}.{kind}"
        if os.path.lexists(candidate):
            return StoreEntry(candidate, kind)
    return None


def missing_message(store: Path, interface_id: str, afu_id: str) -> str:
    """The error for a request whose bitstream is not in the store."""
    stem = f"{interface_id}/{afu_id}"
    return (
        f"no bitstream for region {interface_id}, AFU {afu_id} in {store}: "
        f"expected {stem}.gbs or {stem}.aocx"
    )


def open_entry(store: Path, path: Path) -> int:
    """Open the store file *path* for reading as the hook may program it (see above).

    Returns the descriptor of a regular file that passed the rule, to be read
    and closed by the caller; raises :class:`BitstreamError` naming the path
    and the fix otherwise.
    """
    parts = _parts_below(store, path)
    dir_fd = open_directory(store, parts[:-1])
    try:
        with _opening_below(dir_fd, parts[-1], path, store):
            fd = files.open_regular(parts[-1], dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return trust.require_open(fd, path, subject=str(path), why=_WHY, error=BitstreamError)


def open_directory(store: Path, parts: Sequence[str]) -> int:
    """The store root, then each directory of *parts* below it, opened and checked in
    turn (see above); the last one's descriptor, to be closed by the caller."""
    try:
        dir_fd = os.open(store, _DIRECTORY)
    except OSError as error:
        raise BitstreamError(f"cannot open the bitstream store {store}: {error.strerror}") from None
    path = store
    try:
        _require_trusted(os.fstat(dir_fd), store)
        for part in parts:
            path = path / part
            with _opening_below(dir_fd, part, path, store):
                below = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = below
            _require_trusted(os.fstat(dir_fd), path)
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def _parts_below(store: Path, path: Path) -> tuple[str, ...]:
    try:
        parts = path.relative_to(store).parts
    except ValueError:
        parts = ()
    if not parts or ".." in parts:
        raise BitstreamError(f"{path} is not a file of the bitstream store {store}")
    return parts


@contextlib.contextmanager
def _opening_below(dir_fd: int, name: str, path: Path, store: Path) -> Iterator[None]:
    """Say why *name* in the directory open at *dir_fd* (the store's *path*) cannot be
    opened: a link, no regular file, or the system's reason."""
    try:
        yield
    except files.NotRegularFile:
        raise BitstreamError(f"{path} is not a regular file") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise BitstreamError(
                f"{path} is a symbolic link: the hook follows no link inside the bitstream "
                f"store {store} (put the file or directory itself there)"
            ) from None
        raise BitstreamError(f"cannot open {path}: {error.strerror}") from None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


_WHY = "whoever can change it chooses what the hook programs, so it programs nothing from there"


def _require_trusted(status: os.stat_result, path: Path) -> None:
    trust.require(status, path, subject=str(path), why=_WHY, error=BitstreamError)
