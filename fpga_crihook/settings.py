"""The hook's own settings: each declared once, and the value the code below the CLI takes.

:data:`SCHEMA` declares every setting once: its key (the long option name and
the node config file's key), environment variable, kind of value, default,
bounds and help. The command group's options (:mod:`fpga_crihook.cli`), the
config file's keys and checks (:mod:`fpga_crihook.nodeconfig`), ``check``'s
report of the settings in force and the table in ``docs/settings.md``
(``python -m fpga_crihook.settings --markdown``) all come from it.

A value is read as its kind's click parameter type reads it, from an option,
an environment variable or the config file alike, so a bad value is refused
in the same words wherever it was given.
"""

import dataclasses
import enum
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from fpga_crihook import logs
from fpga_crihook.deadline import DEADLINE_VARIABLE, DEFAULT_DEADLINE, Deadline, TimeLimit
from fpga_crihook.errors import SettingsError
from fpga_crihook.settingtypes import MAX_SECONDS, PathSetting, Seconds

DEFAULT_PATH = "/sbin:/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin"
REAL_SYSFS = Path("/sys")


class ProgrammerKind(enum.StrEnum):
    """How a bitstream reaches the hardware."""

    IOCTL = "ioctl"
    FPGACONF = "fpgaconf"
    SIM = "sim"


class Kind(enum.Enum):
    """What a setting's value is: how it is read and spelt in a config file, whether it can
    be a relative path; its value is how the docs describe it."""

    PATH = "a path"
    FILE = "a path to a file"  # never a directory: the config file
    SECONDS = "seconds"
    CHOICE = "one of"
    FLAG = "`true` or `false` (env var also `1`, `yes`, `on` / `0`, `no`, `off`)"
    PROGRAM = "a name looked up on `PATH`, or a path"
    SOCKET = "a socket path, or one of"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting, declared once."""

    key: str  # the long option (--key) and the node config file's key
    env_var: str
    kind: Kind
    default: Any  # None: unset (no log file, no metrics)
    title: str  # how the docs name it
    help: str | None = None  # its line in --help
    choices: tuple[str, ...] = ()  # CHOICE: the values; SOCKET: the words taken besides a path
    case_sensitive: bool = True
    above_zero: bool = False  # SECONDS: 0 itself is refused
    metavar: str | None = None
    in_config_file: bool = True  # False: the config file's own path
    asks_for_events: bool = False  # given as an option or env var: events on stderr too

    @property
    def option(self) -> str:
        """The long option, ``--key``."""
        return f"--{self.key}"

    @property
    def name(self) -> str:
        """The Python name: click's parameter name and :class:`Settings`' field."""
        return self.key.replace("-", "_")

    def param_type(self) -> "click.ParamType[Any]":
        """The click type that reads the value from an option, a variable or the config file."""
        if self.kind in (Kind.PATH, Kind.FILE):
            return PathSetting(dir_okay=self.kind is Kind.PATH)
        if self.kind is Kind.SECONDS:
            return Seconds(above_zero=self.above_zero)
        if self.kind is Kind.CHOICE:
            return click.Choice(self.choices, case_sensitive=self.case_sensitive)
        return click.BOOL if self.kind is Kind.FLAG else click.STRING

    def convert(self, value: Any) -> Any:
        """*value* as the setting takes it; raises ValueError with click's sentence."""
        try:
            return self.param_type().convert(value, None, None)
        except click.BadParameter as error:
            raise ValueError(error.message) from None

    def is_relative_path(self, value: Any) -> bool:
        """True when *value* names a path the working directory would change."""
        if value is None:
            return False
        if self.kind in (Kind.PATH, Kind.FILE):
            return not Path(value).is_absolute()
        if self.kind is Kind.SOCKET:
            return value not in self.choices and not os.path.isabs(value)
        if self.kind is Kind.PROGRAM:  # a bare name is looked up on PATH
            return "/" in value and not os.path.isabs(value)
        return False

    def described(self) -> str:
        """The values it takes, for the docs."""
        text: str = self.kind.value
        if self.kind is Kind.SECONDS:
            return f"{text}, {'above ' if self.above_zero else ''}0 to {MAX_SECONDS:g}"
        if self.choices:
            words = ", ".join(f"`{choice}`" for choice in self.choices)
            return f"{text} {words}{'' if self.case_sensitive else ' (any case)'}"
        return text

    def shown_default(self) -> str:
        """The default, for the docs."""
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, float):
            return f"`{self.default:g}`"
        return "none" if self.default is None else f"`{self.default}`"


