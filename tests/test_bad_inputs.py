"""Bad input anywhere the hook reads never breaks it and never programs anything.

Every case below changes one thing in an otherwise valid world (a DFL card
whose two ports hold AFU_1, a container asking for AFU_2 on port 0, the
AFU_2 bitstream in the store) and runs the installed ``fpga-crihook
prestart``. Each must end the same way: the exit status of its class of
failure (by the case's prefix, below), exactly one error event naming the
cause, no traceback, and every port's ``afu_id`` as it was.
"""

import dataclasses
import json
import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import AFU_1, AFU_2, HOOK, REGION_A, REGION_B, Completed, RunHook
from simnode import (
    GBS_MAGIC,
    SimCard,
    SimNode,
    add_card,
    gbs_bytes,
    gbs_metadata,
    metadata_of_size,
    nested_arrays,
    state_json,
    write_bundle,
    write_gbs,
)

from fpga_crihook.errors import ExitStatus

ALL_ONES = "f" * 32


@dataclasses.dataclass(frozen=True)
class World:
    """The valid starting point every case breaks in one place."""

    node: SimNode
    card: SimCard
    bundle: Path
    outside: Path  # a directory outside the node: targets of escaping symlinks

    @property
    def gbs(self) -> Path:
        return self.node.store / REGION_A / f"{AFU_2}.gbs"

    @property
    def config(self) -> Path:
        return self.bundle / "config.json"

    def bundle_with(self, env: Any = None, devices: list[Any] | None = None) -> str:
        """Rewrite config.json with *env* / *devices* (defaults: the valid ones); return stdin.

        *env* is ``Any``: cases hand in wrongly typed values on purpose.
        """
        write_bundle(
            self.bundle,
            env=_request(REGION_A, AFU_2) if env is None else env,
            devices=[self.card.ports[0].device()] if devices is None else devices,
        )
        return self.state()

    def state(self) -> str:
        return state_json(self.bundle)

    def config_bytes(self, raw: bytes) -> str:
        self.config.write_bytes(raw)
        return self.state()

    def gbs_file(self, raw: bytes) -> str:
        self.gbs.write_bytes(raw)
        return self.state()


def _request(region: str, afu: str, suffix: str = "1") -> list[str]:
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]


def _with_metadata(metadata: dict[str, Any] | bytes) -> bytes:
    return gbs_bytes(metadata=metadata, afu_id=AFU_2)


def _with_header_length(length: int, body: bytes = b"{}") -> bytes:
    return GBS_MAGIC + struct.pack("<I", length) + body


