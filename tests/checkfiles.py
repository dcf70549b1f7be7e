"""Builders for ``check``'s tests: the hooks.d files and CDI specs it reads, and the nodes.

A hooks.d file starts as the repository's and runs the installed
``fpga-crihook``; a spec is written as JSON or YAML by its name. Each builder
writes below the directory it is given, so no test reads the machine's own.
"""

import json
from pathlib import Path
from typing import Any

import yaml
from helpers import (
    AFU_1,
    AFU_2,
    DROP_IN,
    HOOK,
    REGION_A,
    REGION_B,
    REPO,
    Completed,
    run_cli,
    two_drivers,
)
from simnode import SimCard, SimNode, add_card, write_gbs

INTEL_KIND = "intel.cdi.k8s.io/fpga"


def _repository_hooks_file() -> dict[str, Any]:
    """The repository's hooks.d file, its hook the installed fpga-crihook."""
    document: dict[str, Any] = json.loads(
        (REPO / "hooks.d" / "intel-fpga-crihook.json").read_text()
    )
    document["hook"]["path"] = str(HOOK)
    return document


def hooks_file_with(tmp_path: Path, **changes: object) -> Path:
    """``hooks.d/fpga.json`` below *tmp_path*: the repository's hooks.d file with *changes*
    (``hook__env=[...]`` sets ``hook.env``; ``None`` removes the key)."""
    document = _repository_hooks_file()
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        place = document
        for key in parents:
            place = place[key]
        if value is None:
            del place[last]
        else:
            place[last] = value
    path = tmp_path / "hooks.d" / "fpga.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def hooks_file_in(directory: Path) -> Path:
    """The repository's hooks.d file, as ``intel-fpga-crihook.json`` in *directory*."""
    return write_spec(directory / "intel-fpga-crihook.json", _repository_hooks_file())


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """Write *spec* to *path*: YAML for a ``.yaml`` name, else JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec) if path.suffix == ".yaml" else json.dumps(spec))
    return path


def intel_spec(hook_path: Path | str = DROP_IN, **hook: Any) -> dict[str, Any]:
    """A spec as Intel's FPGA device plugin writes it: one FME device, a bare hook."""
    return {
        "cdiVersion": "0.5.0",
        "kind": INTEL_KIND,
        "devices": [
            {
                "name": "dfl-fme.0",
                "containerEdits": {
                    "hooks": [{"hookName": "createRuntime", "path": str(hook_path), **hook}]
                },
            }
        ],
    }


def generated_spec(node: SimNode) -> dict[str, Any]:
    """The spec ``cdi generate`` writes for *node*."""
    result = run_cli(["cdi", "generate"], node.env())
    assert result.returncode == 0, result.stderr
    spec: dict[str, Any] = json.loads(result.stdout)
    return spec


def healthy_node(node: SimNode) -> None:
    """Both drivers' cards, and a bitstream in the store for each region."""
    two_drivers(node)
    write_gbs(node, REGION_A, AFU_1)
    write_gbs(node, REGION_B, AFU_1)


def dfl_card(node: SimNode, ports: int = 2) -> SimCard:
    """A DFL card whose ports hold AFU 1, and AFU 2's bitstream in the store."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1] * ports)
    write_gbs(node, REGION_A, AFU_2)
    return card


def lines_at(result: Completed, level: str) -> list[str]:
    """The lines of ``check``'s report at *level* (``ok``, ``warning``, ``error``)."""
    return [line for line in result.stdout.splitlines() if line.startswith(f"{level}: ")]
