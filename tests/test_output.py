"""What the operator commands print for people: a string from outside (GBS metadata, a
hooks.d file, a path) is shown with what is not printable escaped, and never fails the
command or forges a line of its output."""

import json
import os
from pathlib import Path

import pytest
from helpers import AFU_1, HOOK, REGION_A, REPO, run_cli, run_on
from simnode import SimNode, add_card, gbs_bytes, gbs_metadata, write_gbs

# What a node whose locale is UTF-8 (en_US.UTF-8, say) gives Python's stdout: no
# surrogateescape, so a path that is not UTF-8 has no form there either.
STRICT_UTF_8 = {"PYTHONIOENCODING": "utf-8:strict"}


def _gbs_named(tmp_path: Path, name: str) -> Path:
    gbs = tmp_path / "named.gbs"
    gbs.write_bytes(gbs_bytes(metadata=gbs_metadata(REGION_A, AFU_1, name=name)))
    return gbs


def _not_utf_8(directory: Path, name: bytes) -> Path:
    """A path below *directory* whose last part is *name*, bytes that are not UTF-8."""
    return Path(os.fsdecode(os.fsencode(directory) + b"/" + name))


def test_gbs_info_shows_a_metadata_string_without_a_utf_8_form_escaped(
    node: SimNode, tmp_path: Path
) -> None:
    gbs = _gbs_named(tmp_path, "nlb\ud800")

    result = run_on(node, "gbs-info", str(gbs))
    as_json = run_on(node, "gbs-info", "--json", str(gbs))

    assert result.returncode == 0, result.stderr
    assert "name:           nlb\\ud800" in result.stdout.splitlines()
    assert json.loads(as_json.stdout)["names"] == ["nlb\ud800"]


def test_gbs_info_escapes_a_line_break_in_metadata_so_it_forges_no_line(
    node: SimNode, tmp_path: Path
) -> None:
    gbs = _gbs_named(tmp_path, f"nlb\nafu id:         {AFU_1}\x1b[2J")

    result = run_on(node, "gbs-info", str(gbs))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"name:           nlb\\nafu id:         {AFU_1}\\x1b[2J" in lines
    assert [line for line in lines if line.startswith("afu id:")] == [f"afu id:         {AFU_1}"]


def test_check_shows_a_hooks_file_string_without_a_utf_8_form_escaped(
    node: SimNode, tmp_path: Path
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_1)
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["path"] = "/opt/fpga\ud800/fpga-crihook"
    hooks_file = tmp_path / "fpga.json"
    hooks_file.write_text(json.dumps(document))

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr
    assert (
        f"error: {hooks_file}: hook.path /opt/fpga\\ud800/fpga-crihook does not exist"
        in result.stdout.splitlines()
    ), result.stdout


def test_devices_shows_a_path_that_is_not_utf_8_escaped(node: SimNode, tmp_path: Path) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    devfs = _not_utf_8(tmp_path, b"dev\xff")
    node.devfs.rename(devfs)
    env = node.env(FPGA_CRIHOOK_DEVFS=str(devfs), **STRICT_UTF_8)

    result = run_cli(["devices"], env)

    assert result.returncode == 0, result.stderr
    assert f"{tmp_path}/dev\\udcff/dfl-port.0" in result.stdout


@pytest.mark.parametrize("command", ["install", "program", "cdi generate"])
def test_a_summary_shows_a_path_that_is_not_utf_8_escaped(
    node: SimNode, tmp_path: Path, command: str
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    source = _not_utf_8(tmp_path, b"nlb\xff.gbs")
    source.write_bytes(gbs_bytes(REGION_A, AFU_1))
    spec = _not_utf_8(tmp_path, b"spec\xff.json")
    args = {
        "install": ["install", str(source)],
        "program": ["program", "--port", "dfl-port.0", "--force", str(source)],
        "cdi generate": ["cdi", "generate", "--hook-path", str(HOOK), "--output", str(spec)],
    }[command]

    result = run_cli(args, node.env(**STRICT_UTF_8))

    assert result.returncode == 0, result.stderr
    assert ("spec\\udcff.json" if command == "cdi generate" else "nlb\\udcff.gbs") in (
        result.stdout
    )


@pytest.mark.parametrize("command", ["install", "program", "cdi generate"])
def test_a_summary_stays_one_line_when_a_path_holds_a_line_break(
    node: SimNode, tmp_path: Path, command: str
) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    directory = tmp_path / "a\nforged"
    directory.mkdir()
    source = directory / "nlb.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_1))
    args = {
        "install": ["install", str(source)],
        "program": ["program", "--port", "dfl-port.0", "--force", str(source)],
        "cdi generate": [
            "cdi",
            "generate",
            "--hook-path",
            str(HOOK),
            "--output",
            str(directory / "spec.json"),
        ],
    }[command]

    result = run_cli(args, node.env())

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    assert "a\\nforged/" in lines[0]
