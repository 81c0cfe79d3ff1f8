"""Files at rest that only the server's user may read: the instance folder, the generated secret key,
SQLite's database (password hashes, customer emails) and the embedded Redis's data."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(path: Path, tighten: bool = True) -> Path:
    """Creates ``path`` (and its parents) if needed, private to the user; with ``tighten``, also takes group and
    other permissions off an existing folder of ours (one written by an earlier version, say), except a shared
    sticky one such as /tmp."""
    path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    if tighten and not path.stat().st_mode & stat.S_ISVTX:
        _tighten(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Creates an empty ``path`` readable by its owner only, or tightens an existing one. SQLite gives its -wal
    and -shm files the permissions of the database file, so securing that file secures all three."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if companion.exists():
                _tighten(companion, FILE_MODE)
    return path


def write_once(path: Path, content: str) -> str:
    """Writes ``content`` to ``path`` unless it exists, and returns what ``path`` holds. The file appears whole
    or not at all (written under another name, then hard-linked into place), so a process starting at the same
    moment never reads it half-written; when two race, both return the winner's content."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process got there first: its content is the one in use
    finally:
        temporary.unlink()
    return path.read_text()


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode and path.stat().st_uid == os.getuid():
        os.chmod(path, current & mode)
