"""The operator commands through the installed CLI: devices, gbs-info, program, install, check."""

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, AFU_3, HOOK, REGION_A, REGION_B, REPO, Completed, run_cli
from simnode import (
    SimCard,
    SimNode,
    add_card,
    gbs_bytes,
    gbs_metadata,
    state_json,
    write_bundle,
    write_gbs,
)

from fpga_crihook.errors import ExitStatus
from fpga_crihook.ids import UNHEALTHY_ID

BSP_AFU = "18b79ffa2ee54aa096ef4230dafacb5f"


def _cli(node: SimNode, *args: str) -> Completed:
    return run_cli(list(args), node.env())


def _error(result: Completed, status: int = 1) -> str:
    """The error event's sentence; an operator command fails with 1, the hook with *status*."""
    assert result.returncode == status, result.stdout + result.stderr
    return str(json.loads(result.stderr.splitlines()[-1])["error"])


def _two_drivers(node: SimNode) -> tuple[SimCard, SimCard]:
    dfl = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_2])
    opae = add_card(
        node, "opae", index=0, interface_id=REGION_B, afu_ids=[AFU_1], pci_address="0000:3b:00.0"
    )
    return dfl, opae


# --- devices -------------------------------------------------------------------------------


def test_devices_table_shows_each_port_of_both_drivers(node: SimNode) -> None:
    _two_drivers(node)

    result = _cli(node, "devices")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "DRIVER", "PCI", "ADDRESS", "FME", "INTERFACE", "ID", "PORT", "ID", "AFU", "ID", "HEALTH",
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:4]]
    assert rows == [
        ["dfl", "0000:5e:00.0", f"{node.devfs}/dfl-fme.0", REGION_A,
         f"{node.devfs}/dfl-port.0", "0", AFU_1, "healthy"],
        ["dfl", "0000:5e:00.0", f"{node.devfs}/dfl-fme.0", REGION_A,
         f"{node.devfs}/dfl-port.1", "1", AFU_2, "healthy"],
        ["opae", "0000:3b:00.0", f"{node.devfs}/intel-fpga-fme.0", REGION_B,
         f"{node.devfs}/intel-fpga-port.0", "0", AFU_1, "healthy"],
    ]  # fmt: skip
    # Columns line up: every row's AFU ID starts where the header's does.
    column = lines[0].index("AFU ID")
    assert all(line[column:].startswith((AFU_1, AFU_2)) for line in lines[1:4])
    assert f"fpga.intel.com/region-{REGION_A}  " in result.stdout
    assert "dfl-port.0, dfl-port.1" in result.stdout


def test_devices_json_lists_cards_ports_and_resources(node: SimNode) -> None:
    _two_drivers(node)

    result = _cli(node, "devices", "--json")

    assert result.returncode == 0, result.stderr
    dfl, opae = json.loads(result.stdout)["cards"]
    assert dfl["driver"] == "dfl"
    assert dfl["fme"]["interface_id"] == REGION_A
    assert dfl["fme"]["device_node"] == str(node.devfs / "dfl-fme.0")
    assert [port["afu_id"] for port in dfl["ports"]] == [AFU_1, AFU_2]
    assert opae["driver"] == "opae"
    assert opae["pci_address"] == "0000:3b:00.0"
    [port] = opae["ports"]
    assert port == {
        "name": "intel-fpga-port.0",
        "id": 0,
        "device_node": str(node.devfs / "intel-fpga-port.0"),
        "afu_id": AFU_1,
        "health": "healthy",
        "problem": None,
        "resources": [
            f"fpga.intel.com/region-{REGION_B}",
            "fpga.intel.com/af-695.d84.aVKNtusxV3qMNmj5-qCB9thCTcSko8QT-J5DNoP5BAs",
        ],
    }


def test_devices_shows_an_unhealthy_port_and_announces_nothing_for_it(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[UNHEALTHY_ID])

    result = _cli(node, "devices", "--json")

    [port] = json.loads(result.stdout)["cards"][0]["ports"]
    assert (port["health"], port["resources"]) == ("unhealthy", [])
    table = _cli(node, "devices").stdout
    assert "unhealthy" in table
    assert "RESOURCE" not in table


