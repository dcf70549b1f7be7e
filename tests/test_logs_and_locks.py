"""logs: what operators read."""

import io
import json
from pathlib import Path

import structlog

from fpga_crihook import logs


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
