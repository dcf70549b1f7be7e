"""The operator commands through the installed CLI: devices, gbs-info, program, install."""

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from aocxfiles import aocx_bytes
from conftest import AFU_1, AFU_2, AFU_3, REGION_A, REGION_B, Completed, run_cli
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
