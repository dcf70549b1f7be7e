"""One deadline for the whole run, and the waits that draw on it (docs/design.md#deadline).

The runtime kills a hook whose hooks.d ``timeout`` runs out, in the middle of
programming if need be. So every wait of the hook (EBUSY retries, the FME
lock, fpgaconf, verification) is bounded twice: by its own setting and by
what is left of one deadline for the whole run, set below the shipped
``timeout``. The hook then fails with a sentence instead of being killed.
"""

import time
from typing import NamedTuple

from fpga_crihook.errors import BusyPastDeadlineError, DeadlineError, DeviceBusyError

DEADLINE_VARIABLE = "FPGA_CRIHOOK_DEADLINE"
DEFAULT_DEADLINE = 80.0  # seconds: below the shipped hooks.d timeout of 90
_NOTHING_LEFT = 0.05  # seconds: below this, a wait is reported as not having had any time


class Deadline(NamedTuple):
    """The end of the whole run, on the monotonic clock."""

    seconds: float
    ends_at: float

    @classmethod
    def start(cls, seconds: float) -> "Deadline":
        """A deadline *seconds* from now."""
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.ends_at - time.monotonic())

    def require(self, step: str) -> None:
        """Refuse to begin *step* (something no wait bounds, such as a PR) once the run is over."""
        if self.remaining() <= 0:
            raise DeadlineError(
                f"the hook's {self.seconds:g} s deadline ({DEADLINE_VARIABLE}) ran out "
                f"before {step}"
            )


class TimeLimit(NamedTuple):
    """How long one kind of wait may last by its own setting, under the run's deadline."""

    seconds: float
    deadline: Deadline

    def start(self) -> "Countdown":
        """A wait beginning now: it ends at its own limit or the deadline, whichever is first."""
        left = self.deadline.remaining()
        if left < self.seconds:
            return Countdown(time.monotonic() + left, left, self.deadline)
        return Countdown(time.monotonic() + self.seconds, self.seconds, None)


class Countdown(NamedTuple):
    """One wait under way."""

    ends_at: float
    seconds: float  # how long the wait may last in all
    cut_by: Deadline | None  # the run's deadline, when it (not the wait's own limit) set the end

    def left(self) -> float:
        """Seconds this wait may still take, never negative."""
        return max(0.0, self.ends_at - time.monotonic())

    def over(self) -> bool:
        """True once the wait must end."""
        return time.monotonic() >= self.ends_at

    def still_busy(self, sentence: str) -> DeviceBusyError:
        """The error for a device still busy or in use when this wait ended: one of the
        deadline's when the run's deadline, not the wait's own limit, ended it."""
        kind = DeviceBusyError if self.cut_by is None else BusyPastDeadlineError
        return kind(sentence)

    def span(self) -> str:
        """How long the wait lasted, for an error sentence ("for 3 s", "within 3 s")."""
        if self.cut_by is None:
            return f"{self.seconds:g} s"
        deadline = f"the hook's {self.cut_by.seconds:g} s deadline ({DEADLINE_VARIABLE})"
        if self.seconds < _NOTHING_LEFT:
            return f"0 s, as {deadline} had run out"
        return f"{self.seconds:.1f} s, all that was left of {deadline}"
