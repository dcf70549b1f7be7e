"""The one exception family of fpga-crihook.

Every message is a complete sentence a node operator can act on: the CLI
prints it as the single error event and exits 1. Messages never carry
container environment values other than ``FPGA_*`` ones.
"""


class HookError(Exception):
    """Base class: anything that must stop the container from starting."""


class InputError(HookError):
    """The state on stdin, the bundle's config.json or the container's requests are invalid."""


class DeviceError(HookError):
    """A port or FME in sysfs is missing, unreadable, busy or unhealthy."""


class DeviceBusyError(DeviceError):
    """A sysfs attribute kept failing with EBUSY for the whole busy timeout."""


class BitstreamError(HookError):
    """A bitstream is missing from the store or is not a valid GBS/AOCX file."""


class ProgrammingError(HookError):
    """Programming a port failed, or the port does not hold the AFU afterwards."""


class LockError(HookError):
    """The per-FME lock could not be taken in time."""


class SettingsError(HookError):
    """The hook's own settings are inconsistent (for example ``sim`` on the real /sys)."""


class DeadlineError(HookError):
    """The run's deadline (``FPGA_CRIHOOK_DEADLINE``) ran out before a step could begin."""
