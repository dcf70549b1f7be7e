"""``make bench``: what the hook adds to a container's start, measured against Python itself.

Every row is the median of whole-process runs of the installed
``fpga-crihook`` (or of a reference interpreter command), all cases taken in
turn in each round (each round in its own shuffled order) so that machine
noise hits them alike; warm-up rounds are discarded. Each run reports wall
time, the child's CPU time (user + system) and its peak RSS, both from
``wait4`` (``bench/measure.py`` spawns them).

The world is a simulated node in a temp dir (``tests/simnode.py``): one DFL
card with four ports, a store with small and large bitstreams, and bundles
made from the podman samples in ``testdata/oci``. The targets at the end say
how close to its floor the hook stays: ``floor-models``, its own libraries
imported and one pydantic model built and used (``floor``, the bare imports,
is kept for reference).
"""

import argparse
import dataclasses
import json
import marshal
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from simnode import SimNode, SimPort, add_card, gbs_bytes, state_json, write_gbs

REPO = Path(__file__).resolve().parent.parent
HOOK = Path(sys.executable).parent / "fpga-crihook"
SPAWNER = Path(__file__).resolve().parent / "measure.py"
DEFAULT_OUTPUT = REPO / "bench" / "results" / "latest.json"
MIB = 1 << 20

REGION = "ce48969398f05f33946d560708be108a"
AFU_IDLE = "00000000000000000000000000000001"  # what the programmed ports are reset to
AFU_HELD = "d8424dc4a4a3c413f89e433683f9040b"
AFU_BIG = "f7df405cbd7acf7222f144b0b93acd18"
AFU_SMALL = "331db30c988541ea9f5b1b8ae8b5d0b5"
AFU_OPENCL = "850adcc2c4934024a08c8f2ffaa3a7ad"

