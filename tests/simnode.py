"""Builders for simulated FPGA nodes: sysfs trees, device nodes, bitstreams, bundles.

The trees have the real drivers' shapes (docs/design.md#sysfs): class
symlinks into the PCI device tree, ``dev`` files and ``dev/char`` links.
Used by the tests and by ``testdata/generate.py``.
"""

import dataclasses
import json
import os
import random
import shutil
import stat
import struct
from pathlib import Path
from typing import Any

GBS_MAGIC = b"XeonFPGA\xb7GBSv001"

DFL_PORT_MAJOR = 511
DFL_FME_MAJOR = 510
OPAE_PORT_MAJOR = 509
OPAE_FME_MAJOR = 508

# The PCI functions above a card: a Xeon root port, and the card itself (the Intel PAC with
# Arria 10 GX's physical function, 0x09c4, one the DFL driver and OPAE know).
ROOT_PORT_IDENTITY = {
    "vendor": "0x8086\n",
    "device": "0x2030\n",
    "subsystem_vendor": "0x8086\n",
    "subsystem_device": "0x0000\n",
    "class": "0x060400\n",
}
PAC_A10_IDENTITY = {
    "vendor": "0x8086\n",
    "device": "0x09c4\n",
    "subsystem_vendor": "0x8086\n",
    "subsystem_device": "0x0000\n",
    "class": "0x120000\n",
}
BITSTREAM_ID = 0x0123_0002_0000_0185  # of the static region ("FIM"); any value will do
BITSTREAM_METADATA = 0x1801_0292
# errors/ of the FME and the port: the DFL driver's (Documentation/ABI/testing/
# sysfs-platform-dfl-fme, sysfs-platform-dfl-port) and the OPAE driver's (fme-error.c,
# afu-error.c), all clear. Write-only attributes are empty files here.
CLEAR = "0x0\n"
DFL_FME_ERRORS = dict.fromkeys(
    (
        "pcie0_errors",
        "pcie1_errors",
        "nonfatal_errors",
        "catfatal_errors",
        "inject_errors",
        "fme_errors",
        "first_error",
        "next_error",
    ),
    CLEAR,
)
OPAE_FME_ERRORS = {
    "revision": "1\n",
    **dict.fromkeys(
        ("pcie0_errors", "pcie1_errors", "gbs_errors", "bbs_errors", "warning_errors"), CLEAR
    ),
    "inject_error": CLEAR,
    **dict.fromkeys(
        ("fme-errors/errors", "fme-errors/first_error", "fme-errors/next_error"), CLEAR
    ),
    "fme-errors/clear": "",
}
DFL_PORT_ERRORS = {
    "errors": CLEAR,
    "first_error": CLEAR,
    "first_malformed_req": "0x" + "0" * 32 + "\n",
}
OPAE_PORT_ERRORS = {"revision": "1\n", **DFL_PORT_ERRORS, "clear": ""}
USER_CLOCK_ATTRIBUTES = {
    "userclk_freqcmd": "",
    "userclk_freqcntrcmd": "",
    "userclk_freqsts": "0x0\n",
    "userclk_freqcntrsts": "0x0\n",
}


