"""Where the hook's output goes: events to the journal and the log file, one line to stderr.

runc throws a hook's stderr away when it exits 0 and pastes all of it into
the container's error when it fails (docs/design.md#runtime-call), so by
default stderr carries nothing on success and exactly one plain line on failure,
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
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

import structlog

from fpga_crihook import files

if TYPE_CHECKING:
    import socket


class LogFormat(enum.StrEnum):
    """How events look on stderr and in the log file (the journal always gets JSON)."""

    JSON = "json"
    CONSOLE = "console"


LEVELS = ("debug", "info", "warning", "error")
IDENTIFIER = "fpga-crihook"  # journalctl -t fpga-crihook
SYSLOG_AUTO = "auto"
SYSLOG_OFF = "off"
DEV_LOG = "/dev/log"
# A full socket may hold a send this long, twice (a failed send is tried once more on a new
# connection, as the stdlib's SysLogHandler does), then syslog is given up for the rest of
# the run: the container's start does not wait for logging.
SYSLOG_SEND_TIMEOUT = 0.002
_DAEMON = 3  # the syslog facility: <sys/syslog.h>
_SEVERITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}  # <sys/syslog.h>
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


class StderrFacts(NamedTuple):
    """What the CLI knows of stderr and of what the run asked for: the facts
    :func:`stderr_format` decides on."""

    on_terminal: bool
    events_asked_for: bool  # a log level or format given as an option or an env var
    format_chosen: bool  # a log format set anywhere, the config file too


# Events on stderr in the log format: what a caller that asks for nothing gets (tests).
EVENTS_ASKED_FOR = StderrFacts(on_terminal=False, events_asked_for=True, format_chosen=True)


def stderr_format(facts: StderrFacts, log_format: LogFormat) -> LogFormat | None:
    """How this run's events look on stderr, or ``None``: none go there.

    stderr is the runtime's: nothing on success, one line on failure, unless
    someone asks for the events (a log level or format given as an option or
    an env var) or reads stderr on a terminal, where they are lines for people
    unless a format was chosen.
    """
    if not (facts.on_terminal or facts.events_asked_for):
        return None
    if facts.on_terminal and not facts.format_chosen:
        return LogFormat.CONSOLE
    return log_format


class Stderr:
    """stderr, written with ``write(2)`` (nothing buffered for the interpreter to flush at exit).

    The first failed write (closed, EPIPE, ENOSPC) silences it for the rest of
    the run: a broken stderr never changes the hook's exit status.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # tests pass a StringIO
        self._broken = False

    def write(self, text: str) -> None:
        """Write *text*, or nothing once stderr has failed."""
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


class LogFile:
    """The log file: each line in one ``write`` on an O_APPEND descriptor, so hooks running
    at once never interleave inside a line."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def open(cls, path: Path) -> "LogFile":
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


class Syslog:
    """Events to syslog over a unix datagram socket, connected on the first event: one
    datagram each, ``<PRI>fpga-crihook[PID]: {json}`` (facility daemon), as syslog(3) sends.

    The noop path logs nothing at info level, so it never opens the socket.
    The first failure (no socket, nobody listening, a queue still full after
    SYSLOG_SEND_TIMEOUT) gives syslog up for the rest of the run.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        self._given_up = False

    def send(self, level: str, message: str) -> str | None:
        """Send one event; return why syslog failed if it failed on this one (it is then
        given up, and later events are not sent)."""
        if self._given_up:
            return None
        priority = _DAEMON << 3 | _SEVERITIES[level]
        datagram = f"<{priority}>{IDENTIFIER}[{os.getpid()}]: {message}".encode()
        try:
            self._send(datagram)
        except OSError as error:
            self._given_up = True
            self._close()
            return error.strerror or str(error) or "unknown error"
        return None

    def _send(self, datagram: bytes) -> None:
        if self._socket is None:
            self._socket = self._connected()
        try:
            self._socket.send(datagram)
        except OSError:  # e.g. the daemon restarted: a new connection, once
            self._close()
            self._socket = self._connected()
            self._socket.send(datagram)

    def _connected(self) -> "socket.socket":
        import socket  # noqa: PLC0415 (only runs that log at their level pay for it)

        connection = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        connection.settimeout(SYSLOG_SEND_TIMEOUT)
        try:
            connection.connect(self.address)
        except OSError:
            connection.close()
            raise
        return connection

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


Render = Callable[[str, dict[str, Any]], str]  # level and event to a line


class Sinks(NamedTuple):
    """Where this run's events go, and how each destination renders them."""

    stderr: Stderr
    stderr_render: Render | None  # None: no events on stderr
    log_file: LogFile | None
    file_render: Render
    syslog: Syslog | None


class _Events:
    """structlog's logger: each event, already filtered by level, to every sink."""

    def __init__(self, sinks: Sinks) -> None:
        self._to = sinks

    def _emit(self, level: str, event: dict[str, Any]) -> None:
        to = self._to
        if to.syslog is not None and (reason := to.syslog.send(level, _json(level, event))):
            _warn(
                "cannot send events to syslog: going on without it",
                syslog=to.syslog.address,
                reason=reason,
            )
        if to.stderr_render is not None:
            to.stderr.write(to.stderr_render(level, event) + "\n")
        if to.log_file is not None:
            error = to.log_file.write(to.file_render(level, event) + "\n")
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
    stderr: StderrFacts = EVENTS_ASKED_FOR,
) -> Sinks:
    """Set up structlog for this process (call once, from the CLI); return where events go,
    for :func:`report_failure`.

    *syslog* is ``auto`` (``/dev/log`` when that socket exists), ``off`` or
    a socket path. *stderr* holds the facts :func:`stderr_format` decides on;
    *stream* stands in for stderr in tests.
    """
    problems: list[dict[str, Any]] = []
    file = None
    if log_file is not None:
        try:
            file = LogFile.open(log_file)
        except OSError as error:
            problems.append({"log_file": str(log_file), "reason": error.strerror or str(error)})
    on_stderr = stderr_format(stderr, log_format)
    address = syslog_address(syslog)
    sinks = Sinks(
        Stderr(stream),
        None if on_stderr is None else _render(on_stderr),
        file,
        _render(log_format),
        None if address is None else Syslog(address),
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
        logger_factory=lambda *_: _Events(sinks),
        cache_logger_on_first_use=False,
    )
    for fields in problems:
        _warn("cannot open the log file: going on without it", **fields)
    return sinks


def _render(log_format: LogFormat) -> Render:
    if log_format is LogFormat.JSON:
        return _json
    console = structlog.dev.ConsoleRenderer(colors=False)
    return lambda level, event: str(console(None, level, dict(event)))


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


def report_failure(sentence: str, sinks: Sinks | None) -> None:
    """The one line an operator reads in the pod's events, unless this run's events already
    go to stderr (*sinks*: what :func:`configure` returned; None: not configured).

    Written after the failure's event, so that it is stderr's last line.
    """
    if sinks is not None and sinks.stderr_render is not None:
        return
    (Stderr() if sinks is None else sinks.stderr).write(f"{IDENTIFIER}: {sentence}\n")


def say(line: str) -> None:
    """One plain line on stderr, whatever state stderr is in."""
    Stderr().write(line + "\n")


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