def test_devices_table_explains_an_unreadable_port(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    card.ports[0].afu_file.write_text("garbage\n")

    result = _cli(node, "devices")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[-2:] == ["-", "unreadable"]
    assert result.stdout.splitlines()[-1] == (
        f"problem: {card.ports[0].afu_file}: 'garbage' is not a 32-hex-digit ID"
    )


def test_devices_on_a_node_without_cards_says_so(node: SimNode) -> None:
    result = _cli(node, "devices")

    assert result.returncode == 0
    assert result.stdout.startswith(f"no FPGA cards under {node.sysfs}")
    assert json.loads(_cli(node, "devices", "--json").stdout) == {"cards": []}


# --- gbs-info ------------------------------------------------------------------------------


def test_gbs_info_shows_ids_names_and_sizes(node: SimNode) -> None:
    gbs = write_gbs(node, REGION_A, AFU_1, raw=bytes(1000), name="nlb_0")

    result = _cli(node, "gbs-info", str(gbs))

    assert result.returncode == 0, result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines())
    fields = {key: value.strip() for key, value in fields.items()}
    metadata_size = gbs.stat().st_size - 20 - 1000
    assert fields == {
        "file": str(gbs),
        "kind": "gbs",
        "interface id": REGION_A,
        "afu id": AFU_1,
        "name": "nlb_0",
        "platform": "simulated",
        "user clocks": "high auto, low auto",
        "power": "0 W",
        "magic-no": "488605312",
        "file size": f"{gbs.stat().st_size} bytes",
        "metadata": f"{metadata_size} bytes",
        "raw bitstream": "1000 bytes",
        "file sha-256": hashlib.sha256(gbs.read_bytes()).hexdigest(),
        "raw sha-256": hashlib.sha256(bytes(1000)).hexdigest(),
    }


def test_gbs_info_json_for_an_aocx_has_board_target_version_and_hash(
    node: SimNode, tmp_path: Path
) -> None:
    embedded = gbs_bytes(REGION_A, BSP_AFU, raw=bytes(2048), name="opencl_bsp")
    aocx = tmp_path / "vector_add.aocx"
    aocx.write_bytes(aocx_bytes(embedded, board="pac_a10", target="a10gx", version="19.4.0"))

    result = _cli(node, "gbs-info", "--json", str(aocx))

    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "aocx"
    assert (info["interface_id"], info["afu_ids"], info["names"]) == (
        REGION_A,
        [BSP_AFU],
        ["opencl_bsp"],
    )
    assert info["file_bytes"] == aocx.stat().st_size
    assert info["gbs_bytes"] == len(embedded)
    assert info["raw_bytes"] == 2048
    assert info["details"]["board"] == "pac_a10"
    assert info["details"]["target"] == "a10gx"
    assert info["details"]["version"] == "19.4.0"
    assert info["details"]["hash"]
    text = _cli(node, "gbs-info", str(aocx)).stdout
    assert "board:" in text
    assert "pac_a10" in text


def test_gbs_info_shows_the_user_clocks_the_bitstream_asks_for(
    node: SimNode, tmp_path: Path
) -> None:
    document = gbs_metadata(REGION_A, AFU_1)
    document["afu-image"].update({"clock-frequency-high": 312, "clock-frequency-low": "auto-156"})
    gbs = tmp_path / "clocked.gbs"
    gbs.write_bytes(gbs_bytes(metadata=document))

    text = _cli(node, "gbs-info", str(gbs))
    info = json.loads(_cli(node, "gbs-info", "--json", str(gbs)).stdout)

    assert text.returncode == 0, text.stderr
    assert (
        "user clocks:    high 312 MHz, low auto-156 "
        "(set before programming: only the fpgaconf programmer does that)"
    ) in text.stdout.splitlines()
    assert info["user_clocks"] == {"high": 312, "low": "auto-156", "set_before_programming": True}


