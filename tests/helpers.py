"""What the tests share that is not a fixture: the IDs they ask for, the installed
programs, and running them.

Fixtures stay in ``conftest.py``, where pytest finds them; everything a test
imports by name is here, so no test imports ``conftest``. Builders of
simulated nodes and bitstreams are in ``simnode.py`` and ``aocxfiles.py``
(``testdata/generate.py`` and the bench use them too).
"""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from simnode import SimCard, SimNode, add_card

from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Port
from fpga_crihook.locking import FmeLock
from fpga_crihook.settings import Settings

HOOK = Path(sys.executable).parent / "fpga-crihook"
DROP_IN = Path(sys.executable).parent / "intel-fpga-crihook"  # the createRuntime hook, no args
REPO = Path(__file__).resolve().parent.parent

REGION_A = "ce48969398f05f33946d560708be108a"
REGION_B = "69528db6eb31577a8c3668f9faa081f6"
AFU_1 = "d8424dc4a4a3c413f89e433683f9040b"
AFU_2 = "f7df405cbd7acf7222f144b0b93acd18"
AFU_3 = "331db30c988541ea9f5b1b8ae8b5d0b5"
# The AFU ID an OpenCL board support package reports: every AOCX for the board carries it.
BSP_AFU = "18b79ffa2ee54aa096ef4230dafacb5f"


class Completed(NamedTuple):
    """What a run of the installed ``fpga-crihook`` left behind."""

    returncode: int
    stdout: str
    stderr: str


RunHook = Callable[..., Completed]
LockOf = Callable[[Port], FmeLock]


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


def run_on(node: SimNode, *args: str, **extra: str) -> Completed:
    """``fpga-crihook ARGS`` with the settings pointing at *node* (and *extra* variables),
    its events as JSON lines on stderr."""
    return run_cli(list(args), node.env(**extra))


def error_sentence(result: Completed, status: int = 1) -> str:
    """The error event's sentence; an operator command fails with 1, the hook with *status*."""
    assert result.returncode == status, result.stdout + result.stderr
    return str(json.loads(result.stderr.splitlines()[-1])["error"])


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


def two_drivers(node: SimNode) -> tuple[SimCard, SimCard]:
    """A DFL card (region A, ports holding AFU_1 and AFU_2) and an OPAE card (region B,
    one port holding AFU_1) on *node*: every command's view of both drivers at once."""
    dfl = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_2])
    opae = add_card(
        node, "opae", index=0, interface_id=REGION_B, afu_ids=[AFU_1], pci_address="0000:3b:00.0"
    )
    return dfl, opae


def busy_limit(seconds: float = 0.0) -> TimeLimit:
    """How long sysfs reads retry EBUSY, under a default deadline started now."""
    return Settings(busy_timeout=seconds).busy_limit