FLOOR_IMPORTS = "import click, pydantic, structlog"
# ``import pydantic`` alone loads almost nothing (its names are imported lazily): the least
# a program pays to use the libraries the hook is built on includes one model, built and used.
FLOOR_MODEL = """
import click, structlog
from pydantic import BaseModel, ConfigDict
class Floor(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")
    name: str
Floor.model_validate({"name": "floor"})
"""
REFERENCES = {
    "bare": ("pass", "python -c pass: the interpreter alone"),
    "floor": (FLOOR_IMPORTS, "python importing click, pydantic, structlog"),
    "floor-models": (FLOOR_MODEL, "click, structlog, one frozen strict BaseModel validating"),
    # The hook's console scripts turn the cyclic garbage collector off (fpga_crihook/launch.py):
    # the same floor with it off shows what that alone is worth, and what is left of the hook.
    "floor-nogc": (f"import gc; gc.disable()\n{FLOOR_MODEL}", "floor-models, collector off"),
    "floor-all": (f"{FLOOR_MODEL}import jsonschema", "floor-models + jsonschema"),
    "floor-elf": (
        f"{FLOOR_MODEL}import jsonschema, elftools.elf.elffile",
        "floor-all + pyelftools",
    ),
}
METRICS = ("wall_ms", "cpu_ms", "rss_mib")


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: a command, its environment and stdin, and what its stderr must show."""

    name: str
    what: str
    argv: list[str]
    env: dict[str, str]
    stdin: Path
    expect: str = ""  # a word the last stderr line must contain ("" means: no stderr at all)
    reset: tuple[Path, str] | None = None  # written before each run, outside the timing
    error: str | None = None  # why the case cannot run at all


class Target(NamedTuple):
    """A limit on one row's metric: at most *allowance* above the *base* row's."""

    row: str
    metric: str
    base: str
    allowance: float
    text: str


def main(argv: list[str] | None = None) -> int:
    """Build the world, run every case round-robin, print the table, write the JSON."""
    options = _parse_arguments(argv)
    with tempfile.TemporaryDirectory(prefix="fpga-crihook-bench-") as scratch:
        cases = build_cases(Path(scratch), options.size_mib)
        results = measure(cases, options.warmup, options.repeats, Path(scratch))
    report = make_report(cases, results, options)
    print(render(report))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {options.output}")
    return 0


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41, help="measured runs per case")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and discarded")
    parser.add_argument("--quick", action="store_true", help="5 runs after 1 warm-up round")
    parser.add_argument("--size-mib", type=int, default=64, help="size of the large bitstream")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON report")
    options = parser.parse_args(argv)
    if options.quick:
        options.repeats, options.warmup = 5, 1
    if options.repeats < 1 or options.warmup < 0 or options.size_mib < 1:
        parser.error("--repeats and --size-mib must be at least 1, --warmup at least 0")
    return options


# The world ---------------------------------------------------------------------------------


def raw_bitstream(size: int) -> bytes:
    """*size* bytes that look like a partly used region: each 64 KiB holds 8 KiB of noise.

    Only an AOCX cares (its GBS is gzip-compressed, about 8:1 with this data).
    """
    chunk, noise = 64 << 10, 8 << 10
    blocks = (os.urandom(noise) + bytes(chunk - noise) for _ in range(-(-size // chunk)))
    return b"".join(blocks)[:size]


def build_cases(root: Path, size_mib: int) -> list[Case]:
    """The simulated node, its bitstreams and bundles, and one :class:`Case` per row."""
    node = SimNode(root / "node")
    card = add_card(node, "dfl", index=0, interface_id=REGION, afu_ids=[AFU_HELD] + [AFU_IDLE] * 3)
    skip_port, gbs_port, aocx_port, dry_port = card.ports
    raw = raw_bitstream(size_mib * MIB)
    write_gbs(node, REGION, AFU_HELD)
    write_gbs(node, REGION, AFU_SMALL, raw=os.urandom(4096))
    write_gbs(node, REGION, AFU_BIG, raw=raw)
    aocx_error = _write_aocx(node, raw)
    world = _World(root, node)
    size = f"{size_mib}"
    dry = {"FPGA_CRIHOOK_DRY_RUN": "1"}
    return [
        *(_reference(name, root) for name in REFERENCES),
        world.hook("skip", "port already holds the AFU", AFU_HELD, skip_port, expect="skipped"),
        world.hook(
            "skip-metrics",
            "skip, writing metrics (--metrics-dir)",
            AFU_HELD,
            skip_port,
            env={"FPGA_CRIHOOK_METRICS_DIR": str(root / "metrics")},
            expect="skipped",
        ),
        world.hook(
            "skip-conf",
            "skip, settings in the node config file",
            AFU_HELD,
            skip_port,
            expect="skipped",
            settings_in_file=True,
        ),
        world.hook("noop", "container without the annotation", AFU_HELD, None),
        world.hook(
            f"gbs-{size}",
            f"program a {size} MiB GBS (sim programmer)",
            AFU_BIG,
            gbs_port,
            expect="port programmed",
            reset=True,
        ),
        world.hook(
            f"aocx-{size}",
            f"program an AOCX holding a {size} MiB GBS",
            AFU_OPENCL,
            aocx_port,
            expect="port programmed",
            reset=True,
            error=aocx_error,
        ),
        world.hook(
            f"dry-{size}", f"dry run, {size} MiB GBS", AFU_BIG, dry_port, env=dry, expect="dry run"
        ),
        world.hook(
            "dry-small", "dry run, 4 KiB GBS", AFU_SMALL, dry_port, env=dry, expect="dry run"
        ),
    ]


@dataclasses.dataclass(frozen=True)
class _World:
    """The node the hook cases run on, and where their bundles and state files go."""

    root: Path
    node: SimNode

    def hook(
        self,
        name: str,
        what: str,
        afu: str,
        port: SimPort | None,
        *,
        expect: str = "",
        env: dict[str, str] | None = None,
        reset: bool = False,
        error: str | None = None,
        settings_in_file: bool = False,
    ) -> Case:
        """``fpga-crihook prestart`` for a container asking for *afu* on *port* (``None``:
        no annotation, no devices); *reset* puts an idle AFU into the port before each run;
        *settings_in_file* moves the node's settings from the env into its config file."""
        bundle = _bundle(self.root / name, afu, port)
        stdin = self.root / f"{name}.state.json"
        stdin.write_text(state_json(bundle, annotated=port is not None))
        settings = self.node.env(**(env or {}))
        if settings_in_file:
            settings = _in_config_file(settings, self.node.config_file)
        return Case(
            name,
            what,
            [str(HOOK), "prestart"],
            settings,
            stdin,
            expect,
            (port.afu_file, AFU_IDLE + "\n") if reset and port is not None else None,
            error,
        )


