"""Provenance: which image ran. The programming events and ``gbs-info`` carry the SHA-256
of the bytes handed to the kernel and of the file they came from."""

import hashlib
import json
from pathlib import Path

import pytest
from aocxfiles import aocx_bytes
from helpers import AFU_1, AFU_2, REGION_A, Completed, run_cli
from simnode import SimNode, add_card, gbs_bytes, state_json, write_bundle

RAW = bytes(range(256)) * 64  # what the kernel gets: the raw part of the (embedded) GBS


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _bitstream(node: SimNode, kind: str) -> Path:
    """AFU_2's file in the store: a GBS, or an AOCX whose embedded GBS holds RAW."""
    path = node.store / REGION_A / f"{AFU_2}.{kind}"
    path.parent.mkdir(parents=True)
    gbs = gbs_bytes(REGION_A, AFU_2, raw=RAW)
    path.write_bytes(gbs if kind == "gbs" else aocx_bytes(gbs))
    return path


def _last_event(node: SimNode, tmp_path: Path, **extra: str) -> dict[str, object]:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    result = run_cli(["prestart"], node.env(**extra), state_json(bundle))
    assert result.returncode == 0, result.stderr
    event: dict[str, object] = json.loads(result.stderr.splitlines()[-1])
    return event


@pytest.mark.parametrize("kind", ["gbs", "aocx"])
@pytest.mark.parametrize(
    ("extra", "event"),
    [({}, "port programmed"), ({"FPGA_CRIHOOK_DRY_RUN": "1"}, "dry run: would program the port")],
)
def test_the_programming_event_names_the_image_by_its_digests(
    node: SimNode, tmp_path: Path, kind: str, extra: dict[str, str], event: str
) -> None:
    path = _bitstream(node, kind)

    last = _last_event(node, tmp_path, **extra)

    assert last["event"] == event
    assert last["bitstream"] == str(path)
    assert last["bitstream_sha256"] == _sha256(path.read_bytes())
    assert last["raw_sha256"] == _sha256(RAW)


def _gbs_info(node: SimNode, *args: str) -> Completed:
    result = run_cli(["gbs-info", *args], node.env())
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("kind", ["gbs", "aocx"])
def test_gbs_info_prints_both_digests(node: SimNode, kind: str) -> None:
    path = _bitstream(node, kind)

    text = _gbs_info(node, str(path)).stdout
    info = json.loads(_gbs_info(node, "--json", str(path)).stdout)

    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert lines["file sha-256"].strip() == _sha256(path.read_bytes())
    assert lines["raw sha-256"].strip() == _sha256(RAW)
    assert (info["file_sha256"], info["raw_sha256"]) == (_sha256(path.read_bytes()), _sha256(RAW))
