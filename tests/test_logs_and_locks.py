"""logs and locking: what operators read, and one hook per FME at a time."""

import errno
import fcntl
import io
import json
import os
from pathlib import Path

import pytest
import structlog

from fpga_crihook import logs
from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Driver, Fme
from fpga_crihook.errors import LockError
from fpga_crihook.locking import fme_lock
from fpga_crihook.settings import Settings


def test_json_lines_lead_with_time_level_event_and_container(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "hook.log"
    logs.configure("info", logs.LogFormat.JSON, log_file, stream)
    structlog.contextvars.clear_contextvars()
    logs.bind(container_id="abc", pod_name="p")
    structlog.get_logger().info("port programmed", port="dfl-port.0")
    structlog.get_logger().debug("hidden at info")
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert list(event)[:5] == ["timestamp", "level", "event", "container_id", "pod_name"]
    assert event["port"] == "dfl-port.0"
    assert log_file.read_text() == stream.getvalue()
    structlog.contextvars.clear_contextvars()


def _limit(seconds: float) -> TimeLimit:
    return Settings(lock_timeout=seconds).lock_limit


def _fme() -> Fme:
    return Fme(Driver.DFL, "dfl-fme.3", Path("/nonexistent"), Path("/nonexistent"))


def test_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream)
    holder = os.open(tmp_path / "dfl-fme.3.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with (
            pytest.raises(LockError, match="stayed locked by another hook"),
            fme_lock(_fme(), tmp_path, _limit(0.2)),
        ):
            pass
    finally:
        os.close(holder)
    assert "waiting for another hook" in stream.getvalue()
    with fme_lock(_fme(), tmp_path, _limit(0.2)):
        pass


def test_lock_dir_is_created(tmp_path: Path) -> None:
    with fme_lock(_fme(), tmp_path / "run" / "fpga-crihook", _limit(0)):
        assert (tmp_path / "run" / "fpga-crihook" / "dfl-fme.3.lock").exists()


def test_a_lock_dir_that_cannot_be_made_is_named_as_the_directory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "fpga-crihook"
    not_a_dir.write_text("")
    with (
        pytest.raises(LockError, match=f"cannot create the lock directory {not_a_dir}: "),
        fme_lock(_fme(), not_a_dir, _limit(0)),
    ):
        pass


def test_a_lock_error_other_than_contention_is_a_lock_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with (
        pytest.raises(LockError, match="cannot lock .*dfl-fme.3.lock: No locks available"),
        fme_lock(_fme(), tmp_path, _limit(1)),
    ):
        pass
