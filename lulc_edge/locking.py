"""lulc_edge.locking: one writer per output, with a kernel lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import OutputError
from .files import partial_path


def lock_path(final: Path) -> Path:
    """The hidden lock file beside an output (``.NAME.lock``)."""
    return partial_path(final, ".lock")


class OutputLock:
    """Exclusive ``flock`` on ``.NAME.lock`` while a run writes ``NAME``.

    The kernel drops the lock when the process dies, so a crash or power cut never leaves a
    stale lock; the file only carries the holder's pid for the message. A second run fails at
    once with ``OutputError`` instead of sharing the first run's temporary files.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = lock_path(final)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"{self.final}: cannot create lock file {self.path.name} "
                                  f"({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(f"{self.final}: another lulc-edge run is writing this output "
                                  f"(pid {pid})") from None
            # The holder before us may have removed the file after we opened it: then our lock
            # is on an orphan inode and a third run could lock a new file. Retry on the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then unlock (the order keeps a waiting run from keeping it)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
