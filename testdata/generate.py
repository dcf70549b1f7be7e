"""Write the simulated nodes shipped in testdata/ (sysfs, dev, bitstream store).

Run it again (``make testdata``) after changing the builders in
``tests/simnode.py`` or ``tests/aocxfiles.py``; a test checks that the committed trees are what
this script writes.

A real node runs one driver family, never both, so there are two nodes:

``node`` (the in-tree DFL driver), with two cards:

- a card with one port (``dfl-port.0``), region ``ce48...``;
- a card with two ports behind one FME (``dfl-port.1``, ``dfl-port.2``),
  region ``69528d...``.

Its store has GBS files for both regions, and one OpenCL kernel (``.aocx``,
requested as ``5c2b8e...``) for region ``ce48...``.

``opae-node`` (the out-of-tree OPAE driver), with one card with one port
(``intel-fpga-port.0``), region ``bfac4d...``, and GBS files for that region.

Every port holds ``d842...`` (nlb_0). Device nodes in ``dev/`` are plain
files (git cannot hold character devices).
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from aocxfiles import aocx_bytes
from simnode import SimNode, add_card, gbs_bytes, write_gbs

REGION_A = "ce48969398f05f33946d560708be108a"
REGION_B = "69528db6eb31577a8c3668f9faa081f6"
REGION_OPAE = "bfac4d851ee856fe8c95865ce1bbaa2d"

NLB0 = "d8424dc4a4a3c413f89e433683f9040b"
NLB3 = "f7df405cbd7acf7222f144b0b93acd18"
DMA = "331db30c988541ea9f5b1b8ae8b5d0b5"
HELLO = "850adcc2c4934024a08c8f2ffaa3a7ad"
# An OpenCL kernel: requested as VECTOR_ADD, its embedded GBS carries the BSP's AFU ID.
VECTOR_ADD = "5c2b8e6a3f1d4e7a9b0c1d2e3f4a5b6c"
OPENCL_BSP = "18b79ffa2ee54aa096ef4230dafacb5f"


def _store(node: SimNode, region: str) -> None:
    for afu, name in ((NLB0, "nlb_0"), (NLB3, "nlb_3"), (DMA, "dma_afu")):
        write_gbs(node, region, afu, name=name)


def build(root: Path) -> SimNode:
    """Build the shipped DFL node under *root* (which must not exist yet)."""
    node = SimNode(root)
    add_card(
        node, "dfl", index=0, interface_id=REGION_A, afu_ids=[NLB0], pci_address="0000:5e:00.0"
    )
    add_card(
        node,
        "dfl",
        index=1,
        interface_id=REGION_B,
        afu_ids=[NLB0, NLB0],
        first_port=1,
        pci_address="0000:af:00.0",
    )
    for region in (REGION_A, REGION_B):
        _store(node, region)
    write_gbs(node, REGION_A, HELLO, name="hello_afu")
    kernel = gbs_bytes(REGION_A, OPENCL_BSP, name="opencl_bsp")
    (node.store / REGION_A / f"{VECTOR_ADD}.aocx").write_bytes(aocx_bytes(kernel))
    return node


def build_opae(root: Path) -> SimNode:
    """Build the shipped OPAE node under *root* (which must not exist yet)."""
    node = SimNode(root)
    add_card(
        node, "opae", index=0, interface_id=REGION_OPAE, afu_ids=[NLB0], pci_address="0000:3b:00.0"
    )
    _store(node, REGION_OPAE)
    return node


BUILDERS = {"node": build, "opae-node": build_opae}


def main() -> None:
    """Replace testdata/node and testdata/opae-node with freshly built trees."""
    for name, builder in BUILDERS.items():
        target = Path(__file__).resolve().parent / name
        shutil.rmtree(target, ignore_errors=True)
        builder(target)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
