"""The one exception family of fpga-crihook, and the hook's exit status for each class.

Every message is a complete sentence a node operator can act on: the CLI
prints it as the single error event and line. Messages never carry
container environment values other than ``FPGA_*`` ones.

Under crun a failed hook's output is thrown away and the pod's event says
only ``error executing hook `PATH` (exit code: N)``, so the hook's exit
status names the class of failure: each class below carries its
:class:`ExitStatus`, a subclass inherits it, and the CLI maps an error to
its status in one place. ``docs/exit-status.md`` is this table for
operators (a test keeps the two equal). The numbers follow sysexits.h where
its meaning fits; the operator commands keep status 1.
"""

import enum
from typing import ClassVar


class ExitStatus(enum.IntEnum):
    """What the hook's exit status says; stable: operators and alerts rely on the numbers."""

    SUCCESS = 0
    NOT_CLASSIFIED = 1  # Python's own status for an uncaught exception
    CONTAINER_INPUT = 65  # EX_DATAERR
    NO_BITSTREAM = 66  # EX_NOINPUT
    DEVICE = 69  # EX_UNAVAILABLE
    INTERNAL = 70  # EX_SOFTWARE
    PROGRAMMING = 74  # EX_IOERR
    DEVICE_BUSY = 75  # EX_TEMPFAIL
    SETTINGS = 78  # EX_CONFIG
    BITSTREAM_REFUSED = 79  # right after sysexits.h's last
    DEADLINE = 124  # as timeout(1) when its command times out

    @property
    def meaning(self) -> str:
        """What the status says, in the words of the docs' table and ``prestart --help``."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitStatus.SUCCESS: "success: programmed, already in place, or nothing to do",
    ExitStatus.NOT_CLASSIFIED: "the hook never reached its own error handling; "
    "an operator command failed",
    ExitStatus.CONTAINER_INPUT: "bad input from the container: its state, config.json, "
    "FPGA_* variables or devices",
    ExitStatus.NO_BITSTREAM: "no bitstream in the store for a request",
    ExitStatus.DEVICE: "device problem: a port or FME not found, unreadable or unhealthy",
    ExitStatus.INTERNAL: "internal error: a bug in fpga-crihook",
    ExitStatus.PROGRAMMING: "programming or verification failed",
    ExitStatus.DEVICE_BUSY: "device busy or in use by another process or hook",
    ExitStatus.SETTINGS: "bad setting, option or config file, or one this node cannot serve",
    ExitStatus.BITSTREAM_REFUSED: "bitstream refused: its format, the store's trust, "
    "OPAE's rules, or not the one requested",
    ExitStatus.DEADLINE: "the hook's deadline passed",
}


class HookError(Exception):
    """Base class: anything that must stop the container from starting.

    Raise one of the subclasses: a failure with no class of its own is a bug
    in this program, and reads as one to the operator.
    """

    exit_status: ClassVar[ExitStatus] = ExitStatus.INTERNAL


class InputError(HookError):
    """The state on stdin, the bundle's config.json or the container's requests are invalid."""

    exit_status = ExitStatus.CONTAINER_INPUT


class DeviceError(HookError):
    """A port or FME is not found, unreadable or unhealthy."""

    exit_status = ExitStatus.DEVICE


class DeviceBusyError(DeviceError):
    """A device stayed busy (EBUSY) or in use by another process or hook for as long as the
    hook may wait."""

    exit_status = ExitStatus.DEVICE_BUSY


class BitstreamError(HookError):
    """A bitstream is refused: not a valid GBS/AOCX, not trusted in the store, not for the
    request, or unreadable."""

    exit_status = ExitStatus.BITSTREAM_REFUSED


class NoBitstreamError(BitstreamError):
    """The store holds no bitstream for a request."""

    exit_status = ExitStatus.NO_BITSTREAM


class ProgrammingError(HookError):
    """Programming a port failed, or the port does not hold the AFU afterwards."""

    exit_status = ExitStatus.PROGRAMMING


class SettingsError(HookError):
    """The hook's own settings or config file are wrong, or do not work on this node
    (for example ``sim`` on the real /sys)."""

    exit_status = ExitStatus.SETTINGS


class LockError(SettingsError):
    """The lock directory or a lock file in it cannot be used."""


class DeadlineError(HookError):
    """The run's deadline (``FPGA_CRIHOOK_DEADLINE``) ran out before a step could begin or
    while the hook waited."""

    exit_status = ExitStatus.DEADLINE


class BusyPastDeadlineError(DeadlineError, DeviceBusyError):
    """A device was still busy when the run's deadline ended the wait: the deadline is what
    stopped the hook, and what an operator looks at first."""
