"""Opening a regular file safely: the one helper, and what each caller says when it refuses.

A link, a FIFO, a directory or a file too large is refused by
:mod:`fpga_crihook.files`; each caller names the file in its own words,
the same before and after the helper took the open over.
"""

import contextlib
import errno
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fpga_crihook import files, jsondocs
from fpga_crihook.commands.check import check_file
from fpga_crihook.errors import BitstreamError
from fpga_crihook.jsondocs import MAX_FILE_BYTES
from fpga_crihook.snapshot import open_regular_file


@contextlib.contextmanager
def _no_hang(seconds: float = 5.0) -> Iterator[None]:
    """Fail instead of waiting forever, should an open or a read block on a FIFO."""

    def hung(_signal: int, _frame: object) -> None:
        raise AssertionError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)  # nobody writes it: a blocking open would never return
    return path


def _link(tmp_path: Path, content: bytes = b"{}") -> Path:
    target = tmp_path / "target"
    target.write_bytes(content)
    link = tmp_path / "link"
    link.symlink_to(target)
    return link


# The helper ---------------------------------------------------------------------------------


def test_a_regular_file_is_opened_and_read(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"12345")

    assert files.read_regular(path, 5) == b"12345"


def test_a_file_larger_than_the_limit_is_refused_after_reading_one_byte_more(
    tmp_path: Path,
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"123456")
    fd = files.open_regular(path)
    try:
        with pytest.raises(files.TooLarge, match="is larger than 5 bytes"):
            files.read_at_most(fd, 5)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 6
    finally:
        os.close(fd)


def test_a_link_is_refused_unless_the_caller_follows_links(tmp_path: Path) -> None:
    link = _link(tmp_path)

    with pytest.raises(OSError, match="symbolic links") as refused:
        files.open_regular(link)

    assert refused.value.errno == errno.ELOOP
    assert files.read_regular(link, 10, follow_links=True) == b"{}"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    with _no_hang(), pytest.raises(files.NotRegularFile) as refused:
        files.open_regular(_fifo(tmp_path))

    assert refused.value.strerror == "it is not a regular file"
    assert not refused.value.is_directory


def test_a_directory_and_a_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(files.NotRegularFile) as directory:
        files.open_regular(tmp_path)
    with pytest.raises(files.NotRegularFile) as device:
        files.open_regular("/dev/null")

    assert directory.value.is_directory
    assert not device.value.is_directory


def test_a_refused_file_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    for refused in (tmp_path, _fifo(tmp_path)):
        with _no_hang(), pytest.raises(files.NotRegularFile):
            files.open_regular(refused)

    assert set(os.listdir("/proc/self/fd")) == before


def test_a_file_is_created_with_the_mode_given_relative_to_its_directory(tmp_path: Path) -> None:
    dir_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = files.open_regular("made", os.O_RDWR | os.O_CREAT, mode=0o640, dir_fd=dir_fd)
        os.close(fd)
    finally:
        os.close(dir_fd)

    assert (tmp_path / "made").stat().st_mode & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Each caller in its own words ------------------------------------------------------------------


def test_a_document_file_is_read_through_a_link_and_refused_as_a_fifo_or_too_large(
    tmp_path: Path,
) -> None:
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_FILE_BYTES + 1))

    assert jsondocs.read_file(_link(tmp_path)) == b"{}"
    with _no_hang(), pytest.raises(jsondocs.JsonProblem, match="^is not a regular file$"):
        jsondocs.read_file(_fifo(tmp_path))
    with pytest.raises(IsADirectoryError):  # "cannot read ...: Is a directory", as always
        jsondocs.read_file(tmp_path)
    with pytest.raises(jsondocs.JsonProblem, match=f"^is larger than {MAX_FILE_BYTES} bytes$"):
        jsondocs.read_file(huge)


@pytest.mark.parametrize("name", ["hook.json", "spec.yaml"])
def test_check_says_a_hooks_d_file_or_spec_too_large_to_check_is(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b" " * (MAX_FILE_BYTES + 1))

    [finding] = check_file(path)

    assert str(finding) == f"error: {path} is larger than {MAX_FILE_BYTES} bytes"


def test_check_says_a_directory_in_place_of_a_hooks_d_file_cannot_be_read(tmp_path: Path) -> None:
    directory = tmp_path / "hook.json"
    directory.mkdir()

    [finding] = check_file(directory)

    assert str(finding) == f"error: {directory}: cannot read it: Is a directory"


def test_a_bitstream_named_by_hand_is_read_through_a_link_but_not_from_a_fifo(
    tmp_path: Path,
) -> None:
    os.close(open_regular_file(_link(tmp_path), None))
    fifo = _fifo(tmp_path)

    with _no_hang(), pytest.raises(BitstreamError, match=f"^{fifo} is not a regular file$"):
        open_regular_file(fifo, None)