@dataclasses.dataclass(frozen=True)
class SimNode:
    """A simulated node below *root*: ``sys/``, ``dev/`` and the ``store/`` of bitstreams."""

    root: Path

    @property
    def sysfs(self) -> Path:
        return self.root / "sys"

    @property
    def devfs(self) -> Path:
        return self.root / "dev"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def config_file(self) -> Path:
        """The node config file: absent unless a test writes it."""
        return self.root / "config.toml"

    def env(self, **extra: str) -> dict[str, str]:
        """Hook settings pointing at this node, with the events as JSON lines on stderr.

        Asking for a log format is what puts the events on stderr (where tests
        read them); :meth:`quiet_env` leaves stderr as CRI-O sees it.
        """
        return self.quiet_env(**{"FPGA_CRIHOOK_LOG_FORMAT": "json", **extra})

    def quiet_env(self, **extra: str) -> dict[str, str]:
        """Hook settings pointing at this node, as a hooks.d ``env`` sets them: stderr
        stays empty on success and holds one plain line on failure; no syslog.

        The config file is the node's own, so that the machine's
        /etc/fpga-crihook/config.toml never changes what a test sees.
        """
        settings = {
            "FPGA_CRIHOOK_CONFIG": str(self.config_file),
            "FPGA_CRIHOOK_SYSFS": str(self.sysfs),
            "FPGA_CRIHOOK_DEVFS": str(self.devfs),
            "FPGA_CRIHOOK_BITSTREAMS": str(self.store),
            "FPGA_CRIHOOK_LOCK_DIR": str(self.root / "locks"),
            "FPGA_CRIHOOK_PROGRAMMER": "sim",
            "FPGA_CRIHOOK_SYSLOG": "off",  # tests never write the machine's journal
        }
        settings.update(extra)
        return settings

    def config_text(self, log_file: Path) -> str:
        """A node config file for this node, for a hook given no env: only what differs
        from a real node, and the events in *log_file*."""
        settings = {
            "sysfs": self.sysfs,
            "devfs": self.devfs,
            "bitstreams": self.store,
            "lock-dir": self.root / "locks",
            "programmer": "sim",
            "log-file": log_file,
            "syslog": "off",  # tests never write the machine's journal
        }
        return "".join(f'{key} = "{value}"\n' for key, value in settings.items())


def logged_events(log_file: Path) -> list[str]:
    """The ``event`` of every line the hook wrote to *log_file* (none if it is absent)."""
    if not log_file.exists():
        return []
    return [json.loads(line)["event"] for line in log_file.read_text().splitlines()]


def copy_node(source: Path, root: Path) -> SimNode:
    """A copy of the simulated node at *source* (testdata's), writable by its owner only.

    A clone made under umask 002 (Fedora's, RHEL's) has group-writable files,
    and the hook programs nothing from a store others can write to: the copy
    is what an administrator would have made.
    """
    shutil.copytree(source, root, symlinks=True)
    for directory, _, files in os.walk(root):
        for path in (Path(directory), *(Path(directory) / name for name in files)):
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o022)
    return SimNode(root)


@dataclasses.dataclass(frozen=True)
class SimPort:
    """A simulated port: its name, sysfs directory and device numbers."""

    name: str
    sysfs_dir: Path
    major: int
    minor: int

    @property
    def afu_file(self) -> Path:
        return self.sysfs_dir / "afu_id"

    @property
    def errors_file(self) -> Path:
        return self.sysfs_dir / "errors" / "errors"

    def afu_id(self) -> str:
        return self.afu_file.read_text().strip()

    def device(self, container_path: str | None = None) -> dict[str, Any]:
        """The ``linux.devices`` entry a runtime writes for this port."""
        return {
            "path": container_path or f"/dev/{self.name}",
            "type": "c",
            "major": self.major,
            "minor": self.minor,
            "fileMode": 8630,
            "uid": 0,
            "gid": 0,
        }


@dataclasses.dataclass(frozen=True)
class SimCard:
    """A simulated card: its FME directory and its ports."""

    driver: str
    pci_address: str
    class_dir: Path
    fme_dir: Path
    interface_file: Path
    ports: tuple[SimPort, ...]
    manager_status_file: Path | None = None  # DFL only: the FPGA manager's PR error status


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _write_all(directory: Path, attributes: dict[str, str]) -> None:
    for name, text in attributes.items():
        _write(directory / name, text)


def _relative_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def _pci_function(node: SimNode, pci_dir: Path, identity: dict[str, str]) -> None:
    """A PCI function's directory with its IDs, and its ``bus/pci/devices`` link (once)."""
    if not (pci_dir / "vendor").exists():
        _write_all(pci_dir, identity)
    link = node.sysfs / "bus" / "pci" / "devices" / pci_dir.name
    if not os.path.lexists(link):
        _relative_symlink(link, pci_dir)


