"""Directories and files only their owner can read (0700 and 0600).

Job, endpoint and datastore directories hold training data, logs with prompts, and keys.
Modes are given at creation (os.open, mkdir) so no umask leaves a window where the file is
readable by others; what already exists from an older version is tightened on the next write.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: str | os.PathLike) -> Path:
    """Create `path` and any missing parents as 0700; tighten `path` itself if it exists."""
    target = Path(path)
    missing = []
    for candidate in (target, *target.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # made by a concurrent process; tightened below
            pass
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is masked by the umask
    if target.is_dir() and not missing:
        _tighten(target, DIRECTORY_MODE)
    return target


def write_private(path: str | os.PathLike, text: str) -> None:
    """Replace the file's content atomically with a 0600 file."""
    target = Path(path)
    # Unique per call: two threads of one apply may write the same file (a status, a config).
    temporary = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(descriptor, FILE_MODE)  # os.open's mode is masked by the umask
            handle.write(text)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, target)


def open_private_append(path: str | os.PathLike) -> BinaryIO:
    """Open a log for appending, created 0600 (an existing log is tightened to 0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    os.fchmod(descriptor, FILE_MODE)
    return os.fdopen(descriptor, "ab")


def tighten_file(path: str | os.PathLike) -> None:
    """Make an existing file 0600 (no-op when it is missing)."""
    _tighten(Path(path), FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