def _replace_with_symlink(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    else:
        path.unlink()
    path.symlink_to(target)


# --- the cases: each takes the valid world, breaks it, returns the state for stdin ---


def _state_not_utf8(world: World) -> bytes:
    return b'{"bundle": "/tmp\xff\xfe"}'


def _state_huge(world: World) -> str:
    return json.dumps({"bundle": str(world.bundle), "padding": "x" * (1 << 20)})


def _state_deeply_nested(world: World) -> str:
    return '{"bundle": "/", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _state_huge_integer(world: World) -> str:
    return '{"bundle": "' + str(world.bundle) + '", "pid": ' + "9" * 5000 + "}"


def _config_is_fifo(world: World) -> str:
    world.config.unlink()
    os.mkfifo(world.config)
    return world.state()


def _config_is_directory(world: World) -> str:
    world.config.unlink()
    world.config.mkdir()
    return world.state()


def _config_missing(world: World) -> str:
    world.config.unlink()
    return world.state()


def _config_huge(world: World) -> str:
    config = {"process": {"env": _request(REGION_A, AFU_2)}, "padding": "x" * (16 << 20)}
    return world.config_bytes(json.dumps(config).encode())


def _too_many_requests(world: World) -> str:
    env = [entry for n in range(65) for entry in _request(REGION_A, AFU_2, str(n))]
    return world.bundle_with(env=env)


def _interface_all_ones(world: World) -> str:
    world.card.interface_file.write_text(ALL_ONES + "\n")
    return world.state()


def _afu_all_ones(world: World) -> str:
    world.card.ports[0].afu_file.write_text(ALL_ONES + "\n")
    return world.state()


def _afu_garbage(world: World) -> str:
    world.card.ports[0].afu_file.write_text("not an id\n")
    return world.state()


def _afu_not_ascii(world: World) -> str:
    world.card.ports[0].afu_file.write_bytes(b"\xff\xfe" * 16 + b"\n")
    return world.state()


def _afu_is_fifo(world: World) -> str:
    world.card.ports[0].afu_file.unlink()
    os.mkfifo(world.card.ports[0].afu_file)  # nothing writes it: a blocking open never returns
    return world.state()


def _long_suffix(world: World) -> str:
    return world.bundle_with(env=_request(REGION_A, AFU_2, suffix="1" * 33))


def _afu_is_directory(world: World) -> str:
    world.card.ports[0].afu_file.unlink()
    world.card.ports[0].afu_file.mkdir()
    return world.state()


def _interface_file_missing(world: World) -> str:
    world.card.interface_file.unlink()
    return world.state()


def _fme_missing(world: World) -> str:
    for child in sorted(world.card.fme_dir.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    world.card.fme_dir.rmdir()
    return world.state()


def _dev_char_link_outside(world: World) -> str:
    port = world.card.ports[0]
    fake = world.outside / "dfl-port.0"
    fake.mkdir()
    (fake / "afu_id").write_text(AFU_1 + "\n")
    link = world.node.sysfs / "dev" / "char" / f"{port.major}:{port.minor}"
    _replace_with_symlink(link, fake)
    return world.state()


def _port_not_in_sysfs(world: World) -> str:
    device = {"path": "/dev/dfl-port.7", "type": "c", "major": 511, "minor": 7}
    return world.bundle_with(devices=[device])


def _device_numbers_disagree(world: World) -> str:
    device = {"path": "/dev/dfl-port.0", "type": "c", "major": 200, "minor": 9}
    return world.bundle_with(devices=[device])


def _no_fpga_device(world: World) -> str:
    device = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}
    return world.bundle_with(devices=[device])


def _store_symlink_out(world: World) -> str:
    target = world.outside / "elsewhere.gbs"
    target.write_bytes(world.gbs.read_bytes())
    _replace_with_symlink(world.gbs, target)
    return world.state()


def _region_dir_symlink_out(world: World) -> str:
    region_dir = world.gbs.parent
    copy = world.outside / REGION_A
    copy.mkdir()
    (copy / world.gbs.name).write_bytes(world.gbs.read_bytes())
    _replace_with_symlink(region_dir, copy)
    return world.state()


def _gbs_is_directory(world: World) -> str:
    world.gbs.unlink()
    world.gbs.mkdir()
    return world.state()


def _gbs_is_fifo(world: World) -> str:
    world.gbs.unlink()
    os.mkfifo(world.gbs)
    return world.state()


def _gbs_missing(world: World) -> str:
    world.gbs.unlink()
    return world.state()


def _two_clusters(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    clusters = metadata["afu-image"]["accelerator-clusters"]
    clusters.append({**clusters[0], "name": "second"})
    return world.gbs_file(_with_metadata(metadata))


def _no_interface_uuid(world: World) -> str:
    return world.gbs_file(_with_metadata(gbs_metadata(None, AFU_2)))


def _schema_broken(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    del metadata["afu-image"]
    return world.gbs_file(_with_metadata(metadata))


def _cluster_name_wrong_type(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    metadata["afu-image"]["accelerator-clusters"][0]["name"] = 7
    return world.gbs_file(_with_metadata(metadata))


def _built_for_other_region(world: World) -> str:
    return world.gbs_file(gbs_bytes(REGION_B, AFU_2))


def _holds_other_afu(world: World) -> str:
    return world.gbs_file(gbs_bytes(REGION_A, AFU_1))


def _metadata_huge_integer(world: World) -> str:
    return world.gbs_file(_with_metadata(b'{"version": ' + b"1" * 5000 + b"}"))


def _metadata_deeply_nested(world: World) -> str:
    return world.gbs_file(_with_metadata(b"[" * 100_000 + b"]" * 100_000))


def _opae_version(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    metadata["version"] = 1.0
    return world.gbs_file(_with_metadata(metadata))


def _opae_metadata_too_long(world: World) -> str:
    return world.gbs_file(_with_metadata(metadata_of_size(gbs_metadata(REGION_A, AFU_2), 8192)))


def _opae_nested_too_deeply(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    metadata["afu-image"]["afu-top-interface"] = nested_arrays(30)
    return world.gbs_file(_with_metadata(metadata))


def _opae_total_contexts(world: World) -> str:
    metadata = gbs_metadata(REGION_A, AFU_2)
    metadata["afu-image"]["accelerator-clusters"][0]["total-contexts"] = 1.0
    return world.gbs_file(_with_metadata(metadata))


Case = Callable[[World], str | bytes]

# (id, how the world is broken, words the error must contain)
CASES: list[tuple[str, Case, tuple[str, ...]]] = [
    # stdin: the container state
    ("state-empty", lambda w: "", ("stdin", "not valid json")),
    ("state-truncated", lambda w: w.state()[:-5], ("stdin", "not valid json")),
    ("state-not-utf8", _state_not_utf8, ("stdin", "not utf-8")),
    ("state-array", lambda w: "[]", ("stdin", "json object")),
    ("state-no-bundle", lambda w: '{"id": "x"}', ("bundle", "field required")),
    ("state-bundle-int", lambda w: '{"bundle": 7}', ("bundle", "string")),
    ("state-bundle-relative", lambda w: '{"bundle": "b"}', ("bundle", "absolute")),
    ("state-bundle-absent-dir", lambda w: '{"bundle": "/nonexistent/x"}', ("not an existing",)),
    ("state-annotations-list", lambda w: '{"bundle": "/", "annotations": []}', ("annotations",)),
    ("state-huge", _state_huge, ("stdin", "larger than")),
    ("state-deeply-nested", _state_deeply_nested, ("stdin", "nested too deeply")),
    ("state-huge-integer", _state_huge_integer, ("stdin", "digits")),
    ("state-nan", lambda w: w.state().replace('"pid": 4242', '"pid": NaN'), ("stdin", "NaN")),
    # config.json
    ("config-missing", _config_missing, ("config.json", "does not exist")),
    ("config-not-json", lambda w: w.config_bytes(b"process: env"), ("config.json", "not valid")),
    ("config-truncated", lambda w: w.config_bytes(w.config.read_bytes()[:40]), ("not valid",)),
    ("config-not-utf8", lambda w: w.config_bytes(b'{"x": "\xc3\x28"}'), ("not utf-8",)),
    ("config-array", lambda w: w.config_bytes(b"[1, 2]"), ("config.json", "json object")),
    ("config-huge", _config_huge, ("config.json", "larger than")),
    ("config-directory", _config_is_directory, ("config.json", "is a directory")),
    ("config-fifo", _config_is_fifo, ("config.json", "not a regular file")),
    (
        "config-infinity",
        lambda w: w.config_bytes(w.config.read_bytes()[:-1] + b', "x": -Infinity}'),
        ("config.json", "-Infinity is not a JSON number"),
    ),
    ("env-a-string", lambda w: w.bundle_with(env="FPGA_AFU_1=x"), ("process.env", "list")),
    ("env-entry-int", lambda w: w.bundle_with(env=["A=b", 7]), ("process.env.1", "string")),
    ("env-empty", lambda w: w.bundle_with(env=[]), ("process.env", "missing or empty")),
    ("devices-empty", lambda w: w.bundle_with(devices=[]), ("linux.devices", "missing or empty")),
    ("device-no-path", lambda w: w.bundle_with(devices=[{"type": "c"}]), ("devices.0.path",)),
    (
        "device-major-string",
        lambda w: w.bundle_with(devices=[{"path": "/dev/dfl-port.0", "major": "511"}]),
        ("devices.0.major", "integer"),
    ),
    # process.env: the container's requests
    (
        "env-no-equals",
        lambda w: w.bundle_with(env=["FPGA_REGION_1", f"FPGA_AFU_1={AFU_2}"]),
        ("without '='",),
    ),
    (
        "env-empty-value",
        lambda w: w.bundle_with(env=_request(REGION_A, "")),
        ("fpga_afu_1", "32-hex"),
    ),
    (
        "env-duplicate",
        lambda w: w.bundle_with(env=[*_request(REGION_A, AFU_2), f"FPGA_AFU_1={AFU_2}"]),
        ("fpga_afu_1", "more than once"),
    ),
    (
        "env-traversal",
        lambda w: w.bundle_with(env=_request(REGION_A, "../../etc/x")),
        ("fpga_afu_1", "32-hex"),
    ),
    (
        "env-id-with-slash",
        lambda w: w.bundle_with(env=_request(REGION_A[:16] + "/" + REGION_A[17:], AFU_2)),
        ("fpga_region_1", "32-hex"),
    ),
    (
        "env-id-31-digits",
        lambda w: w.bundle_with(env=_request(REGION_A, AFU_2[:31])),
        ("fpga_afu_1", "32-hex"),
    ),
    (
        "env-id-padded",
        lambda w: w.bundle_with(env=_request(REGION_A, f" {AFU_2} ")),
        ("fpga_afu_1", "32-hex"),
    ),
    (
        "env-id-fullwidth",
        lambda w: w.bundle_with(env=_request(REGION_A, "\uff10" * 32)),
        ("fpga_afu_1", "32-hex"),
    ),
    (
        "env-region-alone",
        lambda w: w.bundle_with(env=[f"FPGA_REGION_1={REGION_A}"]),
        ("fpga_afu_1 is not",),
    ),
    ("env-afu-all-ones", lambda w: w.bundle_with(env=_request(REGION_A, ALL_ONES)), ("all-ones",)),
    ("env-no-fpga-vars", lambda w: w.bundle_with(env=["HOME=/root"]), ("no fpga_region_n",)),
    ("env-65-requests", _too_many_requests, ("at most 64",)),
    ("env-suffix-33-chars", _long_suffix, ("FPGA_REGION_1111111111111111...", "at most 32")),
    # sysfs
    ("sysfs-interface-all-ones", _interface_all_ones, ("dfl-fme.0", "all-ones", "crashed")),
    ("sysfs-afu-all-ones", _afu_all_ones, ("dfl-port.0", "all-ones", "crashed")),
    ("sysfs-afu-garbage", _afu_garbage, ("afu_id", "32-hex")),
    ("sysfs-afu-not-ascii", _afu_not_ascii, ("afu_id", "ascii")),
    ("sysfs-afu-directory", _afu_is_directory, ("afu_id", "cannot read")),
    ("sysfs-afu-fifo", _afu_is_fifo, ("afu_id", "32-hex")),
    ("sysfs-interface-missing", _interface_file_missing, ("dfl-fme.0", "found none")),
    ("sysfs-fme-missing", _fme_missing, ("dfl-port.0", "dfl-fme.n", "found 0")),
    ("sysfs-dev-char-outside", _dev_char_link_outside, ("511:0", "points outside")),
    ("sysfs-port-absent", _port_not_in_sysfs, ("dfl-port.7", "no fpga port")),
    ("sysfs-numbers-disagree", _device_numbers_disagree, ("200:9", "no FPGA port")),
    ("devices-no-fpga-port", _no_fpga_device, ("none of its linux.devices",)),
    (
        "sysfs-other-region",
        lambda w: w.bundle_with(env=_request(REGION_B, AFU_2)),
        (REGION_B, "no free fpga port"),
    ),
    # the bitstream store
    ("store-missing", _gbs_missing, ("no bitstream", f"{REGION_A}/{AFU_2}.gbs")),
    ("store-symlink-out", _store_symlink_out, ("is a symbolic link",)),
    ("store-region-dir-symlink-out", _region_dir_symlink_out, ("is a symbolic link",)),
    ("store-directory", _gbs_is_directory, ("not a regular file",)),
    ("store-fifo", _gbs_is_fifo, ("not a regular file",)),
    ("gbs-empty", lambda w: w.gbs_file(b""), ("truncated",)),
    ("gbs-truncated-header", lambda w: w.gbs_file(GBS_MAGIC[:10]), ("truncated", "header")),
    ("gbs-wrong-magic", lambda w: w.gbs_file(b"X" * 16 + w.gbs.read_bytes()[16:]), ("magic",)),
    ("gbs-length-zero", lambda w: w.gbs_file(_with_header_length(0, b"raw")), ("length is zero",)),
    ("gbs-length-past-end", lambda w: w.gbs_file(_with_header_length(500)), ("past the end",)),
    ("gbs-length-absurd", lambda w: w.gbs_file(_with_header_length(0xFFFFFFFF)), ("limit",)),
    (
        "gbs-metadata-not-json",
        lambda w: w.gbs_file(_with_metadata(b"{version: 1}")),
        ("metadata is not valid json",),
    ),
    ("gbs-metadata-not-utf8", lambda w: w.gbs_file(_with_metadata(b'{"\xff": 1}')), ("not utf-8",)),
    ("gbs-metadata-array", lambda w: w.gbs_file(_with_metadata(b"[1]")), ("breaks the schema",)),
    ("gbs-schema-no-afu-image", _schema_broken, ("breaks the schema", "afu-image")),
    ("gbs-schema-name-int", _cluster_name_wrong_type, ("breaks the schema", "name")),
    ("gbs-metadata-huge-integer", _metadata_huge_integer, ("metadata", "digits")),
    ("gbs-metadata-deeply-nested", _metadata_deeply_nested, ("nested too deeply",)),
    (
        "gbs-no-raw-bitstream",
        lambda w: w.gbs_file(gbs_bytes(REGION_A, AFU_2, raw=b"")),
        ("no raw bitstream",),
    ),
    ("gbs-two-clusters", _two_clusters, ("2 accelerator clusters", "exactly one")),
    ("gbs-no-interface-uuid", _no_interface_uuid, ("interface-uuid",)),
    ("gbs-opae-version-float", _opae_version, ("opae's runtime would refuse", "version")),
    ("gbs-opae-metadata-8192-bytes", _opae_metadata_too_long, ("shorter than 8192 bytes",)),
    ("gbs-opae-nested-32-deep", _opae_nested_too_deeply, ("fewer than 32 deep",)),
    ("gbs-opae-total-contexts-float", _opae_total_contexts, ("total-contexts", "integer")),
    ("gbs-other-region", _built_for_other_region, (REGION_B, "not the requested")),
    ("gbs-other-afu", _holds_other_afu, (AFU_1, "not the requested")),
]


# The exit status a case's id prefix stands for; the longest matching prefix wins.
STATUS_BY_PREFIX = {
    "state-": ExitStatus.CONTAINER_INPUT,
    "config-": ExitStatus.CONTAINER_INPUT,
    "env-": ExitStatus.CONTAINER_INPUT,
    "device-": ExitStatus.CONTAINER_INPUT,
    "devices-": ExitStatus.CONTAINER_INPUT,
    "sysfs-": ExitStatus.DEVICE,
    "store-": ExitStatus.BITSTREAM_REFUSED,
    "store-missing": ExitStatus.NO_BITSTREAM,
    "gbs-": ExitStatus.BITSTREAM_REFUSED,
}


def _expected_status(case_id: str) -> ExitStatus:
    prefix = max((p for p in STATUS_BY_PREFIX if case_id.startswith(p)), key=len)
    return STATUS_BY_PREFIX[prefix]


@pytest.fixture
def world(node: SimNode, tmp_path: Path) -> World:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    outside = tmp_path / "outside"
    outside.mkdir()
    built = World(node, card, tmp_path / "bundle", outside)
    built.bundle_with()
    return built


def _snapshot(card: SimCard) -> list[bytes | None]:
    return [p.afu_file.read_bytes() if p.afu_file.is_file() else None for p in card.ports]


def _run(world: World, stdin: str | bytes, run_hook: RunHook) -> Completed:
    if isinstance(stdin, str):
        return run_hook(world.node, stdin)
    done = subprocess.run(
        [str(HOOK), "prestart"],
        input=stdin,
        env=world.node.env(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    return Completed(done.returncode, done.stdout.decode(), done.stderr.decode())


def _error_events(stderr: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stderr.splitlines()]
    return [event for event in events if event["level"] == "error"]


@pytest.mark.parametrize(("name", "case", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_with_one_clear_error_its_classs_status_and_programs_nothing(
    world: World, run_hook: RunHook, name: str, case: Case, words: tuple[str, ...]
) -> None:
    stdin = case(world)
    before = _snapshot(world.card)

    result = _run(world, stdin, run_hook)

    assert result.returncode == _expected_status(name), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    errors = _error_events(result.stderr)
    assert len(errors) == 1, result.stderr
    message = errors[0]["error"].lower()
    assert errors[0]["event"] == "prestart failed"
    assert "internal error" not in message
    for word in words:
        assert word.lower() in message
    assert _snapshot(world.card) == before


def test_the_table_has_at_least_forty_distinct_cases() -> None:
    names = [name for name, _case, _words in CASES]
    assert len(names) == len(set(names)) >= 40


def test_the_unbroken_world_is_programmed(world: World, run_hook: RunHook) -> None:
    """The baseline the table breaks: without a fault, the hook succeeds."""
    result = run_hook(world.node, world.state())

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in world.card.ports] == [AFU_2, AFU_1]


def test_ports_the_container_was_not_given_are_never_read_or_programmed(
    world: World, run_hook: RunHook
) -> None:
    """Port 1 holds the requested AFU but is broken: the container has only port 0."""
    other = world.card.ports[1].afu_file
    other.unlink()
    other.mkdir()  # reading it would fail the hook

    result = run_hook(world.node, world.state())

    assert result.returncode == 0, result.stderr
    assert world.card.ports[0].afu_id() == AFU_2
    assert other.is_dir()
    assert "dfl-port.1" not in result.stderr
