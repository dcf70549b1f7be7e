"""Shared fixtures: a simulated node per test, the hook run on it, FME locks, a payload.

pytest finds fixtures here; what a test imports by name is in ``helpers.py``.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployment import build_payload
from helpers import REPO, Completed, LockOf, RunHook, run_cli
from simnode import SimNode, copy_node

from fpga_crihook.devices import Port
from fpga_crihook.locking import FmeLock, fme_lock
from fpga_crihook.settings import Settings


@pytest.fixture(scope="session")
def built_payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A payload from deployments/build-payload.sh, moved away from where it was built."""
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
