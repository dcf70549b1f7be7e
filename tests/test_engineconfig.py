"""engineconfig: CRI-O's and containerd's configs read as the engines read them."""

import os
from pathlib import Path

import pytest

from fpga_crihook.engineconfig import CrioRuntime, Listed, main, read_containerd, read_crio

OPENSHIFT_DROP_IN = """\
[crio]
[crio.runtime]
selinux = true
hooks_dir = [
    "/etc/containers/oci/hooks.d",
    "/run/containers/oci/hooks.d",
    "/usr/share/containers/oci/hooks.d",
]
default_runtime = "crun"
"""
# What `crio config` writes (tabs, a trailing comma, comments between the entries).
GENERATED_CRIO_CONF = """\
# The CRI-O configuration file specifies all of the available configuration
[crio.runtime]
# Path to OCI hooks directories for automatically executed hooks.
hooks_dir = [
\t"/usr/share/containers/oci/hooks.d",  # the default
\t# "/etc/containers/oci/hooks.d",
]

# List of directories to scan for CDI Spec files.
cdi_spec_dirs = [
\t"/etc/cdi",
\t"/var/run/cdi",
]
"""


def _crio(tmp_path: Path, main_file: str | None, drop_ins: dict[str, str]) -> tuple[Path, Path]:
    config, config_dir = tmp_path / "crio.conf", tmp_path / "crio.conf.d"
    if main_file is not None:
        config.write_text(main_file)
    for name, text in drop_ins.items():
        (config_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (config_dir / name).write_text(text)
    return config, config_dir


def test_no_crio_config_at_all_is_none(tmp_path: Path) -> None:
    assert read_crio(tmp_path / "crio.conf", tmp_path / "crio.conf.d") is None


def test_crio_with_no_hooks_dir_uses_its_default(tmp_path: Path) -> None:
    config, config_dir = _crio(tmp_path, "[crio]\nlog_level = 'info'\n", {})

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert crio.hooks_dir == Listed((Path("/usr/share/containers/oci/hooks.d"),), None)
    assert crio.cdi_spec_dirs == Listed((Path("/etc/cdi"), Path("/var/run/cdi")), None)
    assert crio.runtime == CrioRuntime(None, None, None, ())  # the CRI-O release decides
    assert crio.runtime.program is None
    assert (crio.files, crio.problems) == ((config,), ())


def test_crio_reads_the_multi_line_list_crio_config_writes(tmp_path: Path) -> None:
    config, config_dir = _crio(tmp_path, GENERATED_CRIO_CONF, {})

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert crio.hooks_dir == Listed((Path("/usr/share/containers/oci/hooks.d"),), config)
    assert crio.cdi_spec_dirs.source == config


def test_crio_drop_in_without_a_suffix_overrides_the_main_file(tmp_path: Path) -> None:
    """OpenShift's /etc/crio/crio.conf.d/00-default: CRI-O reads every file, any name."""
    config, config_dir = _crio(tmp_path, GENERATED_CRIO_CONF, {"00-default": OPENSHIFT_DROP_IN})

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert crio.hooks_dir.directories == (
        Path("/etc/containers/oci/hooks.d"),
        Path("/run/containers/oci/hooks.d"),
        Path("/usr/share/containers/oci/hooks.d"),
    )
    assert crio.hooks_dir.source == config_dir / "00-default"
    assert crio.cdi_spec_dirs.source == config  # the drop-in does not set it
    assert crio.runtime == CrioRuntime("crun", config_dir / "00-default", None, ())
    assert crio.runtime.program == "crun"


def test_crio_runtime_handler_table_of_a_later_file_replaces_the_earlier_one_whole(
    tmp_path: Path,
) -> None:
    """As CRI-O's TOML decoder fills its map of handlers: one table a handler, per file."""
    main_file = (
        '[crio.runtime]\ndefault_runtime = "fast"\n'
        '[crio.runtime.runtimes.fast]\nruntime_path = "/usr/bin/runc"\n'
        'allowed_annotations = ["run.oci."]\n'
    )
    drop_in = '[crio.runtime.runtimes.fast]\nruntime_path = "/usr/local/bin/crun"\n'
    config, config_dir = _crio(tmp_path, main_file, {"10-crun.conf": drop_in})

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert crio.runtime == CrioRuntime("fast", config, "/usr/local/bin/crun", ())
    assert crio.runtime.program == "crun"


def test_crio_drop_ins_apply_in_lexical_order_subdirectories_where_they_sort(
    tmp_path: Path,
) -> None:
    drop_ins = {
        "10-a.conf": '[crio.runtime]\nhooks_dir = ["/a"]\n',
        "20-dir/99-c.conf": '[crio.runtime]\nhooks_dir = ["/c"]\n',
        "30-b.conf": '[crio.runtime]\nhooks_dir = ["/b"]\n',
    }
    config, config_dir = _crio(tmp_path, None, drop_ins)

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert crio.files == tuple(config_dir / name for name in drop_ins)
    assert crio.hooks_dir == Listed((Path("/b"),), config_dir / "30-b.conf")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"[crio.runtime\nhooks_dir = 1", "is not valid TOML"),
        (b"a = " + b"[" * 5000 + b"]" * 5000, "is not valid TOML"),
        (b'[crio.runtime]\nhooks_dir = ["/\xff"]\n', "is not UTF-8 (byte 30)"),
        (b"x = " + b"9" * 5000, "is not valid TOML"),
        (b"[crio.runtime]\nhooks_dir = '/etc/hooks.d'\n", "not a list of paths"),
        (b'[crio.runtime]\nhooks_dir = ["a\\nb"]\n', "not a list of paths"),
        (b"crio = 1\n", "sets crio to a int, not a table"),
        (b"x" * (1 << 20) + b"\n", "is larger than 1048576 bytes"),
    ],
    ids=["broken", "deep", "not-utf8", "long-integer", "string", "newline", "crio-int", "huge"],
)
def test_crio_config_it_cannot_use_is_a_problem_not_a_traceback(
    tmp_path: Path, text: bytes, words: str
) -> None:
    config = tmp_path / "crio.conf"
    config.write_bytes(text)

    crio = read_crio(config, tmp_path / "crio.conf.d")

    assert crio is not None
    [problem] = crio.problems
    assert problem.path == config
    assert words in problem.message
    assert crio.hooks_dir.source is None  # CRI-O's default stands