def _device_node(node: SimNode, name: str, major: int, minor: int, kind: str) -> None:
    """``dev/<name>``: a plain file, or (root only) a character device with no driver."""
    path = node.devfs / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "char":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(major, minor))
    elif kind == "file":
        path.write_text("")
    else:
        raise ValueError(kind)


def _fme_attributes(driver: str, ports: int, optional: bool) -> dict[str, str]:
    """What both drivers' FME shows (Documentation/ABI/testing/sysfs-platform-dfl-fme)."""
    attributes = {
        "ports_num": f"{ports}\n",
        "bitstream_id": f"0x{BITSTREAM_ID:x}\n",
        "socket_id": "0\n",
    }
    if optional:
        attributes["bitstream_metadata"] = f"0x{BITSTREAM_METADATA:x}\n"
        errors = DFL_FME_ERRORS if driver == "dfl" else OPAE_FME_ERRORS
        attributes.update({f"errors/{name}": text for name, text in errors.items()})
    return attributes


def _port_attributes(driver: str, optional: bool) -> dict[str, str]:
    """A port's optional ``errors/`` and user-clock attributes (write-only ones are empty)."""
    if not optional:
        return {}
    errors = DFL_PORT_ERRORS if driver == "dfl" else OPAE_PORT_ERRORS
    attributes = {f"errors/{name}": text for name, text in errors.items()}
    attributes.update(USER_CLOCK_ATTRIBUTES)
    return attributes


