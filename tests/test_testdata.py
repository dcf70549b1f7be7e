"""testdata: the shipped node is what the generator writes, the hooks.d file, and the demo."""

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "testdata"))

import generate  # testdata/ is not a package


def _tree(root: Path) -> dict[str, str]:
    """Every path below *root* with what it is: a file's bytes digest or a link's target."""
    entries = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                entries[relative] = "-> " + os.readlink(path)
            elif path.is_file():
                entries[relative] = str(path.stat().st_size)
    return entries


@pytest.mark.parametrize("name", sorted(generate.BUILDERS))
def test_shipped_node_is_what_the_generator_writes(tmp_path: Path, name: str) -> None:
    shipped = REPO / "testdata" / name
    generate.BUILDERS[name](tmp_path / name)
    assert _tree(tmp_path / name) == _tree(shipped)
    for relative, kind in _tree(shipped).items():
        if not kind.startswith("->"):
            assert filecmp.cmp(shipped / relative, tmp_path / name / relative, shallow=False)


@pytest.mark.parametrize("name", sorted(generate.BUILDERS))
def test_shipped_node_links_resolve_inside_the_tree(name: str) -> None:
    shipped = (REPO / "testdata" / name).resolve()
    for link in shipped.rglob("*"):
        if link.is_symlink():
            target = link.resolve()
            assert target.exists(), link
            assert shipped in target.parents, link


@pytest.mark.parametrize(("name", "class_dir"), [("node", "fpga_region"), ("opae-node", "fpga")])
def test_each_shipped_node_runs_one_driver_family(name: str, class_dir: str) -> None:
    classes = REPO / "testdata" / name / "sys" / "class"
    assert [path.name for path in classes.iterdir()] == [class_dir]


def test_hooks_d_file_matches_current_and_legacy_mode_only() -> None:
    hook = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    assert hook["version"] == "1.0.0"
    assert hook["stages"] == ["prestart"]
    assert hook["hook"]["args"][1:] == ["prestart"]
    assert hook["hook"]["timeout"] > 30
    [(key, value)] = hook["when"]["annotations"].items()
    for regex in (key, value):
        assert regex.startswith("^")
        assert regex.endswith("$")
    assert re.search(key, "com.intel.fpga.mode")
    assert not re.search(key, "xcom.intel.fpga.mode")
    for mode in ("fpga.intel.com/region", "intel.com/fpga-region"):
        assert re.search(value, mode)
    for other in ("fpga.intel.com/af", "fpga.intel.com/region2", "xintel.com/fpga-region"):
        assert not re.search(value, other)


def test_demo_programs_then_skips() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "testdata" / "demo.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "now holds AFU f7df405cbd7acf7222f144b0b93acd18" in result.stdout
    assert '"event": "port programmed"' in result.stdout
    assert '"event": "port already holds the AFU: skipped"' in result.stdout
