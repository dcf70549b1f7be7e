"""One hook at a time per FME (docs/design.md#locking).

Reprogramming goes through the FME, so the check-program-verify sequence for
one FME must not interleave with another hook's. ``flock`` on a file per FME
in the lock directory does that. The lock belongs to the open file, not to a
process: the kernel drops it when the last descriptor of that open file is
closed. A child handed the descriptor (fpgaconf) therefore keeps every other
hook off the FME for as long as it lives, even if the hook itself is killed.

A lock keeps hooks apart only if they all lock the same file: the directory
must be a real directory of root's (or of the user running the command) that
nobody else can write to, lock files are never reached through a symlink, and a hook whose
locked file was removed or replaced while it waited locks the file now at
the path instead. A file can still be removed while a hook holds it (an
operator's cleanup of /run): a hook that comes later would create and lock a
new one. So the holder also locks the FME's own sysfs directory, which no
one can remove while the card is there; a newcomer that got a new lock file
still waits for that.
"""

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import structlog

from fpga_crihook import files, trust
from fpga_crihook.deadline import Countdown, TimeLimit
from fpga_crihook.devices import Fme
from fpga_crihook.errors import DeviceError, LockError

_POLL_SECONDS = 0.02


class FmeLock(NamedTuple):
    """The held lock of one FME."""

    fme: Fme
    path: Path
    fd: int  # the locked open file: a child that inherits it holds the lock as well
    guard_fd: int  # the FME's sysfs directory, locked too

    @property
    def fds(self) -> tuple[int, int]:
        """Both locked descriptors: a child must inherit both to hold the lock."""
        return (self.fd, self.guard_fd)


@contextlib.contextmanager
def fme_lock(fme: Fme, lock_dir: Path, limit: TimeLimit) -> Iterator[FmeLock]:
    """Hold the exclusive lock of *fme*, waiting for it no longer than *limit* allows."""
    path = lock_dir / f"{fme.name}.lock"
    countdown = limit.start()
    dir_fd = _open_lock_dir(lock_dir)
    try:
        fd = _acquire(dir_fd, fme, path, countdown)
    finally:
        os.close(dir_fd)
    try:
        guard_fd = _acquire_guard(fme, path, countdown)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield FmeLock(fme, path, fd, guard_fd)
    finally:
        # Each lock ends with the last descriptor of its open file.
        os.close(guard_fd)
        os.close(fd)


def _open_lock_dir(lock_dir: Path) -> int:
    """The lock directory, made ``0700`` if missing, opened without following a symlink."""
    try:
        lock_dir.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(lock_dir, 0o700)
        fd = os.open(lock_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if os.path.islink(lock_dir):
            raise LockError(
                f"the lock directory {lock_dir} is a symlink: refusing it, as hooks "
                "that reach their lock files by different paths do not keep each other out"
            ) from None
        raise LockError(f"cannot use the lock directory {lock_dir}: {error.strerror}") from None
    why = "refusing it, as others could remove or replace lock files"
    return trust.require_open(
        fd, lock_dir, subject=f"the lock directory {lock_dir}", why=why, error=LockError
    )


def _acquire(dir_fd: int, fme: Fme, path: Path, countdown: Countdown) -> int:
    """Lock the file at *path*, and make sure it is still the one there once locked."""
    waiting_since: float | None = None
    while True:
        fd = _open_lock_file(dir_fd, path)
        held = False
        try:
            if not _try_lock(fd, path):
                if waiting_since is None:
                    waiting_since = _announce_wait(fme, path)
                _wait_for_lock(
                    fd,
                    path,
                    countdown,
                    f"FME {fme.name} stayed locked by another hook for {countdown.span()}; "
                    f"its lock file is {path}",
                )
            held = _is_the_file_at(dir_fd, path, fd)
        finally:
            if not held:
                os.close(fd)
        if held:
            break
        if countdown.over():
            raise LockError(
                f"the lock file {path} kept being removed or replaced while this hook "
                f"locked it, for {countdown.span()}"
            )
    if waiting_since is not None:
        structlog.get_logger().info(
            "got the FME lock",
            fme=fme.name,
            waited_ms=round((time.monotonic() - waiting_since) * 1000, 1),
        )
    return fd


def _acquire_guard(fme: Fme, path: Path, countdown: Countdown) -> int:
    """Lock the FME's sysfs directory: only a hook whose lock file was removed under it
    ever finds it taken (every hook takes its lock file first)."""
    try:
        fd = os.open(fme.sysfs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise DeviceError(
            f"cannot open FME {fme.name}'s sysfs directory {fme.sysfs_dir} to lock it: "
            f"{error.strerror}"
        ) from None
    try:
        _wait_for_lock(
            fd,
            fme.sysfs_dir,
            countdown,
            f"FME {fme.name} stayed locked by another hook for {countdown.span()}: "
            f"that hook holds {fme.sysfs_dir} locked, while its lock file {path} "
            "was removed or replaced under it (do not clean the lock directory "
            "while hooks run)",
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_lock_file(dir_fd: int, path: Path) -> int:
    try:
        return files.open_regular(path.name, os.O_RDWR | os.O_CREAT, dir_fd=dir_fd)
    except files.NotRegularFile:
        raise LockError(f"the lock file {path} is not a regular file: remove it") from None
    except OSError as error:
        raise LockError(f"cannot create the lock file {path}: {error.strerror}") from None


def _announce_wait(fme: Fme, path: Path) -> float:
    structlog.get_logger().info(
        "waiting for another hook to finish with the FME", fme=fme.name, lock=str(path)
    )
    return time.monotonic()


def _wait_for_lock(fd: int, path: Path, countdown: Countdown, busy: str) -> None:
    """Poll for the lock of *fd* (the file at *path*) until *countdown* is over; then
    raise the countdown's busy error, saying *busy*."""
    while not _try_lock(fd, path):
        if countdown.over():
            raise countdown.still_busy(busy)
        time.sleep(min(_POLL_SECONDS, countdown.left()))


def _is_the_file_at(dir_fd: int, path: Path, fd: int) -> bool:
    """True when the locked file is still the one at *path* (not removed, not replaced)."""
    try:
        current = os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise LockError(f"cannot look at the lock file {path}: {error.strerror}") from None
    locked = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino)


def _try_lock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:  # e.g. ENOLCK: the lock dir is on a file system without flock
        raise LockError(f"cannot lock {path}: {error.strerror}") from None
    return True
