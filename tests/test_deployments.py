"""The cluster install under deployments/: manifests, node installer, image recipe.

No image is built and no cluster is reached here: the manifests are checked
against the Kubernetes schemas that kubernetes-validate ships, the installer
runs for real against a temporary directory standing in for the node's root,
and the Containerfile is read for the paths the other two rely on
(test_intel_init_container.py runs a root file system laid out like the image).
"""

import contextlib
import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes_validate
import pytest
import yaml
from deployment import (
    ABSOLUTE_LINK_TARGET,
    HOOK_JSON,
    INSTALLER,
    KUBERNETES,
    copies,
    documents,
    final_stage,
    image_command,
    instructions,
    make_payload,
    release_names,
    run_installer,
    tree,
)
from engine import request_env, shipped_port, unavailable
from helpers import AFU_1, AFU_2, REGION_A, REPO, Completed
from simnode import SimNode, add_card, state_json, write_bundle, write_gbs

from fpga_crihook.errors import ExitStatus

BASE = KUBERNETES / "base"

# The oldest Kubernetes the manifests are meant for, and the newest release
# whose schemas the installed kubernetes-validate carries.
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
KUSTOMIZATION_NAMES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}

# What install-on-node.sh creates under the node's root.
INSTALLED = Path("opt/intel/fpga-crihook")
RELEASES = Path("opt/intel/fpga-crihook.d")
HOOKS_DIR = Path("usr/share/containers/oci/hooks.d")  # CRI-O's default hooks_dir
HOOK_FILE_NAME = "intel-fpga-crihook.json"
INSTALLED_HOOK_FILE = HOOKS_DIR / HOOK_FILE_NAME
ETC_HOOKS_DIR = Path("etc/containers/oci/hooks.d")  # podman's; where older installers wrote
RUN_HOOKS_DIR = Path("run/containers/oci/hooks.d")
CRIO_CONFIG = Path("etc/crio/crio.conf")
CRIO_CONFIG_DIR = Path("etc/crio/crio.conf.d")
# OpenShift's /etc/crio/crio.conf.d/00-default, as far as hooks go.
OPENSHIFT_HOOKS_DIRS = [ETC_HOOKS_DIR, RUN_HOOKS_DIR, HOOKS_DIR]
DROP_IN = Path("opt/intel/fpga-sw/intel-fpga-crihook")  # the path Intel's CDI spec names
DROP_IN_TARGET = "../fpga-crihook/bin/intel-fpga-crihook"
OVERLAY = KUBERNETES / "intel-cdi" / "kustomization.yaml"
INTEL_PLUGIN_OVERLAY = KUBERNETES / "intel-fpga-plugin" / "kustomization.yaml"
# Intel's FPGA plugin DaemonSet (intel-device-plugins-for-kubernetes v0.36.0,
# deployments/fpga_plugin/base/intel-fpga-plugin-daemonset.yaml): its init container's
# image, and the kustomization that runs the plugin in region mode.
INTEL_INIT_IMAGE = "intel/intel-fpga-initcontainer"
INTEL_REGION_KUSTOMIZATION = (
    "https://github.com/intel/intel-device-plugins-for-kubernetes/deployments/fpga_plugin/"
    "overlays/region"
)


def _manifest_files(directory: Path = KUBERNETES) -> list[Path]:
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in directory.rglob(pattern)
        if path.name not in KUSTOMIZATION_NAMES
    )


def _kustomizations() -> list[Path]:
    return sorted(path for path in KUBERNETES.rglob("*") if path.name in KUSTOMIZATION_NAMES)


def _base_resources() -> list[dict[str, Any]]:
    return [document for path in _manifest_files(BASE) for document in documents(path)]


def _daemonset() -> dict[str, Any]:
    (daemonset,) = [doc for doc in _base_resources() if doc["kind"] == "DaemonSet"]
    return daemonset


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _daemonset()["spec"]["template"]["spec"]
    return spec


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {variable["name"]: variable["value"] for variable in container.get("env", [])}


# --- Kubernetes manifests ---------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "path", _manifest_files(), ids=lambda path: str(path.relative_to(KUBERNETES))
)
def test_manifest_is_valid_for_kubernetes(path: Path, version: str) -> None:
    found = documents(path)
    assert found, f"{path} holds no resource"
    for document in found:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(error.message)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    daemonset = copy.deepcopy(_daemonset())
    daemonset["spec"]["template"]["spec"]["nodeSelectr"] = {"a": "b"}
    with pytest.raises(kubernetes_validate.ValidationError, match="nodeSelectr"):
        kubernetes_validate.validate(daemonset, KUBERNETES_VERSIONS[0], strict=True)


def test_base_holds_the_namespace_and_the_daemonset() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in _base_resources()}
    assert kinds == {("Namespace", "intel-fpga-crihook"), ("DaemonSet", "intel-fpga-crihook")}


@pytest.mark.parametrize(
    "kustomization", _kustomizations(), ids=lambda path: str(path.relative_to(KUBERNETES))
)
def test_kustomization_lists_every_manifest_beside_it(kustomization: Path) -> None:
    (config,) = documents(kustomization)
    listed = config["resources"]
    for resource in listed:
        if "://" in resource:  # another project's kustomization, at a fixed release
            assert re.search(r"\?ref=v\d+\.\d+\.\d+$", resource), f"{resource}: not pinned"
            continue
        target = kustomization.parent / resource
        assert target.is_file() or any((target / name).is_file() for name in KUSTOMIZATION_NAMES), (
            f"{kustomization} lists {resource}, which does not exist"
        )
    beside = {
        path.name
        for path in kustomization.parent.iterdir()
        if path.suffix in {".yaml", ".yml"} and path.name not in KUSTOMIZATION_NAMES
    }
    assert beside <= set(listed), f"not in {kustomization}: {sorted(beside - set(listed))}"


