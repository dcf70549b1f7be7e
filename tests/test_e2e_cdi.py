"""The hook under podman + runc through CDI specs, as containerd and CRI-O would run it.

Two ways a CDI spec brings the hook (docs/design.md#cdi; CDI under podman:
docs/design.md#testing):

- the spec exactly as Intel's FPGA device plugin writes it: kind
  ``intel.cdi.k8s.io/fpga``, a device named after the FME, whose only edit is
  a createRuntime hook naming the drop-in with no args and no env. The ports
  still come as plain devices and the region annotation is set. With no env,
  the hook reads its settings from the node config file at its default path,
  /etc/fpga-crihook/config.toml, which these tests write only around the
  container runs and then restore (other test suites share this machine);
- the spec from ``fpga-crihook cdi generate`` on the simulated node: the
  container asks for the port by its CDI name, without the annotation.

podman gets an empty ``--hooks-dir``, so no hooks.d file runs the hook as
well. Every spec file written is removed again, and so are the directories
the tests had to create.
"""

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine import Engine, Podman, available_engine, request_env, shipped_port
from helpers import AFU_1, AFU_2, DROP_IN, REGION_A, run_cli
from simnode import SimNode, logged_events

INTEL_KIND = "intel.cdi.k8s.io/fpga"
OUR_KIND = "intel.com/fpga"
STATIC_SPECS, DYNAMIC_SPECS = Path("/etc/cdi"), Path("/var/run/cdi")
NODE_CONFIG = Path("/etc/fpga-crihook/config.toml")
UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"


@contextlib.contextmanager
def directory_kept_tidy(directory: Path) -> Iterator[Path]:
    """*directory*, made if missing and then removed again once empty."""
    made = not directory.exists()
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        yield directory
    finally:
        if made:
            with contextlib.suppress(OSError):  # not empty: someone else uses it now
                directory.rmdir()


@contextlib.contextmanager
def spec_file(directory: Path, spec: dict[str, Any] | None = None) -> Iterator[Path]:
    """A uniquely named spec file in a runtime's CDI directory (*spec*, or left to the caller)."""
    with directory_kept_tidy(directory):
        path = directory / f"fpga-crihook-e2e-{uuid.uuid4().hex[:12]}.json"
        try:
            if spec is not None:
                path.write_text(json.dumps(spec, indent=2))
            yield path
        finally:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def node_config_file(text: str) -> Iterator[Path]:
    """/etc/fpga-crihook/config.toml holding *text*, for as long as the block runs.

    A file already there is moved aside (one rename) and put back afterwards.
    """
    with directory_kept_tidy(NODE_CONFIG.parent):
        saved = NODE_CONFIG.with_name(f".config.toml.e2e-{uuid.uuid4().hex[:12]}")
        had_one = NODE_CONFIG.exists() or NODE_CONFIG.is_symlink()
        if had_one:
            NODE_CONFIG.rename(saved)
        try:
            NODE_CONFIG.write_text(text)
            NODE_CONFIG.chmod(0o644)
            yield NODE_CONFIG
        finally:
            NODE_CONFIG.unlink(missing_ok=True)
            if had_one:
                saved.rename(NODE_CONFIG)


def intel_spec(fme: str) -> dict[str, Any]:
    """What Intel's FPGA device plugin writes: the device is the FME, the hook the drop-in."""
    return {
        "cdiVersion": "0.5.0",
        "kind": INTEL_KIND,
        "devices": [
            {
                "name": fme,
                "containerEdits": {"hooks": [{"hookName": "createRuntime", "path": str(DROP_IN)}]},
            }
        ],
    }


def generate_spec(node: SimNode, output: Path, **extra: str) -> None:
    """``fpga-crihook cdi generate --output`` with the simulated node's settings in the env."""
    result = run_cli(["cdi", "generate", "--output", str(output)], node.env(**extra))
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The engine's programs; skips (or fails, when required) if any is missing."""
    return available_engine()


@pytest.fixture
def podman(engine: Engine, tmp_path: Path) -> Iterator[Podman]:
    """podman with no hooks.d file at all: a CDI spec is the only way the hook runs."""
    empty_hooks_dir = tmp_path / "empty-hooks.d"
    empty_hooks_dir.mkdir()
    runner = Podman(engine, empty_hooks_dir, tmp_path / "podman")
    yield runner
    runner.clean_up()


def test_intels_spec_runs_the_drop_in_with_the_node_config_file(
    shipped_node: SimNode, podman: Podman, tmp_path: Path
) -> None:
    port = shipped_port(shipped_node, "dfl-port.0")
    log_file = tmp_path / "hook.log"
    device = f"{INTEL_KIND}=dfl-fme.0"

    with (
        spec_file(DYNAMIC_SPECS, intel_spec("dfl-fme.0")),
        node_config_file(shipped_node.config_text(log_file)),
    ):
        started = podman.run([port], request_env(REGION_A, AFU_2), cdi_devices=[device])
        programmed = port.afu_id()
        refused = podman.run([port], request_env(REGION_A, UNKNOWN_AFU), cdi_devices=[device])

    assert started.returncode == 0, started.stderr
    assert programmed == AFU_2
    assert logged_events(log_file).count("port programmed") == 1
    assert refused.returncode != 0
    assert f"no bitstream for region {REGION_A}, AFU {UNKNOWN_AFU}" in refused.stderr
    assert port.afu_id() == AFU_2


