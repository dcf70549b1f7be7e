"""Container environment values other than ``FPGA_*`` never reach any output of the hook.

Secrets are planted in ``process.env`` as a value, as a malformed entry
without ``=``, as a variable's name and under names that only look like the
hook's; the installed hook then runs at debug level, in both log formats,
through success, skip, dry run and many failures. Neither stdout, stderr nor
the log file may contain any of them.
"""

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import AFU_1, AFU_2, REGION_A, REGION_B, RunHook
from simnode import SimCard, SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

SECRETS = [f"s3cr3t-{uuid.uuid4().hex}" for _ in range(5)]
PLANTED = [
    f"SECRET_TOKEN={SECRETS[0]}",
    SECRETS[1],  # malformed: no '='
    f"{SECRETS[2]}=harmless",  # the name is the secret
    f"XFPGA_AFU_1={SECRETS[3]}",  # looks like the hook's, is not
    f"fpga_region_1={SECRETS[4]}",
]


@dataclasses.dataclass(frozen=True)
class World:
    node: SimNode
    card: SimCard
    bundle: Path

    def env(self, *fpga: str) -> str:
        """config.json with the planted secrets around *fpga* entries; return stdin."""
        return self.process_env([*PLANTED[:2], *fpga, *PLANTED[2:]])

    def process_env(self, env: object, devices: list[Any] | None = None) -> str:
        """config.json whose ``process.env`` is *env*, whatever its type; return stdin."""
        return self.config({"process": {"env": env}}, devices)

    def config(self, extra: dict[str, Any], devices: list[Any] | None = None) -> str:
        write_bundle(
            self.bundle,
            env=None,
            devices=[self.card.ports[0].device()] if devices is None else devices,
        )
        document = json.loads((self.bundle / "config.json").read_text())
        document.update(extra)
        (self.bundle / "config.json").write_text(json.dumps(document))
        return state_json(self.bundle)

    def raw_config(self, raw: bytes) -> str:
        self.config({})
        (self.bundle / "config.json").write_bytes(raw)
        return state_json(self.bundle)


REQUEST = (f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}")


def _skip(world: World) -> str:
    world.card.ports[0].afu_file.write_text(AFU_2 + "\n")
    return world.env(*REQUEST)


def _missing_bitstream(world: World) -> str:
    (world.node.store / REGION_A / f"{AFU_2}.gbs").unlink()
    return world.env(*REQUEST)


def _unhealthy(world: World) -> str:
    world.card.interface_file.write_text("f" * 32 + "\n")
    return world.env(*REQUEST)


def _fme_node_missing(world: World) -> str:
    (world.node.devfs / "dfl-fme.0").unlink()
    return world.env(*REQUEST)


def _not_json_after_secret(world: World) -> str:
    text = json.dumps({"process": {"env": PLANTED}})
    return world.raw_config(text.replace(SECRETS[0], SECRETS[0] + '"}, oops', 1).encode())


def _not_utf8_after_secret(world: World) -> str:
    text = json.dumps({"process": {"env": PLANTED}})
    broken = text.replace(SECRETS[0], SECRETS[0] + "\udcff", 1)
    return world.raw_config(broken.encode(errors="surrogateescape"))


def _devices_wrong_type(world: World) -> str:
    return world.config({"process": {"env": [*PLANTED, *REQUEST]}, "linux": {"devices": PLANTED}})


def _env_as_object(world: World) -> str:
    return world.process_env({name: value for name, _, value in map(_split, PLANTED)})


def _split(entry: str) -> tuple[str, str, str]:
    return entry.partition("=")


def _not_annotated(world: World) -> str:
    world.env(*REQUEST)
    return state_json(world.bundle, annotated=False)


Case = Callable[[World], str]
_INPUT, _NO_BITSTREAM, _DEVICE = (
    ExitStatus.CONTAINER_INPUT,
    ExitStatus.NO_BITSTREAM,
    ExitStatus.DEVICE,
)

