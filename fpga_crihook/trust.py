"""The one rule for what the hook acts on unattended: nobody but root may change it.

The hook runs as root. Whoever can write to its config file chooses a
program it runs; to its lock directory, whether two hooks program one FME at
once; to its metrics directory, what it reads and rewrites; to its bitstream
store, the accelerator every tenant's container gets. So each must be owned
by root, or by the user running the command (who could run anything anyway:
runs by hand, tests), and writable by nobody else, as sudo and sshd demand of
their own files. Callers check the ``fstat`` of the descriptor they then use,
so what was checked is what is used.
"""

import os
import stat
from collections.abc import Callable
from typing import NamedTuple


class Untrusted(NamedTuple):
    """Why a file or directory fails the rule, and the command that fixes it."""

    reason: str  # "is owned by uid 1000, not root"
    fix: str  # "chown root PATH"


def untrusted(status: os.stat_result, path: "os.PathLike[str] | str") -> Untrusted | None:
    """What is wrong with the file or directory *status* describes, or ``None``."""
    user = os.geteuid()
    if status.st_uid not in (0, user):
        owners = "root" if user == 0 else f"root or uid {user} that runs this"
        return Untrusted(f"is owned by uid {status.st_uid}, not {owners}", f"chown root {path}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(status.st_mode)
        return Untrusted(f"is writable by group or others (mode {mode:04o})", f"chmod go-w {path}")
    return None


def require(
    status: os.stat_result,
    path: "os.PathLike[str] | str",
    *,
    subject: str,
    why: str,
    error: Callable[[str], Exception],
) -> None:
    """Raise ``error("<subject> <reason>: <why> (<fix>)")`` unless *status* passes the rule."""
    problem = untrusted(status, path)
    if problem is not None:
        raise error(f"{subject} {problem.reason}: {why} ({problem.fix})")


def require_open(
    fd: int,
    path: "os.PathLike[str] | str",
    *,
    subject: str,
    why: str,
    error: Callable[[str], Exception],
) -> int:
    """*fd*, the open *path*, once its ``fstat`` passes the rule (see :func:`require`);
    closed before anything is raised, so a refused descriptor never outlives the check."""
    try:
        require(os.fstat(fd), path, subject=subject, why=why, error=error)
    except BaseException:
        os.close(fd)
        raise
    return fd