CONFIG_FILE = Setting(
    "config-file",
    "FPGA_CRIHOOK_CONFIG",
    Kind.FILE,
    Path("/etc/fpga-crihook/config.toml"),
    "node config file",
    "Node config file (TOML): settings under their long option names. "
    "Option > env var > config file > default; a missing file is fine.",
    in_config_file=False,
)
# In the order of --help and of check's report.
SCHEMA = (
    CONFIG_FILE,
    Setting(
        "sysfs",
        "FPGA_CRIHOOK_SYSFS",
        Kind.PATH,
        REAL_SYSFS,
        "sysfs root",
        "Root of the sysfs tree.",
    ),
    Setting(
        "devfs",
        "FPGA_CRIHOOK_DEVFS",
        Kind.PATH,
        Path("/dev"),
        "devfs root",
        "Root of the device nodes.",
    ),
    Setting(
        "bitstreams",
        "FPGA_CRIHOOK_BITSTREAMS",
        Kind.PATH,
        Path("/srv/intel.com/fpga"),
        "bitstream store",
        "Bitstream store: <interface-id>/<afu-id>.gbs or .aocx.",
    ),
    Setting(
        "programmer",
        "FPGA_CRIHOOK_PROGRAMMER",
        Kind.CHOICE,
        ProgrammerKind.IOCTL.value,
        "programmer",
        "ioctl (kernel PR ioctl), fpgaconf (OPAE tool) or sim (simulated sysfs only).",
        choices=tuple(kind.value for kind in ProgrammerKind),
    ),
    Setting(
        "fpgaconf",
        "FPGA_CRIHOOK_FPGACONF",
        Kind.PROGRAM,
        "fpgaconf",
        "fpgaconf path",
        "The fpgaconf executable (looked up on PATH).",
    ),
    Setting(
        "fpgaconf-timeout",
        "FPGA_CRIHOOK_FPGACONF_TIMEOUT",
        Kind.SECONDS,
        60.0,
        "fpgaconf time limit",
        "Seconds fpgaconf may take before it is killed and programming fails.",
    ),
    Setting(
        "lock-dir",
        "FPGA_CRIHOOK_LOCK_DIR",
        Kind.PATH,
        Path("/run/fpga-crihook"),
        "lock dir",
        "Directory of the per-FME lock files.",
    ),
    Setting(
        "lock-timeout",
        "FPGA_CRIHOOK_LOCK_TIMEOUT",
        Kind.SECONDS,
        30.0,
        "lock wait",
        "Seconds to wait for another hook to release an FME.",
    ),
    Setting(
        "busy-timeout",
        "FPGA_CRIHOOK_BUSY_TIMEOUT",
        Kind.SECONDS,
        3.0,
        "EBUSY retry time (sysfs reads, device opens)",
        "Seconds to retry sysfs reads and exclusive device opens that fail with EBUSY.",
    ),
    Setting(
        "deadline",
        DEADLINE_VARIABLE,
        Kind.SECONDS,
        DEFAULT_DEADLINE,
        "deadline for the whole run",
        "Seconds the whole run may take, every wait included (keep it below the hooks.d timeout).",
        above_zero=True,
    ),
    Setting(
        "dry-run",
        "FPGA_CRIHOOK_DRY_RUN",
        Kind.FLAG,
        False,
        "dry run",
        "Do every check but program nothing.",
    ),
    Setting(
        "log-level",
        "FPGA_CRIHOOK_LOG_LEVEL",
        Kind.CHOICE,
        "info",
        "log level",
        choices=logs.LEVELS,
        case_sensitive=False,
        asks_for_events=True,
    ),
    Setting(
        "log-format",
        "FPGA_CRIHOOK_LOG_FORMAT",
        Kind.CHOICE,
        logs.LogFormat.JSON.value,
        "log format (stderr, log file)",
        choices=tuple(log_format.value for log_format in logs.LogFormat),
        asks_for_events=True,
    ),
    Setting(
        "log-file",
        "FPGA_CRIHOOK_LOG_FILE",
        Kind.PATH,
        None,
        "log file",
        "Also append events to this file (a regular file).",
    ),
    Setting(
        "syslog",
        "FPGA_CRIHOOK_SYSLOG",
        Kind.SOCKET,
        logs.SYSLOG_AUTO,
        "syslog (the journal)",
        "Send events to syslog (the journal): auto means /dev/log when it exists.",
        choices=(logs.SYSLOG_AUTO, logs.SYSLOG_OFF),
        metavar="auto|off|SOCKET",
    ),
    Setting(
        "metrics-dir",
        "FPGA_CRIHOOK_METRICS_DIR",
        Kind.PATH,
        None,
        "metrics directory",
        "Keep fpga_crihook.prom here for node-exporter's textfile collector.",
    ),
)
_BY_KEY = {setting.key: setting for setting in SCHEMA}
# The settings a config file may hold, each setting but the file's own path.
IN_CONFIG_FILE = tuple(setting for setting in SCHEMA if setting.in_config_file)
# Given as an option or an env var, these put the events on stderr too (logs.stderr_format).
ASKING_FOR_EVENTS = tuple(setting for setting in SCHEMA if setting.asks_for_events)


