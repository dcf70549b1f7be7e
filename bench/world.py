"""The simulated node the bench's hook runs on, its bitstreams, and one :class:`Case` per row.

The node lives in a temp dir (``tests/simnode.py``); bundles are made from
podman's ``config.json`` in ``testdata/oci``. The store's files and
directories are root-owned (the bench runs as root, as the hook does) and
writable by their owner only, the modes a hook may trust.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from aocxfiles import aocx_bytes
from simnode import SimNode, SimPort, gbs_bytes, state_json

REPO = Path(__file__).resolve().parent.parent
MIB = 1 << 20

REGION = "ce48969398f05f33946d560708be108a"
AFU_IDLE = "00000000000000000000000000000001"  # what the programmed ports are reset to
AFU_HELD = "d8424dc4a4a3c413f89e433683f9040b"
AFU_OPENCL = "850adcc2c4934024a08c8f2ffaa3a7ad"  # the board's AFU, inside every AOCX here


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


@dataclasses.dataclass(frozen=True)
class World:
    """The node the hook cases run on, where their bundles go, and the hook that runs."""

    root: Path
    node: SimNode
    hook: Path

    @classmethod
    def new(cls, root: Path, hook: Path) -> "World":
        """An empty node below *root*, for cases that run *hook*."""
        (root / "node").mkdir()
        return cls(root, SimNode(root / "node"), hook)

    def case(
        self,
        name: str,
        what: str,
        afu: str,
        ports: tuple[SimPort, ...],
        *,
        expect: str = "",
        env: dict[str, str] | None = None,
        reset: bool = False,
        settings_in_file: bool = False,
    ) -> Case:
        """``fpga-crihook prestart`` for a container asking for *afu* on each of *ports*
        (none: no annotation, no devices); *reset* puts an idle AFU into the first port
        before each run; *settings_in_file* moves the node's settings from the env into
        a config file of the case's own (the node's, which the other cases name, stays
        absent)."""
        bundle = _bundle(self.root / name, afu, ports)
        stdin = self.root / f"{name}.state.json"
        stdin.write_text(state_json(bundle, annotated=bool(ports)))
        settings = self.node.env(**(env or {}))
        if settings_in_file:
            settings = _in_config_file(settings, self.root / f"{name}.toml")
        return Case(
            name,
            what,
            [str(self.hook), "prestart"],
            settings,
            stdin,
            expect,
            (ports[0].afu_file, AFU_IDLE + "\n") if reset else None,
        )


def reference(name: str, what: str, python: Path, code: str, root: Path, *args: str) -> Case:
    """``python -c code args...`` on the hook's interpreter, with an empty environment and
    stdin."""
    stdin = root / "empty"
    stdin.touch()
    return Case(name, what, [str(python), "-c", code, *args], {}, stdin)


def raw_bitstream(size: int) -> bytes:
    """*size* bytes that look like a partly used region: each 64 KiB holds 8 KiB of noise.

    Only an AOCX cares (its GBS is gzip-compressed, about 8:1 with this data).
    """
    chunk, noise = 64 << 10, 8 << 10
    blocks = (os.urandom(noise) + bytes(chunk - noise) for _ in range(-(-size // chunk)))
    return b"".join(blocks)[:size]


def write_aocx(node: SimNode, afu: str, raw: bytes) -> Path:
    """``<store>/<region>/<afu>.aocx``: an AOCX holding a GBS of *raw* for the board's AFU."""
    path = node.store / REGION / f"{afu}.aocx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(aocx_bytes(gbs_bytes(REGION, AFU_OPENCL, raw=raw)))
    return path


def seal_store(store: Path) -> None:
    """Give the store the modes a hook may trust: writable by its owner (root) alone."""
    for directory, _, files in os.walk(store):
        os.chmod(directory, 0o755)  # noqa: S103 (readable by all, writable by root alone)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


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


def _bundle(directory: Path, afu: str, ports: tuple[SimPort, ...]) -> Path:
    """A bundle made from podman's config.json, asking for *afu* on each of *ports*."""
    config = json.loads((REPO / "testdata" / "oci" / "podman-config.json").read_text())
    env = [entry for entry in config["process"]["env"] if not entry.startswith("FPGA_")]
    for number in range(1, len(ports) + 1):
        env += [f"FPGA_REGION_{number}={REGION}", f"FPGA_AFU_{number}={afu}"]
    config["process"]["env"] = env
    config["linux"]["devices"] = [port.device() for port in ports]
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config, indent=4))
    return directory