def test_kustomization_images_entry_sets_every_container_image() -> None:
    (config,) = documents(BASE / "kustomization.yaml")
    settable = {image["name"] for image in config["images"]}
    used = {container["image"] for container in _containers(_pod_spec())}
    assert used == settable


def test_init_container_mounts_the_host_paths_the_installer_writes() -> None:
    pod_spec = _pod_spec()
    host_paths = {
        volume["name"]: volume["hostPath"]["path"]
        for volume in pod_spec["volumes"]
        if "hostPath" in volume
    }
    (installer,) = pod_spec["initContainers"]
    node_root = _env(installer)["NODE_ROOT"]
    mounts = {mount["mountPath"]: host_paths[mount["name"]] for mount in installer["volumeMounts"]}
    read_only = {mount["mountPath"] for mount in installer["volumeMounts"] if mount.get("readOnly")}
    assert all(mount == node_root + host_path for mount, host_path in mounts.items())
    assert set(mounts.values()) == {
        "/" + str(INSTALLED.parent),
        *("/" + str(directory) for directory in OPENSHIFT_HOOKS_DIRS),
        "/etc/crio",  # CRI-O's config: its hooks_dir
    }
    assert read_only == {node_root + "/etc/crio"}


def test_containers_run_unprivileged_and_limited() -> None:
    pod_spec = _pod_spec()
    for container in pod_spec["containers"]:
        assert container["securityContext"]["runAsNonRoot"] is True
    for container in _containers(pod_spec):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "limits" in container["resources"]


# --- install-on-node.sh -------------------------------------------------------


def _make_hook_json(path: Path, timeout: int = 60) -> Path:
    hook = {
        "version": "1.0.0",
        "hook": {"path": "/" + str(INSTALLED / "bin" / "fpga-crihook"), "timeout": timeout},
        "when": {"annotations": {"^com\\.intel\\.fpga\\.mode$": "^fpga\\.intel\\.com/region$"}},
        "stages": ["prestart"],
    }
    path.write_text(json.dumps(hook, indent=2), encoding="utf-8")
    return path


def _run_installer(
    node_root: Path, payload: Path, hook_json: Path, *args: str, mode: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"NODE_ROOT": str(node_root), "PAYLOAD_DIR": str(payload), "HOOK_JSON": str(hook_json)}
    if mode is not None:
        env["HOOK_MODE"] = mode
    return run_installer(env, *args)


def _install(node_root: Path, payload: Path, hook_json: Path, mode: str | None = None) -> str:
    result = _run_installer(node_root, payload, hook_json, mode=mode)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run_installed_hook(node_root: Path) -> str:
    program = node_root / INSTALLED / "bin" / "fpga-crihook"
    result = subprocess.run([program], capture_output=True, text=True, check=True, timeout=10)
    return result.stdout.strip()


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    root.mkdir()
    return root


def test_installer_puts_payload_and_hook_file_on_the_node(node_root: Path, tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")

    output = _install(node_root, payload, hook_json)

    program = node_root / INSTALLED / "bin" / "fpga-crihook"
    assert stat.S_IMODE(program.stat().st_mode) == 0o755
    assert _run_installed_hook(node_root) == "first"
    assert os.readlink(node_root / INSTALLED / "bin" / "python") == ABSOLUTE_LINK_TARGET
    installed_hook = node_root / INSTALLED_HOOK_FILE
    assert json.loads(installed_hook.read_text(encoding="utf-8")) == json.loads(
        hook_json.read_text(encoding="utf-8")
    )
    assert installed_hook.read_bytes() == hook_json.read_bytes()
    assert str(node_root / INSTALLED_HOOK_FILE) in output
    # Nothing temporary left beside what the runtime reads.
    assert sorted(p.name for p in (node_root / HOOKS_DIR).iterdir()) == [installed_hook.name]
    assert sorted(p.name for p in (node_root / INSTALLED.parent).iterdir()) == [
        INSTALLED.name,
        RELEASES.name,
    ]


def test_installer_links_the_install_path_to_one_release(node_root: Path, tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "first")

    _install(node_root, payload, _make_hook_json(tmp_path / "hook.json"))

    link = node_root / INSTALLED
    (release,) = (node_root / RELEASES).iterdir()
    assert link.is_symlink()
    assert os.readlink(link) == f"{RELEASES.name}/{release.name}"
    assert tree(release) == tree(payload)


def test_second_run_with_the_same_payload_leaves_the_same_state(
    node_root: Path, tmp_path: Path
) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)
    before = tree(node_root / INSTALLED)

    output = _install(node_root, payload, hook_json)

    assert tree(node_root / INSTALLED) == before == tree(payload)
    assert len(list((node_root / RELEASES).iterdir())) == 2  # this one and the one before
    assert "is up to date" in output
    assert (node_root / INSTALLED_HOOK_FILE).read_bytes() == hook_json.read_bytes()


