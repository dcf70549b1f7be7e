"""``check`` as a whole: the report's parts in order, the files it reads (named, or found
where the runtimes look), a hook that would run twice, and the settings in force."""

import os
import sys
from pathlib import Path

from checkfiles import (
    INTEL_KIND,
    dfl_card,
    generated_spec,
    healthy_node,
    hooks_file_in,
    hooks_file_with,
    intel_spec,
    lines_at,
    write_spec,
)
from helpers import REPO, run_cli, run_on, two_drivers
from simnode import SimNode


def test_check_passes_a_valid_hooks_file_on_a_good_node(node: SimNode, tmp_path: Path) -> None:
    healthy_node(node)
    hooks_file = hooks_file_with(tmp_path)

    result = run_on(node, "check", str(hooks_file))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines), lines
    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in lines
    assert f"ok: dfl driver: 1 card(s) under {node.sysfs}/class/fpga_region" in lines
    assert f"ok: opae driver: 1 card(s) under {node.sysfs}/class/fpga" in lines
    assert f"ok: bitstream store {node.store}: 2 bitstream(s)" in lines


def test_check_without_files_checks_the_shipped_hooks_file(node: SimNode) -> None:
    healthy_node(node)

    result = run_on(node, "check")

    # The shipped file points at the packaged install path, absent on this machine.
    assert result.returncode == 1
    assert "intel-fpga-crihook.json: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook" in (
        result.stdout
    )


def test_shipped_hooks_file_is_the_repository_one() -> None:
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"

    assert shipped.read_bytes() == (REPO / "hooks.d" / "intel-fpga-crihook.json").read_bytes()


def test_check_reports_fifos_instead_of_waiting_for_a_writer(node: SimNode, tmp_path: Path) -> None:
    dfl, _ = two_drivers(node)
    node.store.mkdir()
    hooks_fifo = tmp_path / "fifo.json"
    cdi_fifo = tmp_path / "fifo.yaml"
    for fifo in (hooks_fifo, cdi_fifo):
        os.mkfifo(fifo)
    dfl.ports[0].afu_file.unlink()
    os.mkfifo(dfl.ports[0].afu_file)

    result = run_on(node, "check", str(hooks_fifo), str(cdi_fifo))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"error: {hooks_fifo} is not a regular file" in lines
    assert f"error: {cdi_fifo} is not a regular file" in lines
    assert any(f"{dfl.ports[0].afu_file}: '' is not a 32-hex-digit ID" in line for line in lines)


