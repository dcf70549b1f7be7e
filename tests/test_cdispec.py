"""CDI specs as models: generated, read back (JSON and YAML), and read whatever their version."""

from pathlib import Path
from typing import Any

import hypothesis
import pytest
from helpers import AFU_1, HOOK, REGION_A, run_cli
from hypothesis import given
from hypothesis import strategies as st
from simnode import SimNode, add_card

from fpga_crihook import cdispec, jsondocs


def _generated(node: SimNode, tmp_path: Path, name: str) -> Path:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    output = tmp_path / name
    result = run_cli(["cdi", "generate", "--hook-path", str(HOOK), "-o", str(output)], node.env())
    assert result.returncode == 0, result.stderr
    return output


@pytest.mark.parametrize("name", ["spec.json", "spec.yaml"])
def test_a_generated_spec_reads_back_into_the_model_and_writes_the_same_bytes(
    node: SimNode, tmp_path: Path, name: str
) -> None:
    path = _generated(node, tmp_path, name)

    spec = cdispec.parse(cdispec.read_document(path))

    assert (spec.cdi_version, spec.kind) == ("0.5.0", "intel.com/fpga")
    assert spec.device_names == ("dfl-port.0", "dfl-port.1", "all")
    [(where, hook)] = spec.hooks()
    assert (where, hook.hook_name, hook.program) == ("containerEdits", "createRuntime", HOOK.name)
    assert hook.args == ("fpga-crihook", "createRuntime", "--cdi")
    assert [name for name, _ in spec.device_nodes()] == [
        "dfl-port.0",
        "dfl-port.1",
        "all",
        "all",
    ]
    assert spec.schema_problems() == []
    written = spec.as_yaml() if path.suffix == ".yaml" else spec.as_json()
    assert written == path.read_text()


def test_a_spec_of_another_version_is_read_whatever_its_shape(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "cdiVersion: 0.6\n"
        "kind: intel.com/fpga\n"
        "containerEdits: [not, an, object]\n"
        "devices:\n"
        "- just a name\n"
        "- name: 0\n"
        "  containerEdits:\n"
        "    deviceNodes: [{path: /dev/x, hostPath: ''}, 7]\n"
        "    hooks:\n"
        "    - {hookName: 5, path: [a], args: [fpga-crihook, 1, true], env: x, timeout: 2.5}\n"
    )

    spec = cdispec.parse(cdispec.read_document(path))

    assert (spec.cdi_version, spec.kind, spec.device_names) == (0.6, "intel.com/fpga", ("0",))
    [(where, hook)] = spec.hooks()
    assert where == "device 0"
    assert (hook.hook_name, hook.path, hook.program, hook.timeout) == (5, None, "", 2.5)
    assert (hook.args, hook.env) == (("fpga-crihook", "1", "True"), ())
    [(device, node)] = spec.device_nodes()
    assert (device, node.on_the_host) == ("0", "/dev/x")


def test_a_spec_breaking_the_format_says_where(tmp_path: Path) -> None:
    document = {"cdiVersion": "0.5.0", "kind": "intel.com/fpga", "devices": [{"name": "a!"}]}

    assert cdispec.schema_problems(document) == [
        jsondocs.SchemaProblem("devices/0", "'containerEdits' is a required property"),
        jsondocs.SchemaProblem(
            "devices/0/name", "'a!' does not match '^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$'"
        ),
    ]


def test_only_an_object_with_a_cdi_version_is_a_spec() -> None:
    assert cdispec.is_spec({"cdiVersion": None})
    assert not cdispec.is_spec({"version": "1.0.0"})
    assert not cdispec.is_spec([{"cdiVersion": "0.5.0"}])


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    (
        *("cdiVersion", "kind", "devices", "containerEdits", "deviceNodes", "hooks", "name"),
        *("path", "hostPath", "hookName", "args", "env", "timeout", "x"),
    )
)
# Objects shaped like specs: their keys mostly the spec's own, at every depth.
_SPEC_LIKE = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=40,
)


@hypothesis.settings(max_examples=300, database=None, deadline=None)
@given(document=st.dictionaries(_KEYS, _SPEC_LIKE | _JSON, max_size=6))
def test_any_object_with_a_cdi_version_reads_into_a_spec(document: dict[str, Any]) -> None:
    document.setdefault("cdiVersion", "0.7.0")

    spec = cdispec.parse(document)

    assert len(spec.hooks()) >= len(spec.container_edits.hooks)
    assert all(isinstance(name, str) for name in spec.device_names)
