"""Reading sysfs attributes the way FPGA drivers expose them.

Attributes are tiny text files. A port's ``afu_id`` can fail with EBUSY
while the port is being reprogrammed (docs/design.md#sysfs): that is retried
with a bounded backoff, within the busy time limit and the run's deadline;
any other error is reported at once. The same backoff serves the
programmers' exclusive opens of the device nodes.
"""

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fpga_crihook.deadline import Countdown, TimeLimit
from fpga_crihook.errors import DeviceError
from fpga_crihook.ids import InvalidIdError, canonical_id

MAX_ATTRIBUTE_BYTES = 4096
_FIRST_DELAY = 0.01
_LONGEST_DELAY = 0.25
_T = TypeVar("_T")


def _read_raw(path: Path) -> bytes:
    """One read of a sysfs attribute (a seam for fault-injection tests).

    O_NONBLOCK: a FIFO planted in a (simulated) tree reads as empty instead of hanging.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.read(fd, MAX_ATTRIBUTE_BYTES)
    finally:
        os.close(fd)


def retry_while_busy(attempt: Callable[[], _T], countdown: Countdown) -> _T:
    """Run *attempt*, again with growing pauses while it fails with EBUSY.

    Once *countdown* is over the last EBUSY propagates, as does any other
    :class:`OSError` at once. Every wait on a busy device goes through here;
    ``countdown.span()`` says how long it waited.
    """
    delay = _FIRST_DELAY
    while True:
        try:
            return attempt()
        except OSError as error:
            if error.errno != errno.EBUSY or countdown.over():
                raise
            time.sleep(min(delay, countdown.left()))
            delay = min(delay * 2, _LONGEST_DELAY)


def read_attribute(path: Path, busy: TimeLimit) -> str:
    """Return the attribute's text without surrounding white space.

    EBUSY is retried with growing pauses for as long as *busy* allows; then,
    and for every other error, :class:`DeviceError` is raised.
    """
    countdown = busy.start()
    try:
        raw = retry_while_busy(lambda: _read_raw(path), countdown)
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise countdown.still_busy(
                f"{path} stayed busy (EBUSY) for {countdown.span()}: "
                "the device may be in the middle of reprogramming"
            ) from None
        raise DeviceError(f"cannot read {path}: {_reason(error)}") from None
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise DeviceError(f"{path} does not hold ASCII text") from None


def read_id(path: Path, busy: TimeLimit) -> str:
    """Read an interface or AFU ID attribute in canonical form."""
    text = read_attribute(path, busy)
    try:
        return canonical_id(text)
    except InvalidIdError as error:
        raise DeviceError(f"{path}: {error}") from None


def read_int(path: Path, busy: TimeLimit) -> int:
    """Read a decimal integer attribute such as a port's ``id``."""
    text = read_attribute(path, busy)
    if not (text.isascii() and text.isdecimal() and len(text) <= 9):
        raise DeviceError(f"{path}: {text[:40]!r} is not a small decimal number")
    return int(text)


def is_within(path: Path, root: Path) -> bool:
    """True when *path*, with every symlink resolved, lies inside *root*."""
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    return os.path.commonpath([real_root, real_path]) == real_root


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
