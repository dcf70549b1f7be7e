"""Only root fills the store: the hook programs a bitstream only when the file and every
directory from the store root down to it are root's (or, for runs by hand, the
user's running the command) and writable by nobody else."""

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import AFU_1, AFU_2, AFU_3, REGION_A, REPO, Completed, run_cli
from simnode import SimCard, SimNode, add_card, gbs_bytes, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
STRANGER = 4242


def _world(node: SimNode, tmp_path: Path) -> tuple[SimCard, Path, str]:
    """A port holding AFU_1, AFU_2's GBS in the store, and a container asking for AFU_2."""
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    gbs = write_gbs(node, REGION_A, AFU_2)
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )
    return card, gbs, state_json(bundle)


def _error_line(result: Completed, status: int = ExitStatus.BITSTREAM_REFUSED) -> str:
    """The one line of a run refused for the store: the hook's status, or 1 for an operator
    command."""
    assert result.returncode == status, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "Traceback" not in line
    return line


def _chmod(mode: int) -> Callable[[Path], str]:
    def change(path: Path) -> str:
        path.chmod(mode)
        return f"is writable by group or others (mode {mode:04o})"

    return change


def _give_away(path: Path) -> str:
    os.chown(path, STRANGER, STRANGER)
    return f"is owned by uid {STRANGER}, not root"


WHERE = {
    "file": lambda gbs, store: gbs,
    "region directory": lambda gbs, store: gbs.parent,
    "store root": lambda gbs, store: store,
}
CHANGES = [
    pytest.param("file", _chmod(0o664), "chmod go-w", id="file-0664"),
    pytest.param("file", _chmod(0o646), "chmod go-w", id="file-0646"),
    pytest.param("region directory", _chmod(0o775), "chmod go-w", id="region-0775"),
    pytest.param("region directory", _chmod(0o1777), "chmod go-w", id="region-1777"),
    pytest.param("store root", _chmod(0o757), "chmod go-w", id="root-0757"),
    pytest.param("file", _give_away, "chown root", id="file-owner", marks=ROOT_ONLY),
    pytest.param("region directory", _give_away, "chown root", id="region-owner", marks=ROOT_ONLY),
    pytest.param("store root", _give_away, "chown root", id="root-owner", marks=ROOT_ONLY),
]


@pytest.mark.parametrize(("where", "change", "fix"), CHANGES)
def test_a_bitstream_others_could_change_is_never_programmed(
    node: SimNode,
    tmp_path: Path,
    where: str,
    change: Callable[[Path], str],
    fix: str,
) -> None:
    card, gbs, state = _world(node, tmp_path)
    path = WHERE[where](gbs, node.store)
    reason = change(path)

    line = _error_line(run_cli(["prestart"], node.quiet_env(), state))
    dry_run = _error_line(run_cli(["prestart"], node.quiet_env(FPGA_CRIHOOK_DRY_RUN="1"), state))

    assert line.startswith(f"fpga-crihook: {path} {reason}: ")
    assert line.endswith(f"({fix} {path})")
    assert dry_run == line
    assert card.ports[0].afu_id() == AFU_1


@pytest.mark.parametrize("link", ["file", "region directory"])
def test_no_symlink_below_the_store_root_is_followed(
    node: SimNode, tmp_path: Path, link: str
) -> None:
    card, gbs, state = _world(node, tmp_path)
    if link == "file":
        real = gbs.with_name("nlb_3.gbs")
        gbs.rename(real)
        gbs.symlink_to(real.name)  # it stays inside the store, and is still refused
    else:
        real = node.store / "elsewhere"
        gbs.parent.rename(real)
        gbs.parent.symlink_to(real.name)
    linked = gbs if link == "file" else gbs.parent
    # The store setting, and what lies above the store root, are the operator's: a
    # symlink there is followed.
    root = tmp_path / "store-link"
    root.symlink_to(node.store)

    env = node.quiet_env(FPGA_CRIHOOK_BITSTREAMS=str(root))
    line = _error_line(run_cli(["prestart"], env, state))

    named = root / linked.relative_to(node.store)
    assert line.startswith(f"fpga-crihook: {named} is a symbolic link: ")
    assert card.ports[0].afu_id() == AFU_1


