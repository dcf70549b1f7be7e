"""check: what CRI-O and containerd on the node read, and the hook's files where none looks.

Each test writes the engines' config files, a hooks directory or two and a CDI
spec directory under its temporary directory and names them with check's
options, so the machine's own /etc is never read.
"""

import json
from pathlib import Path

from checkfiles import lines_at
from helpers import DROP_IN, HOOK, REPO, Completed, run_cli
from simnode import SimNode

STOCK_CRIO_HOOKS_DIR = "/usr/share/containers/oci/hooks.d"
V2_CRI = '[plugins."io.containerd.grpc.v1.cri"]'


class EngineNode:
    """The engines' config files and the directories they name, below one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.crio_config = root / "etc/crio/crio.conf"
        self.crio_config_dir = root / "etc/crio/crio.conf.d"
        self.containerd_config = root / "etc/containerd/config.toml"
        self.etc_hooks = root / "etc/containers/oci/hooks.d"
        self.usr_hooks = root / "usr/share/containers/oci/hooks.d"
        self.cdi = root / "etc/cdi"
        for directory in (self.etc_hooks, self.usr_hooks, self.cdi):
            directory.mkdir(parents=True)
        self.crio_config.parent.mkdir(parents=True)  # crio.conf.d only when a test writes one
        self.containerd_config.parent.mkdir(parents=True)

    def options(self) -> list[str]:
        return [
            *("--crio-config", str(self.crio_config)),
            *("--crio-config-dir", str(self.crio_config_dir)),
            *("--containerd-config", str(self.containerd_config)),
        ]

    def search(self) -> list[str]:
        """Both hooks directories and the spec directory, named to check."""
        return [
            *("--hooks-dir", str(self.etc_hooks)),
            *("--hooks-dir", str(self.usr_hooks)),
            *("--cdi-spec-dir", str(self.cdi)),
        ]

    def crio_reads(self, *directories: Path) -> None:
        listed = ", ".join(f'"{directory}"' for directory in directories)
        self.crio_config.write_text(f"[crio.runtime]\nhooks_dir = [\n  {listed},\n]\n")

    def hooks_file(self, directory: Path) -> Path:
        """The shipped hooks.d file, its hook the installed fpga-crihook, in *directory*."""
        document = json.loads((REPO / "hooks.d" / "intel-fpga-crihook.json").read_text())
        document["hook"]["path"] = str(HOOK)
        path = directory / "intel-fpga-crihook.json"
        path.write_text(json.dumps(document))
        return path

    def intel_spec(self, directory: Path) -> Path:
        """Intel's device plugin's spec, its hook the installed drop-in, in *directory*."""
        hook = {"hookName": "createRuntime", "path": str(DROP_IN)}
        spec = {
            "cdiVersion": "0.5.0",
            "kind": "intel.cdi.k8s.io/fpga",
            "devices": [{"name": "dfl-fme.0", "containerEdits": {"hooks": [hook]}}],
        }
        path = directory / "intel.cdi.k8s.io-fpga.json"
        path.write_text(json.dumps(spec))
        return path


def _check(node: SimNode, engines: EngineNode, *args: str) -> Completed:
    return run_cli(["check", *engines.options(), *args], node.env())


def test_check_says_which_directories_each_engine_reads(node: SimNode, tmp_path: Path) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_reads(engines.etc_hooks, engines.usr_hooks)
    engines.containerd_config.write_text(
        f'version = 2\n{V2_CRI}\n  enable_cdi = true\n  cdi_spec_dirs = ["{engines.cdi}"]\n'
    )
    spec = engines.intel_spec(engines.cdi)

    result = _check(node, engines, *engines.search())

    oks = lines_at(result, "ok")
    assert (
        f"ok: CRI-O reads hooks.d files from {engines.etc_hooks}, {engines.usr_hooks} "
        f"(hooks_dir in {engines.crio_config}) and CDI specs from /etc/cdi, /var/run/cdi "
        f"(the default; no cdi_spec_dirs in {engines.crio_config})" in oks
    )
    assert (
        f"ok: containerd reads CDI specs from {engines.cdi} (cdi_spec_dirs in "
        f"{engines.containerd_config}), and no hooks.d files" in oks
    )
    errors = lines_at(result, "error")
    assert not [line for line in errors if "CRI-O" in line or "containerd" in line], errors
    assert not [line for line in errors if str(spec) in line], errors


def test_check_refuses_a_hooks_file_a_stock_crio_never_reads(node: SimNode, tmp_path: Path) -> None:
    """An older installer's /etc/containers/oci/hooks.d: podman reads it, a stock CRI-O not."""
    engines = EngineNode(tmp_path / "host")
    engines.crio_config.write_text("[crio.runtime]\nlog_level = 'info'\n")
    hooks_file = engines.hooks_file(engines.etc_hooks)

    result = _check(node, engines, *engines.search())

    assert result.returncode == 1
    assert (
        f"error: {hooks_file}: CRI-O reads hooks.d files only from {STOCK_CRIO_HOOKS_DIR} "
        f"(the default; no hooks_dir in {engines.crio_config}), so it never runs this file: "
        f"move it to {STOCK_CRIO_HOOKS_DIR} (deployments/install-on-node.sh finds the directory)"
    ) in lines_at(result, "error")


