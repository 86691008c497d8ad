"""State in one SQLite file: resources, a serial and lineage, an append-only history, a lock.

Every write is its own transaction and bumps the serial, so a result is durable the moment
the backend call returns (WAL, synchronous=NORMAL: a killed process loses nothing that was
committed). The file is created 0600; SQLite gives its -wal and -shm files the same mode.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from foundryctl.errors import StateError, StateLockedError
from foundryctl.state.lock import (
    current_command,
    current_host,
    current_user,
    holder_alive,
    process_start,
)
from foundryctl.state.records import (
    HistoryEntry,
    LockInfo,
    ResourceRecord,
    StateSnapshot,
    Status,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    backend_id TEXT,
    status TEXT NOT NULL,
    attributes TEXT NOT NULL,
    outputs TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    protect INTEGER NOT NULL DEFAULT 0,
    updated_serial INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    serial INTEGER NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    command TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history
    BEGIN SELECT RAISE(ABORT, 'state history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history
    BEGIN SELECT RAISE(ABORT, 'state history is append-only'); END;
CREATE TABLE IF NOT EXISTS lock (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    operation TEXT NOT NULL,
    command TEXT NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT,
    created_at TEXT NOT NULL
);
"""


_TABLES = {"meta", "resources", "history", "lock"}
_META_KEYS = ("schema_version", "lineage", "serial", "created_at")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _recovery_hint(path: Path) -> str:
    """How to get a usable state back: the newest backup if there is one."""
    from foundryctl.state.backups import list_backups

    found = [b for b in list_backups(path) if b.readable]
    if found:
        newest = found[0]
        return (f"restore the newest backup (serial {newest.serial}, {newest.time}): "
                f"foundryctl state restore --latest   (or: foundryctl state restore {newest.path}); "
                "see `foundryctl state backups`")
    return (f"there is no backup in {path.name}.backups/; restore the file from your own backups, "
            f"or, if nothing was ever applied with it, move {path} aside to start a new, empty state")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)


