"""The hook's own settings (DESIGN.md section 6).

The CLI fills a :class:`Settings` from its options and environment
variables; everything below the CLI receives it as one frozen value.
"""

import dataclasses
import enum
import math
import os
from pathlib import Path
from typing import Any

import click

from fpga_crihook.deadline import DEFAULT_DEADLINE, Deadline, TimeLimit
from fpga_crihook.errors import SettingsError

DEFAULT_PATH = "/sbin:/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin"
REAL_SYSFS = Path("/sys")
# No container start waits a day; and a runtime's hook timeout, whole seconds above the
# deadline, stays a small integer.
MAX_SECONDS = 86_400.0
_PATH_MAX, _NAME_MAX = 4095, 255  # bytes: Linux's PATH_MAX (less its NUL) and NAME_MAX


class PathSetting(click.Path):
    """The type of every path setting: a ``Path`` the system can take, refused in one line
    naming the option or variable when no system call could (a NUL character, a name
    longer than Linux's 255 bytes, a path longer than its 4095).

    Whether the path can be read is for the code that uses it to say: click's
    check would refuse every command of a user who cannot read root's
    ``0700`` lock directory, which only the hook uses.
    """

    def __init__(self, *, dir_okay: bool = True) -> None:
        super().__init__(path_type=Path, dir_okay=dir_okay, readable=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = os.fsencode(value)
        if b"\0" in text:
            self.fail("a path cannot hold a NUL character", param, ctx)
        if len(text) > _PATH_MAX or any(len(name) > _NAME_MAX for name in text.split(b"/")):
            self.fail(
                f"{len(text)} bytes is longer than a path can be ({_PATH_MAX} bytes, "
                f"{_NAME_MAX} a name)",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


class Seconds(click.FloatRange):
    """The type of every time setting: a finite number of seconds, 0 (or above 0) to a day.

    click's FloatRange alone lets ``nan`` through (it compares false with both
    bounds) and raises OverflowError on an integer too large for a float (a
    TOML file can hold one): both are refused here, as click refuses any bad
    value, in one line naming the option or variable.
    """

    name = "number of seconds"

    def __init__(self, *, above_zero: bool = False) -> None:
        super().__init__(min=0, max=MAX_SECONDS, min_open=above_zero)

    def get_metavar(self, *args: Any, **kwargs: Any) -> str:
        """``SECONDS`` in ``--help`` (click's signature differs between its versions)."""
        return "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            seconds = super().convert(value, param, ctx)
        except OverflowError:
            self.fail(f"the number is too large: at most {MAX_SECONDS:g} seconds", param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


class ProgrammerKind(enum.StrEnum):
    """How a bitstream reaches the hardware."""

    IOCTL = "ioctl"
    FPGACONF = "fpgaconf"
    SIM = "sim"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the hook looks, how it programs, and how long it may wait."""

    sysfs: Path = REAL_SYSFS
    devfs: Path = Path("/dev")
    bitstreams: Path = Path("/srv/intel.com/fpga")
    programmer: ProgrammerKind = ProgrammerKind.IOCTL
    fpgaconf: str = "fpgaconf"
    lock_dir: Path = Path("/run/fpga-crihook")
    dry_run: bool = False
    lock_timeout: float = 30.0
    busy_timeout: float = 3.0
    fpgaconf_timeout: float = 60.0
    metrics_dir: Path | None = None  # None: no metrics
    # Started when the settings are made, i.e. when the CLI starts: every wait draws on it.
    deadline: Deadline = dataclasses.field(default_factory=lambda: Deadline.start(DEFAULT_DEADLINE))

    @property
    def busy_limit(self) -> TimeLimit:
        """How long a sysfs read or an exclusive open may be retried on EBUSY."""
        return TimeLimit(self.busy_timeout, self.deadline)

    @property
    def lock_limit(self) -> TimeLimit:
        """How long to wait for another hook to release an FME."""
        return TimeLimit(self.lock_timeout, self.deadline)

    @property
    def fpgaconf_limit(self) -> TimeLimit:
        """How long fpgaconf may run."""
        return TimeLimit(self.fpgaconf_timeout, self.deadline)

    def check(self) -> None:
        """Refuse combinations that could touch real hardware by mistake."""
        if self.programmer is ProgrammerKind.SIM and _same_path(self.sysfs, REAL_SYSFS):
            raise SettingsError(
                "the sim programmer only works on a simulated sysfs tree: "
                "set FPGA_CRIHOOK_SYSFS to a directory other than /sys"
            )
        for name, value in (
            ("lock timeout", self.lock_timeout),
            ("busy timeout", self.busy_timeout),
            ("fpgaconf timeout", self.fpgaconf_timeout),
        ):
            if not value >= 0:
                raise SettingsError(f"the {name} must be zero or more seconds, not {value}")
        if not 0 < self.deadline.seconds < math.inf:
            raise SettingsError(
                f"the deadline must be a number of seconds above zero, not {self.deadline.seconds}"
            )

    def host_path(self, container_path: str) -> Path:
        """Map a host device path from ``linux.devices`` onto the configured roots."""
        path = Path(os.path.normpath(container_path))
        for real, root in ((Path("/dev"), self.devfs), (REAL_SYSFS, self.sysfs)):
            if path == real or real in path.parents:
                return root / path.relative_to(real)
        return path


def ensure_path_variable(environ: dict[str, str] | os._Environ[str]) -> None:
    """Give the hook a sane PATH: hooks.d ``env`` replaces the whole environment."""
    if not environ.get("PATH"):
        environ["PATH"] = DEFAULT_PATH


def _same_path(left: Path, right: Path) -> bool:
    return os.path.realpath(left) == os.path.realpath(right)