@pytest.mark.parametrize(
    ("power", "shown", "as_json"),
    [(12.5, "12.5 W", 12.5), (None, "-", None), ("high", '"high"', "high")],
    ids=["watts", "absent", "not-a-number"],
)
def test_gbs_info_shows_power_and_magic_no_as_written(
    node: SimNode, tmp_path: Path, power: object, shown: str, as_json: object
) -> None:
    document = gbs_metadata(REGION_A, AFU_1)
    document["afu-image"]["power"] = power
    if power is None:
        del document["afu-image"]["power"]
    gbs = tmp_path / "powered.gbs"
    gbs.write_bytes(gbs_bytes(metadata=document))

    text = _cli(node, "gbs-info", str(gbs))
    info = json.loads(_cli(node, "gbs-info", "--json", str(gbs)).stdout)

    assert text.returncode == 0, text.stderr
    assert f"power:          {shown}" in text.stdout.splitlines()
    assert "magic-no:       488605312" in text.stdout.splitlines()
    assert (info["power"], info["magic_no"], info["opae_refusal"]) == (as_json, 488605312, None)


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
    assert _error(result, status) == f"{gbs}: OPAE's runtime would refuse this GBS: {clause}"
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


def test_gbs_info_on_an_invalid_file_is_one_error(node: SimNode, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gbs"
    bad.write_bytes(gbs_bytes(metadata=b'{"version": 1}', raw=b"x"))

    message = _error(_cli(node, "gbs-info", str(bad)))

    assert message.startswith(f"{bad}: the GBS metadata breaks the schema")
    assert _cli(node, "gbs-info", str(bad)).stdout == ""


# --- program -------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["dfl", "opae"])
def test_program_by_device_path_programs_and_verifies(node: SimNode, driver: str) -> None:
    card = add_card(node, driver, index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    result = _cli(node, "program", "--port", f"/dev/{card.ports[0].name}", str(gbs))

    assert result.returncode == 0, result.stderr
    assert card.ports[0].afu_id() == AFU_2
    assert result.stdout.strip() == (
        f"{card.ports[0].name} programmed with {gbs}: it now holds AFU {AFU_2}"
    )


def test_program_skips_a_port_holding_the_afu_unless_forced(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_2])
    gbs = write_gbs(node, REGION_A, AFU_2)
    fme_lock_file = node.root / "locks" / "dfl-fme.0.lock"

    skipped = _cli(node, "program", "--port", "dfl-port.0", str(gbs))
    forced = _cli(node, "program", "--port", "dfl-port.0", "--force", str(gbs))

    assert skipped.returncode == forced.returncode == 0
    assert "already holds AFU" in skipped.stdout
    assert json.loads(forced.stderr.splitlines()[-1])["event"] == "port programmed"
    assert fme_lock_file.exists()  # the FME lock was taken
    assert card.ports[0].afu_id() == AFU_2


def test_program_dry_run_changes_nothing(node: SimNode) -> None:
    card = add_card(node, "opae", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    result = _cli(node, "program", "--dry-run", "--port", "intel-fpga-port.0", str(gbs))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dry run: intel-fpga-port.0 would be programmed")
    assert card.ports[0].afu_id() == AFU_1


def test_program_refuses_a_file_for_another_region(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_B, AFU_2)

    message = _error(_cli(node, "program", "--port", "dfl-port.0", str(gbs)))

    assert message == (
        f"{gbs} was built for region {REGION_B}, but port dfl-port.0 belongs to "
        f"dfl-fme.0, whose region is {REGION_A}"
    )
    assert card.ports[0].afu_id() == AFU_1


def test_program_refuses_an_unhealthy_card(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=UNHEALTHY_ID, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    message = _error(_cli(node, "program", "--port", "dfl-port.0", str(gbs)))

    assert "all-ones interface ID" in message


def test_program_names_an_unknown_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)

    assert "no FPGA port called dfl-port.7" in _error(
        _cli(node, "program", "--port", "dfl-port.7", str(gbs))
    )
    assert f"/dev/dfl-port.7 does not exist (looked for {node.devfs}/dfl-port.7)" in _error(
        _cli(node, "program", "--port", "/dev/dfl-port.7", str(gbs))
    )


def test_program_an_aocx_verifies_the_embedded_afu(node: SimNode, tmp_path: Path) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[BSP_AFU])
    aocx = tmp_path / "kernel.aocx"
    aocx.write_bytes(aocx_bytes(gbs_bytes(REGION_A, BSP_AFU, name="opencl_bsp")))

    result = _cli(node, "program", "--port", "dfl-port.0", str(aocx))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["event"] == "port programmed"
    assert card.ports[0].afu_id() == BSP_AFU


# --- install -------------------------------------------------------------------------------


def test_install_puts_a_gbs_under_its_canonical_name(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    result = _cli(node, "install", str(source))

    target = node.store / REGION_A / f"{AFU_2}.gbs"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"installed {source} as {target}"
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(path.name for path in target.parent.iterdir()) == [target.name]


def test_install_of_an_identical_file_says_so(node: SimNode, tmp_path: Path) -> None:
    installed = write_gbs(node, REGION_A, AFU_2)
    source = tmp_path / "copy.gbs"
    shutil.copyfile(installed, source)

    result = _cli(node, "install", str(source))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{installed} already holds this file: nothing to do"


def test_install_refuses_to_replace_a_different_file_without_force(
    node: SimNode, tmp_path: Path
) -> None:
    installed = write_gbs(node, REGION_A, AFU_2, raw=b"old" * 100)
    before = installed.read_bytes()
    source = tmp_path / "new.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2, raw=b"new" * 100))

    message = _error(_cli(node, "install", str(source)))
    assert installed.read_bytes() == before
    forced = _cli(node, "install", "--force", str(source))

    assert message == (
        f"refusing to replace {installed}: it holds a different bitstream (--force replaces it)"
    )
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == f"replaced {installed} with {source}"
    assert installed.read_bytes() == source.read_bytes()


def test_install_refuses_a_region_directory_leading_out_of_the_store(
    node: SimNode, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    node.store.mkdir()
    (node.store / REGION_A).symlink_to(elsewhere)
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    message = _error(_cli(node, "install", str(source)))

    assert message.startswith(
        f"{node.store / REGION_A} resolves outside the bitstream store {node.store}"
    )
    assert list(elsewhere.iterdir()) == []


def test_install_replaces_a_link_out_of_the_store_only_with_force(
    node: SimNode, tmp_path: Path
) -> None:
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))
    outside = tmp_path / "outside.gbs"
    shutil.copyfile(source, outside)  # the same bytes, but the hook refuses to follow the link
    target = node.store / REGION_A / f"{AFU_2}.gbs"
    target.parent.mkdir(parents=True)
    target.symlink_to(outside)

    message = _error(_cli(node, "install", str(source)))
    forced = _cli(node, "install", "--force", str(source))

    assert message == (
        f"refusing to replace {target}: it is a symbolic link, which the hook does not "
        "follow (--force replaces it)"
    )
    assert forced.returncode == 0, forced.stderr
    assert not target.is_symlink()
    assert target.read_bytes() == source.read_bytes()
    assert outside.read_bytes() == source.read_bytes()


def test_install_an_aocx_needs_the_requested_afu_id(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "vector_add.aocx"
    source.write_bytes(aocx_bytes(gbs_bytes(REGION_A, BSP_AFU)))

    missing = _cli(node, "install", str(source))
    result = _cli(node, "install", "--afu-id", AFU_3.upper(), str(source))

    assert "give the AFU ID that pods request it by with --afu-id" in _error(missing)
    assert result.returncode == 0, result.stderr
    assert (node.store / REGION_A / f"{AFU_3}.aocx").read_bytes() == source.read_bytes()


def test_install_refuses_afu_id_for_a_gbs(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "nlb.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    message = _error(_cli(node, "install", "--afu-id", AFU_3, str(source)))

    assert "--afu-id is refused" in message
    assert not node.store.exists()


def test_install_refuses_an_invalid_file_and_writes_nothing(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "broken.aocx"
    metadata = gbs_metadata(REGION_A, BSP_AFU)
    metadata["afu-image"]["accelerator-clusters"][0]["name"] = 7
    source.write_bytes(aocx_bytes(gbs_bytes(metadata=metadata)))

    message = _error(_cli(node, "install", "--afu-id", AFU_3, str(source)))

    assert "(embedded GBS): the GBS metadata breaks the schema at afu-image/" in message
    assert not node.store.exists()


def test_install_refuses_an_aocx_whose_gbs_opaes_runtime_refuses(
    node: SimNode, tmp_path: Path
) -> None:
    source = tmp_path / "old.aocx"
    metadata = gbs_metadata(REGION_A, BSP_AFU)
    metadata["version"] = 2
    source.write_bytes(aocx_bytes(gbs_bytes(metadata=metadata)))

    message = _error(_cli(node, "install", "--afu-id", AFU_3, str(source)))

    assert message == (
        f"{source}: OPAE's runtime would refuse the GBS in this AOCX: "
        "version must be the JSON integer 1, 640 or 650, not 2"
    )
    assert not node.store.exists()


def test_install_notes_a_gbs_that_shadows_the_aocx(node: SimNode, tmp_path: Path) -> None:
    gbs = write_gbs(node, REGION_A, AFU_3)
    source = tmp_path / "kernel.aocx"
    source.write_bytes(aocx_bytes(gbs_bytes(REGION_A, BSP_AFU)))

    result = _cli(node, "install", "--afu-id", AFU_3, str(source))

    assert result.returncode == 0, result.stderr
    assert f"note: {gbs} exists too and the hook takes it first" in result.stdout


# --- check ---------------------------------------------------------------------------------


def _hooks_file(tmp_path: Path, **changes: object) -> Path:
    document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
    document["hook"]["path"] = str(HOOK)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        place = document
        for key in parents:
            place = place[key]
        if value is None:
            del place[last]
        else:
            place[last] = value
    path = tmp_path / "hooks.d" / "fpga.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _healthy_node(node: SimNode) -> None:
    _two_drivers(node)
    write_gbs(node, REGION_A, AFU_1)
    write_gbs(node, REGION_B, AFU_1)


def test_check_passes_a_valid_hooks_file_on_a_good_node(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path)

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines), lines
    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in lines
    assert f"ok: dfl driver: 1 card(s) under {node.sysfs}/class/fpga_region" in lines
    assert f"ok: opae driver: 1 card(s) under {node.sysfs}/class/fpga" in lines
    assert f"ok: bitstream store {node.store}: 2 bitstream(s)" in lines


def test_check_without_files_checks_the_shipped_hooks_file(node: SimNode) -> None:
    _healthy_node(node)

    result = _cli(node, "check")

    # The shipped file points at the packaged install path, absent on this machine.
    assert result.returncode == 1
    assert "intel-fpga-crihook.json: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook" in (
        result.stdout
    )


def test_shipped_hooks_file_is_the_repository_one() -> None:
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"

    assert shipped.read_bytes() == (REPO / "hooks.d" / "intel-fpga-crihook.json").read_bytes()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"version": "2.0.0"}, "at version: '1.0.0' was expected"),
        ({"stages": None}, "at top level: 'stages' is a required property"),
        ({"stages": ["prestart", "beforeStart"]}, "at stages/1: 'beforeStart' is not one of"),
        ({"hook__path": "bin/fpga-crihook"}, "at hook/path: 'bin/fpga-crihook' does not match"),
        ({"hook__env": ["PATH"]}, "at hook/env/0: 'PATH' does not match"),
        ({"hook__timeout": 0}, "at hook/timeout: 0 is less than the minimum of 1"),
        ({"when": {}}, "at when: {} is not valid under any of the given schemas"),
        ({"stage": ["prestart"]}, "Additional properties are not allowed ('stage' was unexpected)"),
    ],
)
def test_check_reports_format_errors(
    node: SimNode, tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **changes)

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert any(expected in line for line in errors), errors
    assert all(line.startswith(f"error: {hooks_file}: breaks the hooks.d") for line in errors)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"^com\\.intel\\.fpga\\.mode$": "^(fpga\\.intel\\.com/region$"}, "does not compile"),
        (
            {"^com\\.intel\\.fpga\\.mode$": "^fpga\\.intel\\.com/region$"},
            "does not match 'intel.com/fpga-region'",
        ),
        ({"^io\\.kubernetes\\.pod\\.name$": ".*"}, "no when.annotations key matches"),
    ],
)
def test_check_reports_annotation_problems(
    node: SimNode, tmp_path: Path, annotations: dict[str, str], expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, when__annotations=annotations)

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert any(
        line.startswith(f"error: {hooks_file}: ") and expected in line
        for line in result.stdout.splitlines()
    ), result.stdout


