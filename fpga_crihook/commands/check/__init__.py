"""The ``check`` command: hooks.d files, CDI specs and the node set-up the hook relies on.

The report, in order: the node config file and every setting in force, with
where each came from (:mod:`.settings`); what the container engines on the
node read, and the hook's files none reads (:mod:`.engines`); each hooks.d
file (:mod:`.hooksd_files`) and CDI spec (:mod:`.cdi_specs`), named or found
where the runtimes look (:mod:`.installed`); a hooks.d file and a CDI spec
that would both run the hook for one container (:mod:`.double_runs`); then
the node's drivers, cards and FME device nodes (:mod:`.node`) and its
bitstream store (:mod:`.store`). Every finding is one line
(:mod:`.findings`); only errors make ``check`` exit 1.

Each file is read once (:mod:`.documents`): only a regular file, never with
a blocking open (``check`` pointed at a FIFO reports it instead of hanging),
and bounded (size, values, depth, no YAML aliases, CPU for the regexes), so
checking one takes well under a second.
"""

from importlib import resources
from pathlib import Path
from typing import NamedTuple

import click

from fpga_crihook import cdispec, engineconfig
from fpga_crihook.commands import output
from fpga_crihook.commands.check import documents, engines, installed
from fpga_crihook.commands.check.cdi_specs import not_a_spec, spec_findings
from fpga_crihook.commands.check.double_runs import double_run_findings
from fpga_crihook.commands.check.findings import Finding, Level, has_errors
from fpga_crihook.commands.check.hooksd_files import hooks_file_findings
from fpga_crihook.commands.check.node import node_findings
from fpga_crihook.commands.check.settings import config_findings
from fpga_crihook.commands.check.store import store_findings
from fpga_crihook.commands.devices import scan
from fpga_crihook.errors import ExitStatus
from fpga_crihook.inforce import SettingsInForce
from fpga_crihook.settings import Settings


def shipped_hooks_file() -> Path:
    """The hooks.d file this package ships (a copy of the repository's hooks.d/ file)."""
    return Path(str(resources.files("fpga_crihook").joinpath("data/intel-fpga-crihook.json")))


def check_file(path: Path, settings: Settings | None = None) -> list[Finding]:
    """Findings for a hooks.d file or a CDI spec, told apart by what they hold."""
    return _file_findings(documents.read(path), settings)


def _file_findings(document: documents.Document, settings: Settings | None) -> list[Finding]:
    """Findings for a file as read: a CDI spec, a hooks.d file, or why it is neither; with
    *settings*, also where a hook's ``env`` points it elsewhere than the node checks look."""
    if isinstance(document, documents.Unreadable):
        return [Finding(Level.ERROR, document.message)]
    if isinstance(document, documents.SpecFile):
        return spec_findings(document, settings)
    if document.path.suffix in cdispec.YAML_SUFFIXES:  # runtimes read hooks.d files as JSON
        return [not_a_spec(document.path)]
    return hooks_file_findings(document, settings)


def _files_and_node(
    checked: list[documents.Document], runners: list[documents.Document], settings: Settings
) -> list[Finding]:
    """Each of *checked*'s findings, a hook two of *runners* would both run, then the node:
    drivers, cards, FME device nodes, and the bitstream store."""
    findings = [finding for document in checked for finding in _file_findings(document, settings)]
    findings.extend(double_run_findings(runners))
    cards = scan(settings)
    return [*findings, *node_findings(cards, settings), *store_findings(settings.bitstreams, cards)]


class _Engines(NamedTuple):
    """Where the engines' configs are, as the options name them (None: the default)."""

    crio_config: Path | None
    crio_config_dir: Path | None
    containerd_config: Path | None