def _in_config_file(env: dict[str, str], config_file: Path) -> dict[str, str]:
    """*env*'s settings written to *config_file* (keys: the long option names); an env
    that names only that file, as for a hook run from Intel's CDI spec, and keeps the
    request for events on stderr (the file's log settings are for the journal), so
    that the run's last event can be checked."""
    named, kept = "FPGA_CRIHOOK_CONFIG", ("FPGA_CRIHOOK_LOG_FORMAT",)
    lines = [
        f'{name.removeprefix("FPGA_CRIHOOK_").lower().replace("_", "-")} = "{value}"\n'
        for name, value in env.items()
        if name != named and name not in kept
    ]
    config_file.write_text("".join(lines))
    config_file.chmod(0o644)
    return {named: str(config_file), **{name: env[name] for name in kept if name in env}}


def _reference(name: str, root: Path) -> Case:
    code, what = REFERENCES[name]
    stdin = root / "empty"
    stdin.touch()
    return Case(name, what, [sys.executable, "-c", code], {}, stdin)


def _write_aocx(node: SimNode, raw: bytes) -> str | None:
    """Write ``<region>/<afu>.aocx``; return why it cannot be, when it cannot."""
    try:
        from aocxfiles import aocx_bytes  # noqa: PLC0415 (the helper may not exist yet)
    except ImportError:
        return "no AOCX builder: tests/aocxfiles.py (aocx_bytes) does not exist yet"
    path = node.store / REGION / f"{AFU_OPENCL}.aocx"
    path.write_bytes(aocx_bytes(gbs_bytes(REGION, AFU_OPENCL, raw=raw)))
    return None


def _bundle(directory: Path, afu: str, port: SimPort | None) -> Path:
    """A bundle made from podman's config.json, asking for *afu* on *port*."""
    config = json.loads((REPO / "testdata" / "oci" / "podman-config.json").read_text())
    env = [entry for entry in config["process"]["env"] if not entry.startswith("FPGA_")]
    config["process"]["env"] = [*env, f"FPGA_REGION_1={REGION}", f"FPGA_AFU_1={afu}"]
    config["linux"]["devices"] = [port.device()] if port is not None else []
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config, indent=4))
    return directory


# Measuring ---------------------------------------------------------------------------------


def measure(
    cases: list[Case], warmup: int, repeats: int, scratch: Path
) -> dict[str, dict[str, Any]]:
    """Run the cases that can run through the small spawner process (``bench/measure.py``)."""
    plan = {
        "warmup": warmup,
        "repeats": repeats,
        "stderr": str(scratch / "stderr"),
        "cases": [_planned(case) for case in cases if case.error is None],
    }
    plan_path, results_path = scratch / "plan.marshal", scratch / "results.marshal"
    plan_path.write_bytes(marshal.dumps(plan))
    subprocess.run(
        [sys.executable, "-I", "-S", str(SPAWNER), str(plan_path), str(results_path)], check=True
    )
    results: dict[str, dict[str, Any]] = marshal.loads(results_path.read_bytes())  # noqa: S302 (ours)
    return results


def _planned(case: Case) -> dict[str, Any]:
    return {
        "name": case.name,
        "argv": case.argv,
        "env": case.env,
        "stdin": str(case.stdin),
        "expect": case.expect,
        "reset": None if case.reset is None else (str(case.reset[0]), case.reset[1]),
    }


