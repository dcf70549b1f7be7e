"""Where the container engines on a node look for the hook: CRI-O's and containerd's configs.

A hooks.d file or a CDI spec in a directory no engine reads is a hook that
silently never runs, so ``check`` and the node installer read the engines'
own config files rather than assuming their defaults.

CRI-O (as v1.26's ``crio`` reads them, unchanged through v1.36): the main
file ``/etc/crio/crio.conf``, then every file below ``/etc/crio/crio.conf.d``
whatever its name, walked in lexical order with subdirectories; each file
decodes onto what the files before it set, so the last file that sets a key
wins and a list is replaced whole. A file CRI-O cannot decode stops CRI-O.
``[crio.runtime]`` holds ``hooks_dir`` (default: only
``/usr/share/containers/oci/hooks.d``), ``cdi_spec_dirs`` (default:
``/etc/cdi``, ``/var/run/cdi``; CRI-O always reads CDI specs) and
``default_runtime``, the runtime handler it runs containers with (when no
file sets it, CRI-O's own default: ``runc`` up to 1.30, ``crun`` from 1.31).
A handler's table ``[crio.runtime.runtimes.NAME]`` names its program
(``runtime_path``; else NAME on PATH) and its ``allowed_annotations``; a
later file's table for a handler replaces the earlier one whole.

containerd: ``/etc/containerd/config.toml`` and the files its ``imports``
name (a pattern with ``*`` is a glob, a relative path is relative to the
importing file); a later file's table for a plugin replaces the earlier one
whole. The CRI plugin's table is ``[plugins.cri]`` in a ``version = 1`` file,
``[plugins."io.containerd.grpc.v1.cri"]`` in version 2 (containerd 1.x, where
``enable_cdi`` defaults to false; containerd 2.x migrates such a file and
turns CDI on) and ``[plugins."io.containerd.cri.v1.runtime"]`` in version 3
(containerd 2.x, CDI on by default). ``cdi_spec_dirs`` defaults to
``/etc/cdi``, ``/var/run/cdi``.

Nothing here raises for a file's contents: what cannot be read or decoded is
a :class:`Problem` of the result, for the caller to report.
"""

import os
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from fpga_crihook import jsondocs

CRIO_CONFIG = Path("/etc/crio/crio.conf")
CRIO_CONFIG_DIR = Path("/etc/crio/crio.conf.d")
CRIO_DEFAULT_HOOKS_DIRS = (Path("/usr/share/containers/oci/hooks.d"),)
CONTAINERD_CONFIG = Path("/etc/containerd/config.toml")
DEFAULT_CDI_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
# The CRI plugin's table, by config version, and the names it may be disabled by.
CONTAINERD_CRI_TABLES = {
    1: "cri",
    2: "io.containerd.grpc.v1.cri",
    3: "io.containerd.cri.v1.runtime",
}
CONTAINERD_CRI_PLUGINS = frozenset(CONTAINERD_CRI_TABLES.values())
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_FILES = 256  # a drop-in directory or an import list longer than this is not a config

# A TOML table as decoded: each value is checked for its type where it is read.
Table = Mapping[str, object]


class Problem(NamedTuple):
    """A config file that could not be read or decoded, or a value of the wrong type."""

    path: Path
    message: str  # the end of a sentence: "is not valid TOML: ..."

    def __str__(self) -> str:
        return f"{self.path} {self.message}"


class Listed(NamedTuple):
    """A list of directories, and the file that set it (``None``: the engine's default)."""

    directories: tuple[Path, ...]
    source: Path | None


class CrioRuntime(NamedTuple):
    """The runtime handler CRI-O runs containers with, as its config names it."""

    name: str | None  # default_runtime; None: not set, so the CRI-O release decides
    source: Path | None  # the file that set default_runtime
    runtime_path: str | None  # its table's runtime_path; None: the handler's name on PATH
    allowed_annotations: tuple[str, ...]  # its table's allowed_annotations

    @property
    def program(self) -> str | None:
        """The runtime's program name (``crun``, ``runc``); None when the release decides."""
        path = self.runtime_path or self.name
        return None if path is None else os.path.basename(path)


class CrioConfig(NamedTuple):
    """What CRI-O reads of its config: the files, in its order, and the settings they give."""

    files: tuple[Path, ...]
    hooks_dir: Listed
    cdi_spec_dirs: Listed
    runtime: CrioRuntime
    problems: tuple[Problem, ...]


