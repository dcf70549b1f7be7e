"""The hook under a real container engine: podman starts runc, runc runs ``fpga-crihook``.

Each test renders the project's own ``hooks.d/intel-fpga-crihook.json`` into a
temporary hooks directory, changing only the hook's path (the installed
console script) and adding the settings that point it at a simulated node.
Port device nodes are made with ``mknod`` using the simulated ports' numbers,
so the ``linux.devices`` entries podman writes into the real ``config.json``
lead the hook to the simulated sysfs tree. The container is a static
busybox running ``/bin/true``: no image is pulled. DESIGN.md section 7 says
what works on these machines and why the ulimits are given.

These tests need root, podman, runc and a static busybox. Without them they
skip with the reason, unless ``FPGA_CRIHOOK_REQUIRE_E2E=1`` (set by CI), in
which case they fail.
"""

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from conftest import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, REGION_B, REPO, Completed
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from simnode import SimNode, SimPort, add_card, write_gbs

REQUIRE_VARIABLE = "FPGA_CRIHOOK_REQUIRE_E2E"
HOOKS_FILE = REPO / "hooks.d" / "intel-fpga-crihook.json"
REGION_ANNOTATION = "com.intel.fpga.mode=fpga.intel.com/region"
REGION_OPAE = "bfac4d851ee856fe8c95865ce1bbaa2d"
PROGRAMS = ("podman", "runc", "busybox")
PACKAGES = ("podman", "runc", "busybox-static")
ENGINE_TIMEOUT = 120  # seconds for any one podman call
# The default nofile/nproc limits cannot be raised in the sandbox (DESIGN.md section 7).
# No network: /bin/true needs none, and a bridge would need netavark or CNI plugins
# plus iptables, which an install without recommends may lack.
RUN_OPTIONS = (
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "none",
)


@dataclasses.dataclass(frozen=True)
class Engine:
    """The programs the end-to-end tests drive."""

    podman: str
    runc: str
    busybox: Path


def locate_engine() -> Engine | str:
    """The engine's programs, or why the end-to-end tests cannot run here."""
    if os.geteuid() != 0:
        return "the podman end-to-end tests need root (podman with runc, mknod)"
    podman, runc, busybox = (shutil.which(name) for name in PROGRAMS)
    if podman is None or runc is None or busybox is None:
        missing = [name for name in PROGRAMS if shutil.which(name) is None]
        return f"{', '.join(missing)} not found on PATH: apt-get install -y {' '.join(PACKAGES)}"
    if not _is_static_executable(Path(busybox)):
        return f"{busybox} is not a statically linked executable: apt-get install -y busybox-static"
    return Engine(podman, runc, Path(busybox))


def unavailable(reason: str) -> NoReturn:
    """Skip with *reason*, or fail when the environment demands the end-to-end tests."""
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_VARIABLE}=1 requires these tests to run)")
    pytest.skip(reason)


def _is_static_executable(path: Path) -> bool:
    """True for an ELF file without a program interpreter (nothing to load from the rootfs)."""
    try:
        with path.open("rb") as file:
            return not any(
                segment["p_type"] == "PT_INTERP" for segment in ELFFile(file).iter_segments()
            )
    except (OSError, ELFError):
        return False


class Podman:
    """podman with runc, the rendered hooks.d file and a busybox rootfs, for one node."""

    def __init__(self, engine: Engine, node: SimNode, workdir: Path) -> None:
        self._engine = engine
        self.log_file = workdir / "hook.log"
        self.hooks_dir = render_hooks_dir(node, workdir / "hooks.d", self.log_file)
        self._rootfs = _busybox_rootfs(engine.busybox, workdir / "rootfs")
        self._device_dir = workdir / "devices"
        self._device_dir.mkdir()
        self._names: list[str] = []

    def start(
        self, ports: list[SimPort], env: list[str], *, annotated: bool = True
    ) -> "subprocess.Popen[str]":
        """Start ``podman run`` of ``/bin/true`` with *ports* as devices and *env*."""
        name = f"fpga-crihook-e2e-{uuid.uuid4().hex[:12]}"
        self._names.append(name)
        command = [
            self._engine.podman,
            "--runtime",
            self._engine.runc,
            "--hooks-dir",
            str(self.hooks_dir),
            "run",
            "--rm",
            "--name",
            name,
            *RUN_OPTIONS,
            *(("--annotation", REGION_ANNOTATION) if annotated else ()),
            *(option for entry in env for option in ("-e", entry)),
            *(option for port in ports for option in ("--device", self._device_option(port))),
            "--rootfs",
            str(self._rootfs),
            "/bin/true",
        ]
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, ports: list[SimPort], env: list[str], *, annotated: bool = True) -> Completed:
        """Run a container to its end and return podman's exit status and output."""
        return finish(self.start(ports, env, annotated=annotated))

    def events(self) -> list[str]:
        """The ``event`` of every line the hook wrote to its log file."""
        if not self.log_file.exists():
            return []
        return [json.loads(line)["event"] for line in self.log_file.read_text().splitlines()]

    def clean_up(self) -> None:
        """Remove containers a timed-out run may have left, and the device nodes."""
        if self._names:
            subprocess.run(
                [self._engine.podman, "rm", "--force", "--ignore", *self._names],
                capture_output=True,
                check=False,
                timeout=ENGINE_TIMEOUT,
            )
        for device in self._device_dir.iterdir():
            device.unlink()

    def _device_option(self, port: SimPort) -> str:
        """``HOST_NODE:/dev/NAME`` with a host node that has the port's numbers."""
        host_node = self._device_dir / port.name
        if not host_node.exists():
            os.mknod(host_node, stat.S_IFCHR | 0o600, os.makedev(port.major, port.minor))
        return f"{host_node}:/dev/{port.name}"