# Reporting ---------------------------------------------------------------------------------


def targets(size_mib: int) -> list[Target]:
    """The limits the hook must keep: a row's difference from its base row, in the same run."""
    size = f"{size_mib}"
    return [
        Target("skip", "wall_ms", "floor-models", 25.0, "skip wall <= floor-models + 25 ms"),
        Target("noop", "wall_ms", "floor-models", 10.0, "noop wall <= floor-models + 10 ms"),
        Target(
            f"gbs-{size}",
            "rss_mib",
            "floor-all",
            1.1 * size_mib,
            f"gbs-{size} peak RSS <= floor-all + 1.1 x {size} MiB",
        ),
        Target(
            f"aocx-{size}",
            "rss_mib",
            "floor-elf",
            1.25 * size_mib,
            f"aocx-{size} peak RSS <= floor-elf + 1.25 x {size} MiB",
        ),
        Target(
            f"dry-{size}", "wall_ms", "dry-small", 10.0, f"dry-{size} wall <= dry-small + 10 ms"
        ),
    ]


def make_report(
    cases: list[Case], results: dict[str, dict[str, Any]], options: argparse.Namespace
) -> dict[str, Any]:
    """Rows (medians), differences and target verdicts, as written to the JSON file."""
    rows = {case.name: _row(case, results.get(case.name)) for case in cases}
    size = f"{options.size_mib}"
    differences = {
        f"{left} - {right}": _difference(left, right, results, rows)
        for left, right in (
            ("skip", "floor-models"),
            ("skip", "floor-nogc"),
            ("skip-metrics", "skip"),
            ("skip-conf", "skip"),
            ("noop", "floor-models"),
            ("noop", "floor-nogc"),
            ("floor-models", "floor-nogc"),
            (f"dry-{size}", "dry-small"),
        )
    }
    return {
        "machine": machine(),
        "settings": {
            "repeats": options.repeats,
            "warmup_rounds": options.warmup,
            "size_mib": options.size_mib,
        },
        "rows": rows,
        "differences": differences,
        "targets": [_verdict(target, results, rows) for target in targets(options.size_mib)],
    }


def _row(case: Case, result: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"what": case.what}
    if result is None or result["failure"] is not None:
        row["error"] = case.error or _failure_words(result["failure"] if result else None)
        return row
    walls, cpus, rss_kib = zip(*result["samples"], strict=True)
    row.update(
        wall_ms=round(statistics.median(walls), 2),
        cpu_ms=round(statistics.median(cpus), 2),
        rss_mib=round(statistics.median(rss_kib) / 1024, 2),
        wall_ms_min=round(min(walls), 2),
        runs=len(walls),
    )
    return row


def _failure_words(failure: tuple[int, str] | None) -> str:
    """What went wrong, in the hook's words when its last line is a JSON error event."""
    if failure is None:
        return "not run"
    exit_code, line = failure
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        event = None
    words = str(event.get("error", line)) if isinstance(event, dict) else line
    return f"exit status {exit_code}: {words[:300] or 'no output'}"