def test_crio_drop_in_that_is_a_fifo_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    config, config_dir = _crio(tmp_path, None, {"10-a.conf": "[crio]\n"})
    os.mkfifo(config_dir / "20-fifo")

    crio = read_crio(config, config_dir)

    assert crio is not None
    assert [str(problem) for problem in crio.problems] == [
        f"{config_dir / '20-fifo'} is not a regular file"
    ]


def _containerd(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(text)
    return config


@pytest.mark.parametrize(
    ("text", "table", "enable_cdi"),
    [
        (
            'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "p"\n',
            "io.containerd.grpc.v1.cri",
            None,
        ),
        (
            'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true\n',
            "io.containerd.grpc.v1.cri",
            True,
        ),
        ("[plugins.cri]\n  enable_cdi = false\n", "cri", False),
        (
            'version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n  enable_cdi = true\n',
            "io.containerd.cri.v1.runtime",
            True,
        ),
        ("version = 3\n", "io.containerd.cri.v1.runtime", None),
    ],
    ids=["v2-unset", "v2-on", "v1-off", "v3-on", "v3-unset"],
)
def test_containerd_cdi_setting_by_config_version(
    tmp_path: Path, text: str, table: str, enable_cdi: bool | None
) -> None:
    containerd = read_containerd(_containerd(tmp_path, text))

    assert containerd is not None
    assert (containerd.cri_table, containerd.enable_cdi) == (table, enable_cdi)
    assert containerd.cdi_spec_dirs == Listed((Path("/etc/cdi"), Path("/var/run/cdi")), None)
    assert not containerd.cri_disabled


def test_containerd_import_replaces_the_cri_table_whole(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    imported = tmp_path / "conf.d" / "cdi.toml"
    imported.write_text(
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n'
        'enable_cdi = true\ncdi_spec_dirs = ["/srv/cdi"]\n'
    )
    config = _containerd(
        tmp_path,
        f'version = 2\nimports = ["{tmp_path}/conf.d/*.toml"]\n'
        '[plugins."io.containerd.grpc.v1.cri"]\nenable_cdi = false\n',
    )

    containerd = read_containerd(config)

    assert containerd is not None
    assert containerd.files == (config, imported)
    assert containerd.enable_cdi is True
    assert containerd.cdi_spec_dirs == Listed((Path("/srv/cdi"),), imported)


def test_containerd_with_the_cri_plugin_disabled_says_so(tmp_path: Path) -> None:
    """What Docker's containerd package writes."""
    containerd = read_containerd(_containerd(tmp_path, 'disabled_plugins = ["cri"]\n'))

    assert containerd is not None
    assert containerd.cri_disabled


def test_containerd_config_that_imports_itself_is_read_once(tmp_path: Path) -> None:
    config = _containerd(tmp_path, 'version = 2\nimports = ["config.toml"]\n')

    containerd = read_containerd(config)

    assert containerd is not None
    assert (containerd.files, containerd.problems) == ((config,), ())


def test_installer_entry_prints_where_hooks_dir_came_from_then_the_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, config_dir = _crio(tmp_path, None, {"00-default": OPENSHIFT_DROP_IN})

    status = main([str(config), str(config_dir)])

    assert status == 0
    assert capsys.readouterr().out.splitlines() == [
        f"hooks_dir in {config_dir / '00-default'}",
        "/etc/containers/oci/hooks.d",
        "/run/containers/oci/hooks.d",
        "/usr/share/containers/oci/hooks.d",
    ]


def test_installer_entry_refuses_a_config_crio_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, config_dir = _crio(tmp_path, "[crio.runtime\n", {})

    status = main([str(config), str(config_dir)])

    assert status == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fpga-crihook: {config} is not valid TOML")
