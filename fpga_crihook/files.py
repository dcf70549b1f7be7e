"""Opening a file the hook reads or writes unattended: a regular file, and never a wait.

In place of a file the hook opens there may be a FIFO (an open or a read
that waits for a writer forever, holding up a container's start), a device
(endless bytes) or a directory; and, unless links are the operator's to use,
a symbolic link planted to send the hook, running as root, to a file
elsewhere. So every such file is opened here: with ``O_NONBLOCK`` (a FIFO
fails or reads as empty at once), ``O_NOFOLLOW`` unless the caller follows
links, and refused unless the descriptor opened is a regular file, so what
was checked is what is used. Each caller says the refusal in its own words.
Who may own the file is :mod:`fpga_crihook.trust`'s rule, checked by the
caller on the same descriptor.
"""

import os
import stat


class NotRegularFile(OSError):
    """What the path names is no regular file: a directory, a FIFO, a device, a socket."""

    def __init__(self, mode: int) -> None:
        super().__init__(0, "it is not a regular file")
        self.mode = mode  # the st_mode of what was opened

    @property
    def is_directory(self) -> bool:
        """True when a directory was opened."""
        return stat.S_ISDIR(self.mode)


class TooLarge(ValueError):
    """The file holds more bytes than its reader takes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"is larger than {limit} bytes")
        self.limit = limit


def open_regular(
    path: "os.PathLike[str] | str",
    flags: int = os.O_RDONLY,
    *,
    mode: int = 0o600,
    dir_fd: int | None = None,
    follow_links: bool = False,
) -> int:
    """The descriptor of the regular file at *path*, opened with *flags* (*mode* when
    ``O_CREAT`` makes it), relative to *dir_fd* if given; the caller closes it.

    Never blocks, and is close-on-exec. Raises :class:`NotRegularFile` (the
    descriptor closed) for anything but a regular file, and ``OSError`` from
    the open itself: ``ELOOP`` for a symbolic link unless *follow_links*,
    ``ENXIO`` for a FIFO opened for writing that nobody reads.
    """
    flags |= os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    fd = os.open(path, flags, mode, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_at_most(fd: int, limit: int) -> bytes:
    """The bytes of the file open at *fd* (from where it stands); :class:`TooLarge` when it
    holds more than *limit*. Only *limit* + 1 bytes are ever read."""
    chunks, count = [], 0
    while count <= limit:
        chunk = os.read(fd, limit + 1 - count)
        if not chunk:
            break
        chunks.append(chunk)
        count += len(chunk)
    if count > limit:
        raise TooLarge(limit)
    return b"".join(chunks)


def read_regular(
    path: "os.PathLike[str] | str",
    limit: int,
    *,
    dir_fd: int | None = None,
    follow_links: bool = False,
) -> bytes:
    """The bytes of the regular file at *path* (:func:`open_regular`), at most *limit* of
    them (:func:`read_at_most`); errors opening or reading it are ``OSError``."""
    fd = open_regular(path, dir_fd=dir_fd, follow_links=follow_links)
    try:
        return read_at_most(fd, limit)
    finally:
        os.close(fd)
