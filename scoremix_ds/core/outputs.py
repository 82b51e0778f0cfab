"""Output-folder discipline shared by every command that writes: create new, resume its own, refuse foreign content.

A command claims its ``--out`` folder with :func:`claim_folder`: a missing or empty folder is created; a folder
holding that command's signature (its log, checkpoints or report) is reopened; anything else is refused in one
line, untouched.
Files are written with :func:`atomic_write` / :func:`atomic_path`: to a uniquely named hidden temporary beside the
target (``tempfile`` picks a name no user file can have) and renamed into place, so a crash or a full disk leaves
the old file or the new one, never half of one, and never a truncated file under the real name.
:class:`OutputLock` keeps two processes from writing one folder at once. :func:`read_json_object` reads back the
JSON files a command wrote (checkpoint state, markers, metadata): a hand-edited or damaged one is one DataError
naming it, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .errors import DataError

logger = logging.getLogger(__name__)

LOCK = ".scoremix-lock"
TMP_SUFFIX = ".scoremix-tmp"
BOOKKEEPING = frozenset({LOCK})


def foreign_entries(out: Path) -> list[str]:
    """What in ``out`` is not this tool's bookkeeping: neither the lock nor an atomic write still in flight."""
    return sorted(p.name for p in out.iterdir() if p.name not in BOOKKEEPING and not p.name.endswith(TMP_SUFFIX))


def claim_folder(out: str | Path, command: str, flag: str = "out",
                 signature: Callable[[Path], bool] | None = None) -> Path:
    """Create ``out`` for ``command`` or reopen it as that command's own; refuse a file or foreign content.

    ``signature(out)``: True for a folder ``command`` wrote (its log, checkpoints or report); such a folder is
    resumed or updated, and only the command's own files in it are ever replaced. Returns the folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder", hint="give a new or empty folder", field=flag)
    if out.is_dir():
        foreign = foreign_entries(out)
        if foreign and not (signature and signature(out)):
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise DataError(f"{out} holds files `scoremix-ds {command}` did not write ({foreign[0]}{more}); "
                            "refusing to write into it", hint="choose a new or empty folder", field=flag)
    out.mkdir(parents=True, exist_ok=True)
    return out


def claim_file(path: str | Path, flag: str, owned: Callable[[Path], bool]) -> Path:
    """An output FILE: a new one, or an existing one ``owned`` says this command wrote; never a user's file."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file", hint="give a file name", field=flag)
    if path.exists() and not owned(path):
        raise DataError(f"{path} exists and was not written by scoremix-ds; refusing to replace it",
                        hint="choose a new file name, or remove that file", field=flag)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A fresh temporary path beside ``target``; renamed onto ``target`` when the block succeeds, removed if not."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0o22)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the final file gets the usual permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``target`` atomically (text as UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path``, a file scoremix-ds wrote; a DataError naming it when it is not one."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise DataError(f"{path} is not valid JSON ({str(exc).splitlines()[0][:80]})",
                        hint="restore that file, or delete its folder and re-run") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} holds a JSON {type(value).__name__}, not the object scoremix-ds wrote",
                        hint="restore that file, or delete its folder and re-run")
    return value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """An exclusive lock on an output folder (``fcntl.flock`` on ``.scoremix-lock``, which names the holder's pid).

    The kernel drops the lock when its holder dies, so a lock left by a killed run is simply taken over. A second
    process asking for a held lock gets ONE line naming the holder. The file is removed on release.
    """

    def __init__(self, folder: str | Path, flag: str = "out") -> None:
        self.folder, self.flag = Path(folder), flag
        self.path = self.folder / LOCK
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                alive = holder.isdigit() and _pid_alive(int(holder))
                who = f"process {holder}" if alive else "another process"
                raise DataError(f"{self.folder} is in use by {who} of scoremix-ds writing into it",
                                hint="wait for it to finish (then re-run: finished work is kept), or choose another "
                                     "folder", field=self.flag) from None
            try:  # the holder may have removed the file between our open and our lock: lock the current one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
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
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
