"""``make demo``: the hook's main job on a copy of the simulated node in testdata/.

A container asks for AFU ``f7df...`` (nlb_3) on port ``dfl-port.0``, which
holds ``d842...`` (nlb_0). The hook programs the port (``sim`` programmer),
and a second start of the same container finds the AFU in place and skips.
The config.json is the one podman wrote for such a container.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TESTDATA = Path(__file__).resolve().parent
HOOK = Path(sys.executable).parent / "fpga-crihook"
REQUEST = {
    "FPGA_REGION_1": "ce48969398f05f33946d560708be108a",
    "FPGA_AFU_1": "f7df405cbd7acf7222f144b0b93acd18",
}


def _bundle(directory: Path) -> Path:
    config = json.loads((TESTDATA / "oci" / "podman-config.json").read_text())
    env = [entry for entry in config["process"]["env"] if not entry.startswith("FPGA_")]
    config["process"]["env"] = env + [f"{key}={value}" for key, value in REQUEST.items()]
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def _state(bundle: Path) -> str:
    state = json.loads((TESTDATA / "oci" / "podman-state.json").read_text())
    state["bundle"] = str(bundle)
    state["annotations"]["io.kubernetes.pod.namespace"] = "demo"
    state["annotations"]["io.kubernetes.pod.name"] = "nlb3-worker"
    return json.dumps(state)


def _run_hook(node: Path, state: str) -> int:
    env = {
        "FPGA_CRIHOOK_SYSFS": str(node / "sys"),
        "FPGA_CRIHOOK_DEVFS": str(node / "dev"),
        "FPGA_CRIHOOK_BITSTREAMS": str(node / "store"),
        "FPGA_CRIHOOK_LOCK_DIR": str(node / "locks"),
        "FPGA_CRIHOOK_PROGRAMMER": "sim",
    }  # no PATH, as with a hooks.d env that sets none
    result = subprocess.run(
        [str(HOOK), "prestart"],
        input=state,
        text=True,
        env=env,
        capture_output=True,
        check=False,
    )
    for line in result.stderr.splitlines():
        print("    " + line)
    print(f"    exit status {result.returncode}")
    return result.returncode


def main() -> int:
    """Run the demo and return non-zero when the hook did not do its job."""
    with tempfile.TemporaryDirectory(prefix="fpga-crihook-demo-") as scratch:
        node = Path(scratch) / "node"
        shutil.copytree(TESTDATA / "node", node, symlinks=True)
        afu_file = node / "sys" / "class" / "fpga_region" / "region0" / "dfl-port.0" / "afu_id"
        state = _state(_bundle(Path(scratch) / "bundle"))
        print(f"simulated node: {node}")
        print(f"container asks for: {REQUEST}")
        print(f"\n1. dfl-port.0 holds AFU {afu_file.read_text().strip()}")
        print("\n2. first start: the hook programs the port")
        first = _run_hook(node, state)
        print(f"\n3. dfl-port.0 now holds AFU {afu_file.read_text().strip()}")
        print("\n4. second start of the same container: the hook skips")
        second = _run_hook(node, state)
        done = afu_file.read_text().strip() == REQUEST["FPGA_AFU_1"]
        print("\ndemo " + ("succeeded" if first == second == 0 and done else "FAILED"))
        return 0 if first == second == 0 and done else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
