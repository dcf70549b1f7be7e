"""``make bench-scaling``: how the hook's cost grows with its work.

Two series, measured in the same shuffled rounds as the start-up table:

- programming a GBS, and an AOCX holding one, of 1, 16, 64 and 256 MiB of
  raw bitstream (sim programmer): time should grow by a constant amount per
  MiB, and peak RSS by one copy of the raw bitstream (a GBS file is read
  once into one buffer, an AOCX's GBS inflated into one buffer);
- a port that already holds its AFU, for a container given 1, 4 and 16
  ports (one request each) on a node of 8 cards of 2 ports, its ports
  spread over as many cards as they can be (each port is surveyed, then
  checked under its card's FME lock): time should grow by a constant
  amount per port.

Each step is the median of per-round differences from the smallest case of
its series, divided by the work added (MiB, ports). The checks look where
the work added is largest: peak RSS per MiB between the two largest sizes,
the cost per MiB at the two largest sizes, and the cost of a port.
"""

import argparse
import hashlib
import statistics
import time
from typing import Any

from cases import Results, Rows, difference, interval_text, make_rows, measure, table
from simnode import SimPort, add_card, write_gbs
from world import (
    AFU_HELD,
    AFU_IDLE,
    MIB,
    REGION,
    Case,
    World,
    raw_bitstream,
    seal_store,
    write_aocx,
)

SIZES_MIB = (1, 16, 64, 256)
PORT_COUNTS = (1, 4, 16)
CARDS, PORTS_PER_CARD = 8, 2
KINDS = ("gbs", "aocx")
# Peak RSS added per MiB of raw bitstream between the two largest sizes: one copy, and what the
# start-up targets allow.
RSS_PER_MIB = {"gbs": 1.1, "aocx": 1.25}
# The time per MiB at the largest size may exceed that at the size before by this factor: more
# would be growth faster than the work.
GROWTH = 1.25
# What one more port may add to a skip: a few sysfs reads, its FME's lock, a log line.
PORT_MS = 1.0
HASHED_MIB = 64  # the buffer the SHA-256 cost is measured on


def run(world: World, options: argparse.Namespace) -> dict[str, Any]:
    """Build the node, measure both series, and judge how they grow."""
    cases = build_cases(world, options.sizes)
    results = measure(cases, options.warmup, options.repeats, world.root)
    rows = make_rows(cases, results)
    series = {
        **{kind: [(f"{kind}-{size}", size) for size in options.sizes] for kind in KINDS},
        "skip": [(_skip_name(count), count) for count in PORT_COUNTS],
    }
    growth = {name: grow(steps, results, rows) for name, steps in series.items()}
    return {
        "settings": {
            "repeats": options.repeats,
            "warmup_rounds": options.warmup,
            "sizes_mib": list(options.sizes),
            "port_counts": list(PORT_COUNTS),
        },
        "rows": rows,
        "growth": growth,
        "sha256_ms_per_mib": sha256_ms_per_mib(),
        "checks": checks(growth),
    }


def build_cases(world: World, sizes: tuple[int, ...]) -> list[Case]:
    """8 cards of 2 ports holding their AFU, one card with an idle port to program, a GBS
    and an AOCX of each size, and one case per row."""
    cards = [
        add_card(
            world.node,
            "dfl",
            index=index,
            interface_id=REGION,
            afu_ids=[AFU_HELD] * PORTS_PER_CARD,
            first_port=PORTS_PER_CARD * index,
            pci_address=f"0000:{0x5E + index:02x}:00.0",
        )
        for index in range(CARDS)
    ]
    spread = [card.ports[number] for number in range(PORTS_PER_CARD) for card in cards]
    (target,) = add_card(
        world.node,
        "dfl",
        index=CARDS,
        interface_id=REGION,
        afu_ids=[AFU_IDLE],
        first_port=CARDS * PORTS_PER_CARD,
        pci_address=f"0000:{0x5E + CARDS:02x}:00.0",
    ).ports
    write_gbs(world.node, REGION, AFU_HELD)
    cases = [_skip_case(world, spread[:count]) for count in PORT_COUNTS]
    for size in sizes:
        cases += _programming_cases(world, size, target)
    seal_store(world.node.store)
    return cases


def _skip_name(count: int) -> str:
    return f"skip-{count}p"


def _skip_case(world: World, ports: list[SimPort]) -> Case:
    cards = len({port.sysfs_dir.parent for port in ports})
    what = f"{len(ports)} port(s) on {cards} card(s), each holding its AFU"
    return world.case(_skip_name(len(ports)), what, AFU_HELD, tuple(ports), expect="skipped")


def _programming_cases(world: World, size: int, port: SimPort) -> list[Case]:
    raw = raw_bitstream(size * MIB)
    gbs_afu, aocx_afu = f"9b5{size:029x}", f"a0c{size:029x}"  # a file name per size
    write_gbs(world.node, REGION, gbs_afu, raw=raw)
    write_aocx(world.node, aocx_afu, raw)
    done = "port programmed"
    return [
        world.case(
            f"gbs-{size}", f"program a {size} MiB GBS", gbs_afu, (port,), expect=done, reset=True
        ),
        world.case(
            f"aocx-{size}",
            f"program an AOCX holding a {size} MiB GBS",
            aocx_afu,
            (port,),
            expect=done,
            reset=True,
        ),
    ]


