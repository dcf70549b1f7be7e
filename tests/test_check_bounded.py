"""``check`` is bounded on any input: every file up to the size limit is checked in well
under a second of CPU time, whatever it holds (YAML aliases, deep nesting, a
hundred thousand values, regexes that make a backtracking engine run away)."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO

from fpga_crihook.jsondocs import MAX_FILE_BYTES

MIB = MAX_FILE_BYTES
# Python's start and imports are not counted: the child times check_file alone.
_TIMED_CHECK = """
import json, resource, sys
from pathlib import Path
from fpga_crihook.commands.check import check_file
from fpga_crihook.settings import Settings

def cpu():
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return sum(usage.ru_utime + usage.ru_stime for usage in (own, children))

check_file(Path(sys.argv[2]), Settings())  # warm-up: yaml, jsonschema, the schemas
started = cpu()
findings = check_file(Path(sys.argv[1]), Settings())
print(json.dumps({"cpu": cpu() - started, "findings": [str(f) for f in findings]}))
"""


def _hooks_d(annotations: dict[str, str]) -> bytes:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["when"]["annotations"] = annotations
    return json.dumps(document).encode()


def _billion_laughs() -> bytes:
    lines = ["cdiVersion: 0.5.0", "kind: intel.com/fpga", 'a0: &a0 ["lol"]']
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    lines.append("devices: [{name: x, containerEdits: {env: *a9}}]")
    return "\n".join(lines).encode()


WORST_CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "yaml aliases": ("spec.yaml", _billion_laughs, "anchors or aliases"),
    "yaml, a value a line": ("spec.yaml", lambda: b"- a\n" * (MIB // 4), "more than 10000"),
    "yaml flow list": ("spec.yaml", lambda: b"[" + b"a," * (MIB // 2 - 2) + b"a]", "more than"),
    "yaml nesting": ("spec.yaml", lambda: b"[" * (MIB // 2) + b"]" * (MIB // 2), "nest"),
    "yaml block nesting": (
        "spec.yaml",
        lambda: b"".join(b" " * n + b"- \n" for n in range(1400)),
        "nested",
    ),
    "json values": ("spec.json", lambda: b"[" + b"0," * (MIB // 2 - 2) + b"0]", "more than"),
    "regex backtracking": (
        "hooks.json",
        lambda: _hooks_d({"^(.*.*)*x$": "^fpga.intel.com/region|intel.com/fpga-region$"}),
        "more than",
    ),
    "a thousand regexes": (
        "hooks.json",
        lambda: _hooks_d({f"^com.intel.fpga.mode$|^{n}$": f"^(.*.*)*{n}$" for n in range(999)}),
        "more than",
    ),
}


@pytest.mark.parametrize(("name", "content", "words"), WORST_CASES.values(), ids=WORST_CASES)
def test_check_takes_well_under_a_second_on_a_hostile_file(
    tmp_path: Path, name: str, content: Callable[[], bytes], words: str
) -> None:
    hostile, small = tmp_path / name, tmp_path / f"small{Path(name).suffix}"
    hostile.write_bytes(content())
    small.write_text('{"cdiVersion": "0.5.0"}')
    assert hostile.stat().st_size <= MIB

    result = subprocess.run(
        [sys.executable, "-c", _TIMED_CHECK, str(hostile), str(small)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cpu"] < 0.5
    errors = [finding for finding in report["findings"] if finding.startswith("error: ")]
    assert errors, report["findings"]
    assert words in errors[0]
