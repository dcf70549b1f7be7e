"""logs: what operators read, where it goes, and when stderr gets the events."""

import io
import json
from pathlib import Path

import pytest
import structlog

from fpga_crihook import logs
from fpga_crihook.logs import LogFormat, StderrFacts


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


@pytest.mark.parametrize(
    ("on_terminal", "asked", "chosen", "shown"),
    [
        (False, False, False, None),  # the runtime's stderr: one line on failure only
        (False, False, True, None),  # a format in the config file is for the journal and file
        (False, True, False, LogFormat.JSON),
        (False, True, True, LogFormat.JSON),
        (True, False, False, LogFormat.CONSOLE),  # lines for people
        (True, True, False, LogFormat.CONSOLE),
        (True, False, True, LogFormat.JSON),  # a format chosen anywhere is kept
        (True, True, True, LogFormat.JSON),
    ],
)
def test_events_reach_stderr_only_when_asked_for_or_on_a_terminal(
    on_terminal: bool, asked: bool, chosen: bool, shown: LogFormat | None
) -> None:
    facts = StderrFacts(on_terminal=on_terminal, events_asked_for=asked, format_chosen=chosen)

    assert logs.stderr_format(facts, LogFormat.JSON) is shown


@pytest.mark.parametrize("asked", [False, True], ids=["quiet", "events"])
def test_the_failure_line_is_written_only_when_the_events_are_not_on_stderr(asked: bool) -> None:
    stream = io.StringIO()
    facts = StderrFacts(on_terminal=False, events_asked_for=asked, format_chosen=False)
    sinks = logs.configure("info", LogFormat.JSON, None, stream, stderr=facts)

    structlog.get_logger().error("prestart failed", error="no bitstream for region X")
    logs.report_failure("no bitstream for region X", sinks)

    *events, last = stream.getvalue().splitlines()
    if asked:
        assert (events, json.loads(last)["event"]) == ([], "prestart failed")
    else:
        assert (events, last) == ([], "fpga-crihook: no bitstream for region X")


def test_syslog_says_why_it_failed_once_then_is_given_up(tmp_path: Path) -> None:
    syslog = logs.Syslog(str(tmp_path / "no-such-socket"))

    first = syslog.send("info", "{}")
    later = syslog.send("error", "{}")

    assert (first, later) == ("No such file or directory", None)
