"""Where the hook's output goes: events to the journal and the log file, one line to stderr.

runc throws a hook's stderr away when it exits 0 and pastes all of it into
the container's error when it fails (DESIGN.md section 2), so by default
stderr carries nothing on success and exactly one plain line on failure,
``fpga-crihook: <sentence>``. The structured events (JSON) go to syslog,
which on a systemd node is the journal (``journalctl -t fpga-crihook``), and
to the log file when one is set. Someone who asks for events on stderr gets
them there too, and then the failure is the last of those events.

Nothing here may fail the hook or hold it up: an unusable log file, an
absent, dead or full syslog socket and a closed or broken stderr each cost at
most a warning event and a few milliseconds. stdout is never written: a
runtime may treat a hook's stdout as protocol.
"""

import enum
import logging
import os
import stat
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import structlog

from fpga_crihook import files

if TYPE_CHECKING:
    from logging.handlers import SysLogHandler


class LogFormat(enum.StrEnum):
    """How events look on stderr and in the log file (the journal always gets JSON)."""

    JSON = "json"
    CONSOLE = "console"


LEVELS = ("debug", "info", "warning", "error")
IDENTIFIER = "fpga-crihook"  # journalctl -t fpga-crihook
SYSLOG_AUTO = "auto"
SYSLOG_OFF = "off"
DEV_LOG = "/dev/log"
# A full socket may hold a send this long, twice (the stdlib retries once), then syslog is
# given up for the rest of the run: the container's start does not wait for logging.
SYSLOG_SEND_TIMEOUT = 0.002
_LEADING_KEYS = (
    "timestamp",
    "level",
    "event",
    "container_id",
    "pod_namespace",
    "pod_name",
    "container_name",
)
STDERR = 2


class _Stderr:
    """stderr, written with ``write(2)`` (nothing buffered for the interpreter to flush at exit).

    The first failed write (closed, EPIPE, ENOSPC) silences it for the rest of
    the run: a broken stderr never changes the hook's exit status.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # tests pass a StringIO
        self._broken = False

    def write(self, text: str) -> None:
        if self._broken:
            return
        try:
            if self._stream is not None:
                self._stream.write(text)
                self._stream.flush()
                return
            data = text.encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(STDERR, data) :]
        except (OSError, ValueError):  # ValueError: a closed stream
            self._broken = True


class _LogFile:
    """The log file: each line in one ``write`` on an O_APPEND descriptor, so hooks running
    at once never interleave inside a line."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def open(cls, path: Path) -> "_LogFile":
        """Open *path* for appending; raise OSError when it is no regular file.

        O_NOFOLLOW: never a symlink planted where the file should be;
        O_NONBLOCK: a FIFO without a reader fails at once (ENXIO) instead of
        holding the container's start forever.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        return cls(path, files.open_regular(path, flags, mode=0o640))

    def write(self, line: str) -> OSError | None:
        """Append *line*; on failure stop writing the file and return the error."""
        if self._fd is None:
            return None
        try:
            os.write(self._fd, line.encode("utf-8", "backslashreplace"))
        except OSError as error:
            os.close(self._fd)
            self._fd = None
            return error
        return None


class _Journal:
    """Events to syslog through the stdlib's SysLogHandler, connected on the first event.

    The noop path logs nothing at info level, so it never imports
    ``logging.handlers`` nor opens a socket. The first failure (no socket,
    nobody listening, a queue still full after SYSLOG_SEND_TIMEOUT) gives
    syslog up for the rest of the run.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.failure: str | None = None  # why events stopped going to syslog
        self._handler: SysLogHandler | None = None

    def send(self, level: str, message: str) -> bool:
        """Send one event; False when syslog failed just now."""
        if self.failure is not None:
            return True
        import socket  # noqa: PLC0415 (only runs that log at their level pay for it)

        record = logging.LogRecord(IDENTIFIER, _LEVEL_NUMBERS[level], "", 0, message, None, None)
        # SysLogHandler opens a new socket whenever a send fails and sends again
        # on it: a default timeout is the one setting that reaches all of them.
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(SYSLOG_SEND_TIMEOUT)
        try:
            if self._handler is None:
                self._handler = _syslog_handler(self.address, self._give_up)
            self._handler.handle(record)
        finally:
            socket.setdefaulttimeout(previous)
        return self.failure is None

    def _give_up(self, error: BaseException | None) -> None:
        self.failure = getattr(error, "strerror", None) or str(error) or "unknown error"
        if self._handler is not None:
            self._handler.close()


_LEVEL_NUMBERS = {name.lower(): number for name, number in logging.getLevelNamesMapping().items()}


def _syslog_handler(
    address: str, give_up: Callable[[BaseException | None], None]
) -> "SysLogHandler":
    """A SysLogHandler for a unix datagram socket: facility daemon, identifier fpga-crihook."""
    import socket  # noqa: PLC0415
    from logging import handlers  # noqa: PLC0415

    class _Handler(handlers.SysLogHandler):
        append_nul = False  # as glibc's syslog(3) sends over a datagram socket
        ident = f"{IDENTIFIER}[{os.getpid()}]: "  # journald: SYSLOG_IDENTIFIER and SYSLOG_PID
        failed = False

        def emit(self, record: logging.LogRecord) -> None:
            if not self.failed:
                super().emit(record)

        def handleError(self, record: logging.LogRecord) -> None:
            # The stdlib's own prints a traceback to stderr, which is the operator's line.
            self.failed = True
            give_up(sys.exc_info()[1])

    return _Handler(address, handlers.SysLogHandler.LOG_DAEMON, socket.SOCK_DGRAM)


