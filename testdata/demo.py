"""``make demo``: the hook's main job on a copy of the simulated node in testdata/.

A container asks for AFU ``f7df...`` (nlb_3) on port ``dfl-port.0``, which
holds ``d842...`` (nlb_0). The hook programs the port (``sim`` programmer),
and a second start of the same container finds the AFU in place and skips.
The config.json is the one podman wrote for such a container.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from simnode import copy_node

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


def _run_hook(node: Path, state: str, log_file: Path) -> int:
    env = {
        "FPGA_CRIHOOK_SYSFS": str(node / "sys"),
        "FPGA_CRIHOOK_DEVFS": str(node / "dev"),
        "FPGA_CRIHOOK_BITSTREAMS": str(node / "store"),
        "FPGA_CRIHOOK_LOCK_DIR": str(node / "locks"),
        "FPGA_CRIHOOK_PROGRAMMER": "sim",
        "FPGA_CRIHOOK_LOG_FILE": str(log_file),  # stands in for the journal here
        "FPGA_CRIHOOK_SYSLOG": "off",
    }  # no PATH, as with a hooks.d env that sets none
    seen = len(log_file.read_text().splitlines()) if log_file.exists() else 0
    result = subprocess.run(
        [str(HOOK), "prestart"],
        input=state,
        text=True,
        env=env,
        capture_output=True,
        check=False,
    )
    print(f"    exit status {result.returncode}, stderr (what CRI-O would show on failure):")
    for line in result.stderr.splitlines() or ["(empty)"]:
        print("      " + line)
    print("    events (the journal, and here the log file):")
    for line in log_file.read_text().splitlines()[seen:]:
        print("      " + line)
    return result.returncode


def main() -> int:
    """Run the demo and return non-zero when the hook did not do its job."""
    with tempfile.TemporaryDirectory(prefix="fpga-crihook-demo-") as scratch:
        node = copy_node(TESTDATA / "node", Path(scratch) / "node").root
        afu_file = node / "sys" / "class" / "fpga_region" / "region0" / "dfl-port.0" / "afu_id"
        state = _state(_bundle(Path(scratch) / "bundle"))
        log_file = Path(scratch) / "hook.log"
        print(f"simulated node: {node}")
        print(f"container asks for: {REQUEST}")
        print(f"\n1. dfl-port.0 holds AFU {afu_file.read_text().strip()}")
        print("\n2. first start: the hook programs the port")
        first = _run_hook(node, state, log_file)
        print(f"\n3. dfl-port.0 now holds AFU {afu_file.read_text().strip()}")
        print("\n4. second start of the same container: the hook skips")
        second = _run_hook(node, state, log_file)
        done = afu_file.read_text().strip() == REQUEST["FPGA_AFU_1"]
        print("\ndemo " + ("succeeded" if first == second == 0 and done else "FAILED"))
        return 0 if first == second == 0 and done else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
