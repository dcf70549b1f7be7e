"""Structured logs: JSON lines (or console lines) on stderr and, optionally, a file.

stdout is never written: a runtime may treat a hook's stdout as protocol.
Each line is written with a single ``write`` on a descriptor opened with
O_APPEND, so lines of hooks running at once do not interleave in the file.
"""

import enum
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog


class LogFormat(enum.StrEnum):
    """How log lines look."""

    JSON = "json"
    CONSOLE = "console"


LEVELS = ("debug", "info", "warning", "error")
_LEADING_KEYS = ("timestamp", "level", "event", "container_id", "pod_namespace", "pod_name")


class _LineWriter:
    """A structlog logger that writes each rendered line to stderr and the log file."""

    def __init__(self, stream: TextIO, file_fd: int | None, log_file: Path | None = None) -> None:
        self._stream = stream
        self._file_fd = file_fd
        self._log_file = log_file

    def msg(self, message: str) -> None:
        line = message + "\n"
        self._stream.write(line)
        self._stream.flush()
        if self._file_fd is not None:
            try:
                os.write(self._file_fd, line.encode("utf-8", "backslashreplace"))
            except OSError as error:
                self._stop_writing_file(error)

    def _stop_writing_file(self, error: OSError) -> None:
        """A full or failing log disk must not fail the hook: go on with stderr alone."""
        if self._file_fd is not None:
            os.close(self._file_fd)
        self._file_fd = None
        self._stream.write(
            f"fpga-crihook: cannot write log file {self._log_file}: "
            f"{error.strerror}; logging to stderr only\n"
        )
        self._stream.flush()

    debug = info = warning = error = critical = msg


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
) -> None:
    """Set up structlog for this process (call once, from the CLI)."""
    file_fd = None
    if log_file is not None:
        try:
            file_fd = os.open(
                log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640
            )
        except OSError as error:
            sys.stderr.write(
                f"fpga-crihook: cannot open log file {log_file}: "
                f"{error.strerror}; logging to stderr only\n"
            )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    writer = _LineWriter(stream or sys.stderr, file_fd, log_file)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _leading_keys_first,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )


def bind(**context: str) -> None:
    """Add fields to every later event of this process (container id, pod, ...)."""
    structlog.contextvars.bind_contextvars(**context)