def test_check_warns_about_unanchored_regexes(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    annotations = {"com\\.intel\\.fpga\\.mode": "fpga\\.intel\\.com/region|intel\\.com/fpga-region"}
    hooks_file = _hooks_file(tmp_path, when__annotations=annotations)

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert all("is not anchored (^...$)" in line for line in warnings)


@pytest.mark.parametrize(("condition", "value"), [("always", False), ("hasBindMounts", False)])
def test_check_reports_a_false_condition_that_keeps_the_hook_from_ever_running(
    node: SimNode, tmp_path: Path, condition: str, value: bool
) -> None:
    """containers/common ANDs the conditions, and a false ``always`` or ``hasBindMounts``
    never matches: the runtime would inject the hook into no container at all."""
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **{f"when__{condition}": value})

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 1
    assert (
        f"error: {hooks_file}: when.{condition} is false, which never matches: "
        "the runtime would run the hook for no container" in result.stdout.splitlines()
    ), result.stdout


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("hasBindMounts", True, "only for containers with bind mounts"),
        ("commands", [".*/sh$"], "only for containers whose process.args[0] matches"),
    ],
)
def test_check_warns_about_conditions_that_narrow_the_annotation(
    node: SimNode, tmp_path: Path, condition: str, value: object, expected: str
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, **{f"when__{condition}": value})

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stdout
    assert expected in warnings[0]
    assert "FPGA region containers without it start unprogrammed" in warnings[0]


