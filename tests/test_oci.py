"""oci: the state on stdin and the bundle's config.json."""

import ast
import io
import json
from pathlib import Path

import pydantic
import pytest
from helpers import REPO

from fpga_crihook.errors import InputError
from fpga_crihook.oci import (
    Device,
    RuntimeConfig,
    State,
    load_config,
    parse_config,
    parse_device,
    parse_state,
    read_state,
)


def _state(bundle: Path, **fields: object) -> bytes:
    document = {
        "ociVersion": "1.0.2",
        "id": "abc",
        "status": "creating",
        "pid": 1,
        "bundle": str(bundle),
        "annotations": {},
    }
    document.update(fields)
    return json.dumps(document).encode()


def test_state_keeps_id_bundle_and_annotations(tmp_path: Path) -> None:
    raw = _state(tmp_path, annotations={"com.intel.fpga.mode": "fpga.intel.com/region"})
    state = read_state(io.BytesIO(raw))
    assert (state.id, state.bundle) == ("abc", str(tmp_path))
    assert state.is_fpga_region_container


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fpga.intel.com/region", True),
        ("intel.com/fpga-region", True),
        ("fpga.intel.com/af", False),
        ("fpga.intel.com/region ", False),
        (None, False),
    ],
)
def test_annotation_gate(tmp_path: Path, value: str | None, expected: bool) -> None:
    notes = {} if value is None else {"com.intel.fpga.mode": value}
    assert parse_state(_state(tmp_path, annotations=notes)).is_fpga_region_container is expected


def test_podman_state_sample_parses(tmp_path: Path) -> None:
    document = json.loads((REPO / "testdata/oci/podman-state.json").read_text())
    document["bundle"] = str(tmp_path)
    state = parse_state(json.dumps(document).encode())
    assert state.is_fpga_region_container
    assert len(state.id) == 64


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"id": "x"}', "field 'bundle'"),
        (b'{"bundle": 42}', "field 'bundle'"),
        (b'{"bundle": "relative/dir"}', "absolute path"),
        (b'{"bundle": "/nonexistent/bundle"}', "not an existing directory"),
        (b'{"bundle": "/", "annotations": {"a": 1}}', "field 'annotations.a'"),
        (b'{"bundle": "/", "annotations": []}', "field 'annotations'"),
    ],
)
def test_bad_state_names_the_problem(raw: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse_state(raw)


def test_oversized_state_is_refused() -> None:
    with pytest.raises(InputError, match="larger than"):
        read_state(io.BytesIO(b" " * (2 << 20)))


def test_config_keeps_env_and_devices_and_ignores_the_rest() -> None:
    config = parse_config((REPO / "testdata/oci/podman-config.json").read_bytes())
    assert "FPGA_AFU_1=f7df405cbd7acf7222f144b0b93acd18" in config.env
    assert [(d.path, d.type, d.major, d.minor) for d in config.devices] == [
        ("/dev/dfl-port.0", "c", 511, 0)
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ociVersion": "1.0.2", "hooks": {"prestart": []}}',
        b'{"process": null, "linux": null}',
        b'{"process": {"env": null, "cwd": "/"}, "linux": {"devices": null}}',
    ],
)
def test_config_without_process_env_or_linux_devices_is_empty(raw: bytes) -> None:
    config = parse_config(raw)
    assert (config.env, config.devices) == ([], [])


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"process": {"env": "A=B"}}', "field 'process.env'"),
        (b'{"process": {"env": ["A=B", 7]}}', "field 'process.env.1'"),
        (b'{"linux": {"devices": [{"type": "c"}]}}', "field 'linux.devices.0.path'"),
        (b'{"linux": {"devices": [{"path": "/dev/x", "major": "511"}]}}', "major"),
        (b'{"linux": {"devices": [{"path": "/dev/x", "minor": true}]}}', "minor"),
        (b'{"linux": {"devices": [{"path": "/dev/x", "minor": 1.0}]}}', "minor"),
        (b'{"process": ["A=B"]}', "field 'process': Input should be a valid dictionary$"),
        (b'{"linux": {"devices": ["/dev/x"]}}', "field 'linux.devices.0': Input should be a valid"),
        (b"not json", "not valid JSON"),
    ],
)
def test_bad_config_names_the_field(raw: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse_config(raw)


def test_config_error_never_echoes_values() -> None:
    raw = b'{"process": {"env": ["TOKEN=hunter2", {"x": "hunter2"}]}}'
    with pytest.raises(InputError) as caught:
        parse_config(raw)
    assert "hunter2" not in str(caught.value)


def test_missing_config_json_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no OCI runtime config"):
        load_config(tmp_path)


class _BrokenStdin(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise OSError(9, "Bad file descriptor")


def test_unreadable_stdin_is_an_input_error() -> None:
    with pytest.raises(InputError, match="cannot read the container state on stdin"):
        read_state(_BrokenStdin())  # type: ignore[arg-type]


def test_bundle_that_is_a_file_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.write_text("")
    with pytest.raises(InputError, match="not an existing directory"):
        parse_state(_state(bundle))


def test_models_are_frozen_pydantic_models() -> None:
    config = parse_config((REPO / "testdata/oci/podman-config.json").read_bytes())
    device = config.devices[0]

    assert all(issubclass(model, pydantic.BaseModel) for model in (State, Device, RuntimeConfig))
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        device.major = 7
    assert device == parse_device(
        {"path": "/dev/dfl-port.0", "type": "c", "major": 511, "minor": 0, "uid": 0}
    )


def test_config_model_is_shown_as_a_json_schema() -> None:
    schema = RuntimeConfig.model_json_schema()

    device = schema["$defs"]["Device"]
    assert device["required"] == ["path"]
    assert device["properties"]["major"]["anyOf"][0] == {"type": "integer"}
    assert set(schema["$defs"]["Process"]["properties"]) == {"env"}


def test_the_package_uses_pydantic_models_not_pydantic_core_directly() -> None:
    importers = []
    for module in sorted((REPO / "fpga_crihook").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "pydantic_core" for name in names):
                importers.append(module.name)
    assert importers == []
