"""``make bench``: what the hook adds to a container's start, measured against Python itself.

The hook runs as deployed: a plain install of the working tree in a venv of
the bench's own with the runtime dependencies only (``bench/deployed.py``),
and the reference programs run on that venv's interpreter. Every row is the
median of whole-process runs taken in shuffled rounds (``bench/cases.py``)
on a simulated node (``bench/world.py``): one DFL card with four ports, a
store with small and large bitstreams, and bundles made from the podman
samples in ``testdata/oci``. The targets at the end say how close to its
floor the hook stays: ``floor-models``, its own libraries imported and one
pydantic model built and used (``floor``, the bare imports, is kept for
reference). Then the import profile of the skip path shows where its time
goes. ``--scaling`` measures how the cost grows instead (``bench/scaling.py``).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import import_profile
import scaling
from cases import METRICS, Results, Rows, difference, interval_text, make_rows, measure, table
from deployed import Install, deployed_install
from simnode import add_card, write_gbs
from world import (
    AFU_HELD,
    AFU_IDLE,
    AFU_OPENCL,
    MIB,
    REGION,
    REPO,
    Case,
    World,
    raw_bitstream,
    reference,
    seal_store,
    write_aocx,
)

RESULTS = REPO / "bench" / "results"
DEFAULT_VENV = REPO / "bench" / ".venv-deployed"

AFU_BIG = "f7df405cbd7acf7222f144b0b93acd18"
AFU_SMALL = "331db30c988541ea9f5b1b8ae8b5d0b5"

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
    # What the hook's console scripts do to the process itself (fpga_crihook/launch.py): the
    # collector off, pydantic's plugin loading off, and os._exit once the output is flushed,
    # skipping the interpreter's teardown. skip - floor-lean is the hook's own work.
    "floor-lean": (
        'import gc, os; gc.disable(); os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"\n'
        f"{FLOOR_MODEL}os._exit(0)\n",
        "floor-models, collector and plugins off, os._exit",
    ),
    "floor-all": (f"{FLOOR_MODEL}import jsonschema", "floor-models + jsonschema"),
    "floor-elf": (
        f"{FLOOR_MODEL}import jsonschema, elftools.elf.elffile",
        "floor-all + pyelftools",
    ),
}
# What a dry run must do for provenance, and nothing else: read the GBS a MiB at a time into
# two SHA-256 digests, the file's and its raw bitstream's (the ones its event carries).
HASH_GBS = """
import hashlib, sys
whole, raw = hashlib.sha256(), hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as file:
    header = file.read(20)
    whole.update(header + file.read(int.from_bytes(header[16:20], "little")))
    while chunk := file.read(1 << 20):
        whole.update(chunk)
        raw.update(chunk)