def _search(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    hooks_dir, cdi_dir = tmp_path / "hooks.d", tmp_path / "cdi"
    hooks_dir.mkdir()
    cdi_dir.mkdir()
    return (
        hooks_dir,
        cdi_dir,
        ["check", "--hooks-dir", str(hooks_dir), "--cdi-spec-dir", str(cdi_dir)],
    )


def test_check_finds_hooks_d_and_intels_spec_running_the_hook_twice(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    hooks_dir, cdi_dir, check = _search(tmp_path)
    hooks_file = hooks_file_in(hooks_dir)
    spec = write_spec(cdi_dir / "intel.cdi.k8s.io-fpga.json", intel_spec())
    write_spec(cdi_dir / "other-vendor.json", {**intel_spec("/bin/true"), "kind": "x.com/gpu"})

    result = run_on(node, *check)

    assert result.returncode == 1
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"  # checked too
    assert lines_at(result, "error") == [
        f"error: {shipped}: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook does not exist",
        f"error: {hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
        f"given a device of kind {INTEL_KIND}, whose ports would be programmed twice: "
        f"remove {hooks_file}: Intel's device plugin runs the hook through {spec}",
    ]
    assert "other-vendor" not in result.stdout  # only specs that run fpga-crihook are read


def test_check_finds_hooks_d_and_a_generated_spec_running_the_hook_twice(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    hooks_file = hooks_file_in(tmp_path / "hooks.d")
    spec = write_spec(tmp_path / "cdi" / "fpga.yaml", generated_spec(node))

    result = run_on(node, "check", str(hooks_file), str(spec))

    assert result.returncode == 1
    assert lines_at(result, "error") == [
        f"error: {hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
        "given a device of kind intel.com/fpga, whose ports would be programmed twice: "
        f"keep one: remove {spec}, or {hooks_file} (containerd never reads it)"
    ]


def test_check_without_files_warns_when_nothing_runs_the_hook(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    hooks_dir, cdi_dir, check = _search(tmp_path)

    result = run_on(node, *check)

    assert (
        f"warning: no hooks.d file or CDI spec in {hooks_dir}, {cdi_dir} runs fpga-crihook: "
        "install the hooks.d file (CRI-O, podman) or a CDI spec (fpga-crihook cdi generate; "
        "or Intel's device plugin with the intel-fpga-crihook drop-in)"
    ) in lines_at(result, "warning")


def test_check_without_files_checks_the_installed_spec(node: SimNode, tmp_path: Path) -> None:
    dfl_card(node)
    _hooks_dir, cdi_dir, check = _search(tmp_path)
    spec = write_spec(cdi_dir / "fpga.json", generated_spec(node))

    result = run_on(node, *check)

    assert f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind intel.com/fpga)" in result.stdout
    assert lines_at(result, "warning") == []


def test_check_help_names_every_directory_it_searches_without_files(node: SimNode) -> None:
    result = run_on(node, "check", "--help")

    text = " ".join(result.stdout.split())  # as one line, however click wraps it
    assert (
        "--hooks-dir DIRECTORY A hooks.d directory the runtime reads, searched when no FILE is "
        "given (default: /usr/share/containers/oci/hooks.d, /etc/containers/oci/hooks.d and "
        "the hooks_dir of CRI-O's config)."
    ) in text
    assert (
        "--cdi-spec-dir DIRECTORY A CDI spec directory, searched when no FILE is given "
        "(default: /etc/cdi, /var/run/cdi and the cdi_spec_dirs of CRI-O's and containerd's "
        "configs)."
    ) in text


def test_check_without_files_finds_a_spec_where_only_containerds_config_points(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    hooks_dir, cdi_dir, _ = _search(tmp_path)
    spec = write_spec(cdi_dir / "intel.cdi.k8s.io-fpga.json", intel_spec())
    containerd_config = tmp_path / "containerd.toml"
    containerd_config.write_text(
        f'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true\n'
        f'  cdi_spec_dirs = ["{cdi_dir}"]\n'
    )
    engines = [
        *("--crio-config", str(tmp_path / "crio.conf"), "--crio-config-dir", str(tmp_path / "d")),
        *("--containerd-config", str(containerd_config)),
    ]

    result = run_on(node, "check", "--hooks-dir", str(hooks_dir), *engines)

    assert f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind {INTEL_KIND}) runs fpga-crihook" in (
        result.stdout
    )


# check with its one reader of documents wrapped: each file below the directory named first is
# replaced by a broken one as soon as it has been read, as an editor's save or a new run of
# cdi generate may replace it while check runs.
_REPLACED_ONCE_READ = """
import sys
from pathlib import Path
from fpga_crihook import jsondocs
from fpga_crihook.cli import main

watched = Path(sys.argv.pop(1))
read_file = jsondocs.read_file

def read_then_replace(path, *args):
    raw = read_file(path, *args)
    if watched in path.parents and path.suffix in (".json", ".yaml"):
        path.write_text("{")
    return raw

jsondocs.read_file = read_then_replace
main()
"""


def test_check_reports_each_file_as_it_read_it_once(node: SimNode, tmp_path: Path) -> None:
    """The search, each file's findings, double runs and the engines' part all look at the
    one reading of a file: a file replaced while check runs is reported as it was read."""
    dfl_card(node)
    hooks_dir, cdi_dir, check = _search(tmp_path)
    hooks_file = hooks_file_in(hooks_dir)
    spec = write_spec(cdi_dir / "intel.cdi.k8s.io-fpga.yaml", intel_spec())
    crio_config = tmp_path / "crio.conf"
    crio_config.write_text(
        f'[crio.runtime]\nhooks_dir = ["{hooks_dir}"]\ncdi_spec_dirs = ["{cdi_dir}"]\n'
    )
    engines = [
        *("--crio-config", str(crio_config), "--crio-config-dir", str(tmp_path / "crio.d")),
        *("--containerd-config", str(tmp_path / "containerd.toml")),
    ]
    arguments = ["-c", _REPLACED_ONCE_READ, str(tmp_path), *check, *engines]

    result = run_cli(arguments, node.env(), program=Path(sys.executable))

    assert (hooks_file.read_text(), spec.read_text()) == ("{", "{")  # replaced once read
    shipped = REPO / "fpga_crihook" / "data" / "intel-fpga-crihook.json"
    assert lines_at(result, "error") == [
        f"error: {shipped}: hook.path /opt/intel/fpga-crihook/bin/fpga-crihook does not exist",
        f"error: {hooks_file} and {spec} both run fpga-crihook for an FPGA region container "
        f"given a device of kind {INTEL_KIND}, whose ports would be programmed twice: "
        f"remove {hooks_file}: Intel's device plugin runs the hook through {spec}",
    ]
    oks = lines_at(result, "ok")
    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in oks
    assert (
        f"ok: {spec}: CDI spec (cdiVersion 0.5.0, kind {INTEL_KIND}) runs fpga-crihook "
        "at createRuntime" in oks
    )


def test_check_reports_the_config_file_and_where_each_setting_came_from(
    node: SimNode, tmp_path: Path
) -> None:
    dfl_card(node)
    node.config_file.write_text('lock-timeout = 5\nlog-level = "debug"\n')
    node.config_file.chmod(0o600)
    spec = write_spec(tmp_path / "fpga.json", generated_spec(node))

    result = run_on(node, "--log-level", "warning", "check", str(spec))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"ok: config file {node.config_file} (named on the environment): "
        "1 setting(s) in force from it",
        f"ok: setting sysfs = {node.sysfs} (environment FPGA_CRIHOOK_SYSFS)",
    ]
    assert "ok: setting lock-timeout = 5.0 (config file)" in lines
    assert "ok: setting log-level = warning (command line)" in lines  # it beat the file
    assert "ok: setting busy-timeout = 3.0 (default)" in lines
    assert "ok: setting log-file = none (default)" in lines


def test_check_says_when_there_is_no_config_file(tmp_path: Path) -> None:
    result = run_cli(["check", str(tmp_path / "x.json")], {})

    assert result.stdout.splitlines()[0] == (
        "ok: no config file at /etc/fpga-crihook/config.toml: nothing read from one"
    )