def _create(path: Path) -> None:
    """Create a new state file atomically: a complete file appears at `path`, or nothing.

    The schema is built in a private temporary file and hard-linked into place, which fails
    if `path` exists meanwhile. So a concurrent first run never sees a half-made (or 0-byte)
    file, and a file foundryctl did not finish is never mistaken for one it did.
    """
    tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        db = _connect(tmp)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("lineage", str(uuid.uuid4())),
                ("serial", "0"), ("created_at", now_iso())])
            db.execute("COMMIT")
        finally:
            db.close()  # checkpoints and removes the temporary -wal and -shm
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another run created it first: use theirs
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def _not_sqlite(path: Path, exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite refused `path` because it is no SQLite file at all (not a damaged one).
    Its header is read only then: a file SQLite cannot open holds no lock worth keeping."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code != getattr(sqlite3, "SQLITE_NOTADB", 26) and str(exc) != "file is not a database":
        return False
    try:
        with open(path, "rb") as f:
            return f.read(16) != b"SQLite format 3\x00"
    except OSError:
        return False


def _integer(value: Any) -> int | None:
    """An integer as SQLite or meta's TEXT column holds it, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


class StateStore:
    """foundryctl's record of what it manages. Thread-safe; one connection per store.

    Opening an existing file never changes it: a file that is empty, not SQLite, another
    program's database, damaged (fails `PRAGMA integrity_check`) or missing a table is refused
    with a StateError that says how to restore it, never re-created with a new lineage.
    """

    def __init__(self, path: str | os.PathLike, *, keep_backups: int | None = None):
        from foundryctl.state.backups import KEEP_BACKUPS

        self.path = Path(path)
        self.keep_backups = KEEP_BACKUPS if keep_backups is None else keep_backups
        self._mutex = threading.RLock()
        self._backed_up = False  # a backup was taken for the current lock hold
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            _create(self.path)
        os.chmod(self.path, 0o600)
        self._check_not_empty()
        try:
            self._db = _connect(self.path)
        except sqlite3.Error as exc:
            raise self._error(f"cannot open state file {self.path}: {exc}") from exc
        try:
            self._check_contents()
            with self._guarded():
                # Already WAL for a file foundryctl made; a restored backup is in rollback mode.
                if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            self._db.close()
            raise

    # -- opening and checking ------------------------------------------------------------

    def _error(self, message: str) -> StateError:
        return StateError(message, hint=_recovery_hint(self.path))

    def _busy(self, exc: sqlite3.OperationalError) -> StateError:
        return StateError(f"state file {self.path} stayed busy for 30 s ({exc})",
                          hint="another foundryctl process is writing it; retry")

    def _check_not_empty(self) -> None:
        # Only stat() here: reading the header with open()/close() would drop every POSIX lock
        # this process holds on the file (another StateStore's, say an SDK caller's first
        # Stack), after which another process can take itself for the last connection and
        # delete the WAL under it. SQLite itself reports a file that is not a database.
        if self.path.stat().st_size == 0:
            # foundryctl creates a file complete or not at all (see _create), so an empty one
            # was truncated or made by something else; treating it as "no state" would start
            # a new lineage over resources that may well exist.
            raise self._error(f"state file {self.path} is empty (0 bytes): it was truncated or "
                              "replaced, and foundryctl will not start a new state over it")

    def _not_a_database(self) -> StateError:
        return StateError(
            f"state file {self.path} is not a database (not SQLite, and so not a foundryctl "
            "state file)",
            hint=f"is --state (or the manifest's state.path) pointing at a foundryctl state file? "
                 f"If it is, the file was overwritten: {_recovery_hint(self.path)}")

    def _check_contents(self) -> None:
        """Integrity, then foundryctl's schema, then the meta rows; see docs/state.md."""
        try:
            problems = [row[0] for row in self._db.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise self._error(f"state file {self.path} is damaged (SQLite integrity_check: "
                                  f"{'; '.join(problems)})")
            tables = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            if not tables & _TABLES:
                raise StateError(
                    f"state file {self.path} is an SQLite database of another program (tables: "
                    f"{', '.join(sorted(tables)) or 'none'}), not a foundryctl state file",
                    hint="point --state (or the manifest's state.path) at foundryctl's state file; "
                         "foundryctl will not write into another program's database")
            missing = _TABLES - tables
            if missing:
                raise self._error(f"state file {self.path} is damaged: table(s) "
                                  f"{', '.join(sorted(missing))} are missing")
            found = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):  # another run holds it: not damage
                raise self._busy(exc) from exc
            raise self._error(f"state file {self.path} is damaged ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            if _not_sqlite(self.path, exc):
                raise self._not_a_database() from exc
            raise self._error(f"state file {self.path} is damaged ({exc})") from exc
        absent = [key for key in _META_KEYS if key not in found]
        if absent:
            raise self._error(f"state file {self.path} is damaged: meta lacks "
                              f"{', '.join(absent)}")
        version = _integer(found["schema_version"])
        if version is None:
            raise self._error(f"state file {self.path} is damaged: schema_version "
                              f"{found['schema_version']!r} is not an integer")
        if version > SCHEMA_VERSION:
            raise StateError(f"state file {self.path} was written by a newer foundryctl "
                             f"(schema {version}); upgrade foundryctl")
        if _integer(found["serial"]) is None:
            raise self._error(f"state file {self.path} is damaged: its serial "
                              f"{found['serial']!r} is not an integer")
        try:
            uuid.UUID(found["lineage"])
        except (ValueError, TypeError, AttributeError):
            raise self._error(f"state file {self.path} is damaged: its lineage "
                              f"{found['lineage']!r} is not a UUID") from None

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """SQLite's errors as StateErrors that name this file (damage found after opening,
        a lock wait that timed out)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise self._busy(exc) from exc
            raise self._error(f"state file {self.path} cannot be used ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise self._error(f"state file {self.path} is damaged ({exc})") from exc

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction, or (write=False) a consistent read that never blocks a writer."""
        with self._mutex, self._guarded():
            self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _meta(self, key: str) -> str:
        with self._mutex, self._guarded():
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise self._error(f"state file {self.path} is damaged: meta lacks {key}")
        return row[0]

    def _serial_of(self, value: Any) -> int:
        serial = _integer(value)
        if serial is None:
            raise self._error(f"state file {self.path} is damaged: its serial {value!r} is not "
                              "an integer")
        return serial

    @property
    def lineage(self) -> str:
        return self._meta("lineage")

    @property
    def serial(self) -> int:
        return self._serial_of(self._meta("serial"))

    def _bump(self, db: sqlite3.Connection) -> int:
        current = self._serial_of(self._meta("serial"))
        db.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (str(current + 1),))
        return current + 1

    # -- resources -----------------------------------------------------------------------

    def _record(self, row: Sequence[Any], *, decoded: bool = False) -> ResourceRecord:
        """One resources row as a record; a row that is not what foundryctl writes is refused
        naming the file, the address and the column."""
        address = row[0]

        def bad(column: str, value: Any, why: str) -> StateError:
            shown = value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "..."
            return self._error(f"state file {self.path} is damaged: resource {address!r} has "
                               f"{why} in column {column} ({shown!r})")

        values: dict[str, Any] = {}
        for index, column, kind in ((5, "attributes", dict), (6, "outputs", dict),
                                    (7, "dependencies", list)):
            value = row[index]
            if not decoded:
                try:
                    value = json.loads(value) if isinstance(value, str) else value
                except json.JSONDecodeError:
                    raise bad(column, row[index], "invalid JSON") from None
            if not isinstance(value, kind):
                raise bad(column, row[index], f"not a JSON {'object' if kind is dict else 'array'}")
            values[column] = value
        for index, column in ((0, "address"), (1, "kind"), (2, "name")):
            if not isinstance(row[index], str) or not row[index]:
                raise bad(column, row[index], "no text")
        if row[3] is not None and not isinstance(row[3], str):
            raise bad("backend_id", row[3], "a value that is not text")
        try:
            status = Status(row[4])
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise bad("status", row[4], f"an unknown status (known: {known})") from None
        if _integer(row[8]) not in (0, 1):
            raise bad("protect", row[8], "a value that is not 0 or 1")
        updated_serial = _integer(row[9])
        if updated_serial is None:
            raise bad("updated_serial", row[9], "a serial that is not an integer")
        return ResourceRecord(
            address=address, kind=row[1], name=row[2], backend_id=row[3], status=status,
            attributes=values["attributes"], outputs=values["outputs"],
            dependencies=values["dependencies"], protect=bool(row[8]),
            updated_serial=updated_serial, updated_at=str(row[10]))

    _COLUMNS = ("address, kind, name, backend_id, status, attributes, outputs, dependencies, "
                "protect, updated_serial, updated_at")

    # SQLite assembles every row into one JSON document, decoded by one json.loads: on
    # 10,000 resources that is several times faster than decoding three columns per row.
    _SNAPSHOT = ("SELECT json_group_array(json_array(address, kind, name, backend_id, status, "
                 "json(attributes), json(outputs), json(dependencies), protect, updated_serial, "
                 "updated_at)) FROM (SELECT * FROM resources ORDER BY rowid)")

    def snapshot(self) -> StateSnapshot:
        with self._transaction(write=False) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            try:
                rows, decoded = json.loads(db.execute(self._SNAPSHOT).fetchone()[0]), True
            except sqlite3.OperationalError as exc:
                if "JSON" not in str(exc):
                    raise
                # SQLite's json() says only "malformed JSON": decode row by row to say where.
                rows = db.execute(f"SELECT {self._COLUMNS} FROM resources ORDER BY rowid").fetchall()
                decoded = False
        records = {r[0]: self._record(r, decoded=decoded) for r in rows}
        if "lineage" not in meta:
            raise self._error(f"state file {self.path} is damaged: meta lacks lineage")
        return StateSnapshot(meta["lineage"], self._serial_of(meta.get("serial")), records)

    def get(self, address: str) -> ResourceRecord | None:
        with self._mutex, self._guarded():
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM resources WHERE address = ?",
                                   (address,)).fetchone()
        return self._record(row) if row else None

    def records(self) -> list[ResourceRecord]:
        return list(self.snapshot().records.values())

    def write(self, puts: Iterable[ResourceRecord] = (), removes: Iterable[str] = ()) -> int:
        """Store and forget records in one transaction; returns the new serial.

        The first serial-changing write of each lock hold (one per apply, import or
        `state rm`) first copies the file into the rotating backups (see backups.py)."""
        self._backup_once()
        with self._transaction() as db:
            serial = self._bump(db)
            stamp = now_iso()
            rows = []
            for record in puts:
                record.updated_serial, record.updated_at = serial, stamp
                rows.append((record.address, record.kind, record.name, record.backend_id,
                             record.status.value, _dumps(record.attributes), _dumps(record.outputs),
                             _dumps(record.dependencies), int(record.protect), serial, stamp))
            # An upsert keeps a record's place (rowid), so listings stay in creation order.
            db.executemany(f"INSERT INTO resources ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT (address) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
                           "backend_id = excluded.backend_id, status = excluded.status, "
                           "attributes = excluded.attributes, outputs = excluded.outputs, "
                           "dependencies = excluded.dependencies, protect = excluded.protect, "
                           "updated_serial = excluded.updated_serial, updated_at = excluded.updated_at", rows)
            db.executemany("DELETE FROM resources WHERE address = ?", [(a,) for a in removes])
        return serial

    def put(self, record: ResourceRecord) -> int:
        return self.write(puts=[record])

    def remove(self, address: str) -> int:
        return self.write(removes=[address])

    # -- history -------------------------------------------------------------------------

    def append_history(self, event: str, details: dict[str, Any]) -> None:
        with self._transaction() as db:
            serial = self._serial_of(self._meta("serial"))
            db.execute("INSERT INTO history (serial, at, event, user, host, pid, command, details) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (serial, now_iso(), event, current_user(), current_host(), os.getpid(),
                        current_command(), _dumps(details)))

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        query = "SELECT id, serial, at, event, user, host, pid, command, details FROM history ORDER BY id DESC"
        with self._mutex, self._guarded():
            rows = self._db.execute(query + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        entries = []
        for row in reversed(rows):
            try:
                details = json.loads(row[8])
            except (json.JSONDecodeError, TypeError):
                raise self._error(f"state file {self.path} is damaged: history entry {row[0]} has "
                                  f"invalid JSON in column details") from None
            entries.append(HistoryEntry(*row[:8], details=details))
        return entries

    # -- backups -------------------------------------------------------------------------

    def _backup_once(self) -> None:
        if not self._backed_up and self.keep_backups > 0:
            self.backup_now()

    def backup_now(self) -> Path:
        """Copy the state as it is now into the rotating backups."""
        from foundryctl.state.backups import take_backup

        with self._mutex, self._guarded():
            taken = take_backup(self._db, self.path, keep=max(self.keep_backups, 1))
        self._backed_up = True
        return taken

    def raw_rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read-only query, as stored (for `state restore`)."""
        with self._mutex, self._guarded():
            return self._db.execute(query, params).fetchall()

    def restore_from(self, source: sqlite3.Connection) -> None:
        """Replace this state's content with `source`'s, in place (SQLite's backup API, so
        other connections to the file see the change like any write)."""
        with self._mutex, self._guarded():
            source.backup(self._db)
            self._db.execute("PRAGMA journal_mode=WAL")

    # -- lock ----------------------------------------------------------------------------

    def current_lock(self) -> LockInfo | None:
        with self._mutex, self._guarded():
            row = self._db.execute("SELECT id, operation, command, user, host, pid, created_at, "
                                   "process_start FROM lock WHERE name = 'state'").fetchone()
        return LockInfo(*row) if row else None

    def acquire_lock(self, operation: str, *, timeout: float = 0.0,
                     command: str | None = None) -> tuple[LockInfo, LockInfo | None]:
        """Take the state lock, waiting up to `timeout` seconds for a live holder.

        A holder on this host whose process is gone is released and returned as the
        second item, so the caller can say so. Raises StateLockedError on timeout.
        """
        deadline = time.monotonic() + timeout
        self._backed_up = False  # each lock hold backs the state up before its first write
        mine = LockInfo(id=str(uuid.uuid4()), operation=operation, command=command or current_command(),
                        user=current_user(), host=current_host(), pid=os.getpid(),
                        created_at=now_iso(), process_start=process_start(os.getpid()))
        while True:
            stale: LockInfo | None = None
            with self._transaction() as db:
                holder = self.current_lock()
                if holder is not None and holder_alive(holder) is False:
                    stale, holder = holder, None
                    db.execute("DELETE FROM lock WHERE name = 'state'")
                if holder is None:
                    db.execute("INSERT INTO lock (name, id, operation, command, user, host, pid, "
                               "process_start, created_at) VALUES ('state', ?, ?, ?, ?, ?, ?, ?, ?)",
                               (mine.id, mine.operation, mine.command, mine.user, mine.host, mine.pid,
                                mine.process_start, mine.created_at))
            if holder is None:
                if stale is not None:
                    self.append_history("lock-recovered", {"stale_lock": stale.__dict__})
                return mine, stale
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StateLockedError(
                    f"state is locked by {holder.describe()}\n  lock id: {holder.id}", holder,
                    hint=("wait for it to finish, retry with --lock-timeout, or, if you are sure "
                          f"it is gone, run: foundryctl force-unlock {holder.id}"))
            time.sleep(min(0.25, remaining))

    def release_lock(self, lock_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM lock WHERE name = 'state' AND id = ?", (lock_id,))

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove a lock by id (for a holder that can no longer release it)."""
        holder = self.current_lock()
        if holder is None:
            raise StateError("the state is not locked")
        if holder.id != lock_id:
            raise StateError(f"lock id {lock_id} does not match the current lock ({holder.id}, "
                             f"held by {holder.describe()})")
        self.release_lock(lock_id)
        self.append_history("force-unlock", {"lock": holder.__dict__})
        return holder