# (id, how the world is set up, exit status without and with a dry run)
CASES: list[tuple[str, Case, tuple[int, int]]] = [
    ("programmed", lambda w: w.env(*REQUEST), (0, 0)),
    ("skipped", _skip, (0, 0)),
    ("not-an-fpga-container", _not_annotated, (0, 0)),
    ("missing-bitstream", _missing_bitstream, (_NO_BITSTREAM, _NO_BITSTREAM)),
    ("unhealthy-fme", _unhealthy, (_DEVICE, _DEVICE)),
    ("fme-node-missing", _fme_node_missing, (_DEVICE, _DEVICE)),  # a dry run, too, opens the FME
    ("invalid-afu-id", lambda w: w.env(REQUEST[0], "FPGA_AFU_1=nothex"), (_INPUT, _INPUT)),
    ("fpga-variable-without-equals", lambda w: w.env(REQUEST[0], "FPGA_AFU_1"), (_INPUT, _INPUT)),
    ("fpga-variable-twice", lambda w: w.env(*REQUEST, REQUEST[1]), (_INPUT, _INPUT)),
    ("region-without-afu", lambda w: w.env(REQUEST[0]), (_INPUT, _INPUT)),
    ("no-fpga-variables", lambda w: w.env(), (_INPUT, _INPUT)),
    ("other-region", lambda w: w.env(f"FPGA_REGION_1={REGION_B}", REQUEST[1]), (_DEVICE, _DEVICE)),
    ("env-entry-an-int", lambda w: w.process_env([*PLANTED, 42]), (_INPUT, _INPUT)),
    (
        "env-entry-an-object",
        lambda w: w.process_env([{"TOKEN": SECRETS[0]}, *PLANTED]),
        (_INPUT, _INPUT),
    ),
    ("env-an-object", _env_as_object, (_INPUT, _INPUT)),
    ("env-a-string", lambda w: w.process_env(PLANTED[0]), (_INPUT, _INPUT)),
    ("process-a-string", lambda w: w.config({"process": PLANTED[0]}), (_INPUT, _INPUT)),
    ("devices-wrong-type", _devices_wrong_type, (_INPUT, _INPUT)),
    (
        "device-path-an-int",
        lambda w: w.process_env([*PLANTED, *REQUEST], [{"path": 5}]),
        (_INPUT, _INPUT),
    ),
    ("config-not-json", _not_json_after_secret, (_INPUT, _INPUT)),
    ("config-not-utf8", _not_utf8_after_secret, (_INPUT, _INPUT)),
]


@pytest.fixture
def world(node: SimNode, tmp_path: Path) -> World:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    return World(node, card, tmp_path / "bundle")


@pytest.mark.parametrize(("case", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_no_output_of_the_hook_contains_a_container_secret(
    world: World,
    tmp_path: Path,
    run_hook: RunHook,
    case: Case,
    status: tuple[int, int],
) -> None:
    log_file = tmp_path / "hook.log"
    stdin = case(world)
    outputs = []

    for (log_format, dry_run), expected in zip(
        (("json", "0"), ("console", "1")), status, strict=True
    ):
        result = run_hook(
            world.node,
            stdin,
            FPGA_CRIHOOK_LOG_LEVEL="debug",
            FPGA_CRIHOOK_LOG_FORMAT=log_format,
            FPGA_CRIHOOK_LOG_FILE=str(log_file),
            FPGA_CRIHOOK_DRY_RUN=dry_run,
        )
        assert result.returncode == expected, result.stderr
        assert "Traceback" not in result.stderr
        outputs += [result.stdout, result.stderr]

    outputs.append(log_file.read_text())
    assert outputs[-1]  # the hook did talk: the check below is not vacuous
    for secret in SECRETS:
        assert not [output for output in outputs if secret in output]


def test_fpga_values_do_reach_the_log(world: World, tmp_path: Path, run_hook: RunHook) -> None:
    """The counterpart: the hook's own variables are logged, so their absence means something."""
    result = run_hook(world.node, world.env(*REQUEST), FPGA_CRIHOOK_LOG_LEVEL="debug")

    assert result.returncode == 0, result.stderr
    assert AFU_2 in result.stderr
    assert REGION_A in result.stderr