def grow(steps: list[tuple[str, int]], results: Results, rows: Rows) -> dict[str, Any]:
    """For each case of a series but the first: the CPU time and peak RSS it adds to the
    first (time: the median of per-round differences), in all and per unit of work added."""
    (base, amount), added_steps = steps[0], []
    for name, work in steps[1:]:
        paired = difference(name, base, results, rows)
        if paired is None:
            continue
        added = work - amount
        added_steps.append(
            {
                "case": name,
                "work": work,
                "cpu_ms_added": paired["cpu_ms"],
                "cpu_ms_added_ci95": paired["cpu_ms_ci95"],
                "cpu_ms_per_unit": round(paired["cpu_ms"] / added, 3),
                "rss_mib_added": paired["rss_mib"],
                "rss_mib_per_unit": round(paired["rss_mib"] / added, 3),
            }
        )
    return {"base": base, "base_work": amount, "steps": added_steps}


def checks(growth: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Whether each series grows as its work does and no faster, judged where the work
    added is largest: a shared machine's noise and fixed costs drown the small steps."""
    verdicts = []
    for kind in KINDS:
        verdicts += _one_copy(kind, growth[kind]) + _steady_per_mib(kind, growth[kind])
    costs = [step["cpu_ms_per_unit"] for step in growth["skip"]["steps"]]
    if costs:  # a port's cost is too small next to the noise for a ratio: it is bounded
        text = f"skip: CPU per added port <= {PORT_MS:g} ms"
        verdicts.append(_check(text, costs, max(costs) <= PORT_MS))
    return verdicts


def _one_copy(kind: str, series: dict[str, Any]) -> list[dict[str, Any]]:
    """Peak RSS added per MiB between the two largest sizes: one copy of the raw bitstream
    (fixed costs, such as the 1 MiB chunks the AOCX reader inflates, cancel out)."""
    points = [(series["base_work"], 0.0)]
    points += [(step["work"], step["rss_mib_added"]) for step in series["steps"]]
    if len(points) < 2:
        return []
    (smaller, rss_smaller), (larger, rss_larger) = points[-2:]
    ratio = round((rss_larger - rss_smaller) / (larger - smaller), 3)
    limit = RSS_PER_MIB[kind]
    text = f"{kind}: peak RSS from {smaller} to {larger} MiB grows by <= {limit:g} MiB per MiB"
    return [_check(text, [ratio], ratio <= limit)]


def _steady_per_mib(kind: str, series: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU per MiB added at the largest size at most *GROWTH* times that at the size before."""
    steps = series["steps"]
    if len(steps) < 2:
        return []
    before, largest = steps[-2:]
    costs = [before["cpu_ms_per_unit"], largest["cpu_ms_per_unit"]]
    text = f"{kind}: CPU per MiB at {largest['work']} MiB <= {GROWTH:g} x at {before['work']} MiB"
    return [_check(text, costs, costs[1] <= GROWTH * costs[0])]


def _check(text: str, values: list[float], passed: bool) -> dict[str, Any]:
    return {"check": text, "status": "PASS" if passed else "FAIL", "values": values}


def sha256_ms_per_mib() -> float:
    """What hashing the raw bitstream costs on this machine, per MiB: ``hashlib.sha256``
    over a buffer of *HASHED_MIB*, median of 5 (in this process: no start-up in it)."""
    buffer = raw_bitstream(HASHED_MIB * MIB)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        hashlib.sha256(buffer).digest()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000 / HASHED_MIB, 3)


def render(report: dict[str, Any]) -> str:
    """The scaling report as ``make bench-scaling`` prints it."""
    settings = report["settings"]
    rows, growth = report["rows"], report["growth"]
    lines = [
        f"how the cost grows: medians of {settings['repeats']} runs per case, one per round "
        f"in shuffled order, after {settings['warmup_rounds']} warm-up round(s)",
        "",
        *table(rows),
    ]
    for name, unit in (("gbs", "MiB"), ("aocx", "MiB"), ("skip", "port")):
        base = growth[name]["base"]
        lines += ["", f"{name}: added to {base} (CPU ms: median of per-round differences)"]
        lines += [f"  {'case':<10} {'cpu ms added (95 %)':>24} {f'cpu ms/{unit}':>11}"]
        if unit == "MiB":
            lines[-1] += f" {'RSS MiB/MiB':>11}"
        for step in growth[name]["steps"]:
            paired = {"cpu_ms": step["cpu_ms_added"], "cpu_ms_ci95": step["cpu_ms_added_ci95"]}
            line = f"  {step['case']:<10} {interval_text(paired, 'cpu_ms'):>24}"
            line += f" {step['cpu_ms_per_unit']:11.2f}"
            if unit == "MiB":
                line += f" {step['rss_mib_per_unit']:11.2f}"
            lines.append(line)
    lines += [
        "",
        f"sha256 of a raw bitstream: {report['sha256_ms_per_mib']:.2f} ms per MiB "
        f"(hashlib over {HASHED_MIB} MiB in the bench's process, median of 5)",
        "",
        "checks:",
    ]
    for verdict in report["checks"]:
        values = ", ".join(f"{value:.2f}" for value in verdict["values"])
        lines.append(f"  {verdict['status']}  {verdict['check']}: {values}")
    return "\n".join(lines)