def add_card(
    node: SimNode,
    driver: str,
    *,
    index: int,
    interface_id: str,
    afu_ids: list[str],
    first_port: int = 0,
    pci_address: str = "0000:5e:00.0",
    fme_index: int | None = None,
    optional_attributes: bool = True,
    device_nodes: str = "file",
) -> SimCard:
    """Add one card (one FME and ``len(afu_ids)`` ports) of the ``dfl`` or ``opae`` driver.

    The card has what a real node shows (docs/design.md#sysfs): PCI functions
    with their IDs and ``bus/pci/devices`` links, the class device's
    ``device`` link, the FME's attributes, and unless *optional_attributes*
    is false the ``errors/``, user-clock and ``bitstream_metadata``
    attributes that some driver versions lack. *device_nodes* ``"char"``
    makes character devices (root only) instead of plain files in ``dev/``;
    with no driver behind them, opening one fails with ENXIO.
    """
    fme_index = index if fme_index is None else fme_index
    domain = pci_address[:4]
    root_port_dir = node.sysfs / "devices" / f"pci{domain}:00" / f"{domain}:00:02.0"
    pci_dir = root_port_dir / pci_address
    _pci_function(node, root_port_dir, ROOT_PORT_IDENTITY)
    _pci_function(node, pci_dir, PAC_A10_IDENTITY)
    manager_status = None
    if driver == "dfl":
        class_name, card_dir = "fpga_region", pci_dir / "fpga_region" / f"region{index}"
        fme_name, port_prefix = f"dfl-fme.{fme_index}", "dfl-port."
        fme_major, port_major = DFL_FME_MAJOR, DFL_PORT_MAJOR
        pr_region_dir = (
            card_dir
            / fme_name
            / f"dfl-fme-region.{fme_index}"
            / "fpga_region"
            / f"region{index + 100}"
        )
        interface_file = pr_region_dir / "compat_id"
        manager_dir = (
            card_dir / fme_name / f"dfl-fme-mgr.{fme_index}" / "fpga_manager" / f"fpga{fme_index}"
        )
        # The FPGA manager's PR error status (Documentation/ABI/testing/sysfs-class-fpga-manager):
        # empty until a partial reconfiguration fails.
        _write_all(
            manager_dir, {"name": "DFL FME FPGA Manager\n", "state": "unknown\n", "status": ""}
        )
        manager_status = manager_dir / "status"
        # The FME's PR region is a class device too (``devices`` must not take it for a card).
        _relative_symlink(node.sysfs / "class" / "fpga_region" / pr_region_dir.name, pr_region_dir)
    elif driver == "opae":
        class_name, card_dir = "fpga", pci_dir / "fpga" / f"intel-fpga-dev.{index}"
        fme_name, port_prefix = f"intel-fpga-fme.{fme_index}", "intel-fpga-port."
        fme_major, port_major = OPAE_FME_MAJOR, OPAE_PORT_MAJOR
        interface_file = card_dir / fme_name / "pr" / "interface_id"
    else:
        raise ValueError(driver)
    _relative_symlink(card_dir / "device", pci_dir)
    fme_dir = card_dir / fme_name
    _write(fme_dir / "dev", f"{fme_major}:{fme_index}\n")
    _write_all(fme_dir, _fme_attributes(driver, len(afu_ids), optional_attributes))
    _write(interface_file, interface_id + "\n")
    _relative_symlink(node.sysfs / "dev" / "char" / f"{fme_major}:{fme_index}", fme_dir)
    _device_node(node, fme_name, fme_major, fme_index, device_nodes)
    ports = []
    for offset, afu_id in enumerate(afu_ids):
        number = first_port + offset
        port = SimPort(
            f"{port_prefix}{number}", card_dir / f"{port_prefix}{number}", port_major, number
        )
        _write(port.sysfs_dir / "afu_id", afu_id + "\n")
        _write(port.sysfs_dir / "id", f"{offset}\n")
        _write(port.sysfs_dir / "dev", f"{port.major}:{port.minor}\n")
        _write_all(port.sysfs_dir, _port_attributes(driver, optional_attributes))
        _relative_symlink(
            node.sysfs / "dev" / "char" / f"{port.major}:{port.minor}", port.sysfs_dir
        )
        _device_node(node, port.name, port.major, port.minor, device_nodes)
        ports.append(port)
    class_link = node.sysfs / "class" / class_name / card_dir.name
    _relative_symlink(class_link, card_dir)
    return SimCard(
        driver, pci_address, class_link, fme_dir, interface_file, tuple(ports), manager_status
    )


def gbs_metadata(interface_id: str | None, afu_id: str, name: str = "nlb_400") -> dict[str, Any]:
    """Metadata as OPAE's packager writes it (UUIDs with dashes)."""
    image: dict[str, Any] = {
        "magic-no": 488605312,
        "power": 0,
        "clock-frequency-high": "auto",
        "clock-frequency-low": "auto",
        "afu-top-interface": {"class": "ccip_std_afu"},
        "accelerator-clusters": [
            {"name": name, "total-contexts": 1, "accelerator-type-uuid": dashed(afu_id)},
        ],
    }
    if interface_id is not None:
        image["interface-uuid"] = dashed(interface_id)
    return {"version": 1, "platform-name": "simulated", "afu-image": image}


def gbs_bytes(
    interface_id: str | None = None,
    afu_id: str = "",
    *,
    raw: bytes | None = None,
    metadata: dict[str, Any] | bytes | None = None,
    name: str = "nlb_400",
) -> bytes:
    """A GBS file: magic, u32 metadata length, metadata JSON, raw bitstream."""
    if metadata is None:
        metadata = gbs_metadata(interface_id, afu_id, name)
    blob = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    if raw is None:
        raw = random.Random(afu_id).randbytes(4096)
    return GBS_MAGIC + struct.pack("<I", len(blob)) + blob + raw


def metadata_of_size(document: dict[str, Any], size: int) -> bytes:
    """*document* as JSON of exactly *size* bytes: white space before its closing brace."""
    blob = json.dumps(document).encode()
    if len(blob) > size:
        raise ValueError(f"the document takes {len(blob)} bytes, more than {size}")
    return blob[:-1] + b" " * (size - len(blob)) + b"}"


