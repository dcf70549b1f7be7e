"""``gbs-info`` through the installed CLI: what a GBS or AOCX file holds, as text and JSON.

What every command that reads a bitstream does alike is in ``test_entry_points.py``.
"""

import hashlib
import json
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, BSP_AFU, REGION_A, error_sentence, run_on
from simnode import SimNode, gbs_bytes, gbs_metadata, write_gbs


def test_gbs_info_shows_ids_names_and_sizes(node: SimNode) -> None:
    gbs = write_gbs(node, REGION_A, AFU_1, raw=bytes(1000), name="nlb_0")

    result = run_on(node, "gbs-info", str(gbs))

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

    result = run_on(node, "gbs-info", "--json", str(aocx))

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
    text = run_on(node, "gbs-info", str(aocx)).stdout
    assert "board:" in text
    assert "pac_a10" in text


def test_gbs_info_shows_the_user_clocks_the_bitstream_asks_for(
    node: SimNode, tmp_path: Path
) -> None:
    document = gbs_metadata(REGION_A, AFU_1)
    document["afu-image"].update({"clock-frequency-high": 312, "clock-frequency-low": "auto-156"})
    gbs = tmp_path / "clocked.gbs"
    gbs.write_bytes(gbs_bytes(metadata=document))

    text = run_on(node, "gbs-info", str(gbs))
    info = json.loads(run_on(node, "gbs-info", "--json", str(gbs)).stdout)

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

    text = run_on(node, "gbs-info", str(gbs))
    info = json.loads(run_on(node, "gbs-info", "--json", str(gbs)).stdout)

    assert text.returncode == 0, text.stderr
    assert f"power:          {shown}" in text.stdout.splitlines()
    assert "magic-no:       488605312" in text.stdout.splitlines()
    assert (info["power"], info["magic_no"], info["opae_refusal"]) == (as_json, 488605312, None)


def test_gbs_info_on_an_invalid_file_is_one_error(node: SimNode, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gbs"
    bad.write_bytes(gbs_bytes(metadata=b'{"version": 1}', raw=b"x"))

    message = error_sentence(run_on(node, "gbs-info", str(bad)))

    assert message.startswith(f"{bad}: the GBS metadata breaks the schema")
    assert run_on(node, "gbs-info", str(bad)).stdout == ""