def declared(key: str) -> Setting:
    """The setting whose key (long option name) is *key*."""
    return _BY_KEY[key]


_DEFAULT_PROGRAMMER = ProgrammerKind(declared("programmer").default)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where the hook looks, how it programs, and how long it may wait (defaults: the schema's)."""

    sysfs: Path = declared("sysfs").default
    devfs: Path = declared("devfs").default
    bitstreams: Path = declared("bitstreams").default
    programmer: ProgrammerKind = _DEFAULT_PROGRAMMER
    fpgaconf: str = declared("fpgaconf").default
    lock_dir: Path = declared("lock-dir").default
    dry_run: bool = declared("dry-run").default
    lock_timeout: float = declared("lock-timeout").default
    busy_timeout: float = declared("busy-timeout").default
    fpgaconf_timeout: float = declared("fpgaconf-timeout").default
    metrics_dir: Path | None = declared("metrics-dir").default  # None: no metrics
    # Started when the settings are made, i.e. when the CLI starts: every wait draws on it.
    deadline: Deadline = dataclasses.field(default_factory=lambda: Deadline.start(DEFAULT_DEADLINE))

    @classmethod
    def from_values(cls, values: Mapping[str, Any], deadline: Deadline) -> "Settings":
        """The settings for *values* (each setting's value by :attr:`Setting.name`; the log
        settings are for :mod:`fpga_crihook.logs`) and the run's started *deadline*."""
        names = {field.name for field in dataclasses.fields(cls)} - {"deadline", "programmer"}
        chosen = {name: values[name] for name in names}
        return cls(**chosen, programmer=ProgrammerKind(values["programmer"]), deadline=deadline)

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
                f"set {declared('sysfs').env_var} to a directory other than /sys"
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


TABLE_START, TABLE_END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def markdown_table() -> str:
    """The settings as the Markdown table of ``docs/settings.md``, between its markers."""
    rows = [
        "| setting | option | env var | config key | value | default |",
        "|---|---|---|---|---|---|",
        *(
            f"| {setting.title} | `{setting.option}` | `{setting.env_var}` | "
            f"{f'`{setting.key}`' if setting.in_config_file else '-'} | "
            f"{setting.described()} | {setting.shown_default()} |"
            for setting in SCHEMA
        ),
    ]
    return "\n".join([TABLE_START, *rows, TABLE_END])


if __name__ == "__main__":  # python -m fpga_crihook.settings --markdown
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m fpga_crihook.settings --markdown")
    print(markdown_table())
