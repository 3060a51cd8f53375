"""One writer at a time per kind directory: a lock file that says who holds it.

Two processes writing the same saved_model/<kind>/ would rotate each other's checkpoints and interleave their
lines in metrics.jsonl. So a run holds `<kind dir>/.lock` for as long as it trains: an exclusive `flock` on the
open file, and in the file the holder's pid, command line, start time and run id, which is what a refused second
writer (and the TUI, following the other process) is told.

Why flock: the kernel drops the lock when its process ends, however it ends. A holder killed with SIGKILL
leaves its file behind, but not its lock; the next run takes the lock over and says whose stale file it
replaced. No timeouts, no guessing from pids. (POSIX only: on Windows runs are not locked.)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
ATTEMPTS = 10


@dataclass
class Holder:
    """Who holds (or last held) a kind directory's lock, as its lock file says."""

    pid: int
    command: str
    started: float
    run_id: str = ""
    host: str = ""

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started)) if self.started else "?"
        return f"pid {self.pid} ({self.command or 'unknown command'}), since {since}"


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return Holder(
            int(data.get("pid", 0)),
            str(data.get("command", "")),
            float(data.get("started", 0.0)),
            str(data.get("run_id", "")),
            str(data.get("host", "")),
        )
    except (TypeError, ValueError):
        return None


def _command_line() -> str:
    argv = [os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]
    text = " ".join(argv)
    return text if len(text) <= 120 else text[:117] + "..."


class KindLock:
    """The lock of one kind directory, held from `acquire()` to `release()` (or the end of the process)."""

    def __init__(self, kind_dir: Path):
        self.path = Path(kind_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale: Holder | None = None
        """The holder of a lock file found without its lock (a process that was killed): taken over."""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, run_id: str = "") -> None:
        """Take the lock, or raise CheckpointError naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(ATTEMPTS):  # a reader's probe (`holder`) holds a shared lock for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if attempt < ATTEMPTS - 1:
                    time.sleep(0.05)
        else:
            os.close(fd)
            holder = _read_holder(self.path)
            who = holder.describe() if holder else "another process"
            raise CheckpointError(
                f"{self.path.parent} is being written by {who}; one run at a time writes a kind "
                "directory. Wait for it, stop it, or use another paths.root"
            ) from None
        previous = _read_holder(self.path)
        if previous is not None and previous.pid != os.getpid():
            self.stale = previous
        record = {
            "pid": os.getpid(),
            "command": _command_line(),
            "started": time.time(),
            "run_id": run_id,
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file: nobody holds it
        except OSError:
            pass
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> KindLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(kind_dir: Path) -> Holder | None:
    """The process writing `kind_dir` now, or None when nobody holds its lock (a leftover file of a killed
    process does not count). Never takes the lock for longer than the test."""
    path = Path(kind_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_holder(path) or Holder(0, "", 0.0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