def test_check_warns_when_the_hooks_file_points_the_hook_at_another_store(
    node: SimNode, tmp_path: Path
) -> None:
    _healthy_node(node)
    elsewhere = tmp_path / "other-store"
    env = ["FPGA_CRIHOOK_LOG_LEVEL=info", f"FPGA_CRIHOOK_BITSTREAMS={elsewhere}"]
    hooks_file = _hooks_file(tmp_path, hook__env=env)

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    assert (
        f"warning: {hooks_file}: hook.env sets FPGA_CRIHOOK_BITSTREAMS={elsewhere}, "
        f"but this check looked at {node.store} (--bitstreams checks what the hook uses)"
        in result.stdout.splitlines()
    ), result.stdout


def test_check_warns_when_the_hooks_file_asks_for_events_on_stderr(
    node: SimNode, tmp_path: Path
) -> None:
    _healthy_node(node)
    hooks_file = _hooks_file(tmp_path, hook__env=["FPGA_CRIHOOK_LOG_LEVEL=info"])

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    [warning] = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert warning.startswith(f"warning: {hooks_file}: hook.env sets FPGA_CRIHOOK_LOG_LEVEL, ")
    assert "runc pastes all of stderr into a failed pod's error" in warning


def test_check_reports_hook_path_stage_and_args_problems(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    hooks_file = _hooks_file(
        tmp_path, hook__path=str(script), hook__args=["fpga-crihook"], stages=["poststop"]
    )

    result = _cli(node, "check", str(hooks_file))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {hooks_file}: stages ['poststop'] include neither prestart nor createRuntime: "
        "the accelerator would not be in place when the container starts",
        f"error: {hooks_file}: hook.path {script} is not executable",
        f"error: {hooks_file}: hook.args ['fpga-crihook'] do not name the prestart command "
        '(expected e.g. ["fpga-crihook", "prestart"])',
    ]


