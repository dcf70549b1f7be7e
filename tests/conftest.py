"""Shared fixtures: a simulated node per test, and a runner for the installed CLI."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from simnode import SimNode, copy_node

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port
from fpga_crihook.locking import FmeLock, fme_lock
from fpga_crihook.settings import Settings

HOOK = Path(sys.executable).parent / "fpga-crihook"
DROP_IN = Path(sys.executable).parent / "intel-fpga-crihook"  # the createRuntime hook, no args
REPO = Path(__file__).resolve().parent.parent

REGION_A = "ce48969398f05f33946d560708be108a"
REGION_B = "69528db6eb31577a8c3668f9faa081f6"
AFU_1 = "d8424dc4a4a3c413f89e433683f9040b"
AFU_2 = "f7df405cbd7acf7222f144b0b93acd18"
AFU_3 = "331db30c988541ea9f5b1b8ae8b5d0b5"


class Completed(NamedTuple):
    """What a run of the installed ``fpga-crihook`` left behind."""

    returncode: int
    stdout: str
    stderr: str


RunHook = Callable[..., Completed]
LockOf = Callable[[Port], FmeLock]


@pytest.fixture(scope="session")
def built_payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A payload from deployments/build-payload.sh, moved away from where it was built."""
    from deployment import build_payload  # noqa: PLC0415 (it imports engine, which imports this)

    return build_payload(tmp_path_factory.mktemp("payload"))


def pytest_configure(config: pytest.Config) -> None:
    """Build every test's world as an administrator would, whatever the umask of whoever
    runs the tests (Fedora's and RHEL's users have 002): the hook programs nothing from
    a store others can write to, and a test that wants such a store makes one."""
    os.umask(0o022)


@pytest.fixture
def node(tmp_path: Path) -> SimNode:
    """An empty simulated node; tests add cards and bitstreams."""
    root = tmp_path / "node"
    root.mkdir()
    return SimNode(root)


@pytest.fixture
def shipped_node(tmp_path: Path) -> SimNode:
    """A copy of the simulated DFL node shipped in testdata/node."""
    return copy_node(REPO / "testdata" / "node", tmp_path / "shipped")


@pytest.fixture
def shipped_opae_node(tmp_path: Path) -> SimNode:
    """A copy of the simulated OPAE node shipped in testdata/opae-node."""
    return copy_node(REPO / "testdata" / "opae-node", tmp_path / "shipped-opae")


def run_cli(
    args: list[str],
    env: dict[str, str],
    stdin: str = "",
    program: Path = HOOK,
    *,
    timeout: float = 120,
    preexec: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run the installed console script with exactly *env* (no PATH unless given);
    *preexec* runs in the child before the script (resource limits, say)."""
    result = subprocess.run(
        [str(program), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        preexec_fn=preexec,
        cwd=cwd,
    )
    return Completed(result.returncode, result.stdout, result.stderr)


def run_prestart_with_a_bug(env: dict[str, str], stdin: str) -> Completed:
    """``fpga-crihook prestart`` whose hook raises ZeroDivisionError: a bug stands in
    for any exception outside the project's error family."""
    code = (
        "import fpga_crihook.hook as hook\n"
        "hook.run_prestart = lambda *_, **__: 1 / 0\n"
        "from fpga_crihook.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "prestart"],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return Completed(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def run_hook() -> RunHook:
    """``run_hook(node, state_json, **extra_env)`` runs ``fpga-crihook prestart``."""

    def run(node: SimNode, state: str, **extra: str) -> Completed:
        return run_cli(["prestart"], node.env(**extra), state)

    return run


@pytest.fixture
def lock_of(tmp_path: Path) -> Iterator[LockOf]:
    """``lock_of(port)``: its FME's lock, taken once and held, as by the hook, to the test's end."""
    held: dict[str, FmeLock] = {}
    with contextlib.ExitStack() as stack:

        def hold(port: Port) -> FmeLock:
            if port.fme.name not in held:
                lock = fme_lock(port.fme, tmp_path / "locks", Settings().lock_limit)
                held[port.fme.name] = stack.enter_context(lock)
            return held[port.fme.name]

        yield hold


def busy_limit(seconds: float = 0.0) -> TimeLimit:
    """How long sysfs reads retry EBUSY, under a default deadline started now."""
    return Settings(busy_timeout=seconds).busy_limit


def environ_without_path() -> dict[str, str]:
    """The current environment minus PATH: hooks.d may give the hook no PATH."""
    return {key: value for key, value in os.environ.items() if key != "PATH"}