def _install(node: SimNode, source: Path, *args: str, umask: int = 0o022) -> Completed:
    return run_cli(["install", *args, str(source)], node.quiet_env(), preexec=lambda: _umask(umask))


def _umask(mask: int) -> None:
    os.umask(mask)


def _no_group_or_other_write(path: Path) -> bool:
    return path.stat().st_mode & 0o022 == 0


def test_install_under_umask_002_creates_entries_the_hook_programs(
    node: SimNode, tmp_path: Path
) -> None:
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))
    bundle = write_bundle(
        tmp_path / "bundle",
        env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={AFU_2}"],
        devices=[card.ports[0].device()],
    )

    installed = _install(node, source, umask=0o002)
    hooked = run_cli(["prestart"], node.quiet_env(), state_json(bundle))

    assert installed.returncode == 0, installed.stderr
    target = node.store / REGION_A / f"{AFU_2}.gbs"
    assert all(_no_group_or_other_write(path) for path in (node.store, target.parent, target))
    assert hooked.returncode == 0, hooked.stderr
    assert card.ports[0].afu_id() == AFU_2


def test_install_refuses_a_store_directory_the_hook_would_refuse(
    node: SimNode, tmp_path: Path
) -> None:
    write_gbs(node, REGION_A, AFU_1)
    region = node.store / REGION_A
    region.chmod(0o777)
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    line = _error_line(_install(node, source), 1)

    assert line.startswith(f"fpga-crihook: {region} is writable by group or others (mode 0777)")
    assert line.endswith(f"(chmod go-w {region})")
    assert not (region / f"{AFU_2}.gbs").exists()


def test_install_replaces_an_identical_file_the_hook_would_refuse(
    node: SimNode, tmp_path: Path
) -> None:
    target = write_gbs(node, REGION_A, AFU_2)
    target.chmod(0o666)
    source = tmp_path / "nlb_3.gbs"
    shutil.copyfile(target, source)

    result = _install(node, source)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"replaced {target} with {source}"
    assert _no_group_or_other_write(target)


def test_check_lists_the_store_entries_the_hook_would_refuse(node: SimNode) -> None:
    add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    good = write_gbs(node, REGION_A, AFU_1)
    writable = write_gbs(node, REGION_A, AFU_2)
    writable.chmod(0o664)
    link = node.store / REGION_A / f"{AFU_3}.gbs"
    link.symlink_to(good.name)
    other_region = write_gbs(node, "0" * 32, AFU_1).parent
    other_region.chmod(0o775)
    (node.store / REGION_A / "README").write_text("not a bitstream: not the hook's business\n")
    (node.store / REGION_A / "README").chmod(0o666)

    result = run_cli(["check", str(REPO / "hooks.d" / "intel-fpga-crihook.json")], node.env())

    errors = [line for line in result.stdout.splitlines() if "bitstream store" in line]
    refused = "whoever can change it chooses what the hook programs, so it programs nothing"
    assert errors == [
        f"ok: bitstream store {node.store}: 4 bitstream(s)",
        f"error: bitstream store: {other_region} is writable by group or others (mode 0775): "
        f"{refused} from there (chmod go-w {other_region})",
        f"error: bitstream store: {link} is a symbolic link: the hook follows no link inside "
        f"the bitstream store {node.store} (put the file or directory itself there)",
        f"error: bitstream store: {writable} is writable by group or others (mode 0664): "
        f"{refused} from there (chmod go-w {writable})",
    ]
    assert result.returncode == 1


def test_the_demo_works_from_a_clone_made_under_umask_002(tmp_path: Path) -> None:
    """A clone under umask 002 (Fedora's, RHEL's) has group-writable files: the demo's
    simulated node must still be one the hook accepts."""
    clone = tmp_path / "clone"
    for part in ("testdata", "tests"):
        shutil.copytree(REPO / part, clone / part, symlinks=True)
    for directory, _, files in os.walk(clone):
        for name in [".", *files]:
            path = Path(directory) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o020)

    result = run_cli(
        [str(clone / "testdata" / "demo.py")],
        dict(os.environ),
        program=Path(sys.executable),
        preexec=lambda: _umask(0o002),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("demo succeeded")
    assert json.dumps("port programmed") in result.stdout