def test_new_payload_replaces_the_old_one(node_root: Path, tmp_path: Path) -> None:
    _install(
        node_root,
        make_payload(tmp_path / "old", "old"),
        _make_hook_json(tmp_path / "old.json", timeout=60),
    )
    new_payload = make_payload(tmp_path / "new", "new")
    new_hook_json = _make_hook_json(tmp_path / "new.json", timeout=90)

    _install(node_root, new_payload, new_hook_json)

    assert _run_installed_hook(node_root) == "new"
    assert tree(node_root / INSTALLED) == tree(new_payload)
    assert not (node_root / INSTALLED / "lib" / "old.txt").exists()
    assert (node_root / INSTALLED_HOOK_FILE).read_bytes() == new_hook_json.read_bytes()


def test_install_keeps_the_release_it_replaces_and_removes_older_ones(
    node_root: Path, tmp_path: Path
) -> None:
    """A hook that started on the release an install replaces runs on from its files."""
    hook_json = _make_hook_json(tmp_path / "hook.json")
    linked = []
    for name in ("first", "second"):
        _install(node_root, make_payload(tmp_path / name, name), hook_json)
        linked.append(node_root / INSTALLED.parent / os.readlink(node_root / INSTALLED))

    output = _install(node_root, make_payload(tmp_path / "third", "third"), hook_json)

    current = os.readlink(node_root / INSTALLED)
    assert release_names(node_root / RELEASES) == {
        linked[1].name: "second",
        Path(current).name: "third",
    }
    assert f"removed old release {linked[0]}" in output
    assert f"kept the previous release {linked[1]} for hooks still running from it" in output


def test_uninstall_removes_every_release(node_root: Path, tmp_path: Path) -> None:
    hook_json = _make_hook_json(tmp_path / "hook.json")
    for name in ("first", "second", "third"):
        _install(node_root, make_payload(tmp_path / name, name), hook_json)

    result = _run_installer(node_root, tmp_path / "third", hook_json, "uninstall")

    assert result.returncode == 0, result.stderr
    assert list((node_root / INSTALLED.parent).iterdir()) == []


def test_installer_replaces_a_directory_installed_by_hand(node_root: Path, tmp_path: Path) -> None:
    make_payload(node_root / INSTALLED, "by-hand")
    payload = make_payload(tmp_path / "payload", "packaged")

    _install(node_root, payload, _make_hook_json(tmp_path / "hook.json"))

    assert (node_root / INSTALLED).is_symlink()
    assert tree(node_root / INSTALLED) == tree(payload)
    assert len(list((node_root / RELEASES).iterdir())) == 1


def test_installer_clears_what_a_killed_run_left_behind(node_root: Path, tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)
    half_copied = node_root / RELEASES / ".staging.abcdef"
    make_payload(half_copied, "half")
    (node_root / INSTALLED.parent / ".fpga-crihook.link").symlink_to("nowhere")
    (node_root / HOOKS_DIR / ".intel-fpga-crihook.json.tmp").write_text("{", encoding="utf-8")

    _install(node_root, payload, hook_json)

    assert tree(node_root / INSTALLED) == tree(payload)
    assert not half_copied.exists()
    assert sorted(p.name for p in (node_root / INSTALLED.parent).iterdir()) == [
        INSTALLED.name,
        RELEASES.name,
    ]
    assert [p.name for p in (node_root / HOOKS_DIR).iterdir()] == [INSTALLED_HOOK_FILE.name]
    assert (node_root / INSTALLED_HOOK_FILE).read_bytes() == hook_json.read_bytes()