class ContainerdConfig(NamedTuple):
    """What containerd's CRI plugin reads of its config: CDI on or off, and its spec dirs."""

    files: tuple[Path, ...]
    version: int
    cri_table: str  # the CRI plugin's table for this config version, as written in the file
    cri_disabled: bool  # disabled_plugins names the CRI plugin: Kubernetes does not use it
    enable_cdi: bool | None  # None: not set, so the containerd release decides
    cdi_spec_dirs: Listed
    problems: tuple[Problem, ...]


def read_crio(config: Path = CRIO_CONFIG, config_dir: Path = CRIO_CONFIG_DIR) -> CrioConfig | None:
    """CRI-O's settings from *config* and *config_dir*; ``None`` when neither exists."""
    if not os.path.lexists(config) and not os.path.lexists(config_dir):
        return None
    files = [*([config] if os.path.lexists(config) else []), *_drop_in_files(config_dir)]
    problems: list[Problem] = []
    if len(files) > MAX_CONFIG_FILES:
        problems.append(Problem(config_dir, f"holds more than {MAX_CONFIG_FILES} files"))
        files = files[:MAX_CONFIG_FILES]
    settings: dict[str, tuple[object, Path]] = {}
    handlers: dict[str, object] = {}
    for path in files:
        document = _load(path, problems)
        runtime = _table(_table(document, "crio", path, problems), "runtime", path, problems)
        for key in ("hooks_dir", "cdi_spec_dirs", "default_runtime"):
            if key in runtime:
                settings[key] = (runtime[key], path)
        handlers.update(_table(runtime, "runtimes", path, problems))
    return CrioConfig(
        files=tuple(files),
        hooks_dir=_directories(settings.get("hooks_dir"), CRIO_DEFAULT_HOOKS_DIRS, problems),
        cdi_spec_dirs=_directories(settings.get("cdi_spec_dirs"), DEFAULT_CDI_SPEC_DIRS, problems),
        runtime=_runtime(settings.get("default_runtime"), handlers, problems),
        problems=tuple(problems),
    )


def _runtime(
    setting: tuple[object, Path] | None, handlers: Table, problems: list[Problem]
) -> CrioRuntime:
    if setting is None:
        return CrioRuntime(None, None, None, ())
    name, source = setting
    if not isinstance(name, str) or not name:
        problems.append(Problem(source, f"sets default_runtime to {name!r}, not a handler's name"))
        return CrioRuntime(None, None, None, ())
    table = _as_table(handlers.get(name))
    runtime_path = table.get("runtime_path")
    return CrioRuntime(
        name,
        source,
        runtime_path if isinstance(runtime_path, str) and runtime_path else None,
        tuple(_strings(table.get("allowed_annotations"))),
    )


def read_containerd(config: Path = CONTAINERD_CONFIG) -> ContainerdConfig | None:
    """containerd's CRI settings from *config* and its imports; ``None`` when it does not exist."""
    if not os.path.lexists(config):
        return None
    problems: list[Problem] = []
    files, version, disabled, plugins = _containerd_files(config, problems)
    cri_table = CONTAINERD_CRI_TABLES.get(version, CONTAINERD_CRI_TABLES[2])
    cri, source = plugins.get(cri_table, ({}, None))
    enable_cdi = cri.get("enable_cdi")
    if enable_cdi is not None and not isinstance(enable_cdi, bool):
        problems.append(
            Problem(source or config, f"sets enable_cdi to {enable_cdi!r}, not true or false")
        )
    dirs = cri.get("cdi_spec_dirs")
    return ContainerdConfig(
        files=tuple(files),
        version=version,
        cri_table=cri_table,
        cri_disabled=bool(CONTAINERD_CRI_PLUGINS & set(disabled)),
        enable_cdi=enable_cdi if isinstance(enable_cdi, bool) else None,
        cdi_spec_dirs=_directories(
            None if dirs is None else (dirs, source or config), DEFAULT_CDI_SPEC_DIRS, problems
        ),
        problems=tuple(problems),
    )


