"""Reading sysfs attributes the way FPGA drivers expose them.

Attributes are tiny text files. A port's ``afu_id`` can fail with EBUSY
while the port is being reprogrammed (DESIGN.md section 3): that is retried
with a bounded backoff; any other error is reported at once.
"""

import errno
import os
import time
from pathlib import Path

from fpga_crihook.errors import DeviceBusyError, DeviceError
from fpga_crihook.ids import InvalidIdError, canonical_id

MAX_ATTRIBUTE_BYTES = 4096
_FIRST_DELAY = 0.01
_LONGEST_DELAY = 0.25


def _read_raw(path: Path) -> bytes:
    """One read of a sysfs attribute (a seam for fault-injection tests)."""
    with path.open("rb", buffering=0) as attribute:
        return attribute.read(MAX_ATTRIBUTE_BYTES)


def read_attribute(path: Path, busy_timeout: float) -> str:
    """Return the attribute's text without surrounding white space.

    EBUSY is retried with growing pauses until *busy_timeout* seconds have
    passed; then, and for every other error, :class:`DeviceError` is raised.
    """
    deadline = time.monotonic() + busy_timeout
    delay = _FIRST_DELAY
    while True:
        try:
            raw = _read_raw(path)
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise DeviceError(f"cannot read {path}: {_reason(error)}") from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceBusyError(
                    f"{path} stayed busy (EBUSY) for {busy_timeout:g} s: "
                    "the device may be in the middle of reprogramming"
                ) from None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _LONGEST_DELAY)
            continue
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise DeviceError(f"{path} does not hold ASCII text") from None


def read_id(path: Path, busy_timeout: float) -> str:
    """Read an interface or AFU ID attribute in canonical form."""
    text = read_attribute(path, busy_timeout)
    try:
        return canonical_id(text)
    except InvalidIdError as error:
        raise DeviceError(f"{path}: {error}") from None


def read_int(path: Path, busy_timeout: float) -> int:
    """Read a decimal integer attribute such as a port's ``id``."""
    text = read_attribute(path, busy_timeout)
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