def test_installer_refuses_a_payload_without_the_hook_program(
    node_root: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "payload"
    payload.mkdir()

    result = _run_installer(node_root, payload, _make_hook_json(tmp_path / "hook.json"))

    assert result.returncode != 0
    assert f"no executable {payload}/bin/fpga-crihook" in result.stderr
    assert list(node_root.iterdir()) == []


def test_uninstall_removes_what_the_installer_wrote(node_root: Path, tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)
    other_hook = node_root / HOOKS_DIR / "other-vendor.json"
    other_hook.write_text("{}", encoding="utf-8")

    result = _run_installer(node_root, payload, hook_json, "uninstall")

    assert result.returncode == 0, result.stderr
    assert not (node_root / INSTALLED_HOOK_FILE).exists()
    assert not (node_root / INSTALLED).is_symlink()
    assert not (node_root / INSTALLED).exists()
    assert not (node_root / RELEASES).exists()
    assert list((node_root / HOOKS_DIR).iterdir()) == [other_hook]


def test_installed_hook_file_names_the_installed_program(node_root: Path, tmp_path: Path) -> None:
    """The project's own hooks.d file points at the program the installer puts in place."""
    _install(node_root, make_payload(tmp_path / "payload", "first"), HOOK_JSON)

    hook = json.loads((node_root / INSTALLED_HOOK_FILE).read_text(encoding="utf-8"))
    program = node_root / hook["hook"]["path"].lstrip("/")
    assert program.is_file()
    assert os.access(program, os.X_OK)


# --- install-on-node.sh: the hooks directory CRI-O reads -----------------------


def _crio_config(node_root: Path, *directories: Path, name: str = "00-default") -> Path:
    """A drop-in of CRI-O's config listing *directories* (node paths) as its hooks_dir,
    in the multi-line form CRI-O itself writes."""
    listed = "".join(f'    "/{directory}",\n' for directory in directories)
    path = node_root / CRIO_CONFIG_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[crio]\n[crio.runtime]\nselinux = true\nhooks_dir = [\n{listed}]\n")
    for directory in directories:
        (node_root / directory).mkdir(parents=True, exist_ok=True)  # CRI-O makes them at start
    return path


def _run_with_read_only_usr(
    node_root: Path, payload: Path, hook_json: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The installer with the node's /usr read-only, as on OpenShift: a bind mount in a
    mount namespace of its own (root only)."""
    usr = node_root / "usr"
    usr.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        unavailable("a read-only /usr for the installer needs root (unshare, mount)")
    script = f'mount --bind -o ro "{usr}" "{usr}" && exec sh "{INSTALLER}" "$@"'
    env = {
        "PATH": os.environ["PATH"],
        "NODE_ROOT": str(node_root),
        "PAYLOAD_DIR": str(payload),
        "HOOK_JSON": str(hook_json),
    }
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_installer_without_a_crio_config_writes_to_crios_default_directory(
    node_root: Path, tmp_path: Path
) -> None:
    output = _install(
        node_root, make_payload(tmp_path / "payload", "first"), _make_hook_json(tmp_path / "h")
    )

    assert (node_root / INSTALLED_HOOK_FILE).is_file()
    assert not (node_root / ETC_HOOKS_DIR).exists()
    assert f"CRI-O reads hooks.d files from: /{HOOKS_DIR} (no CRI-O config: its default)" in output
    assert f"writing the hooks.d file to /{HOOKS_DIR}: the first of them it can write" in output


def test_installer_follows_openshifts_crio_config_with_usr_read_only(
    node_root: Path, tmp_path: Path
) -> None:
    config = _crio_config(node_root, *OPENSHIFT_HOOKS_DIRS)
    hook_json = _make_hook_json(tmp_path / "hook.json")

    result = _run_with_read_only_usr(node_root, make_payload(tmp_path / "p", "first"), hook_json)

    assert result.returncode == 0, result.stderr
    assert (node_root / ETC_HOOKS_DIR / HOOK_FILE_NAME).read_bytes() == hook_json.read_bytes()
    assert not (node_root / RUN_HOOKS_DIR / HOOK_FILE_NAME).exists()
    assert f"(hooks_dir in {config})" in result.stdout


def test_installer_skips_a_listed_directory_it_cannot_write(
    node_root: Path, tmp_path: Path
) -> None:
    _crio_config(node_root, HOOKS_DIR, ETC_HOOKS_DIR)

    result = _run_with_read_only_usr(
        node_root, make_payload(tmp_path / "p", "first"), _make_hook_json(tmp_path / "h")
    )

    assert result.returncode == 0, result.stderr
    assert (node_root / ETC_HOOKS_DIR / HOOK_FILE_NAME).is_file()
    assert not (node_root / INSTALLED_HOOK_FILE).exists()
    assert f"skipping /{HOOKS_DIR}: not a directory this installer can write to" in result.stdout


def test_installer_writes_where_crios_only_hooks_dir_is(node_root: Path, tmp_path: Path) -> None:
    elsewhere = Path("var/lib/crio/hooks.d")
    _crio_config(node_root, elsewhere)

    _install(node_root, make_payload(tmp_path / "p", "first"), _make_hook_json(tmp_path / "h"))

    assert (node_root / elsewhere / HOOK_FILE_NAME).is_file()
    assert not (node_root / HOOKS_DIR).exists()


def test_installer_refuses_when_crios_only_hooks_dir_is_not_there(
    node_root: Path, tmp_path: Path
) -> None:
    """In the DaemonSet a directory that is not mounted is not there: the installer must
    not report success while CRI-O reads no file of ours."""
    elsewhere = Path("var/lib/crio/hooks.d")
    _crio_config(node_root, elsewhere)
    (node_root / elsewhere).rmdir()

    result = _run_installer(
        node_root, make_payload(tmp_path / "p", "first"), _make_hook_json(tmp_path / "h")
    )

    assert result.returncode != 0
    assert (
        f"none of CRI-O's hooks directories can be written here: /{elsewhere} (mount one "
        "into the installer, or create it)"
    ) in result.stderr


def test_installer_refuses_a_crio_config_crio_cannot_read(node_root: Path, tmp_path: Path) -> None:
    broken = node_root / CRIO_CONFIG
    broken.parent.mkdir(parents=True)
    broken.write_text('[crio.runtime]\nhooks_dir = ["/etc/containers/oci/hooks.d"\n')

    result = _run_installer(
        node_root, make_payload(tmp_path / "p", "first"), _make_hook_json(tmp_path / "h")
    )

    assert result.returncode != 0
    assert f"fpga-crihook: {broken} is not valid TOML" in result.stderr
    assert "cannot read CRI-O's hooks_dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_install_removes_an_older_installers_copy_elsewhere(
    node_root: Path, tmp_path: Path
) -> None:
    """podman reads both directories, and would run the hook twice."""
    old_copy = node_root / ETC_HOOKS_DIR / HOOK_FILE_NAME
    old_copy.parent.mkdir(parents=True)
    old_copy.write_text("{}", encoding="utf-8")
    other_vendor = old_copy.parent / "other-vendor.json"
    other_vendor.write_text("{}", encoding="utf-8")
    hook_json = _make_hook_json(tmp_path / "hook.json")

    output = _install(node_root, make_payload(tmp_path / "p", "first"), hook_json)

    assert not old_copy.exists()
    assert other_vendor.exists()
    assert (node_root / INSTALLED_HOOK_FILE).read_bytes() == hook_json.read_bytes()
    assert f"removed {old_copy}: an older copy, which would run the hook a second time" in output


def test_reinstall_under_crios_config_leaves_one_copy(node_root: Path, tmp_path: Path) -> None:
    _crio_config(node_root, RUN_HOOKS_DIR, ETC_HOOKS_DIR, HOOKS_DIR)
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)

    output = _install(node_root, payload, hook_json)

    copies = [d for d in OPENSHIFT_HOOKS_DIRS if (node_root / d / HOOK_FILE_NAME).exists()]
    assert copies == [RUN_HOOKS_DIR]
    assert f"{node_root / RUN_HOOKS_DIR / HOOK_FILE_NAME} is up to date" in output


def test_uninstall_removes_the_hooks_file_from_every_hooks_directory(
    node_root: Path, tmp_path: Path
) -> None:
    elsewhere = Path("var/lib/crio/hooks.d")
    _crio_config(node_root, elsewhere)
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)
    for directory in (ETC_HOOKS_DIR, HOOKS_DIR):  # copies an older installer left
        (node_root / directory).mkdir(parents=True, exist_ok=True)
        (node_root / directory / HOOK_FILE_NAME).write_text("{}", encoding="utf-8")

    result = _run_installer(node_root, payload, hook_json, "uninstall")

    assert result.returncode == 0, result.stderr
    for directory in (elsewhere, ETC_HOOKS_DIR, HOOKS_DIR):
        assert not (node_root / directory / HOOK_FILE_NAME).exists(), directory
    assert not (node_root / INSTALLED).exists()


def test_uninstall_removes_the_drop_in_directory_only_when_it_made_it(tmp_path: Path) -> None:
    """A directory Intel's FPGA init container made is not ours to remove, even when empty."""
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    made, found = tmp_path / "made", tmp_path / "found"
    (found / DROP_IN.parent).mkdir(parents=True)
    outputs = []
    for node_root in (made, found):
        node_root.mkdir(exist_ok=True)
        _install(node_root, payload, hook_json, "intel-cdi")
        result = _run_installer(node_root, payload, hook_json, "uninstall")
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)

    assert list((made / INSTALLED.parent).iterdir()) == []
    assert f"removed {made / DROP_IN.parent}" in outputs[0]
    assert [path.name for path in (found / INSTALLED.parent).iterdir()] == [DROP_IN.parent.name]
    assert list((found / DROP_IN.parent).iterdir()) == []


# --- install-on-node.sh: the drop-in for Intel's CDI spec --------------------


def _run_drop_in(node_root: Path) -> str:
    result = subprocess.run(
        [node_root / DROP_IN], capture_output=True, text=True, check=True, timeout=10
    )
    return result.stdout.strip()


def test_intel_cdi_mode_puts_the_drop_in_where_intels_spec_points(
    node_root: Path, tmp_path: Path
) -> None:
    payload = make_payload(tmp_path / "payload", "first")

    output = _install(node_root, payload, _make_hook_json(tmp_path / "hook.json"), "intel-cdi")

    assert os.readlink(node_root / DROP_IN) == DROP_IN_TARGET
    assert _run_drop_in(node_root) == "drop-in first"
    assert not (node_root / INSTALLED_HOOK_FILE).exists()  # CRI-O would run the hook twice
    assert f"linked {node_root / DROP_IN} to {DROP_IN_TARGET}" in output
    assert [path.name for path in (node_root / DROP_IN).parent.iterdir()] == [DROP_IN.name]


def test_drop_in_follows_a_new_release(node_root: Path, tmp_path: Path) -> None:
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, make_payload(tmp_path / "old", "old"), hook_json, "intel-cdi")

    output = _install(node_root, make_payload(tmp_path / "new", "new"), hook_json, "intel-cdi")

    assert _run_drop_in(node_root) == "drop-in new"
    assert f"{node_root / DROP_IN} is up to date" in output


