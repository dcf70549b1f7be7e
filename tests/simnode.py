"""Builders for simulated FPGA nodes: sysfs trees, device nodes, bitstreams, bundles.

The trees have the real drivers' shapes (DESIGN.md section 3): class
symlinks into the PCI device tree, ``dev`` files and ``dev/char`` links.
Used by the tests and by ``testdata/generate.py``.
"""

import dataclasses
import json
import os
import random
import struct
from pathlib import Path
from typing import Any

GBS_MAGIC = b"XeonFPGA\xb7GBSv001"

DFL_PORT_MAJOR = 511
DFL_FME_MAJOR = 510
OPAE_PORT_MAJOR = 509
OPAE_FME_MAJOR = 508


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

    def env(self, **extra: str) -> dict[str, str]:
        """Hook settings pointing at this node, with the events as JSON lines on stderr.

        Asking for a log format is what puts the events on stderr (where tests
        read them); :meth:`quiet_env` leaves stderr as CRI-O sees it.
        """
        return self.quiet_env(**{"FPGA_CRIHOOK_LOG_FORMAT": "json", **extra})

    def quiet_env(self, **extra: str) -> dict[str, str]:
        """Hook settings pointing at this node, as a hooks.d ``env`` sets them: stderr
        stays empty on success and holds one plain line on failure; no syslog."""
        settings = {
            "FPGA_CRIHOOK_SYSFS": str(self.sysfs),
            "FPGA_CRIHOOK_DEVFS": str(self.devfs),
            "FPGA_CRIHOOK_BITSTREAMS": str(self.store),
            "FPGA_CRIHOOK_LOCK_DIR": str(self.root / "locks"),
            "FPGA_CRIHOOK_PROGRAMMER": "sim",
            "FPGA_CRIHOOK_SYSLOG": "off",  # tests never write the machine's journal
        }
        settings.update(extra)
        return settings


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


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _relative_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


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
) -> SimCard:
    """Add one card (one FME and ``len(afu_ids)`` ports) of the ``dfl`` or ``opae`` driver."""
    fme_index = index if fme_index is None else fme_index
    domain = pci_address[:4]
    pci_dir = node.sysfs / "devices" / f"pci{domain}:00" / f"{domain}:00:02.0" / pci_address
    if driver == "dfl":
        class_name, card_dir = "fpga_region", pci_dir / "fpga_region" / f"region{index}"
        fme_name, port_prefix = f"dfl-fme.{fme_index}", "dfl-port."
        fme_major, port_major = DFL_FME_MAJOR, DFL_PORT_MAJOR
        interface_file = (
            card_dir
            / fme_name
            / f"dfl-fme-region.{fme_index}"
            / "fpga_region"
            / f"region{index + 100}"
            / "compat_id"
        )
    elif driver == "opae":
        class_name, card_dir = "fpga", pci_dir / "fpga" / f"intel-fpga-dev.{index}"
        fme_name, port_prefix = f"intel-fpga-fme.{fme_index}", "intel-fpga-port."
        fme_major, port_major = OPAE_FME_MAJOR, OPAE_PORT_MAJOR
        interface_file = card_dir / fme_name / "pr" / "interface_id"
    else:
        raise ValueError(driver)
    fme_dir = card_dir / fme_name
    _write(fme_dir / "dev", f"{fme_major}:{fme_index}\n")
    _write(interface_file, interface_id + "\n")
    _relative_symlink(node.sysfs / "dev" / "char" / f"{fme_major}:{fme_index}", fme_dir)
    _write(node.devfs / fme_name, "")
    ports = []
    for offset, afu_id in enumerate(afu_ids):
        number = first_port + offset
        port = SimPort(
            f"{port_prefix}{number}", card_dir / f"{port_prefix}{number}", port_major, number
        )
        _write(port.sysfs_dir / "afu_id", afu_id + "\n")
        _write(port.sysfs_dir / "id", f"{offset}\n")
        _write(port.sysfs_dir / "dev", f"{port.major}:{port.minor}\n")
        _relative_symlink(
            node.sysfs / "dev" / "char" / f"{port.major}:{port.minor}", port.sysfs_dir
        )
        _write(node.devfs / port.name, "")
        ports.append(port)
    class_link = node.sysfs / "class" / class_name / card_dir.name
    _relative_symlink(class_link, card_dir)
    return SimCard(driver, pci_address, class_link, fme_dir, interface_file, tuple(ports))


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


def write_gbs(
    node: SimNode,
    interface_id: str,
    afu_id: str,
    *,
    raw: bytes | None = None,
    name: str = "nlb_400",
) -> Path:
    """Put a valid GBS into the node's store under its canonical name."""
    path = node.store / interface_id / f"{afu_id}.gbs"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gbs_bytes(interface_id, afu_id, raw=raw, name=name))
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
