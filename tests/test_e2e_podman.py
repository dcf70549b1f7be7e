"""The hook under a real container engine: podman starts runc, runc runs ``fpga-crihook``.

Each test renders the project's own ``hooks.d/intel-fpga-crihook.json`` into a
temporary hooks directory, changing only the hook's path (the installed
console script) and adding the settings that point it at a simulated node.
``tests/engine.py`` runs the containers, and says what these tests need.
"""

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine import (
    REQUIRE_VARIABLE,
    Engine,
    Podman,
    available_engine,
    finish,
    locate_engine,
    request_env,
    shipped_port,
    unavailable,
)
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, REGION_B, REPO
from simnode import SimNode, add_card, write_gbs

from fpga_crihook.errors import ExitStatus

HOOKS_FILE = REPO / "hooks.d" / "intel-fpga-crihook.json"
REGION_OPAE = "bfac4d851ee856fe8c95865ce1bbaa2d"


class HooksDirPodman(Podman):
    """podman whose hooks directory holds the shipped hooks.d file, set up for one node."""

    def __init__(self, engine: Engine, node: SimNode, workdir: Path) -> None:
        self.log_file = workdir / "hook.log"
        super().__init__(
            engine, render_hooks_dir(node, workdir / "hooks.d", self.log_file), workdir
        )

    def events(self) -> list[str]:
        """The ``event`` of every line the hook wrote to its log file."""
        if not self.log_file.exists():
            return []
        return [json.loads(line)["event"] for line in self.log_file.read_text().splitlines()]


def render_hooks_dir(node: SimNode, hooks_dir: Path, log_file: Path) -> Path:
    """The shipped hooks.d file with the installed hook and settings for *node*.

    Only ``hook.path`` and ``hook.env`` change: the annotations that select
    containers, the stages and the arguments are the ones operators install.
    """
    hooks = json.loads(HOOKS_FILE.read_text())
    hooks["hook"]["path"] = str(HOOK)
    # As an operator's hooks.d sets them: stderr is left to the one error line.
    settings = node.quiet_env(FPGA_CRIHOOK_LOG_FILE=str(log_file))
    hooks["hook"]["env"] += [f"{name}={value}" for name, value in settings.items()]
    hooks_dir.mkdir(parents=True)
    (hooks_dir / HOOKS_FILE.name).write_text(json.dumps(hooks, indent=2))
    return hooks_dir


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The engine's programs; skips (or fails, when required) if any is missing."""
    return available_engine()


@pytest.fixture
def podman_on(engine: Engine, tmp_path: Path) -> Iterator[Callable[[SimNode], HooksDirPodman]]:
    """``podman_on(node)``: a :class:`HooksDirPodman` whose hook works on *node*."""
    made: list[HooksDirPodman] = []

    def make(node: SimNode) -> HooksDirPodman:
        made.append(HooksDirPodman(engine, node, tmp_path / f"podman{len(made)}"))
        return made[-1]

    yield make
    for podman in made:
        podman.clean_up()


def test_container_starts_after_the_hook_programs_its_port(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], request_env(REGION_A, AFU_2))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert podman.events().count("port programmed") == 1