def test_intels_spec_programs_a_container_without_the_annotation(
    shipped_node: SimNode, podman: Podman, tmp_path: Path
) -> None:
    """As under containerd, which passes no CRI annotation on to the hook by default."""
    port = shipped_port(shipped_node, "dfl-port.0")
    log_file = tmp_path / "hook.log"

    with (
        spec_file(DYNAMIC_SPECS, intel_spec("dfl-fme.0")),
        node_config_file(shipped_node.config_text(log_file)),
    ):
        result = podman.run(
            [port],
            request_env(REGION_A, AFU_2),
            annotated=False,
            cdi_devices=[f"{INTEL_KIND}=dfl-fme.0"],
        )

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert logged_events(log_file) == ["hook started", "port programmed"]


def test_generated_spec_programs_a_port_asked_for_by_name_then_skips(
    shipped_node: SimNode, podman: Podman, tmp_path: Path
) -> None:
    port = shipped_port(shipped_node, "dfl-port.0")
    log_file = tmp_path / "hook.log"

    with spec_file(STATIC_SPECS) as spec:
        generate_spec(shipped_node, spec, FPGA_CRIHOOK_LOG_FILE=str(log_file))
        by_name = [f"{OUR_KIND}=dfl-port.0"]
        first = podman.run([], request_env(REGION_A, AFU_2), annotated=False, cdi_devices=by_name)
        second = podman.run([], request_env(REGION_A, AFU_2), annotated=False, cdi_devices=by_name)

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert port.afu_id() == AFU_2
    assert logged_events(log_file) == [
        "hook started",
        "port programmed",
        "hook started",
        "port already holds the AFU: skipped",
    ]


def test_generated_spec_stops_a_container_whose_request_fails(
    shipped_node: SimNode, podman: Podman
) -> None:
    port = shipped_port(shipped_node, "dfl-port.0")

    with spec_file(STATIC_SPECS) as spec:
        generate_spec(shipped_node, spec)
        result = podman.run(
            [], request_env(REGION_A, UNKNOWN_AFU), annotated=False, cdi_devices=[f"{OUR_KIND}=all"]
        )

    assert result.returncode != 0
    assert f"no bitstream for region {REGION_A}, AFU {UNKNOWN_AFU}" in result.stderr
    assert port.afu_id() == AFU_1


@pytest.mark.usefixtures("engine")
def test_check_passes_both_specs_where_the_runtime_reads_them(
    shipped_node: SimNode, tmp_path: Path
) -> None:
    empty_hooks_dir = tmp_path / "hooks.d"
    empty_hooks_dir.mkdir()

    with (
        spec_file(DYNAMIC_SPECS, intel_spec("dfl-fme.0")) as intel,
        spec_file(STATIC_SPECS) as generated,
    ):
        generate_spec(shipped_node, generated)
        given = run_cli(["check", str(intel), str(generated)], shipped_node.env())
        search = ["--hooks-dir", str(empty_hooks_dir)]
        search += ["--cdi-spec-dir", str(STATIC_SPECS), "--cdi-spec-dir", str(DYNAMIC_SPECS)]
        found = run_cli(["check", *search], shipped_node.env())

    assert given.returncode == 0, given.stdout
    for result in (given, found):
        lines = result.stdout.splitlines()
        for path, kind in ((intel, INTEL_KIND), (generated, OUR_KIND)):
            assert (
                f"ok: {path}: CDI spec (cdiVersion 0.5.0, kind {kind}) runs fpga-crihook "
                "at createRuntime" in lines
            ), result.stdout


@pytest.mark.usefixtures("engine")
def test_spec_files_and_config_file_are_removed_and_restored() -> None:
    """What the tests above rely on to leave the machine as they found it."""
    before = NODE_CONFIG.read_bytes() if NODE_CONFIG.exists() else None
    directories = {path: path.exists() for path in (NODE_CONFIG.parent, DYNAMIC_SPECS)}

    with node_config_file("# the node's own\n"):  # whatever was there stays aside meanwhile
        with spec_file(DYNAMIC_SPECS, {"a": 1}) as spec, node_config_file("x = 1\n"):
            assert json.loads(spec.read_text()) == {"a": 1}
            assert NODE_CONFIG.read_text() == "x = 1\n"
        assert NODE_CONFIG.read_text() == "# the node's own\n"
        assert not spec.exists()

    assert (NODE_CONFIG.read_bytes() if NODE_CONFIG.exists() else None) == before
    assert {path: path.exists() for path in directories} == directories