def test_switching_modes_swaps_the_hooks_d_file_and_the_drop_in(
    node_root: Path, tmp_path: Path
) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json)  # the default: hooks.d

    _install(node_root, payload, hook_json, "intel-cdi")
    cdi_state = ((node_root / INSTALLED_HOOK_FILE).exists(), (node_root / DROP_IN).is_symlink())
    _install(node_root, payload, hook_json, "hooks.d")

    assert cdi_state == (False, True)
    assert (node_root / INSTALLED_HOOK_FILE).read_bytes() == hook_json.read_bytes()
    assert not os.path.lexists(node_root / DROP_IN)


def test_a_drop_in_not_ours_stays_in_hooks_d_mode_and_is_replaced_in_intel_cdi_mode(
    node_root: Path, tmp_path: Path
) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    intels = node_root / DROP_IN
    intels.parent.mkdir(parents=True)
    intels.write_text("#!/bin/sh\necho intel\n", encoding="utf-8")
    intels.chmod(0o755)

    _install(node_root, payload, hook_json)
    kept = _run_drop_in(node_root)
    output = _install(node_root, payload, hook_json, "intel-cdi")

    assert kept == "intel"
    assert f"replacing {intels}, which was not fpga-crihook's" in output
    assert _run_drop_in(node_root) == "drop-in first"