class _Destinations(NamedTuple):
    """Where this run's events go, and how they are rendered for stderr and the file."""

    stderr: _Stderr
    stderr_renderer: Any  # None: no events on stderr
    log_file: _LogFile | None
    file_renderer: Any
    journal: _Journal | None

    @property
    def events_on_stderr(self) -> bool:
        return self.stderr_renderer is not None


class _Events:
    """structlog's logger: each event, already filtered by level, to every destination."""

    def __init__(self, destinations: _Destinations) -> None:
        self._to = destinations

    def _emit(self, level: str, event: dict[str, Any]) -> None:
        to = self._to
        if to.journal is not None and not to.journal.send(level, _json(level, event)):
            _warn(
                "cannot send events to syslog: going on without it",
                syslog=to.journal.address,
                reason=to.journal.failure,
            )
        if to.stderr_renderer is not None:
            to.stderr.write(to.stderr_renderer(None, level, dict(event)) + "\n")
        if to.log_file is not None:
            error = to.log_file.write(to.file_renderer(None, level, dict(event)) + "\n")
            if error is not None:
                _warn(
                    "cannot write the log file: going on without it",
                    log_file=str(to.log_file.path),
                    reason=error.strerror,
                )

    def debug(self, **event: Any) -> None:
        self._emit("debug", event)

    def info(self, **event: Any) -> None:
        self._emit("info", event)

    def warning(self, **event: Any) -> None:
        self._emit("warning", event)

    def error(self, **event: Any) -> None:
        self._emit("error", event)

    def critical(self, **event: Any) -> None:
        self._emit("critical", event)


_JSON = structlog.processors.JSONRenderer()
_destinations: _Destinations | None = None


def _json(level: str, event: dict[str, Any]) -> str:
    rendered = _JSON(None, level, dict(event))
    return rendered if isinstance(rendered, str) else rendered.decode()


def _warn(event: str, **fields: Any) -> None:
    structlog.get_logger().warning(event, **fields)


def _leading_keys_first(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> dict[str, Any]:
    """Put when, how bad, what and which container first: operators read lines left to right."""
    ordered = {key: event.pop(key) for key in _LEADING_KEYS if key in event}
    ordered.update(event)
    return ordered


def configure(
    level: str = "info",
    log_format: LogFormat = LogFormat.JSON,
    log_file: Path | None = None,
    stream: TextIO | None = None,
    *,
    syslog: str = SYSLOG_OFF,
    events_on_stderr: bool = True,
    stderr_format: LogFormat | None = None,
) -> None:
    """Set up structlog for this process (call once, from the CLI).

    *syslog* is ``auto`` (``/dev/log`` when that socket exists), ``off`` or
    a socket path. *events_on_stderr* False leaves stderr to
    :func:`report_failure`'s one line; *stderr_format* (default: *log_format*)
    is how events look there. *stream* stands in for stderr in tests.
    """
    global _destinations  # noqa: PLW0603 (one logging set-up per process, as structlog's own)
    problems: list[tuple[str, dict[str, Any]]] = []
    file = None
    if log_file is not None:
        try:
            file = _LogFile.open(log_file)
        except OSError as error:
            reason = error.strerror or str(error)
            problems.append(
                (
                    "cannot open the log file: going on without it",
                    {"log_file": str(log_file), "reason": reason},
                )
            )
    _destinations = _Destinations(
        _Stderr(stream),
        _renderer(stderr_format or log_format) if events_on_stderr else None,
        file,
        _renderer(log_format),
        _journal(syslog),
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _leading_keys_first,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_: _Events(_destinations),
        cache_logger_on_first_use=False,
    )
    for event, fields in problems:
        _warn(event, **fields)


def _renderer(log_format: LogFormat) -> Any:
    return _JSON if log_format is LogFormat.JSON else structlog.dev.ConsoleRenderer(colors=False)


def _journal(syslog: str) -> _Journal | None:
    address = syslog_address(syslog)
    return None if address is None else _Journal(address)


def syslog_address(syslog: str) -> str | None:
    """The socket a ``--syslog`` value sends events to: None for ``off``, and for ``auto``
    where there is no ``/dev/log`` socket."""
    if syslog == SYSLOG_OFF:
        return None
    if syslog != SYSLOG_AUTO:
        return syslog
    try:
        is_socket = stat.S_ISSOCK(os.stat(DEV_LOG).st_mode)
    except OSError:
        return None
    return DEV_LOG if is_socket else None


def report_failure(sentence: str) -> None:
    """The one line an operator reads in the pod's events, unless events already go to stderr.

    Written after the failure's event, so that it is stderr's last line.
    """
    if _destinations is not None and _destinations.events_on_stderr:
        return
    say(f"{IDENTIFIER}: {sentence}")


def say(line: str) -> None:
    """One plain line on stderr, whatever state stderr is in."""
    stderr = _destinations.stderr if _destinations is not None else _Stderr()
    stderr.write(line + "\n")


def keep_standard_descriptors_open() -> None:
    """Put /dev/null on a closed stdin, stdout or stderr.

    A runtime or a shell may start the hook with one of them closed; the next
    file the hook opened would then get that number, and a line meant for
    stderr would land in the log file or a lock file.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def bind(**context: str | None) -> None:
    """Add fields to every later event of this process (container id, pod, ...)."""
    structlog.contextvars.bind_contextvars(**context)
