"""The spawner behind ``bench/run.py``: runs a plan of commands in rounds, reports rusage.

Run as ``python -I -S bench/measure.py PLAN RESULTS`` (both files in
:mod:`marshal` format). It imports nothing but built-in modules, because a
child's ``ru_maxrss`` counts the memory of the process that forked it, up to
the exec: a parent holding tens of MiB would show up in every row. Without
``site`` this process stays smaller than ``python -c pass``, the smallest row.

Plan: ``{"warmup": int, "repeats": int, "stderr": path, "cases": [case, ...]}``,
each case ``{"name", "argv", "env", "stdin", "expect", "reset"}`` where
``reset`` is ``None`` or ``(path, text)`` written before each run, outside
the timing. Results: ``{name: {"samples": [(wall_ms, cpu_ms, rss_kib)],
"failure": None or (exit_code, last_stderr_line)}}``; a case stops at its
first failure (non-zero exit, or *expect* missing from the last stderr line;
an empty *expect* means stderr must stay empty).
"""

from __future__ import annotations

import marshal
import os
import sys
import time

TYPE_CHECKING = False  # the typing module alone would add 2 MiB to this process
if TYPE_CHECKING:
    from typing import Any


def run_once(case: dict[str, Any], stderr: str) -> tuple[tuple[float, float, int], int, str]:
    """One spawn of the case's command: its sample, exit code and last stderr line."""
    if case["reset"] is not None:
        path, text = case["reset"]
        with open(path, "w", encoding="ascii") as afu_file:
            afu_file.write(text)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, case["stdin"], os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    started = time.perf_counter()
    pid = os.posix_spawn(case["argv"][0], case["argv"], case["env"], file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    with open(stderr, encoding="utf-8", errors="replace") as output:
        lines = output.read().strip().splitlines()
    cpu = usage.ru_utime + usage.ru_stime
    sample = (wall * 1000, cpu * 1000, usage.ru_maxrss)  # ru_maxrss is in KiB on Linux
    return sample, os.waitstatus_to_exitcode(status), lines[-1] if lines else ""


def measure(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run every case once per round; keep the samples after the warm-up rounds.

    Each round takes the cases in its own order, so that no case mostly
    follows the same one: a run right after a 64 MiB one is not like any
    other run (a mere rotation of one order still put the same case right
    after aocx-64 in all but one round in fourteen).
    """
    cases = plan["cases"]
    results: dict[str, dict[str, Any]] = {
        case["name"]: {"samples": [], "failure": None} for case in cases
    }
    for round_number in range(plan["warmup"] + plan["repeats"]):
        for case in shuffled(cases, round_number):
            result = results[case["name"]]
            if result["failure"] is not None:
                continue
            sample, exit_code, last_line = run_once(case, plan["stderr"])
            expect = case["expect"]
            if exit_code != 0 or expect not in last_line or (not expect and last_line):
                result["failure"] = (exit_code, last_line)
            elif round_number >= plan["warmup"]:
                result["samples"].append(sample)
    return results


def shuffled(items: list[Any], seed: int) -> list[Any]:
    """*items* in an order fixed by *seed* (Fisher-Yates on a 64-bit LCG: the ``random``
    module would add to this process's memory, which every child's peak RSS counts)."""
    order = list(items)
    state = seed * 2654435761 + 1
    for index in range(len(order) - 1, 0, -1):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        other = (state >> 33) % (index + 1)
        order[index], order[other] = order[other], order[index]
    return order


def main() -> None:
    """``measure.py PLAN RESULTS``."""
    plan_path, results_path = sys.argv[1:3]
    with open(plan_path, "rb") as plan_file:
        plan = marshal.load(plan_file)  # noqa: S302 (written by bench/run.py for this run)
    results = measure(plan)
    with open(results_path, "wb") as results_file:
        marshal.dump(results, results_file)


if __name__ == "__main__":
    main()