"""
PROFILED = "skip"  # the case whose imports the profile shows: every restart of an FPGA pod


class Target(NamedTuple):
    """A limit on one row's metric: at most *allowance* above the *base* row's, plus, when
    *plus* names two rows, the median of their paired difference in the same run (work the
    hook is asked to do, measured apart from it)."""

    row: str
    metric: str
    base: str
    allowance: float
    text: str
    plus: tuple[str, str] | None = None


def main(argv: list[str] | None = None) -> int:
    """Install the hook as deployed, build the world, run every case round-robin, print the
    tables, write the JSON."""
    options = _parse_arguments(argv)
    load_before = os.getloadavg()
    install = deployed_install(REPO, options.venv)
    with tempfile.TemporaryDirectory(prefix="fpga-crihook-bench-") as scratch:
        root = Path(scratch)
        world = World.new(root, install.hook)
        if options.scaling:
            report = scaling.run(world, options)
            text = scaling.render(report)
        else:
            report = _startup(world, install, options)
            text = render(report)
    report = {"machine": machine(load_before), "install": _install_facts(install), **report}
    print(f"{machine_line(report)}\n{text}")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {options.output}")
    return 0


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and discarded")
    parser.add_argument("--quick", action="store_true", help="5 rounds after 1 warm-up round")
    parser.add_argument("--size-mib", type=int, default=64, help="size of the large bitstream")
    parser.add_argument(
        "--profile-runs", type=int, default=5, help="runs of the import profile (0: none)"
    )
    parser.add_argument(
        "--scaling", action="store_true", help="measure how the cost grows, not the start-up"
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=scaling.SIZES_MIB,
        help="with --scaling: bitstream sizes in MiB, comma-separated (default: 1,16,64,256)",
    )
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="where the deployed install is kept"
    )
    parser.add_argument("--output", type=Path, help="the JSON report (default: bench/results/)")
    options = parser.parse_args(argv)
    if options.quick:
        options.repeats, options.warmup = 5, 1
    if options.repeats < 1 or options.warmup < 0 or options.size_mib < 1:
        parser.error("--repeats and --size-mib must be at least 1, --warmup at least 0")
    if options.output is None:
        options.output = RESULTS / ("scaling.json" if options.scaling else "latest.json")
    options.venv = options.venv.resolve()
    return options


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(sorted({int(size) for size in text.split(",")}))
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes are whole MiB, at least 1")
    return sizes


# The start-up table ------------------------------------------------------------------------


def _startup(world: World, install: Install, options: argparse.Namespace) -> dict[str, Any]:
    cases = build_cases(world, install, options.size_mib)
    results = measure(cases, options.warmup, options.repeats, world.root)
    report = make_report(cases, results, options)
    if options.profile_runs > 0:
        entries = import_profile.profile(_case(cases, PROFILED), options.profile_runs)
        report["import_profile"] = {
            "case": PROFILED,
            "runs": options.profile_runs,
            "modules": [entry._asdict() for entry in import_profile.largest(entries, len(entries))],
        }
    return report


def build_cases(world: World, install: Install, size_mib: int) -> list[Case]:
    """The node's card, its bitstreams and bundles, and one :class:`Case` per row."""
    card = add_card(
        world.node, "dfl", index=0, interface_id=REGION, afu_ids=[AFU_HELD] + [AFU_IDLE] * 3
    )
    skip_port, gbs_port, aocx_port, dry_port = ((port,) for port in card.ports)
    raw = raw_bitstream(size_mib * MIB)
    write_gbs(world.node, REGION, AFU_HELD)
    write_gbs(world.node, REGION, AFU_SMALL, raw=os.urandom(4096))
    write_gbs(world.node, REGION, AFU_BIG, raw=raw)
    write_aocx(world.node, AFU_OPENCL, raw)
    seal_store(world.node.store)
    size = f"{size_mib}"
    hashing = reference(
        f"hash-{size}",
        f"python -c: SHA-256 of the {size} MiB GBS and of its raw part, a MiB at a time",
        install.python,
        HASH_GBS,
        world.root,
        str(world.node.store / REGION / f"{AFU_BIG}.gbs"),
    )
    dry = {"FPGA_CRIHOOK_DRY_RUN": "1"}
    metrics = {"FPGA_CRIHOOK_METRICS_DIR": str(world.root / "metrics")}
    programmed = "port programmed"
    return [
        *(
            reference(name, what, install.python, code, world.root)
            for name, (code, what) in REFERENCES.items()
        ),
        hashing,
        world.case("skip", "port already holds the AFU", AFU_HELD, skip_port, expect="skipped"),
        world.case(
            "skip-metrics",
            "skip, writing metrics (--metrics-dir)",
            AFU_HELD,
            skip_port,
            env=metrics,
            expect="skipped",
        ),
        world.case(
            "skip-conf",
            "skip, settings in the node config file",
            AFU_HELD,
            skip_port,
            expect="skipped",
            settings_in_file=True,
        ),
        world.case("noop", "container without the annotation", AFU_HELD, ()),
        world.case(
            f"gbs-{size}",
            f"program a {size} MiB GBS (sim programmer)",
            AFU_BIG,
            gbs_port,
            expect=programmed,
            reset=True,
        ),
        world.case(
            f"aocx-{size}",
            f"program an AOCX holding a {size} MiB GBS",
            AFU_OPENCL,
            aocx_port,
            expect=programmed,
            reset=True,
        ),
        world.case(
            f"dry-{size}", f"dry run, {size} MiB GBS", AFU_BIG, dry_port, env=dry, expect="dry run"
        ),
        world.case(
            "dry-small", "dry run, 4 KiB GBS", AFU_SMALL, dry_port, env=dry, expect="dry run"
        ),
    ]


def _case(cases: list[Case], name: str) -> Case:
    return next(case for case in cases if case.name == name)


def targets(size_mib: int) -> list[Target]:
    """The limits the hook must keep: a row's difference from its base row, in the same run
    (times: the median of the per-round CPU differences)."""
    size = f"{size_mib}"
    return [
        Target("skip", "cpu_ms", "floor-models", 10.0, "skip CPU <= floor-models + 10 ms"),
        Target("noop", "cpu_ms", "floor-models", 5.0, "noop CPU <= floor-models + 5 ms"),
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
        # A dry run reads the header and metadata to check, and every byte to hash it for the
        # provenance its event carries: it may cost that hashing, and no more than 10 ms else.
        Target(
            f"dry-{size}",
            "cpu_ms",
            "dry-small",
            10.0,
            f"dry-{size} CPU <= dry-small + (hash-{size} - bare) + 10 ms",
            plus=(f"hash-{size}", "bare"),
        ),
    ]


