"""One hook at a time per FME (DESIGN.md section 5).

Reprogramming goes through the FME, so the check-program-verify sequence for
one FME must not interleave with another hook's. ``flock`` on a file per FME
in the lock directory does that, and the kernel drops the lock if the hook
dies.
"""

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Fme
from fpga_crihook.errors import LockError

_POLL_SECONDS = 0.02


@contextlib.contextmanager
def fme_lock(fme: Fme, lock_dir: Path, limit: TimeLimit) -> Iterator[None]:
    """Hold the exclusive lock of *fme*, waiting for it no longer than *limit* allows."""
    path = lock_dir / f"{fme.name}.lock"
    try:
        lock_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise LockError(f"cannot create the lock directory {lock_dir}: {error.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise LockError(f"cannot create the lock file {path}: {error.strerror}") from None
    try:
        _acquire(fd, fme, path, limit)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _acquire(fd: int, fme: Fme, path: Path, limit: TimeLimit) -> None:
    countdown = limit.start()
    if _try_lock(fd, path):
        return
    log = structlog.get_logger()
    log.info("waiting for another hook to finish with the FME", fme=fme.name, lock=str(path))
    started = time.monotonic()
    while not _try_lock(fd, path):
        if countdown.over():
            raise LockError(
                f"FME {fme.name} stayed locked by another hook for {countdown.span()}; "
                f"its lock file is {path}"
            )
        time.sleep(min(_POLL_SECONDS, countdown.left()))
    log.info(
        "got the FME lock", fme=fme.name, waited_ms=round((time.monotonic() - started) * 1000, 1)
    )


def _try_lock(fd: int, path: Path) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:  # e.g. ENOLCK: the lock dir is on a file system without flock
        raise LockError(f"cannot lock {path}: {error.strerror}") from None
    return True
