"""What the installed hook imports on each path: the every-container paths stay light.

Most containers on a node are not FPGA containers (noop) or find their AFU
in place (skip); those starts must not pay for the GBS metadata validator
(jsonschema), the AOCX reader (pyelftools) or the fpgaconf programmer, and a
noop start not for the device, bitstream and programming code either. They
do pay for pydantic's models (the state is one): that is ``make bench``'s
floor-models row, which includes what pydantic imports to build a model
(its plugin loader reads package metadata: ``importlib.metadata``).
``python -X importtime`` lists every module a run imports, on stderr.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A
from simnode import SimCard, SimNode, add_card, gbs_bytes, state_json, write_bundle, write_gbs

HEAVY = ("jsonschema", "elftools", "fpga_crihook.fpgaconf")
# A port that holds its AFU needs the store's layout, not the file formats.
NOT_ON_SKIP = (
    "fpga_crihook.bitstream",
    "fpga_crihook.snapshot",
    "fpga_crihook.gbs",
    "fpga_crihook.aocx",
)
NOT_ON_NOOP = (
    "fpga_crihook.hook",
    "fpga_crihook.bitstream",
    "fpga_crihook.devices",
    "fpga_crihook.programmers",
)


class Imports(NamedTuple):
    """The modules one run imported, and the event its last log line reported."""

    modules: frozenset[str]
    last_event: str


def _run(node: SimNode, state: str, **settings: str) -> Imports:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(HOOK), "prestart"],
        input=state,
        env=node.env(**settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    modules, events = set(), []
    for line in result.stderr.splitlines():
        if line.startswith("import time:"):
            modules.add(line.rpartition("|")[2].strip())
        else:
            events.append(json.loads(line)["event"])
    return Imports(frozenset(modules), events[-1] if events else "")


def _families(modules: frozenset[str], names: tuple[str, ...]) -> list[str]:
    """The *names* imported, each counted with its submodules."""
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


def _container(node: SimNode, tmp_path: Path, card: SimCard, afu: str) -> str:
    bundle = write_bundle(
        tmp_path / f"bundle-{afu[:4]}",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
        devices=[card.ports[0].device()],
    )
    return state_json(bundle)


def test_container_without_the_annotation_imports_nothing_heavy(
    node: SimNode, tmp_path: Path
) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=["A=b"], devices=[])

    imports = _run(node, state_json(bundle, annotated=False))

    assert imports.last_event == ""  # nothing at info level
    assert _families(imports.modules, HEAVY + NOT_ON_NOOP) == []
    assert "fpga_crihook.oci" in imports.modules  # the run did read the state


def test_container_without_the_annotation_connects_no_syslog_and_writes_no_metrics(
    node: SimNode, tmp_path: Path
) -> None:
    bundle = write_bundle(tmp_path / "bundle", env=["A=b"], devices=[])
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(tmp_path / "log.sock"))
    settings = {
        "FPGA_CRIHOOK_SYSLOG": str(tmp_path / "log.sock"),
        "FPGA_CRIHOOK_METRICS_DIR": str(tmp_path / "metrics"),
    }

    with journal:
        imports = _run(node, state_json(bundle, annotated=False), **settings)

    assert _families(imports.modules, ("logging.handlers", "prometheus_client")) == []
    assert not (tmp_path / "metrics").exists()


def test_port_already_holding_the_afu_imports_nothing_heavy(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_1)

    imports = _run(node, _container(node, tmp_path, card, AFU_1))

    assert imports.last_event == "port already holds the AFU: skipped"
    assert _families(imports.modules, HEAVY + NOT_ON_SKIP) == []
    assert "fpga_crihook.hook" in imports.modules


def test_programming_a_gbs_validates_its_metadata_without_the_aocx_reader(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)

    imports = _run(node, _container(node, tmp_path, card, AFU_2))

    assert imports.last_event == "port programmed"
    assert _families(imports.modules, HEAVY) == ["jsonschema"]


def test_programming_an_aocx_reads_it_with_pyelftools(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    aocx = node.store / REGION_A / f"{AFU_3}.aocx"
    aocx.parent.mkdir(parents=True)
    aocx.write_bytes(aocx_bytes(gbs_bytes(REGION_A, AFU_3)))

    imports = _run(node, _container(node, tmp_path, card, AFU_3))

    assert imports.last_event == "port programmed"
    assert _families(imports.modules, HEAVY) == ["jsonschema", "elftools"]