def test_uninstall_removes_the_drop_in(node_root: Path, tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    hook_json = _make_hook_json(tmp_path / "hook.json")
    _install(node_root, payload, hook_json, "intel-cdi")
    assert (node_root / DROP_IN).is_symlink()

    result = _run_installer(node_root, payload, hook_json, "uninstall", mode="intel-cdi")

    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(node_root / DROP_IN)
    assert not (node_root / INSTALLED).exists()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("cdi", "unknown HOOK_MODE 'cdi': expected hooks.d or intel-cdi"),
        ("intel-cdi", "no executable {payload}/bin/intel-fpga-crihook: the payload has no drop-in"),
    ],
)
def test_installer_refuses_a_mode_it_cannot_serve(
    node_root: Path, tmp_path: Path, mode: str, message: str
) -> None:
    payload = make_payload(tmp_path / "payload", "first")
    (payload / "bin" / "intel-fpga-crihook").unlink()

    result = _run_installer(node_root, payload, _make_hook_json(tmp_path / "h.json"), mode=mode)

    assert result.returncode != 0
    assert message.format(payload=payload) in result.stderr
    assert list(node_root.iterdir()) == []


def _merged_by_name(
    base: list[dict[str, Any]], patch: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A strategic merge of two lists keyed by ``name`` (containers, env), as kustomize does."""
    merged = {item["name"]: copy.deepcopy(item) for item in base}
    for item in patch:
        target = merged.setdefault(item["name"], {})
        for key, value in item.items():
            if key == "env":
                target["env"] = _merged_by_name(target.get("env", []), value)
            else:
                target[key] = value
    return list(merged.values())


def test_intel_cdi_overlay_switches_the_installer_mode() -> None:
    (overlay,) = documents(OVERLAY)
    (entry,) = overlay["patches"]
    patch = yaml.safe_load(entry["patch"])
    daemonset = copy.deepcopy(_daemonset())
    pod_spec = daemonset["spec"]["template"]["spec"]
    patch_spec = patch["spec"]["template"]["spec"]

    pod_spec["initContainers"] = _merged_by_name(
        pod_spec["initContainers"], patch_spec["initContainers"]
    )

    assert overlay["resources"] == ["../base"]
    assert (patch["kind"], patch["metadata"]["name"]) == ("DaemonSet", "intel-fpga-crihook")
    (installer,) = pod_spec["initContainers"]
    assert _env(installer)["HOOK_MODE"] == "intel-cdi"
    assert _env(_pod_spec()["initContainers"][0])["HOOK_MODE"] == "hooks.d"  # the base's default
    kubernetes_validate.validate(daemonset, KUBERNETES_VERSIONS[0], strict=True)
    # The drop-in's directory is under a host path the init container mounts.
    assert "/" + str(DROP_IN.parent.parent) in {
        volume["hostPath"]["path"] for volume in pod_spec["volumes"]
    }


def test_intel_plugin_overlay_gives_intels_init_container_this_image() -> None:
    """Intel's region-mode plugin as Intel deploys it, this image in its init container: the
    same image the base deploys, set by one kustomize images entry."""
    (overlay,) = documents(INTEL_PLUGIN_OVERLAY)
    (base,) = documents(BASE / "kustomization.yaml")
    ours = {(image["newName"], image["newTag"]) for image in base["images"]}

    (resource,) = overlay["resources"]
    (image,) = overlay["images"]

    assert resource.startswith(INTEL_REGION_KUSTOMIZATION + "?ref=v0.")
    assert image["name"] == INTEL_INIT_IMAGE
    assert {(image["newName"], image["newTag"])} == ours
    assert set(overlay) == {"apiVersion", "kind", "resources", "images"}


# --- build-payload.sh -----------------------------------------------------------


def test_payload_built_from_debians_python_holds_no_link_leading_out_of_it(
    built_payload: Path,
) -> None:
    leaving = {
        str(link.relative_to(built_payload)): os.path.realpath(link)
        for link in built_payload.rglob("*")
        if link.is_symlink() and not os.path.realpath(link).startswith(f"{built_payload}/")
    }
    assert leaving == {}
    [site_customize] = built_payload.glob("lib/python3.*/sitecustomize.py")
    node_file = Path("/etc") / site_customize.parent.name / "sitecustomize.py"
    assert not site_customize.is_symlink()
    assert site_customize.read_bytes() == node_file.read_bytes()


def _run_program(program: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [program, *args], env=env or {}, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_payload_runs_away_from_where_it_was_built_and_through_links(
    built_payload: Path, tmp_path: Path
) -> None:
    """The installer puts it in a release directory behind a symlink, and a drop-in may be
    a link to one of its programs: with an empty env, as a CDI hook runs."""
    current = tmp_path / "fpga-crihook"
    current.symlink_to(built_payload)
    drop_in = tmp_path / "intel-fpga-crihook"
    drop_in.symlink_to("fpga-crihook/bin/intel-fpga-crihook")

    version = _run_program(current / "bin" / "fpga-crihook", "--version")
    usage = _run_program(drop_in, "--help")

    assert version.split()[-1] == "0.1.0"
    assert usage.startswith("Usage: intel-fpga-crihook createRuntime")


def test_cdi_spec_from_the_payload_names_its_program_through_the_link_it_was_run_by(
    built_payload: Path, shipped_node: SimNode, tmp_path: Path
) -> None:
    """The program runs from the release directory the link names, which a later install
    removes: the spec must name it by the path that follows each new release."""
    current = tmp_path / "fpga-crihook"
    current.symlink_to(built_payload)
    program = current / "bin" / "fpga-crihook"

    spec = json.loads(_run_program(program, "cdi", "generate", env=shipped_node.quiet_env()))

    [hook] = spec["containerEdits"]["hooks"]
    assert hook["path"] == str(program)


def test_payload_programs_ignore_python_variables_in_their_environment(
    built_payload: Path, tmp_path: Path
) -> None:
    """A runtime passes its own environment to a hook given none (crun): no PYTHONPATH may
    change what the hook imports."""
    impostor = tmp_path / "impostor" / "fpga_crihook"
    impostor.mkdir(parents=True)
    (impostor / "__init__.py").write_text("raise SystemExit('imported the impostor')\n")

    version = _run_program(
        built_payload / "bin" / "fpga-crihook",
        "--version",
        env={"PYTHONPATH": str(impostor.parent), "PYTHONHOME": str(tmp_path)},
    )

    assert version.split()[-1] == "0.1.0"


# --- a hook in flight while install-on-node.sh puts in a new release -----------


class Layout(NamedTuple):
    """An install of the payload, and the program the runtime then runs for the hook."""

    env: dict[str, str]  # the installer's, beside PAYLOAD_DIR; "{node}": the node's root
    program: Path  # under the node's root
    args: tuple[str, ...]


LAYOUTS = {
    "hooks.d": Layout(
        {"NODE_ROOT": "{node}", "HOOK_JSON": str(HOOK_JSON), "HOOK_MODE": "hooks.d"},
        INSTALLED / "bin" / "fpga-crihook",
        ("prestart",),
    ),
    "intel-cdi": Layout(
        {"NODE_ROOT": "{node}", "HOOK_JSON": str(HOOK_JSON), "HOOK_MODE": "intel-cdi"},
        DROP_IN,  # the symlink into the release
        (),
    ),
    "fpga-sw": Layout({"FPGA_SW_DIR": "{node}/opt/intel/fpga-sw"}, DROP_IN, ()),  # a file
}

# What fpga_crihook.hook says when imported from the payload_failing_on_hook_import.
FAILING_IMPORT = "fpga_crihook.hook of the second release imported"


@pytest.fixture(scope="module")
def payload_failing_on_hook_import(
    built_payload: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The built payload, with fpga_crihook.hook (which the hook imports only once it has
    read the state) failing on import: its source changed and compiled as the build does."""
    payload = tmp_path_factory.mktemp("failing") / "payload"
    shutil.copytree(built_payload, payload, symlinks=True, copy_function=os.link)
    (module,) = payload.glob("**/fpga_crihook/hook.py")
    source = module.read_text(encoding="utf-8")
    module.unlink()  # a hard link to the built payload's file
    module.write_text(f"{source}\nraise RuntimeError({FAILING_IMPORT!r})\n", encoding="utf-8")
    (compiled,) = module.parent.glob("__pycache__/hook.*.pyc")
    compiled.unlink()
    compile_as_built = ["-I", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([payload / "bin" / "python3", *compile_as_built, module], check=True, timeout=60)
    assert compiled.exists()
    return payload


def _wait_until_reading_stdin(hook: "subprocess.Popen[str]") -> None:
    """Until *hook* waits in read(2) on its stdin, an empty pipe: past its start-up imports."""
    proc = Path("/proc", str(hook.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert hook.poll() is None, "the hook ended before it read its stdin"
        with contextlib.suppress(OSError):  # ended since: the next poll says so
            syscall = (proc / "syscall").read_text().split()  # number, then fd and the rest
            if syscall[1:2] == ["0x0"] and "pipe" in (proc / "wchan").read_text():
                return
        time.sleep(0.01)
    pytest.fail("the hook did not wait for its stdin within 30 s")


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_hook_started_before_an_install_runs_to_its_end_on_the_release_it_started_on(
    layout: Layout,
    built_payload: Path,
    payload_failing_on_hook_import: Path,
    shipped_node: SimNode,
    tmp_path: Path,
) -> None:
    """The hook imports most of its code only once it has read the state: every module must
    come from the release it started on, and still be there."""
    node_root = tmp_path / "host"
    node_root.mkdir()
    env = {name: value.format(node=node_root) for name, value in layout.env.items()}
    program = [str(node_root / layout.program), *layout.args]
    port = shipped_port(shipped_node, "dfl-port.0")
    bundle = write_bundle(
        tmp_path / "bundle", env=request_env(REGION_A, AFU_2), devices=[port.device()]
    )
    first = run_installer({**env, "PAYLOAD_DIR": str(built_payload)})
    assert first.returncode == 0, first.stderr

    hook = subprocess.Popen(
        program,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=shipped_node.quiet_env(),
        text=True,
    )
    try:
        _wait_until_reading_stdin(hook)
        second = run_installer({**env, "PAYLOAD_DIR": str(payload_failing_on_hook_import)})
        stdout, stderr = hook.communicate(state_json(bundle), timeout=60)
    finally:
        if hook.poll() is None:
            hook.kill()
            hook.wait()
    started_after = subprocess.run(
        program,
        input=state_json(bundle),
        env=shipped_node.quiet_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert second.returncode == 0, second.stderr
    assert Completed(hook.returncode, stdout, stderr) == Completed(0, "", "")
    assert port.afu_id() == AFU_2
    assert started_after.returncode == ExitStatus.INTERNAL
    assert FAILING_IMPORT in started_after.stderr


def _hostile_environment(trap: Path) -> dict[str, str]:
    """What crun may hand a hook that has no env of its own: its own (CRI-O's) environment,
    here with every interpreter variable that would change what Python runs or prints."""
    (trap / "sitecustomize.py").write_text(f"open({str(trap / 'ran')!r}, 'w').close()\n")
    return {
        "PYTHONPATH": str(trap),  # its sitecustomize would run first
        "PYTHONHOME": str(trap),
        "PYTHONEXECUTABLE": "/bin/false",  # CPython 3.11 takes it, -I or not, for its own path
        "__PYVENV_LAUNCHER__": "/bin/false",  # likewise
        "HOME": str(trap),
        "PYTHONINSPECT": "1",
        "PYTHONVERBOSE": "1",
        "PYTHONPROFILEIMPORTTIME": "1",
        "PYTHONWARNINGS": "error",
        "PYTHONDEVMODE": "1",
        "PYTHONOPTIMIZE": "2",
        "PYTHONINTMAXSTRDIGITS": "0",
        "PYTHONPYCACHEPREFIX": str(trap / "pycache"),
        "PYTHONPLATLIBDIR": "nowhere",
        "PYTHONMALLOC": "debug",
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "COLUMNS": "20",
        "NO_COLOR": "1",
        "TMPDIR": str(trap),
    }


def _payload_runs(hook: Path, node_root: Path, extra: dict[str, str]) -> list[tuple[int, str]]:
    """Exit status and stderr of the payload's hook for a container it programs, one whose
    bitstream is missing and a state holding a 5000-digit number, each on a fresh node."""
    node = SimNode(node_root)
    node_root.mkdir()
    card = add_card(node, "dfl", index=0, interface_id=REGION_A, afu_ids=[AFU_1])
    write_gbs(node, REGION_A, AFU_2)
    states = []
    for afu in (AFU_2, "0123456789abcdef0123456789abcdef"):
        bundle = write_bundle(
            node_root / f"bundle-{afu}",
            env=[f"FPGA_REGION_1={REGION_A}", f"FPGA_AFU_1={afu}"],
            devices=[card.ports[0].device()],
        )
        states.append(state_json(bundle))
    states.append(states[0].replace('"pid": 4242', '"pid": ' + "9" * 5000))
    runs = []
    for state in states:
        done = subprocess.run(
            [hook, "prestart"],
            input=state,
            env={**node.quiet_env(), **extra},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        runs.append((done.returncode, done.stderr.replace(str(node_root), "NODE")))
    return runs


def test_payload_hook_does_the_same_under_crio_s_environment_as_under_none(
    built_payload: Path, tmp_path: Path
) -> None:
    """runc gives a hook only its hooks.d env, crun its own: the payload runs Python isolated."""
    trap = tmp_path / "trap"
    trap.mkdir()
    hook = built_payload / "bin" / "fpga-crihook"

    under_runc = _payload_runs(hook, tmp_path / "runc", {})
    under_crun = _payload_runs(hook, tmp_path / "crun", _hostile_environment(trap))

    assert under_crun == under_runc
    assert [status for status, _ in under_runc] == [0, 66, 65]
    assert sorted(path.name for path in trap.iterdir()) == ["sitecustomize.py"]  # none ran


# --- Containerfile ------------------------------------------------------------


def _installer_value(name: str) -> str:
    """What install-on-node.sh sets *name* to when the environment does not."""
    pattern = rf"^{name}=(?:\$\{{{name}:-)?([^}}\n]+)\}}?$"
    (value,) = re.findall(pattern, INSTALLER.read_text(encoding="utf-8"), re.MULTILINE)
    return str(value)


def test_image_ships_the_payload_where_the_installer_looks() -> None:
    (build,) = [args for keyword, args in instructions() if "build-payload.sh" in args]
    built = shlex.split(build)[-1]
    assert ["--from=builder", built, _installer_value("PAYLOAD_DIR")] in copies(final_stage())


def test_image_ships_the_hook_file_and_installer_where_the_installer_looks() -> None:
    copied = {tuple(args[:-1]): args[-1] for args in copies(final_stage())}
    assert copied[("hooks.d/intel-fpga-crihook.json",)] == _installer_value("HOOK_JSON")
    installer_in_image = copied[("deployments/install-on-node.sh",)]
    assert image_command() == ["/bin/sh", installer_in_image, "install"]


def test_image_sets_no_environment_and_no_user() -> None:
    """Intel's DaemonSet sets neither: the installer's defaults are the image's paths, and
    the image's default user, root, owns what it writes on the node."""
    keywords = {keyword for keyword, _ in final_stage()}
    assert not keywords & {"ENV", "USER"}


def test_image_node_root_is_where_the_daemonset_mounts_the_node() -> None:
    (installer,) = _pod_spec()["initContainers"]
    assert _installer_value("DAEMONSET_NODE_ROOT") == _env(installer)["NODE_ROOT"]


def test_containerfile_copies_only_files_that_exist() -> None:
    for args in copies(instructions()):
        if args[0].startswith("--from="):
            continue
        for source in args[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
