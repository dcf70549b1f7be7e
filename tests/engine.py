"""podman + runc for the end-to-end tests: finding the programs, and running a container.

The container is a static busybox running ``/bin/true`` from a rootfs made
here: no image is pulled. Port device nodes are made with ``mknod`` using the
simulated ports' numbers, so the ``linux.devices`` entries podman writes into
the real ``config.json`` lead the hook to the simulated sysfs tree.
docs/design.md#testing says what works on these machines and why the ulimits
are given.

The tests need root, podman, runc and a static busybox. Without them they
skip with the reason, unless ``FPGA_CRIHOOK_REQUIRE_E2E=1`` (set by CI), in
which case they fail.
"""

import dataclasses
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pytest
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from helpers import Completed
from simnode import SimNode, SimPort

REQUIRE_VARIABLE = "FPGA_CRIHOOK_REQUIRE_E2E"
REGION_ANNOTATION = "com.intel.fpga.mode=fpga.intel.com/region"
PROGRAMS = ("podman", "runc", "busybox")
PACKAGES = ("podman", "runc", "busybox-static")
ENGINE_TIMEOUT = 120  # seconds for any one podman call
# The default nofile/nproc limits cannot be raised in the sandbox (docs/design.md#testing).
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


def available_engine() -> Engine:
    """The engine's programs; skips (or fails, when required) if any is missing."""
    found = locate_engine()
    if isinstance(found, str):
        unavailable(found)
    return found


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
    """podman with runc, the hooks directory it is given, and a busybox rootfs."""

    def __init__(self, engine: Engine, hooks_dir: Path, workdir: Path) -> None:
        self._engine = engine
        self.hooks_dir = hooks_dir
        self._rootfs = workdir / "rootfs"
        (self._rootfs / "bin").mkdir(parents=True)
        shutil.copy2(engine.busybox, self._rootfs / "bin" / "busybox")
        (self._rootfs / "bin" / "true").symlink_to("busybox")
        self._device_dir = workdir / "devices"
        self._device_dir.mkdir()
        self._names: list[str] = []

    def start(
        self,
        ports: Iterable[SimPort],
        env: list[str],
        *,
        annotated: bool = True,
        cdi_devices: Iterable[str] = (),
    ) -> "subprocess.Popen[str]":
        """Start ``podman run`` of ``/bin/true`` with *ports* as plain devices, CDI devices
        (``KIND=NAME``) and *env*."""
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
            *(option for device in cdi_devices for option in ("--device", device)),
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

    def run(
        self,
        ports: Iterable[SimPort],
        env: list[str],
        *,
        annotated: bool = True,
        cdi_devices: Iterable[str] = (),
    ) -> Completed:
        """Run a container to its end and return podman's exit status and output."""
        return finish(self.start(ports, env, annotated=annotated, cdi_devices=cdi_devices))

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


def shipped_port(node: SimNode, name: str) -> SimPort:
    """A port of the shipped node, found by name under either driver's class directory."""
    (sysfs_dir,) = node.sysfs.glob(f"class/*/*/{name}")
    major, minor = (sysfs_dir / "dev").read_text().strip().split(":")
    return SimPort(name, sysfs_dir, int(major), int(minor))


def request_env(region: str, afu: str, suffix: str = "1") -> list[str]:
    """One request as the container's ``FPGA_REGION_N`` / ``FPGA_AFU_N`` entries."""
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]