def test_check_reports_a_file_that_is_not_json(node: SimNode, tmp_path: Path) -> None:
    _healthy_node(node)
    broken = tmp_path / "broken.json"
    broken.write_text("{")

    result = _cli(node, "check", str(broken))

    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith(f"error: {broken} is not valid JSON")


def test_check_reports_fifos_instead_of_waiting_for_a_writer(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = _two_drivers(node)
    node.store.mkdir()
    hooks_fifo = tmp_path / "fifo.json"
    cdi_fifo = tmp_path / "fifo.yaml"
    for fifo in (hooks_fifo, cdi_fifo):
        os.mkfifo(fifo)
    dfl.ports[0].afu_file.unlink()
    os.mkfifo(dfl.ports[0].afu_file)

    result = _cli(node, "check", str(hooks_fifo), str(cdi_fifo))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"error: {hooks_fifo} is not a regular file" in lines
    assert f"error: {cdi_fifo} is not a regular file" in lines
    assert any(f"{dfl.ports[0].afu_file}: '' is not a 32-hex-digit ID" in line for line in lines)


def test_check_reports_node_problems(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = _two_drivers(node)
    (node.devfs / "dfl-fme.0").unlink()
    dfl.ports[1].afu_file.write_text(UNHEALTHY_ID + "\n")

    result = _cli(node, "check", str(_hooks_file(tmp_path)))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert (
        f"error: dfl card region0 (0000:5e:00.0): FME device node {node.devfs}/dfl-fme.0 "
        "is missing: nothing can be programmed on this card"
    ) in lines
    assert (
        "error: dfl card region0 (0000:5e:00.0): unhealthy: it reports all-ones IDs: "
        "the firmware has crashed"
    ) in lines
    assert f"error: bitstream store {node.store} is missing or not readable" in lines


@pytest.mark.parametrize("programmer", ["fpgaconf", "ioctl"])
def test_check_warns_that_fpgaconf_cannot_program_the_other_ports_of_an_fme(
    node: SimNode, tmp_path: Path, programmer: str
) -> None:
    _healthy_node(node)  # a two-port DFL card and a one-port OPAE card

    result = run_cli(
        ["check", str(_hooks_file(tmp_path))], node.env(FPGA_CRIHOOK_PROGRAMMER=programmer)
    )

    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    if programmer == "ioctl":
        assert warnings == []
    else:
        assert warnings == [
            "warning: dfl card region0 (0000:5e:00.0): the fpgaconf programmer always "
            "programs port 0 of the FME, so the hook refuses dfl-port.1 "
            "(FPGA_CRIHOOK_PROGRAMMER=ioctl programs every port)"
        ]


def test_check_on_a_node_without_cards_is_an_error(node: SimNode, tmp_path: Path) -> None:
    node.store.mkdir()

    result = _cli(node, "check", str(_hooks_file(tmp_path)))

    assert result.returncode == 1
    assert f"error: no FPGA cards under {node.sysfs}" in result.stdout


# --- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["devices", "gbs-info", "program", "install", "check"])
def test_every_command_help_has_an_example(node: SimNode, command: str) -> None:
    result = _cli(node, command, "--help")

    assert result.returncode == 0
    assert "Example:" in result.stdout
    assert f"fpga-crihook {command}" in result.stdout.split("Example:", 1)[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_program_resolves_a_device_path_by_its_numbers(node: SimNode) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1, AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)
    alias = node.devfs / "fpga" / "second-port"
    alias.parent.mkdir()
    os.mknod(alias, 0o600 | stat.S_IFCHR, os.makedev(card.ports[1].major, card.ports[1].minor))

    result = _cli(node, "program", "--port", "/dev/fpga/second-port", str(gbs))

    assert result.returncode == 0, result.stderr
    assert [port.afu_id() for port in card.ports] == [AFU_1, AFU_2]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_program_refuses_a_character_device_that_is_not_a_port(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)
    os.mknod(node.devfs / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))

    message = _error(_cli(node, "program", "--port", "/dev/null", str(gbs)))

    assert "/dev/null is a character device but not an FPGA port" in message