def nested_arrays(levels: int) -> Any:
    """``[[...[1]...]]``: *levels* JSON arrays, one inside the other."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def write_gbs(
    node: SimNode,
    interface_id: str,
    afu_id: str,
    *,
    raw: bytes | None = None,
    name: str = "nlb_400",
) -> Path:
    """Put a valid GBS into the node's store under its canonical name, with the modes the
    hook accepts whatever the umask (directories ``0755``, the file ``0644``)."""
    path = node.store / interface_id / f"{afu_id}.gbs"
    for directory in (node.store, path.parent):
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_bytes(gbs_bytes(interface_id, afu_id, raw=raw, name=name))
    path.chmod(0o644)
    return path


def dashed(identifier: str) -> str:
    """``0123...`` as ``01234567-89ab-...``, the way metadata writes UUIDs."""
    i = identifier
    return f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}"


def write_bundle(
    directory: Path,
    *,
    env: list[str] | None,
    devices: list[dict[str, Any]] | None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """An OCI bundle with a config.json holding *env* and *devices* (``None``: field absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}]},
    }
    if env is not None:
        config["process"]["env"] = env
    if devices is not None:
        config["linux"]["devices"] = devices
    config.update(extra or {})
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def state_json(
    bundle: Path,
    *,
    annotated: bool = True,
    container_id: str = "c0ffee",
    annotations: dict[str, str] | None = None,
) -> str:
    """The state JSON a runtime writes on the hook's stdin."""
    notes = {"com.intel.fpga.mode": "fpga.intel.com/region"} if annotated else {}
    notes.update(annotations or {})
    return json.dumps(
        {
            "ociVersion": "1.0.2",
            "id": container_id,
            "status": "creating",
            "pid": 4242,
            "bundle": str(bundle),
            "annotations": notes,
        }
    )


def one_port_container(
    node: SimNode,
    bundle_dir: Path,
    interface_id: str,
    held_afu: str,
    asked_afu: str,
    *,
    annotated: bool = True,
) -> tuple[SimCard, str]:
    """A DFL card of *interface_id* whose one port holds *held_afu*, and the state of a
    container given that port and asking for *asked_afu* (its bundle in *bundle_dir*)."""
    card = add_card(node, "dfl", index=0, interface_id=interface_id, afu_ids=[held_afu])
    bundle = write_bundle(
        bundle_dir,
        env=[f"FPGA_REGION_1={interface_id}", f"FPGA_AFU_1={asked_afu}"],
        devices=[card.ports[0].device()],
    )
    return card, state_json(bundle, annotated=annotated)


def containerd_annotations(namespace: str, pod: str, container: str) -> dict[str, str]:
    """The annotations containerd 1.7's CRI plugin puts into a container's state (measured
    under containerd v1.7.6): its own pod keys, and no CRI annotation passed on by default."""
    return {
        "io.kubernetes.cri.container-name": container,
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.image-name": "localhost/fpga-busybox:1",
        "io.kubernetes.cri.sandbox-id": "5" * 64,
        "io.kubernetes.cri.sandbox-name": pod,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-uid": f"uid-{pod}",
    }


def crio_annotations(
    namespace: str, pod: str, container: str, pod_annotations: dict[str, str] | None = None
) -> dict[str, str]:
    """The annotations CRI-O under the kubelet puts into a container's state: every pod
    annotation (*pod_annotations*) copied in, the kubelet's labels, and CRI-O's own keys."""
    return {
        **(pod_annotations or {}),
        "io.container.manager": "cri-o",
        "io.kubernetes.container.name": container,
        "io.kubernetes.pod.name": pod,
        "io.kubernetes.pod.namespace": namespace,
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.cri-o.SandboxID": "5" * 64,
    }
