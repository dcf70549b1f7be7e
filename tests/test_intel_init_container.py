"""This project's image as the init container of Intel's FPGA plugin DaemonSet.

Intel's DaemonSet (intel-device-plugins-for-kubernetes v0.36.0,
deployments/fpga_plugin/base/intel-fpga-plugin-daemonset.yaml) starts its init
container with no command, args or env, as the image's default user, with a
read-only root file system and no privilege escalation, and mounts the node's
/opt/intel/fpga-sw alone, at the same path. Intel's own image copies its hook
there; Intel's CDI spec runs /opt/intel/fpga-sw/intel-fpga-crihook.

Here a root file system laid out as deployments/Containerfile lays out the
image (its final stage's COPYs, with a static busybox, glibc and libgcc_s
standing in for the base image) runs under podman + runc that way, twice, with
a scratch directory as the node's /opt/intel/fpga-sw. Then the drop-in it left
runs as runc runs a CDI hook: its path as the only argument, an empty env, the
state on stdin, the settings from the node config file. That run happens in a
mount namespace of its own, where /opt and /etc are overlays: no global path
is written. The installer's logic on its own (atomic replacement, uninstall,
refusals) runs without a container, with FPGA_SW_DIR naming the directory.
"""

import os
import shutil
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from deployment import (
    HOOK_JSON,
    KUBERNETES,
    copies,
    documents,
    final_stage,
    image_command,
    make_payload,
    release_names,
    run_installer,
)
from engine import ENGINE_TIMEOUT, RUN_OPTIONS, Engine, available_engine, request_env, shipped_port
from helpers import AFU_2, REGION_A, REPO, Completed
from simnode import SimNode, containerd_annotations, logged_events, state_json, write_bundle

FPGA_SW = "/opt/intel/fpga-sw"  # the node's, mounted at the same path by Intel's DaemonSet
DROP_IN = "intel-fpga-crihook"  # the program Intel's CDI spec names in it
PAYLOAD_LINK = "fpga-crihook"
RELEASES = "fpga-crihook.d"
# Intel's init image copies both of its programs into the directory.
INTEL_TOOL = "fpga_tool"
INTELS_HOOK = b"\x7fELF intel's hook"
NODE_CONFIG_DIR = "/etc/fpga-crihook"
UNKNOWN_AFU = "0123456789abcdef0123456789abcdef"


class ImageRun(NamedTuple):
    """One run of the image: podman's result, the node directory's entries after it and the
    release its payload link names then ("" for none)."""

    result: Completed
    entries: dict[str, os.stat_result]
    linked: str


def _entries(directory: Path) -> dict[str, os.stat_result]:
    return {path.name: path.lstat() for path in directory.iterdir()}


def _linked_release(fpga_sw: Path) -> str:
    link = fpga_sw / PAYLOAD_LINK
    if not link.is_symlink():
        return ""
    target = os.readlink(link)
    assert target.startswith(f"{RELEASES}/")
    return target.removeprefix(f"{RELEASES}/")


def _listing(directory: Path) -> dict[str, str]:
    """Relative path -> kind, mode and size (or link target) of everything under it."""
    found = {}
    for path in directory.rglob("*"):
        info = path.lstat()
        name = str(path.relative_to(directory))
        if stat.S_ISLNK(info.st_mode):
            found[name] = "-> " + os.readlink(path)
        else:
            found[name] = f"{stat.filemode(info.st_mode)} {info.st_size if path.is_file() else ''}"
    return found


# --- the image's root file system --------------------------------------------------


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def _glibc_libraries(payload: Path) -> set[Path]:
    """The libraries outside the payload that its ELF files load: what the base image
    gives (glibc, libgcc_s), with the dynamic loader."""
    needed: set[Path] = set()
    for path in payload.rglob("*"):
        if path.is_symlink() or not path.is_file() or not _is_elf(path):
            continue
        listed = subprocess.run(["ldd", path], capture_output=True, text=True, check=False)
        for line in listed.stdout.splitlines():
            words = line.split()
            library = words[2] if len(words) > 2 and words[1] == "=>" else words[0]
            if library.startswith("/") and not library.startswith(f"{payload}/"):
                needed.add(Path(library))
    return needed