def finish(process: "subprocess.Popen[str]") -> Completed:
    """Wait for a started ``podman run``; kill it after the timeout."""
    try:
        stdout, stderr = process.communicate(timeout=ENGINE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return Completed(process.returncode, stdout, stderr)


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


def _busybox_rootfs(busybox: Path, rootfs: Path) -> Path:
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    return rootfs


def shipped_port(node: SimNode, name: str) -> SimPort:
    """A port of the shipped node, found by name under either driver's class directory."""
    (sysfs_dir,) = node.sysfs.glob(f"class/*/*/{name}")
    major, minor = (sysfs_dir / "dev").read_text().strip().split(":")
    return SimPort(name, sysfs_dir, int(major), int(minor))


def request_env(region: str, afu: str, suffix: str = "1") -> list[str]:
    """One request as the container's ``FPGA_REGION_N`` / ``FPGA_AFU_N`` entries."""
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The engine's programs; skips (or fails, when required) if any is missing."""
    found = locate_engine()
    if isinstance(found, str):
        unavailable(found)
    return found


@pytest.fixture
def podman_on(engine: Engine, tmp_path: Path) -> Iterator[Callable[[SimNode], Podman]]:
    """``podman_on(node)``: a :class:`Podman` whose hook works on *node*."""
    made: list[Podman] = []

    def make(node: SimNode) -> Podman:
        made.append(Podman(engine, node, tmp_path / f"podman{len(made)}"))
        return made[-1]

    yield make
    for podman in made:
        podman.clean_up()


def test_container_starts_after_the_hook_programs_its_port(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], request_env(REGION_A, AFU_2))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert podman.events().count("port programmed") == 1


def test_second_start_skips_a_port_that_holds_the_afu(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
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


def test_missing_bitstream_stops_the_container_with_the_hooks_message(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")
    unknown_afu = "0123456789abcdef0123456789abcdef"

    result = podman.run([port], request_env(REGION_A, unknown_afu))

    assert result.returncode != 0
    assert f"no bitstream for region {REGION_A}, AFU {unknown_afu}" in result.stderr
    assert port.afu_id() == AFU_1


def test_a_failed_start_shows_the_operator_one_plain_line_not_json(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")
    unknown_afu = "0123456789abcdef0123456789abcdef"

    result = podman.run([port], request_env(REGION_A, unknown_afu))

    assert result.returncode != 0
    # What CRI-O would hand to kubectl describe pod: runc's message, ending with ours.
    [line] = [text for text in result.stderr.splitlines() if "error running hook" in text]
    ours = f"fpga-crihook: no bitstream for region {REGION_A}, AFU {unknown_afu} in "
    assert ours in line
    assert line.rstrip().rstrip('"').endswith(f"{unknown_afu}.aocx"), line
    assert "{" not in result.stderr  # no JSON event anywhere in podman's error
    assert podman.events()[-1] == "prestart failed"  # the events went to the log file


def test_invalid_afu_id_stops_the_container_and_programs_nothing(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], [f"FPGA_REGION_1={REGION_A}", "FPGA_AFU_1=../../x"])

    assert result.returncode != 0
    assert "FPGA_AFU_1" in result.stderr  # the hook's error, passed on by podman
    assert port.afu_id() == AFU_1
    assert "port programmed" not in podman.events()


def test_container_without_the_annotation_never_runs_the_hook(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_node)
    port = shipped_port(shipped_node, "dfl-port.0")

    result = podman.run([port], request_env(REGION_A, AFU_2), annotated=False)

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_1
    assert not podman.log_file.exists()  # the hook creates it as soon as it starts


def test_two_ports_of_one_card_each_get_their_request(
    shipped_node: SimNode, podman_on: Callable[[SimNode], Podman]
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
    shipped_opae_node: SimNode, podman_on: Callable[[SimNode], Podman]
) -> None:
    podman = podman_on(shipped_opae_node)
    port = shipped_port(shipped_opae_node, "intel-fpga-port.0")

    result = podman.run([port], request_env(REGION_OPAE, AFU_2))

    assert result.returncode == 0, result.stderr
    assert port.afu_id() == AFU_2
    assert podman.events().count("port programmed") == 1


def test_four_containers_started_at_once_on_one_card_each_get_their_afu(
    node: SimNode, podman_on: Callable[[SimNode], Podman]
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