def _containerd_files(
    config: Path, problems: list[Problem]
) -> tuple[list[Path], int, list[str], dict[str, tuple[Table, Path]]]:
    """Every file read (the config, then its imports, breadth first), the config version,
    the disabled plugins, and each plugin's table with the file it came from."""
    files: list[Path] = []
    pending = [config]
    version: object = 1
    disabled: list[str] = []
    plugins: dict[str, tuple[Table, Path]] = {}
    while pending and len(files) < MAX_CONFIG_FILES:
        path = pending.pop(0)
        if path in files:
            continue  # containerd skips a file it loaded already: imports may loop
        files.append(path)
        document = _load(path, problems)
        version = document.get("version") or version  # the last file that sets one wins
        disabled += _strings(document.get("disabled_plugins"))
        for name, table in _table(document, "plugins", path, problems).items():
            plugins[name] = (_as_table(table), path)
        pending += _imports(path, document.get("imports", []))
    if not isinstance(version, int) or isinstance(version, bool):
        problems.append(Problem(config, f"sets version to {version!r}, not 1, 2 or 3"))
        version = 2
    return files, version, disabled, plugins


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _imports(parent: Path, imports: object) -> list[Path]:
    import glob  # noqa: PLC0415 (the hook imports this module's constants only)

    found: list[Path] = []
    for entry in _strings(imports):
        if "*" in entry:
            found += sorted(Path(match) for match in glob.glob(entry))
        else:
            path = Path(os.path.normpath(entry))
            found.append(path if path.is_absolute() else parent.parent / path)
    return found


def _drop_in_files(directory: Path) -> Iterator[Path]:
    """The files below *directory* in the order Go's filepath.Walk gives them: names sorted,
    subdirectories entered where they sort; anything but a directory is read as a file."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return  # missing, or not a directory: CRI-O reads nothing from it either
    for name in names:
        path = directory / name
        try:
            is_directory = stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            continue
        if is_directory:
            yield from _drop_in_files(path)
        else:
            yield path


def _load(path: Path, problems: list[Problem]) -> Table:
    """The TOML document in *path*, or an empty one and a problem saying why."""
    import tomllib  # noqa: PLC0415 (only check and the installer read TOML here)

    try:
        text = jsondocs.read_file(path, MAX_CONFIG_BYTES).decode("utf-8")
        return tomllib.loads(text)
    except jsondocs.JsonProblem as problem:
        problems.append(Problem(path, str(problem)))
    except OSError as error:
        problems.append(Problem(path, f"cannot be read: {error.strerror}"))
    except UnicodeDecodeError as error:
        problems.append(Problem(path, f"is not UTF-8 (byte {error.start})"))
    except RecursionError:
        problems.append(Problem(path, "is not valid TOML: nested too deeply"))
    except ValueError as error:  # TOMLDecodeError, or an integer longer than Python converts
        problems.append(Problem(path, f"is not valid TOML: {error}"))
    return {}


def _table(document: Table, key: str, path: Path, problems: list[Problem]) -> Table:
    value = document.get(key, {})
    if isinstance(value, dict):
        return value
    problems.append(Problem(path, f"sets {key} to a {type(value).__name__}, not a table"))
    return {}


def _as_table(value: object) -> Table:
    """*value* if it is a table, else an empty one (the engine finds nothing in it either)."""
    return value if isinstance(value, dict) else {}


def _directories(
    setting: tuple[object, Path] | None, default: tuple[Path, ...], problems: list[Problem]
) -> Listed:
    if setting is None:
        return Listed(default, None)
    value, path = setting
    if not isinstance(value, list) or not all(_is_path(item) for item in value):
        problems.append(Problem(path, f"sets a directory list to {value!r}, not a list of paths"))
        return Listed(default, None)
    return Listed(tuple(Path(item) for item in value), path)


def _is_path(item: object) -> bool:
    return isinstance(item, str) and bool(item) and "\n" not in item and "\0" not in item


def main(arguments: list[str]) -> int:
    """``python -m fpga_crihook.engineconfig CONFIG CONFIG_DIR``: CRI-O's hooks_dir, for the
    node installer. Prints where the setting came from, then one directory a line."""
    if len(arguments) != 2:
        print("usage: python -m fpga_crihook.engineconfig CONFIG CONFIG_DIR", file=sys.stderr)
        return 2
    crio = read_crio(Path(arguments[0]), Path(arguments[1]))
    if crio is not None and crio.problems:
        for problem in crio.problems:
            print(f"fpga-crihook: {problem}", file=sys.stderr)
        return 1
    if crio is None:
        hooks_dir, source = Listed(CRIO_DEFAULT_HOOKS_DIRS, None), "no CRI-O config: its default"
    elif crio.hooks_dir.source is None:
        hooks_dir, source = crio.hooks_dir, "its default: no hooks_dir in its config"
    else:
        hooks_dir, source = crio.hooks_dir, f"hooks_dir in {crio.hooks_dir.source}"
    print(source)
    for directory in hooks_dir.directories:
        print(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