def _build_rootfs(rootfs: Path, busybox: Path, payload: Path) -> None:
    """The image as the Containerfile's final stage makes it, from files here."""
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    for library in _glibc_libraries(payload):
        target = rootfs / str(library).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, target)
    for arguments in copies(final_stage()):
        *sources, destination = arguments
        assert not destination.startswith(("/host", FPGA_SW)), "the image must hold no node path"
        target = rootfs / destination.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if sources[0].startswith("--from="):  # the builder's payload
            shutil.copytree(payload, target, symlinks=True, copy_function=os.link)
        else:
            (source,) = sources
            shutil.copy2(REPO / source, target)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return available_engine()


@pytest.fixture(scope="module")
def image_rootfs(
    engine: Engine, built_payload: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    rootfs = tmp_path_factory.mktemp("image") / "rootfs"
    _build_rootfs(rootfs, engine.busybox, built_payload)
    return rootfs


def _run_image(
    engine: Engine,
    rootfs: Path,
    mounts: dict[str, Path],
    *,
    read_only: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    command: list[str] | None = None,
) -> Completed:
    """podman + runc running the image's root file system as a Kubernetes init container with
    a read-only root file system and no privilege escalation: no tmpfs added, no env but HOME
    and HOSTNAME (podman sets those regardless; the image has none), each container path in
    *mounts* bound to a directory here."""
    # Each run on a copy (hard links), as each container gets its own writable layer:
    # runc makes the mount points in the root file system it is given.
    run_dir = rootfs.parent / f"run-{uuid.uuid4().hex[:12]}"
    shutil.copytree(rootfs, run_dir / "rootfs", symlinks=True, copy_function=os.link)
    empty_hooks_dir = run_dir / "no-hooks.d"  # no hooks.d file of the machine's runs
    empty_hooks_dir.mkdir()
    volumes = [
        option
        for container_path, directory in mounts.items()
        for option in (
            "--volume",
            f"{directory}:{container_path}{':ro' if container_path in read_only else ''}",
        )
    ]
    result = subprocess.run(
        [
            engine.podman,
            "--runtime",
            engine.runc,
            "--hooks-dir",
            str(empty_hooks_dir),
            "run",
            "--rm",
            "--name",
            f"fpga-crihook-init-{uuid.uuid4().hex[:12]}",
            *RUN_OPTIONS,
            "--read-only",
            "--read-only-tmpfs=false",
            "--security-opt",
            "no-new-privileges",
            "--unsetenv-all",
            *options,
            *volumes,
            "--rootfs",
            str(run_dir / "rootfs"),
            *(image_command() if command is None else command),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=ENGINE_TIMEOUT,
    )
    return Completed(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def fpga_sw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node's /opt/intel/fpga-sw, as Intel's init container left it."""
    directory = tmp_path_factory.mktemp("node") / "fpga-sw"
    directory.mkdir()
    (directory / INTEL_TOOL).write_bytes(b"\x7fELF intel's fpga_tool")
    (directory / DROP_IN).write_bytes(INTELS_HOOK)
    for program in (INTEL_TOOL, DROP_IN):
        (directory / program).chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def intel_runs(engine: Engine, image_rootfs: Path, fpga_sw: Path) -> list[ImageRun]:
    """The image run twice as Intel's DaemonSet runs its init container."""
    runs = [ImageRun(Completed(0, "", ""), _entries(fpga_sw), _linked_release(fpga_sw))]
    for _ in range(2):
        result = _run_image(engine, image_rootfs, {FPGA_SW: fpga_sw})
        runs.append(ImageRun(result, _entries(fpga_sw), _linked_release(fpga_sw)))
    return runs


def test_image_with_only_fpga_sw_mounted_installs_the_hook_there_alone(
    intel_runs: list[ImageRun], fpga_sw: Path, built_payload: Path
) -> None:
    before, first, _ = intel_runs

    assert first.result.returncode == 0, first.result.stderr
    assert "only /opt/intel/fpga-sw is mounted (Intel's FPGA plugin DaemonSet)" in (
        first.result.stdout
    )
    assert set(first.entries) == {INTEL_TOOL, DROP_IN, PAYLOAD_LINK, RELEASES}
    assert first.entries[INTEL_TOOL] == before.entries[INTEL_TOOL]  # not even opened for writing
    drop_in = first.entries[DROP_IN]
    assert stat.S_ISREG(drop_in.st_mode)
    assert (stat.S_IMODE(drop_in.st_mode), drop_in.st_uid) == (0o755, 0)
    assert drop_in.st_ino != before.entries[DROP_IN].st_ino  # renamed into place, not written over
    assert stat.S_ISLNK(first.entries[PAYLOAD_LINK].st_mode)
    assert _listing(fpga_sw / RELEASES / first.linked) == _listing(built_payload)


def test_second_run_swaps_in_a_new_release_and_keeps_the_one_before(
    intel_runs: list[ImageRun], fpga_sw: Path
) -> None:
    _, first, second = intel_runs

    assert second.result.returncode == 0, second.result.stderr
    assert set(second.entries) == set(first.entries)
    assert second.linked not in ("", first.linked)
    assert sorted(os.listdir(fpga_sw / RELEASES)) == sorted([first.linked, second.linked])
    assert f"kept the previous release {FPGA_SW}/{RELEASES}/{first.linked}" in (
        second.result.stdout
    )
    assert second.entries[DROP_IN].st_ino == first.entries[DROP_IN].st_ino  # up to date
    assert second.entries[INTEL_TOOL] == first.entries[INTEL_TOOL]


@pytest.mark.parametrize(
    ("mounted", "message"),
    [
        (
            (),
            "neither /host/opt/intel (the intel-fpga-crihook DaemonSet) nor /opt/intel/fpga-sw "
            "(Intel's FPGA plugin DaemonSet) is mounted: nowhere to install",
        ),
        (
            ("/host/opt/intel", FPGA_SW),
            "both /host/opt/intel and /opt/intel/fpga-sw are mounted: cannot tell which to "
            "install into (set NODE_ROOT or FPGA_SW_DIR)",
        ),
    ],
    ids=["nothing", "both"],
)
def test_image_that_cannot_tell_where_to_install_fails_with_one_line(
    engine: Engine, image_rootfs: Path, tmp_path: Path, mounted: tuple[str, ...], message: str
) -> None:
    mounts = {path: tmp_path / path.strip("/").replace("/", "-") for path in mounted}
    for directory in mounts.values():
        directory.mkdir()

    result = _run_image(engine, image_rootfs, mounts)

    assert result.returncode != 0
    assert result.stderr == f"fpga-crihook installer: error: {message}\n"
    assert all(not any(directory.iterdir()) for directory in mounts.values())


def test_image_with_the_daemonsets_mounts_and_settings_installs_as_before(
    engine: Engine, image_rootfs: Path, tmp_path: Path
) -> None:
    """The intel-fpga-crihook DaemonSet's init container: its args, env, mounts and
    capabilities; the node's root a directory here."""
    (daemonset,) = documents(KUBERNETES / "base" / "daemonset.yaml")
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["initContainers"]
    node = tmp_path / "node"
    host_paths = {volume["name"]: volume["hostPath"]["path"] for volume in pod["volumes"]}
    mounts = {}
    for mount in container["volumeMounts"]:
        mounts[mount["mountPath"]] = node / host_paths[mount["name"]].lstrip("/")
        mounts[mount["mountPath"]].mkdir(parents=True)
    env = [f"{item['name']}={item['value']}" for item in container["env"]]
    read_only = tuple(
        mount["mountPath"] for mount in container["volumeMounts"] if "readOnly" in mount
    )

    result = _run_image(
        engine,
        image_rootfs,
        mounts,
        read_only=read_only,
        options=("--cap-drop", "all", *(option for entry in env for option in ("--env", entry))),
        command=[*image_command()[:-1], *container["args"]],
    )
    program = node / "opt/intel/fpga-crihook/bin/fpga-crihook"
    version = subprocess.run(
        [program, "--version"], env={}, capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0, result.stderr
    hook_file = node / "usr/share/containers/oci/hooks.d/intel-fpga-crihook.json"
    assert hook_file.read_bytes() == HOOK_JSON.read_bytes()
    assert (version.returncode, version.stdout.split()[-1]) == (0, "0.1.0"), version.stderr
    assert not (node / "opt/intel/fpga-sw").exists()


# --- the installed drop-in, run as runc runs a CDI hook ----------------------------


def _overlay(path: str, scratch: Path) -> str:
    """Shell lines mounting an overlay on *path*, its changes kept in *scratch*."""
    upper, work = scratch / "upper", scratch / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    return f"mount -t overlay overlay -o lowerdir={path},upperdir={upper},workdir={work} {path}"


def _run_as_cdi_hook(
    program: str, node_dirs: dict[str, Path], stdin: str, scratch: Path
) -> Completed:
    """*program* run with its path as the only argument, an empty env and *stdin*, in a
    mount namespace of its own where each node path in *node_dirs* shows the directory."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run the drop-in at the node's paths")
    script = [_overlay("/opt", scratch / "opt"), _overlay("/etc", scratch / "etc")]
    for node_path, directory in node_dirs.items():
        script += [f"mkdir -p {node_path}", f"mount --bind {directory} {node_path}"]
    script.append(f"exec env -i {program}")
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", "\n".join(script)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd="/",
    )
    return Completed(result.returncode, result.stdout, result.stderr)


class DropIn(NamedTuple):
    """The installed drop-in on the simulated node: run it for an AFU, read its events."""

    node: SimNode
    log_file: Path
    run: Callable[[str], Completed]


@pytest.fixture
def drop_in(
    intel_runs: list[ImageRun], fpga_sw: Path, shipped_node: SimNode, tmp_path: Path
) -> DropIn:
    """The drop-in the image installed, run for a request of region A on port 0 by a
    containerd container (no region annotation), the node config file set for the node."""
    assert intel_runs[-1].result.returncode == 0, intel_runs[-1].result.stderr
    log_file = tmp_path / "hook.log"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(shipped_node.config_text(log_file))
    port = shipped_port(shipped_node, "dfl-port.0")

    def run(afu: str) -> Completed:
        bundle = write_bundle(
            tmp_path / f"bundle-{afu}", env=request_env(REGION_A, afu), devices=[port.device()]
        )
        state = state_json(
            bundle, annotated=False, annotations=containerd_annotations("ns", "pod", "c1")
        )
        node_dirs = {FPGA_SW: fpga_sw, NODE_CONFIG_DIR: config_dir}
        return _run_as_cdi_hook(f"{FPGA_SW}/{DROP_IN}", node_dirs, state, tmp_path / f"ns-{afu}")

    return DropIn(shipped_node, log_file, run)


def test_installed_drop_in_programs_the_port_with_no_env_and_the_node_config_file(
    drop_in: DropIn,
) -> None:
    result = drop_in.run(AFU_2)

    assert result == Completed(0, "", "")
    assert shipped_port(drop_in.node, "dfl-port.0").afu_id() == AFU_2
    assert logged_events(drop_in.log_file) == ["hook started", "port programmed"]


def test_installed_drop_in_refuses_a_request_it_cannot_serve_with_one_line(
    drop_in: DropIn,
) -> None:
    result = drop_in.run(UNKNOWN_AFU)

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"fpga-crihook: no bitstream for region {REGION_A}, AFU ")
    assert result.stderr.count("\n") == 1
    assert shipped_port(drop_in.node, "dfl-port.0").afu_id() != UNKNOWN_AFU


# --- the installer in FPGA_SW_DIR, without a container ------------------------------


def _install_into(fpga_sw: Path, payload: Path, *args: str) -> str:
    result = run_installer({"FPGA_SW_DIR": str(fpga_sw), "PAYLOAD_DIR": str(payload)}, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _drop_in_output(fpga_sw: Path) -> str:
    ran = subprocess.run([fpga_sw / DROP_IN], env={}, capture_output=True, text=True, check=True)
    return ran.stdout.strip()


def _make_bulky_payload(directory: Path, release: str) -> Path:
    """A stand-in payload with enough files that copying it takes a while."""
    payload = make_payload(directory, release)
    bulk = payload / "lib" / "bulk"
    bulk.mkdir()
    for number in range(300):
        (bulk / f"{number}.py").write_bytes(os.urandom(4096))
    return payload


def test_drop_in_runs_the_old_or_the_new_release_throughout_a_reinstall(tmp_path: Path) -> None:
    """A container starting during an install gets one whole release or the other."""
    fpga_sw = tmp_path / "fpga-sw"
    fpga_sw.mkdir()
    releases = [f"r{number}" for number in range(4)]
    payloads = [_make_bulky_payload(tmp_path / name, name) for name in releases]
    _install_into(fpga_sw, payloads[0])
    outcomes: list[tuple[int, str]] = []
    done = threading.Event()

    def start_containers() -> None:
        while not done.is_set():
            ran = subprocess.run(
                [fpga_sw / DROP_IN], env={}, capture_output=True, text=True, check=False
            )
            outcomes.append((ran.returncode, ran.stdout.strip()))

    def wait_for_runs(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(outcomes) < count and time.monotonic() < deadline:
            time.sleep(0.005)

    starter = threading.Thread(target=start_containers)
    starter.start()
    try:
        wait_for_runs(1)
        for payload in payloads[1:]:
            _install_into(fpga_sw, payload)
        wait_for_runs(len(outcomes) + 2)  # one at least started after the last install
    finally:
        done.set()
        starter.join()

    assert set(outcomes) <= {(0, f"drop-in {name}") for name in releases}
    assert (outcomes[0], outcomes[-1]) == ((0, "drop-in r0"), (0, "drop-in r3"))
    kept = release_names(fpga_sw / RELEASES)  # the last install's, and the one before it
    assert (sorted(kept.values()), kept[_linked_release(fpga_sw)]) == (["r2", "r3"], "r3")


def test_uninstall_from_fpga_sw_removes_only_what_it_installed(tmp_path: Path) -> None:
    fpga_sw = tmp_path / "fpga-sw"
    fpga_sw.mkdir()
    (fpga_sw / INTEL_TOOL).write_bytes(b"intel's tool")
    _install_into(fpga_sw, make_payload(tmp_path / "payload", "first"))

    output = _install_into(fpga_sw, tmp_path / "payload", "uninstall")

    assert os.listdir(fpga_sw) == [INTEL_TOOL]
    assert f"removed {fpga_sw / DROP_IN}" in output


def test_uninstall_leaves_a_hook_intels_init_container_put_back(tmp_path: Path) -> None:
    """Intel's image copies its hook over the drop-in with toybox cp -a: into the file."""
    fpga_sw = tmp_path / "fpga-sw"
    fpga_sw.mkdir()
    _install_into(fpga_sw, make_payload(tmp_path / "payload", "first"))
    with (fpga_sw / DROP_IN).open("r+b") as drop_in:
        drop_in.truncate()
        drop_in.write(INTELS_HOOK)

    _install_into(fpga_sw, tmp_path / "payload", "uninstall")

    assert os.listdir(fpga_sw) == [DROP_IN]
    assert (fpga_sw / DROP_IN).read_bytes() == INTELS_HOOK


def test_moving_from_intel_cdi_keeps_a_hook_at_the_drop_in_path_throughout(
    tmp_path: Path,
) -> None:
    """The migration deployments/README.md gives: Intel's DaemonSet with this image first,
    then the intel-cdi install's uninstall, which must leave the new drop-in alone."""
    node = tmp_path / "node"
    fpga_sw = node / "opt/intel/fpga-sw"
    node_env = {"NODE_ROOT": str(node), "HOOK_JSON": str(HOOK_JSON), "HOOK_MODE": "intel-cdi"}
    old = make_payload(tmp_path / "old", "old")
    installed = run_installer({**node_env, "PAYLOAD_DIR": str(old)})
    assert installed.returncode == 0, installed.stderr

    _install_into(fpga_sw, make_payload(tmp_path / "new", "new"))
    between = _drop_in_output(fpga_sw)
    removed = run_installer({**node_env, "PAYLOAD_DIR": str(old)}, "uninstall")
    after = _drop_in_output(fpga_sw)

    assert between == after == "drop-in new"
    assert removed.returncode == 0, removed.stderr
    assert sorted(os.listdir(node / "opt/intel")) == ["fpga-sw"]
    assert sorted(os.listdir(fpga_sw)) == [PAYLOAD_LINK, RELEASES, DROP_IN]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"NODE_ROOT": "/host", "FPGA_SW_DIR": FPGA_SW},
            "NODE_ROOT and FPGA_SW_DIR are both set: set the one to install into",
        ),
        (
            {"FPGA_SW_DIR": "{fpga_sw}", "HOOK_MODE": "hooks.d"},
            "HOOK_MODE=hooks.d needs NODE_ROOT: in {fpga_sw} alone only Intel's CDI spec can "
            "run the hook (HOOK_MODE unset or intel-cdi)",
        ),
    ],
    ids=["both-set", "hooks-d-in-fpga-sw"],
)
def test_installer_refuses_settings_it_cannot_serve_with_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    fpga_sw = tmp_path / "fpga-sw"
    fpga_sw.mkdir()
    payload = make_payload(tmp_path / "payload", "first")
    given = {name: value.format(fpga_sw=fpga_sw) for name, value in env.items()}

    result = run_installer({**given, "PAYLOAD_DIR": str(payload)})

    assert result.returncode != 0
    assert result.stderr == f"fpga-crihook installer: error: {message.format(fpga_sw=fpga_sw)}\n"
    assert list(fpga_sw.iterdir()) == []
