"""hooks.d files as models: the 1.0.0 format's schema first, then typed access."""

import json

import pytest
from helpers import REPO

from fpga_crihook import hooksd, jsondocs
from fpga_crihook.commands.check import shipped_hooks_file


def test_the_shipped_hooks_d_file_reads_into_the_model() -> None:
    document = jsondocs.read_bounded(REPO / "hooks.d" / "intel-fpga-crihook.json")

    assert hooksd.schema_problems(document) == []
    hooks_file = hooksd.parse(document)

    assert hooks_file.version == "1.0.0"
    assert hooks_file.hook.path == "/opt/intel/fpga-crihook/bin/fpga-crihook"
    assert hooks_file.hook.args == ("fpga-crihook", "prestart")
    assert hooks_file.hook.timeout == 90
    assert hooks_file.stages == ("prestart",)
    assert dict(hooks_file.when.annotations) == {
        r"^com\.intel\.fpga\.mode$": r"^(fpga\.intel\.com/region|intel\.com/fpga-region)$"
    }
    assert (hooks_file.when.always, hooks_file.when.has_bind_mounts) == (None, None)
    assert hooks_file == hooksd.parse(jsondocs.read_bounded(shipped_hooks_file()))


def test_a_hooks_d_timeout_written_as_a_whole_float_is_kept_as_written() -> None:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["timeout"] = 90.0  # JSON Schema's integer takes it
    document["when"]["hasBindMounts"] = True

    assert hooksd.schema_problems(document) == []
    hooks_file = hooksd.parse(document)

    assert hooks_file.hook.timeout == 90.0
    assert isinstance(hooks_file.hook.timeout, float)
    assert hooks_file.when.has_bind_mounts is True


def test_a_hooks_d_file_breaking_the_format_says_where() -> None:
    problems = hooksd.schema_problems({"version": "0.1.0", "hook": "/bin/true"})

    assert [problem.where for problem in problems] == ["top level", "top level", "hook", "version"]


@pytest.mark.parametrize(
    ("document", "program"),
    [
        ({"version": "0.1.0", "hook": {"path": "/usr/bin/fpga-crihook"}}, "fpga-crihook"),
        ({"version": "1.0.0", "hook": {}}, ""),
        ({"version": "1.0.0", "hook": "/usr/bin/fpga-crihook"}, None),
        ({"hook": {"path": "/usr/bin/fpga-crihook"}}, None),
        ([], None),
    ],
)
def test_the_program_of_a_hooks_d_file_of_any_version_is_read(
    document: object, program: str | None
) -> None:
    assert hooksd.program(document) == program
