"""``install`` through the installed CLI: a bitstream put into the store under the name
the hook looks up, never replacing another unasked."""

import shutil
from pathlib import Path

from aocxfiles import aocx_bytes
from helpers import AFU_2, AFU_3, BSP_AFU, REGION_A, error_sentence, run_on
from simnode import SimNode, gbs_bytes, gbs_metadata, write_gbs


def test_install_puts_a_gbs_under_its_canonical_name(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "nlb_3.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    result = run_on(node, "install", str(source))

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

    result = run_on(node, "install", str(source))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{installed} already holds this file: nothing to do"


def test_install_refuses_to_replace_a_different_file_without_force(
    node: SimNode, tmp_path: Path
) -> None:
    installed = write_gbs(node, REGION_A, AFU_2, raw=b"old" * 100)
    before = installed.read_bytes()
    source = tmp_path / "new.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2, raw=b"new" * 100))

    message = error_sentence(run_on(node, "install", str(source)))
    assert installed.read_bytes() == before
    forced = run_on(node, "install", "--force", str(source))

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

    message = error_sentence(run_on(node, "install", str(source)))

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

    message = error_sentence(run_on(node, "install", str(source)))
    forced = run_on(node, "install", "--force", str(source))

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

    missing = run_on(node, "install", str(source))
    result = run_on(node, "install", "--afu-id", AFU_3.upper(), str(source))

    assert "give the AFU ID that pods request it by with --afu-id" in error_sentence(missing)
    assert result.returncode == 0, result.stderr
    assert (node.store / REGION_A / f"{AFU_3}.aocx").read_bytes() == source.read_bytes()


def test_install_refuses_afu_id_for_a_gbs(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "nlb.gbs"
    source.write_bytes(gbs_bytes(REGION_A, AFU_2))

    message = error_sentence(run_on(node, "install", "--afu-id", AFU_3, str(source)))

    assert "--afu-id is refused" in message
    assert not node.store.exists()


def test_install_refuses_an_invalid_file_and_writes_nothing(node: SimNode, tmp_path: Path) -> None:
    source = tmp_path / "broken.aocx"
    metadata = gbs_metadata(REGION_A, BSP_AFU)
    metadata["afu-image"]["accelerator-clusters"][0]["name"] = 7
    source.write_bytes(aocx_bytes(gbs_bytes(metadata=metadata)))

    message = error_sentence(run_on(node, "install", "--afu-id", AFU_3, str(source)))

    assert "(embedded GBS): the GBS metadata breaks the schema at afu-image/" in message
    assert not node.store.exists()


def test_install_refuses_an_aocx_whose_gbs_opaes_runtime_refuses(
    node: SimNode, tmp_path: Path
) -> None:
    source = tmp_path / "old.aocx"
    metadata = gbs_metadata(REGION_A, BSP_AFU)
    metadata["version"] = 2
    source.write_bytes(aocx_bytes(gbs_bytes(metadata=metadata)))

    message = error_sentence(run_on(node, "install", "--afu-id", AFU_3, str(source)))

    assert message == (
        f"{source}: OPAE's runtime would refuse the GBS in this AOCX: "
        "version must be the JSON integer 1, 640 or 650, not 2"
    )
    assert not node.store.exists()


def test_install_notes_a_gbs_that_shadows_the_aocx(node: SimNode, tmp_path: Path) -> None:
    gbs = write_gbs(node, REGION_A, AFU_3)
    source = tmp_path / "kernel.aocx"
    source.write_bytes(aocx_bytes(gbs_bytes(REGION_A, BSP_AFU)))

    result = run_on(node, "install", "--afu-id", AFU_3, str(source))

    assert result.returncode == 0, result.stderr
    assert f"note: {gbs} exists too and the hook takes it first" in result.stdout
