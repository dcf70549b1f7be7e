"""oci: the state on stdin and the bundle's config.json."""

import io
import json
from pathlib import Path

import pytest

from fpga_crihook.errors import InputError
from fpga_crihook.oci import load_config, parse_config, parse_state, read_state

REPO = Path(__file__).resolve().parent.parent


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


def test_config_without_process_or_linux_is_empty() -> None:
    config = parse_config(b'{"ociVersion": "1.0.2", "hooks": {"prestart": []}}')
    assert (config.env, config.devices) == ([], [])


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"process": {"env": "A=B"}}', "field 'process.env'"),
        (b'{"process": {"env": ["A=B", 7]}}', "field 'process.env.1'"),
        (b'{"linux": {"devices": [{"type": "c"}]}}', "field 'linux.devices.0.path'"),
        (b'{"linux": {"devices": [{"path": "/dev/x", "major": "511"}]}}', "major"),
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
