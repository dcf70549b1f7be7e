"""What every command that reads a bitstream does alike (``gbs-info``, ``install``,
``program`` and the hook's ``prestart``): the GBS files OPAE's runtime refuses, and a
clock frequency of 0."""

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import AFU_1, AFU_2, REGION_A, error_sentence, run_cli
from simnode import SimCard, SimNode, add_card, gbs_bytes, gbs_metadata, state_json, write_bundle

from fpga_crihook.errors import ExitStatus


def _entry_point(command: str, gbs: Path, tmp_path: Path) -> list[str]:
    """The arguments that make *command* read *gbs* (prestart: from the node's store)."""
    return {
        "gbs-info": ["gbs-info", str(gbs)],
        "install": ["--bitstreams", str(tmp_path / "other-store"), "install", str(gbs)],
        "program": ["program", "--port", "dfl-port.0", str(gbs)],
        "prestart": ["prestart"],
    }[command]


def _requesting_afu_2(node: SimNode, tmp_path: Path, document: dict[str, Any]) -> SimCard:
    """A card with AFU_1 on dfl-port.0, a bundle asking for AFU_2 there, and *document*'s
    GBS in the store as AFU_2's."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"
    gbs.parent.mkdir(parents=True)
    gbs.write_bytes(gbs_bytes(metadata=document))
    write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    return card


_OPAE_RULES = {
    "magic-no": (
        "magic-no",
        12345,
        "afu-image.magic-no must be the JSON integer 488605312 (0x1D1F8680), not 12345",
    ),
    "version": ("version", 2, "version must be the JSON integer 1, 640 or 650, not 2"),
    "interface-uuid": (
        "interface-uuid",
        REGION_A,
        "afu-image.interface-uuid must be a UUID in the dashed 36-character form "
        f'(8-4-4-4-12 hex digits), not "{REGION_A}"',
    ),
}


def _breaking(rule: str) -> tuple[dict[str, Any], str]:
    """AFU_2's metadata breaking one of OPAE's rules, and the clause that names it."""
    field, value, clause = _OPAE_RULES[rule]
    document = gbs_metadata(REGION_A, AFU_2)
    (document if field == "version" else document["afu-image"])[field] = value
    return document, clause


@pytest.mark.parametrize("rule", list(_OPAE_RULES))
@pytest.mark.parametrize("command", ["gbs-info", "install", "program", "prestart"])
def test_every_entry_point_refuses_a_gbs_opaes_runtime_refuses(
    node: SimNode, tmp_path: Path, command: str, rule: str
) -> None:
    document, clause = _breaking(rule)
    card = _requesting_afu_2(node, tmp_path, document)
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"

    result = run_cli(
        _entry_point(command, gbs, tmp_path), node.env(), state_json(tmp_path / "bundle")
    )

    status = ExitStatus.BITSTREAM_REFUSED if command == "prestart" else 1
    assert (
        error_sentence(result, status) == f"{gbs}: OPAE's runtime would refuse this GBS: {clause}"
    )
    assert card.ports[0].afu_id() == AFU_1
    assert not (tmp_path / "other-store").exists()


def test_gbs_info_shows_a_gbs_opaes_runtime_refuses_then_fails_with_the_rule(
    node: SimNode, tmp_path: Path
) -> None:
    document, clause = _breaking("interface-uuid")
    gbs = tmp_path / "undashed.gbs"
    gbs.write_bytes(gbs_bytes(metadata=document))
    sentence = f"{gbs}: OPAE's runtime would refuse this GBS: {clause}"

    text = run_cli(["gbs-info", str(gbs)], node.quiet_env())
    as_json = run_cli(["gbs-info", "--json", str(gbs)], node.quiet_env())

    assert (text.returncode, text.stderr) == (1, f"fpga-crihook: {sentence}\n")
    assert f"interface id:   {REGION_A}" in text.stdout.splitlines()
    assert f"afu id:         {AFU_2}" in text.stdout.splitlines()
    assert (as_json.returncode, as_json.stderr) == (1, f"fpga-crihook: {sentence}\n")
    info = json.loads(as_json.stdout)
    assert (info["interface_id"], info["afu_ids"]) == (REGION_A, [AFU_2])
    assert info["opae_refusal"] == sentence


@pytest.mark.parametrize("command", ["gbs-info", "install", "program", "prestart"])
def test_a_clock_frequency_of_0_asks_for_no_user_clock_in_every_entry_point(
    node: SimNode, tmp_path: Path, command: str
) -> None:
    document = gbs_metadata(REGION_A, AFU_2)
    document["afu-image"].update({"clock-frequency-high": 0, "clock-frequency-low": 0})
    card = _requesting_afu_2(node, tmp_path, document)
    gbs = node.store / REGION_A / f"{AFU_2}.gbs"

    result = run_cli(
        _entry_point(command, gbs, tmp_path), node.env(), state_json(tmp_path / "bundle")
    )

    assert result.returncode == 0, result.stderr
    if command == "gbs-info":
        assert "user clocks:    high 0 (no clock), low 0 (no clock)" in result.stdout
    elif command == "install":
        assert (tmp_path / "other-store" / REGION_A / f"{AFU_2}.gbs").is_file()
    else:  # programmed by the sim programmer, which refuses to set user clocks
        assert card.ports[0].afu_id() == AFU_2