def test_second_start_skips_a_port_that_holds_the_afu(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    first = podman.run([port], request_env(REGION_A, AFU_3))
    second = podman.run([port], request_env(REGION_A, AFU_3))

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert port.afu_id() == AFU_3
    events = podman.events()
    assert events.count("port programmed") == 1
    assert events[-1] == "port already holds the AFU: skipped"


def test_missing_bitstream_stops_the_container_with_one_plain_line_not_json(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")
    unknown_afu = "0123456789abcdef0123456789abcdef"

    result = podman.run([port], request_env(REGION_A, unknown_afu))

    assert result.returncode != 0
    assert f"no bitstream for region {REGION_A}, AFU {unknown_afu}" in result.stderr
    assert port.afu_id() == AFU_1
    # What CRI-O would hand to kubectl describe pod: runc's message, ending with ours.
    [line] = [text for text in result.stderr.splitlines() if "error running hook" in text]
    ours = f"fpga-crihook: no bitstream for region {REGION_A}, AFU {unknown_afu} in "
    assert f"exit status {ExitStatus.NO_BITSTREAM}, stdout: , stderr: {ours}" in line
    assert line.rstrip().rstrip('"').endswith(f"{unknown_afu}.aocx"), line
    assert "{" not in result.stderr  # no JSON event anywhere in podman's error
    assert podman.events()[-1] == "prestart failed"  # the events went to the log file


def test_invalid_afu_id_stops_the_container_and_programs_nothing(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], [f"FPGA_REGION_1={REGION_A}", "FPGA_AFU_1=../../x"])

    assert result.returncode != 0
    assert "FPGA_AFU_1" in result.stderr  # the hook's error, passed on by podman
    assert port.afu_id() == AFU_1
    assert "port programmed" not in podman.events()


def test_container_without_the_annotation_never_runs_the_hook(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], request_env(REGION_A, AFU_2), annotated=False)

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_1
    assert not podman.log_file.exists()  # the hook creates it as soon as it starts


def test_two_ports_of_one_card_each_get_their_request(
    shipped_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_node)
    ports = [shipped_port(shipped_node, name) for name in ("dfl-port.1", "dfl-port.2")]

    result = podman.run(
        ports, request_env(REGION_B, AFU_2, "1") + request_env(REGION_B, AFU_3, "2")
    )

    assert result.returncode == 0, result.stderr
    assert sorted(port.afu_id() for port in ports) == sorted([AFU_2, AFU_3])
    assert podman.events().count("port programmed") == 2


def test_opae_port_is_programmed(
    shipped_opae_node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    podman = podman_on(shipped_opae_node)
    port = shipped_port(shipped_opae_node, "intel-fpga-port.0")

    result = podman.run([port], request_env(REGION_OPAE, AFU_2))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert podman.events().count("port programmed") == 1


def test_four_containers_started_at_once_on_one_card_each_get_their_afu(
    node: SimNode, podman_on: Callable[[SimNode], HooksDirPodman]
) -> None:
    afus = [AFU_2, AFU_3, "850adcc2c4934024a08c8f2ffaa3a7ad", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"]
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1] * len(afus))
    for afu in afus:
        write_gbs(node, REGION_A, afu)
    podman = podman_on(node)

    # One FME for all four ports: the hooks take turns on its lock.
    started = [
        podman.start([port], request_env(REGION_A, afu))
        for port, afu in zip(card.ports, afus, strict=True)
    ]
    results = [finish(process) for process in started]

    assert [result.returncode for result in results] == [0] * len(afus), [
        result.stderr for result in results
    ]
    assert [port.afu_id() for port in card.ports] == afus
    assert podman.events().count("port programmed") == len(afus)


def test_e2e_tests_skip_with_the_reason_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)

    reason = locate_engine()

    assert isinstance(reason, str)
    assert "need root" in reason
    with pytest.raises(pytest.skip.Exception, match="need root"):
        unavailable(reason)


def test_missing_programs_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert locate_engine() == (
        "podman, runc, busybox not found on PATH: apt-get install -y podman runc busybox-static"
    )


def test_dynamic_busybox_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("podman", "runc"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "busybox").symlink_to("/bin/sh")  # Debian's dash: dynamically linked
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert locate_engine() == (
        f"{tmp_path / 'busybox'} is not a statically linked executable: "
        "apt-get install -y busybox-static"
    )


def test_required_e2e_tests_fail_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")

    with pytest.raises(pytest.fail.Exception, match=f"need root .*{REQUIRE_VARIABLE}=1"):
        unavailable("the podman end-to-end tests need root (podman with runc, mknod)")