def _report(
    given: SettingsInForce,
    files: list[Path],
    hooks_dirs: list[Path],
    cdi_dirs: list[Path],
    configs: _Engines,
) -> list[Finding]:
    """Every finding, in the report's order: the settings, the engines, the files, the node."""
    findings = config_findings(given)
    crio = engineconfig.read_crio(
        configs.crio_config or engineconfig.CRIO_CONFIG,
        configs.crio_config_dir or engineconfig.CRIO_CONFIG_DIR,
    )
    findings += engines.runtime_findings(crio, given)
    containerd = engineconfig.read_containerd(
        configs.containerd_config or engineconfig.CONTAINERD_CONFIG
    )
    if files:
        named = [documents.read(path) for path in files]
        findings += engines.engine_findings(crio, containerd, named)
        return findings + _files_and_node(named, named, given.settings)
    searched_hooks = hooks_dirs or installed.hooks_dirs_to_search(crio)
    searched_specs = cdi_dirs or installed.cdi_dirs_to_search(crio, containerd)
    found = installed.installed_documents(searched_hooks, searched_specs)
    findings += installed.installed_findings(found, [*searched_hooks, *searched_specs])
    findings += engines.engine_findings(crio, containerd, found)
    shipped = documents.read(shipped_hooks_file())
    return findings + _files_and_node([shipped, *found], found, given.settings)


def _listed(directories: tuple[Path, ...]) -> str:
    return ", ".join(str(directory) for directory in directories)


@click.command("check")
@click.option(
    "--hooks-dir",
    "hooks_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A hooks.d directory the runtime reads, searched when no FILE is given (default: "
    f"{_listed(installed.HOOKS_DIRS)} and the hooks_dir of CRI-O's config).",
)
@click.option(
    "--cdi-spec-dir",
    "cdi_dirs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A CDI spec directory, searched when no FILE is given (default: "
    f"{_listed(installed.CDI_SPEC_DIRS)} and the cdi_spec_dirs of CRI-O's and containerd's "
    "configs).",
)
@click.option(
    "--crio-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="CRI-O's config file, read for the directories CRI-O reads (hooks_dir, "
    "cdi_spec_dirs; default: /etc/crio/crio.conf).",
)
@click.option(
    "--crio-config-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="CRI-O's drop-in config directory, read after --crio-config as CRI-O does "
    "(default: /etc/crio/crio.conf.d).",
)
@click.option(
    "--containerd-config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="containerd's config file, with its imports: CDI on or off, and its spec "
    "directories (default: /etc/containerd/config.toml).",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def check(
    given: SettingsInForce,
    hooks_dirs: tuple[Path, ...],
    cdi_dirs: tuple[Path, ...],
    crio_config: Path | None,
    crio_config_dir: Path | None,
    containerd_config: Path | None,
    files: tuple[Path, ...],
) -> None:
    """Validate hooks.d files, CDI specs and this node's set-up; exit 1 on any error.

    First the node config file and every setting in force, with where it
    came from. Each hooks.d file is checked against the hooks.d 1.0.0 format
    and for what fpga-crihook needs; each CDI spec for the hooks that run
    fpga-crihook; a hooks.d file and a CDI spec that would both run it for
    one container are an error. Without FILE: the hooks.d file this package
    ships and every file in the runtimes' hooks.d and CDI directories that
    runs fpga-crihook, CRI-O's own hooks_dir and the engines' CDI spec
    directories included. Where CRI-O's or containerd's config is on the node:
    the directories each reads, containerd's CDI switch, and an error for a
    hooks.d file or CDI spec no engine reads. Then the node: FPGA drivers and
    cards, FME device nodes, the bitstream store. One line per finding: "ok:",
    "warning:" or "error:".

    \b
    Example:
        fpga-crihook check /etc/containers/oci/hooks.d/intel-fpga-crihook.json
        fpga-crihook check /var/run/cdi/intel.cdi.k8s.io-fpga.json
        fpga-crihook check
    """
    configs = _Engines(crio_config, crio_config_dir, containerd_config)
    findings = _report(given, list(files), list(hooks_dirs), list(cdi_dirs), configs)
    # Escaped one by one: a newline a path or document brings stays inside its finding.
    output.echo("\n".join(output.printable(str(finding)) for finding in findings))
    if has_errors(findings):
        raise SystemExit(ExitStatus.NOT_CLASSIFIED)  # the operator commands' failure status
