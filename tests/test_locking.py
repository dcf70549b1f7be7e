"""locking: one hook per FME at a time, through a lock file no one else can swap."""

import errno
import fcntl
import io
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from fpga_crihook import logs
from fpga_crihook.deadline import TimeLimit
from fpga_crihook.devices import Driver, Fme
from fpga_crihook.errors import DeviceBusyError, LockError
from fpga_crihook.locking import fme_lock
from fpga_crihook.settings import Settings


def _limit(seconds: float) -> TimeLimit:
    return Settings(lock_timeout=seconds).lock_limit


def _fme(sysfs_dir: Path = Path("/tmp")) -> Fme:
    """An FME whose sysfs directory exists (the lock takes that directory too)."""
    return Fme(Driver.DFL, "dfl-fme.3", sysfs_dir, Path("/nonexistent"))


def test_lock_is_exclusive_and_bounded(tmp_path: Path) -> None:
    stream = io.StringIO()
    logs.configure("info", logs.LogFormat.JSON, None, stream)
    holder = os.open(tmp_path / "dfl-fme.3.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with (
            pytest.raises(DeviceBusyError, match="stayed locked by another hook"),
            fme_lock(_fme(), tmp_path, _limit(0.2)),
        ):
            pass
    finally:
        os.close(holder)
    assert "waiting for another hook" in stream.getvalue()
    with fme_lock(_fme(), tmp_path, _limit(0.2)):
        pass


def test_lock_dir_is_created_private(tmp_path: Path) -> None:
    lock_dir = tmp_path / "run" / "fpga-crihook"
    with fme_lock(_fme(), lock_dir, _limit(0)):
        assert (lock_dir / "dfl-fme.3.lock").exists()
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700


def test_a_lock_dir_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "fpga-crihook"
    link.symlink_to(target)
    with (
        pytest.raises(LockError, match=f"the lock directory {link} is a symlink: refusing it"),
        fme_lock(_fme(), link, _limit(0)),
    ):
        pass
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    ("mode", "owner", "words"),
    [
        (0o777, None, r"is writable by group or others \(mode 0777\).*\(chmod go-w "),
        (0o770, None, r"is writable by group or others \(mode 0770\)"),
        (0o700, 4242, r"is owned by uid 4242, not root.*\(chown root "),
    ],
)
def test_a_lock_dir_others_could_change_is_refused(
    tmp_path: Path, mode: int, owner: int | None, words: str
) -> None:
    lock_dir = tmp_path / "fpga-crihook"
    lock_dir.mkdir()
    lock_dir.chmod(mode)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("giving a directory away needs root (CI runs as root)")
        os.chown(lock_dir, owner, owner)
    with pytest.raises(LockError, match=words), fme_lock(_fme(), lock_dir, _limit(0)):
        pass
    assert list(lock_dir.iterdir()) == []


def test_a_lock_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (tmp_path / "dfl-fme.3.lock").symlink_to(target)
    with (
        pytest.raises(LockError, match="cannot create the lock file"),
        fme_lock(_fme(), tmp_path, _limit(0)),
    ):
        pass
    assert not target.exists()


def test_a_lock_file_removed_while_a_hook_waits_for_it_is_locked_anew(tmp_path: Path) -> None:
    """The waiter must lock the file now at the path, not the removed one it opened."""
    lock_file = tmp_path / "dfl-fme.3.lock"
    first = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(first, fcntl.LOCK_EX)
    newcomer: list[int] = []

    def swap_files_after_a_moment() -> None:
        time.sleep(0.3)
        lock_file.unlink()  # an operator's cleanup, or a hook that removes its lock file
        replacement = os.open(lock_file, os.O_RDWR | os.O_CREAT)
        fcntl.flock(replacement, fcntl.LOCK_EX)  # a hook that came later holds the new file
        newcomer.append(replacement)
        os.close(first)  # the first holder finishes

    swapper = threading.Thread(target=swap_files_after_a_moment)
    swapper.start()
    try:
        with (
            pytest.raises(DeviceBusyError, match="stayed locked by another hook for 1.5 s"),
            fme_lock(_fme(), tmp_path, _limit(1.5)),
        ):
            pass
    finally:
        swapper.join()
        for fd in newcomer:
            os.close(fd)
    with fme_lock(_fme(), tmp_path, _limit(1)) as lock:  # the new file, once it is free
        assert os.fstat(lock.fd).st_ino == lock_file.stat().st_ino


def test_a_lock_dir_that_cannot_be_made_is_named_as_the_directory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "fpga-crihook"
    not_a_dir.write_text("")
    with (
        pytest.raises(
            LockError, match=f"cannot use the lock directory {not_a_dir}: Not a directory"
        ),
        fme_lock(_fme(), not_a_dir, _limit(0)),
    ):
        pass


def test_a_lock_error_other_than_contention_is_a_lock_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(_fd: int, _operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with (
        pytest.raises(LockError, match="cannot lock .*dfl-fme.3.lock: No locks available"),
        fme_lock(_fme(), tmp_path, _limit(1)),
    ):
        pass


def test_a_lock_file_removed_while_a_hook_holds_it_does_not_let_a_newcomer_in(
    tmp_path: Path,
) -> None:
    """An operator cleans the lock directory in the middle of a programming."""
    fme_dir = tmp_path / "sys" / "dfl-fme.3"
    fme_dir.mkdir(parents=True)
    locks = tmp_path / "locks"
    with fme_lock(_fme(fme_dir), locks, _limit(1)) as holder:
        holder.path.unlink()
        with (
            pytest.raises(DeviceBusyError, match=r"holds .*dfl-fme.3 locked, while its lock file"),
            fme_lock(_fme(fme_dir), locks, _limit(0.3)),
        ):
            pass
    with fme_lock(_fme(fme_dir), locks, _limit(0.3)) as newcomer:  # free once the holder is done
        assert newcomer.path.exists()


def test_a_child_that_inherits_the_lock_holds_the_fme_directory_too(tmp_path: Path) -> None:
    fme_dir = tmp_path / "sys" / "dfl-fme.3"
    fme_dir.mkdir(parents=True)
    with fme_lock(_fme(fme_dir), tmp_path / "locks", _limit(1)) as lock:
        guard = lock.fds[1]
        assert os.path.samefile(f"/proc/self/fd/{guard}", fme_dir)
        probe = os.open(fme_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)


def test_a_lock_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "dfl-fme.3.lock")
    with (
        pytest.raises(LockError, match=r"the lock file .*dfl-fme.3.lock is not a regular file"),
        fme_lock(_fme(), tmp_path, _limit(0)),
    ):
        pass