def _difference(
    left: str, right: str, results: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """*left* minus *right*: times as the median of the per-round differences, with its 95 %
    confidence interval; peak RSS as the difference of the medians.

    Both cases ran once in every round: pairing them by round cancels what the
    machine did to that round. On a shared machine single runs still scatter
    by tens of milliseconds, so the interval says how far the median can be
    trusted; more ``--repeats`` narrow it.
    """
    if "error" in rows[left] or "error" in rows[right]:
        return None
    pairs = list(zip(results[left]["samples"], results[right]["samples"], strict=True))
    difference: dict[str, Any] = {}
    for index, metric in enumerate(METRICS[:2]):
        values = sorted(a[index] - b[index] for a, b in pairs)
        difference[metric] = round(statistics.median(values), 2)
        difference[f"{metric}_ci95"] = [round(bound, 2) for bound in median_interval(values)]
    difference["rss_mib"] = round(rows[left]["rss_mib"] - rows[right]["rss_mib"], 2)
    return difference


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval for the median of *values* (sorted).

    The number of values below the true median is binomial(n, 1/2): the
    interval runs from the j-th to the (n+1-j)-th smallest value, with j the
    largest rank whose two tails together hold at most 5 %.
    """
    count = len(values)
    tail, rank = 0.0, 0
    while rank < count // 2:
        tail += math.comb(count, rank) / 2**count
        if 2 * tail > 0.05:
            break
        rank += 1
    if rank == 0:  # too few values for any interval at this level
        return values[0], values[-1]
    return values[rank - 1], values[count - rank]


def _verdict(
    target: Target, results: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    verdict: dict[str, Any] = {"target": target.text}
    failed = [rows[name]["error"] for name in (target.row, target.base) if "error" in rows[name]]
    if failed:
        verdict.update(status="ERROR", error=failed[0])
        return verdict
    difference = _difference(target.row, target.base, results, rows)
    assert difference is not None  # neither row failed
    value = difference[target.metric]
    status = "PASS" if value <= target.allowance else "FAIL"
    verdict.update(status=status, difference=value, allowance=target.allowance)
    if f"{target.metric}_ci95" in difference:
        verdict["ci95"] = difference[f"{target.metric}_ci95"]
    return verdict


def machine() -> dict[str, Any]:
    """CPU model, core count, Python version and kernel of this machine."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": f"{platform.system()} {platform.release()}",
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    names = (line.partition(":")[2].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.processor() or "unknown")


def render(report: dict[str, Any]) -> str:
    """The report as the table ``make bench`` prints."""
    box, settings = report["machine"], report["settings"]
    lines = [
        f"machine: {box['cpu']}, {box['cores']} cores, Python {box['python']}, {box['kernel']}",
        f"medians of {settings['repeats']} runs per case, one per round in shuffled order, "
        f"after {settings['warmup_rounds']} warm-up round(s)",
        "",
        f"{'case':<12} {'wall ms':>8} {'cpu ms':>8} {'RSS MiB':>8}  what",
    ]
    lines += [_table_line(name, row) for name, row in report["rows"].items()]
    lines += [
        "",
        "differences: wall ms, cpu ms (medians of per-round differences, 95 % interval), RSS MiB",
    ]
    for name, difference in report["differences"].items():
        lines.append(f"  {name:<20} {_difference_text(difference)}")
    lines += ["", "targets:"]
    lines += [f"  {_verdict_text(verdict)}" for verdict in report["targets"]]
    return "\n".join(lines)


def _table_line(name: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{name:<12} {'ERROR':>8} {'':>8} {'':>8}  {row['what']}: {row['error']}"
    numbers = f"{row['wall_ms']:8.1f} {row['cpu_ms']:8.1f} {row['rss_mib']:8.1f}"
    return f"{name:<12} {numbers}  {row['what']}"


def _difference_text(difference: dict[str, Any] | None) -> str:
    if difference is None:
        return "n/a"
    times = [
        f"{difference[metric]:+.1f} ({difference[f'{metric}_ci95'][0]:+.1f}.."
        f"{difference[f'{metric}_ci95'][1]:+.1f})"
        for metric in METRICS[:2]
    ]
    return ", ".join([*times, f"{difference['rss_mib']:+.1f}"])


def _verdict_text(verdict: dict[str, Any]) -> str:
    if verdict["status"] == "ERROR":
        return f"ERROR {verdict['target']}: {verdict['error']}"
    interval = ""
    if "ci95" in verdict:
        low, high = verdict["ci95"]
        interval = f", 95 % interval {low:+.1f}..{high:+.1f}"
    return (
        f"{verdict['status']}  {verdict['target']}: {verdict['difference']:+.2f} "
        f"(allowed +{verdict['allowance']:g}{interval})"
    )


if __name__ == "__main__":
    sys.exit(main())
