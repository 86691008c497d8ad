"""Rotating backups of a SQLite state file, and restoring one.

Before the first serial-changing write of each lock hold (an apply, an import, a `state rm`,
a restore), the store copies the whole file with SQLite's online backup API into
`<state>.backups/serial-<serial>-<lineage>.db`: a consistent copy even while other processes
read, in rollback-journal mode so each backup is one self-contained file, with the lock table
emptied. The newest KEEP_BACKUPS are kept. A damaged file that `state restore` replaces is
moved into the same folder as `broken-<time>-<name>` and never rotated away.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

KEEP_BACKUPS = 5


def backup_dir(state_path: Path) -> Path:
    return state_path.parent / f"{state_path.name}.backups"


@dataclass(frozen=True)
class Backup:
    """One backup file, as read back (read-only) from its own content."""

    path: Path
    time: str  # when it was taken (the file's mtime), UTC
    serial: int | None = None
    lineage: str | None = None
    resources: int | None = None
    problem: str | None = None  # why it cannot be restored, when it cannot

    @property
    def readable(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "time": self.time, "serial": self.serial,
                "lineage": self.lineage, "resources": self.resources, "problem": self.problem}


def _mtime(path: Path) -> str:
    stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def inspect(path: Path) -> Backup:
    """What a (backup) state file holds, without changing it; `problem` says if it is unusable."""
    try:
        time = _mtime(path)
    except OSError as exc:
        return Backup(path, "", problem=f"cannot read it ({exc.strerror})")
    if not os.access(path, os.R_OK):
        return Backup(path, time, problem="cannot read it (permission denied)")
    try:
        # Through SQLite, not open()/close(): closing a plain descriptor drops this process's
        # locks on the file, and `state restore` may be handed a file it has open.
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return Backup(path, time, problem=f"cannot open it ({exc})")
    try:
        check = [row[0] for row in db.execute("PRAGMA integrity_check(3)")]
        if check != ["ok"]:
            return Backup(path, time, problem=f"damaged ({'; '.join(check)})")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        resources = db.execute("SELECT count(*) FROM resources").fetchone()[0]
        db.execute("SELECT count(*) FROM history, lock").fetchone()
        serial = meta.get("serial", "")
        if not serial.isdigit() or "lineage" not in meta:
            return Backup(path, time, problem="its meta has no valid serial and lineage")
        return Backup(path, time, int(serial), meta["lineage"], resources)
    except sqlite3.Error as exc:
        if "file is not a database" in str(exc):
            return Backup(path, time, problem="not an SQLite database")
        return Backup(path, time, problem=f"not a foundryctl state file ({exc})")
    finally:
        db.close()


def list_backups(state_path: Path) -> list[Backup]:
    """Every backup of this state file, newest first."""
    folder = backup_dir(state_path)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix == ".db" and not p.name.startswith(".")]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return [inspect(p) for p in files]


def _private_file(path: Path) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def copy_database(source: sqlite3.Connection, target: Path) -> sqlite3.Connection:
    """A copy of `source` at `target` (a new 0600 file), open, in rollback-journal mode."""
    _private_file(target)
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        copy.close()
        raise
    return copy


def take_backup(db: sqlite3.Connection, state_path: Path, *, keep: int = KEEP_BACKUPS) -> Path:
    """Back up the open state `db` (unless this serial of this lineage already is) and rotate."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    folder = backup_dir(state_path)
    folder.mkdir(mode=0o700, exist_ok=True)
    final = folder / f"serial-{int(meta['serial']):06d}-{meta['lineage'][:8]}.db"
    if not final.exists():
        tmp = folder / f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            copy = copy_database(db, tmp)
            try:
                copy.execute("DELETE FROM lock")  # the holder then is not the holder on restore
            finally:
                copy.close()
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    rotated = sorted(folder.glob("serial-*.db"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    for old in rotated[keep:]:
        old.unlink(missing_ok=True)
    return final


def move_aside(state_path: Path) -> Path:
    """Move an unusable state file (and its -wal/-shm) into the backups folder; returns where."""
    folder = backup_dir(state_path)
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"broken-{stamp}-{state_path.name}"
    for suffix in ("", "-wal", "-shm"):
        companion = Path(f"{state_path}{suffix}")
        if companion.exists():
            shutil.move(companion, Path(f"{target}{suffix}"))
    return target