def make_report(cases: list[Case], results: Results, options: argparse.Namespace) -> dict[str, Any]:
    """Rows (medians), differences and target verdicts, as written to the JSON file."""
    rows = make_rows(cases, results)
    size = f"{options.size_mib}"
    differences = {
        f"{left} - {right}": difference(left, right, results, rows)
        for left, right in (
            ("skip", "floor-models"),
            ("skip", "floor-nogc"),
            ("skip-metrics", "skip"),
            ("skip-conf", "skip"),
            ("noop", "floor-models"),
            ("noop", "floor-nogc"),
            ("floor-models", "floor-nogc"),
            ("skip", "floor-lean"),
            ("noop", "floor-lean"),
            ("floor-models", "floor-lean"),
            (f"dry-{size}", "dry-small"),
            (f"hash-{size}", "bare"),
        )
    }
    return {
        "settings": {
            "repeats": options.repeats,
            "warmup_rounds": options.warmup,
            "size_mib": options.size_mib,
        },
        "rows": rows,
        "differences": differences,
        "targets": [_verdict(target, results, rows) for target in targets(options.size_mib)],
    }


def _verdict(target: Target, results: Results, rows: Rows) -> dict[str, Any]:
    verdict: dict[str, Any] = {"target": target.text}
    names = (target.row, target.base, *(target.plus or ()))
    failed = [rows[name]["error"] for name in names if "error" in rows[name]]
    if failed:
        verdict.update(status="ERROR", error=failed[0])
        return verdict
    paired = difference(target.row, target.base, results, rows)
    assert paired is not None  # neither row failed
    value = paired[target.metric]
    allowance = target.allowance
    if target.plus is not None:
        added = difference(*target.plus, results, rows)
        assert added is not None  # neither row failed
        allowance = round(allowance + added[target.metric], 1)
    status = "PASS" if value <= allowance else "FAIL"
    verdict.update(status=status, difference=value, allowance=allowance)
    if f"{target.metric}_ci95" in paired:
        verdict["ci95"] = paired[f"{target.metric}_ci95"]
    return verdict


# The machine and the install ---------------------------------------------------------------


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """CPU model, core count, load averages (1, 5, 15 minutes) at the start and at the end,
    Python version and kernel of this machine."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_before": [round(load, 2) for load in load_before],
        "load_after": [round(load, 2) for load in os.getloadavg()],
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


def _install_facts(install: Install) -> dict[str, Any]:
    return {
        "description": install.describe(REPO),
        "venv": str(install.venv),
        "python": install.python_version,
        "editable": install.editable,
        "source_sha256": install.source_sha256,
        "distributions": list(install.distributions),
    }


def machine_line(report: dict[str, Any]) -> str:
    """The first lines of every output: the machine (with its load) and the hook."""
    box = report["machine"]
    before, after = (
        " ".join(f"{value:.2f}" for value in box[key]) for key in ("load_before", "load_after")
    )
    return (
        f"machine: {box['cpu']}, {box['cores']} cores, Python {box['python']}, "
        f"{box['kernel']}; load average {before} at the start, {after} at the end\n"
        f"hook: {report['install']['description']}"
    )


# Printing ----------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """The start-up report as ``make bench`` prints it (below the machine and the hook)."""
    settings = report["settings"]
    lines = [
        f"medians of {settings['repeats']} runs per case, one per round in shuffled order, "
        f"after {settings['warmup_rounds']} warm-up round(s)",
        "",
        *table(report["rows"]),
        "",
        "differences: wall ms, cpu ms (medians of per-round differences, 95 % interval), RSS MiB",
    ]
    for name, paired in report["differences"].items():
        lines.append(f"  {name:<20} {_difference_text(paired)}")
    lines += ["", "targets (times: CPU, median of per-round differences):"]
    lines += [f"  {_verdict_text(verdict)}" for verdict in report["targets"]]
    if "import_profile" in report:
        profile = report["import_profile"]
        entries = [import_profile.ImportTime(**entry) for entry in profile["modules"]]
        lines += ["", *import_profile.render(entries, profile["runs"], profile["case"])]
    return "\n".join(lines)


def _difference_text(paired: dict[str, Any] | None) -> str:
    if paired is None:
        return "n/a"
    times = [interval_text(paired, metric) for metric in METRICS[:2]]
    return ", ".join([*times, f"{paired['rss_mib']:+.1f}"])


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
