"""The installed ``fpga-crihook`` in a subprocess, configured by environment variables."""

import json
from pathlib import Path

from conftest import AFU_1, AFU_2, REGION_A, RunHook
from simnode import SimNode, add_card, state_json, write_bundle, write_gbs


def _request_env(region: str, afu: str, suffix: str = "1") -> list[str]:
    return [f"FPGA_REGION_{suffix}={region}", f"FPGA_AFU_{suffix}={afu}"]


def test_dfl_port_is_programmed_then_skipped(
    node: SimNode, tmp_path: Path, run_hook: RunHook
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle", env=_request_env(REGION_A, AFU_2), devices=[card.ports[0].device()]
    )

    first = run_hook(node, state_json(bundle))
    second = run_hook(node, state_json(bundle))

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert card.ports[0].afu_id() == AFU_2
    assert [json.loads(line)["event"] for line in first.stderr.splitlines()][
        -1
    ] == "port programmed"
    assert (
        json.loads(second.stderr.splitlines()[-1])["event"] == "port already holds the AFU: skipped"
    )
    assert first.stdout == second.stdout == ""