def test_check_refuses_a_hooks_file_named_on_the_command_line_crio_never_reads(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_reads(engines.usr_hooks)
    hooks_file = engines.hooks_file(engines.etc_hooks)

    result = _check(node, engines, str(hooks_file))

    assert result.returncode == 1
    assert f"error: {hooks_file}: CRI-O reads hooks.d files only from {engines.usr_hooks}" in (
        result.stdout
    )


def test_check_finds_a_hooks_file_where_only_crios_config_points(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    elsewhere = engines.root / "var/lib/crio/hooks.d"
    elsewhere.mkdir(parents=True)
    engines.crio_reads(elsewhere)
    hooks_file = engines.hooks_file(elsewhere)

    result = _check(node, engines, "--cdi-spec-dir", str(engines.cdi))

    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in lines_at(result, "ok")
    assert str(hooks_file) not in "\n".join(lines_at(result, "error"))


def test_check_refuses_containerd_with_cdi_off(node: SimNode, tmp_path: Path) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.containerd_config.write_text(f'version = 2\n{V2_CRI}\n  sandbox_image = "pause"\n')

    result = _check(node, engines, *engines.search())

    assert result.returncode == 1
    assert (
        f"error: containerd's CDI is off: {engines.containerd_config} (config version 2) does "
        f"not set enable_cdi in {V2_CRI}, which containerd 1.7 then leaves off (2.x turns it "
        "on): set enable_cdi = true and restart containerd, or no CDI spec runs the hook"
    ) in lines_at(result, "error")


def test_check_refuses_containerd_with_cdi_turned_off(node: SimNode, tmp_path: Path) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.containerd_config.write_text(
        'version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  enable_cdi = false\n'
    )

    result = _check(node, engines, *engines.search())

    assert result.returncode == 1
    assert (
        "error: containerd's CDI is off (enable_cdi = false in [plugins.\"io.containerd.cri.v1"
        f'.runtime"] of {engines.containerd_config}): it never runs the hook from a CDI spec; '
        "set enable_cdi = true and restart containerd"
    ) in lines_at(result, "error")


def test_check_refuses_a_cdi_spec_where_no_engine_reads(node: SimNode, tmp_path: Path) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_config.write_text("[crio.runtime]\n")
    engines.containerd_config.write_text(
        'version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  cdi_spec_dirs = ["/srv/cdi"]\n'
    )
    spec = engines.intel_spec(engines.cdi)

    result = _check(node, engines, *engines.search())

    assert result.returncode == 1
    assert (
        f"error: {spec}: no engine on this node reads CDI specs from {engines.cdi} (CRI-O from "
        "/etc/cdi, /var/run/cdi; containerd from /srv/cdi), so this spec never runs the hook: "
        "move it into one of those directories"
    ) in lines_at(result, "error")


def test_check_reports_an_engine_config_it_cannot_parse_in_one_line(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    broken = engines.crio_config_dir / "10-broken.conf"
    engines.crio_config_dir.mkdir()
    broken.write_bytes(b"[crio.runtime\nhooks_dir = [")
    engines.containerd_config.write_bytes(b"version = " + b"[" * 3000 + b"]" * 3000)

    result = _check(node, engines, *engines.search())

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = lines_at(result, "error")
    assert any(
        line.startswith(f"error: {broken} is not valid TOML: ")
        and line.endswith(": CRI-O does not start with a config it cannot use")
        for line in errors
    ), errors
    assert (
        f"error: {engines.containerd_config} is not valid TOML: nested too deeply: "
        "containerd does not start with it"
    ) in errors


def test_check_with_no_engine_config_says_nothing_about_engines(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    hooks_file = engines.hooks_file(engines.etc_hooks)

    result = _check(node, engines, *engines.search())

    assert f"ok: {hooks_file}: valid hooks.d 1.0.0 file for fpga-crihook" in lines_at(result, "ok")
    assert not [
        line for line in result.stdout.splitlines() if "CRI-O" in line or "containerd" in line
    ]


# Which runtime CRI-O uses: under crun a failed hook's line is not in the pod's events.


def _runtime_line(result: Completed) -> str:
    [line] = [line for line in result.stdout.splitlines() if "runs containers" in line]
    return line


def test_check_says_crio_runs_runc_whose_error_carries_the_hooks_line(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_config.write_text('[crio.runtime]\ndefault_runtime = "runc"\n')

    result = _check(node, engines, *engines.search())

    assert _runtime_line(result) == (
        f"ok: CRI-O runs containers with runc (default_runtime 'runc' in "
        f"{engines.crio_config}): a failed hook's line reaches the pod's events"
    )


def test_check_says_where_the_line_goes_under_crun(node: SimNode, tmp_path: Path) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_config_dir.mkdir()
    (engines.crio_config_dir / "10-crun.conf").write_text(
        '[crio.runtime]\ndefault_runtime = "crun"\n'
        '[crio.runtime.runtimes.crun]\nallowed_annotations = ["run.oci."]\n'
    )
    log_file = tmp_path / "hook.log"
    env = node.env(FPGA_CRIHOOK_LOG_FILE=str(log_file))

    result = run_cli(["check", *engines.options(), *engines.search()], env)

    line = _runtime_line(result)
    assert line.startswith(
        f"ok: CRI-O runs containers with crun (default_runtime 'crun' in "
        f"{engines.crio_config_dir / '10-crun.conf'}): a failed hook's line does not reach "
        "the pod's events, only its exit status (`fpga-crihook prestart --help` says what "
        "each means)"
    )
    assert f"the line is in the log file {log_file}" in line
    assert "name a file for it in its run.oci.hooks.stderr annotation (the handler's" in line


def test_check_warns_when_under_crun_the_line_would_go_nowhere(
    node: SimNode, tmp_path: Path
) -> None:
    """Syslog off (as in every test), no log file: crun drops the line, nothing else has it."""
    engines = EngineNode(tmp_path / "host")
    engines.crio_config.write_text(
        '[crio.runtime]\ndefault_runtime = "fast"\n'
        '[crio.runtime.runtimes.fast]\nruntime_path = "/usr/local/bin/crun"\n'
    )

    result = _check(node, engines, *engines.search())

    line = _runtime_line(result)
    assert line.startswith("warning: CRI-O runs containers with crun (default_runtime 'fast' ")
    assert "runtime_path /usr/local/bin/crun" in line
    assert "its sentence goes nowhere" in line
    assert "reaches the runtime only if the handler's allowed_annotations lists 'run.oci.'" in line


def test_check_says_an_unset_default_runtime_is_the_crio_releases(
    node: SimNode, tmp_path: Path
) -> None:
    engines = EngineNode(tmp_path / "host")
    engines.crio_reads(engines.usr_hooks)

    result = _check(node, engines, *engines.search())

    line = _runtime_line(result)
    assert line.startswith(
        f"warning: CRI-O's config ({engines.crio_config}) sets no default_runtime, so CRI-O's "
        "own default runs containers: runc up to CRI-O 1.30"
    )
    assert "crun from 1.31" in line
