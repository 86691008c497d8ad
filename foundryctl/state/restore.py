"""`state restore`: put a backup back in place of a SQLite state file."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from foundryctl.errors import StateError
from foundryctl.state.backups import Backup, backup_dir, copy_database, inspect, list_backups, move_aside
from foundryctl.state.lock import current_command, current_host, current_user
from foundryctl.state.sqlite_store import StateStore, now_iso


@dataclass(frozen=True)
class Current:
    """The state file as it is before a restore: open (`store`, when it can be opened and
    locked) and whether its content is usable (`problem` when not)."""

    store: StateStore | None
    problem: str | None
    resources: int = 0


def open_current(state_path: Path) -> Current:
    if not state_path.exists():
        return Current(None, "there is no state file")
    try:
        store = StateStore(state_path)
    except StateError as exc:
        return Current(None, exc.message)
    try:
        resources = len(store.snapshot().records)
        store.history(1)
    except StateError as exc:  # damaged rows: still lockable, so restored in place
        return Current(store, exc.message)
    return Current(store, None, resources)


def choose_backup(state_path: Path, source: str | None, *, latest: bool,
                  lineage: str | None) -> Backup:
    """The backup SOURCE names (a serial or a path), or with `latest` the newest readable one
    (of this state's lineage, when it is known)."""
    if latest == (source is not None):
        raise StateError("say which backup to restore: a SERIAL, a PATH or --latest",
                         hint="see `foundryctl state backups`")
    if source is not None and not source.isdigit():
        if state_path.exists() and Path(source).exists() and os.path.samefile(source, state_path):
            raise StateError(f"{source} is the state file itself, not a backup of it",
                             hint="see `foundryctl state backups` for the backups there are")
        chosen = inspect(Path(source))
        if chosen.problem:
            raise StateError(f"cannot restore {source}: {chosen.problem}")
        return chosen
    found = [b for b in list_backups(state_path) if b.readable]
    if lineage is not None and any(b.lineage == lineage for b in found):
        found = [b for b in found if b.lineage == lineage]
    if source is not None:
        found = [b for b in found if b.serial == int(source)]
    if not found:
        what = f"with serial {source}" if source is not None else "that can be read"
        raise StateError(f"no backup {what} in {backup_dir(state_path)}",
                         hint="see `foundryctl state backups`")
    return found[0]


def restore(state_path: Path, backup: Backup, current: Current, *, force: bool,
            lock_timeout: float = 0.0) -> str:
    """Restore `backup` over the state at `state_path`; returns what was done, in words.

    A usable current state is locked, backed up, checked for lineage (another lineage only
    with `force`) and overwritten in place through SQLite's backup API, so a process that
    has it open sees an ordinary write. Its serial becomes one more than the current one
    (a plan saved before the restore is stale) and its history entries since the backup
    are kept, followed by a `state-restore` entry. An unusable one is moved aside first.
    """
    if current.store is None:
        if state_path.exists():
            moved = move_aside(state_path)
            note = f"moved the unusable state file to {moved}"
        else:
            note = "there was no state file"
        tmp = state_path.with_name(f".{state_path.name}.restore-{os.getpid()}")
        with sqlite3.connect(f"file:{backup.path}?mode=ro", uri=True) as source:
            copy_database(source, tmp).close()
        os.replace(tmp, state_path)
        with StateStore(state_path, keep_backups=0) as store:
            store.append_history("state-restore", {"from": str(backup.path), "serial": backup.serial,
                                                   "lineage": backup.lineage, "replaced": current.problem})
        return f"{note}; restored serial {backup.serial} from {backup.path}"

    store = current.store
    lineage = store.lineage
    if backup.lineage != lineage and not force:
        raise StateError(f"{backup.path} is a backup of another state (lineage {backup.lineage}; "
                         f"{state_path} is lineage {lineage})",
                         hint="pass --force to replace this state with another one")
    lock, _ = store.acquire_lock("state restore", timeout=lock_timeout)
    try:
        store.backup_now()
        previous = store.serial
        prepared = backup_dir(state_path) / f".restore-{os.getpid()}-{uuid.uuid4().hex[:8]}.db"
        try:
            with sqlite3.connect(f"file:{backup.path}?mode=ro", uri=True) as source:
                staged = copy_database(source, prepared)
            try:
                _prepare(staged, store, lock.id, same_lineage=backup.lineage == lineage,
                         previous=previous, backup=backup, replaced=current.problem)
                store.restore_from(staged)
            finally:
                staged.close()
        finally:
            prepared.unlink(missing_ok=True)
    finally:
        store.release_lock(lock.id)
    was = "damaged" if current.problem else "backed up"
    return (f"restored serial {backup.serial} from {backup.path} as serial {previous + 1} "
            f"(the state was at serial {previous}, {was}; its copy is in {backup_dir(state_path)})")


def _prepare(staged: sqlite3.Connection, store: StateStore, lock_id: str, *, same_lineage: bool,
             previous: int, backup: Backup, replaced: str | None) -> None:
    """Make the staged copy what the state should become, so one backup-API copy puts it in place."""
    live = store.raw_rows
    staged.execute("BEGIN")
    staged.execute("DELETE FROM lock")
    staged.executemany("INSERT INTO lock VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", live("SELECT * FROM lock"))
    serial = previous + 1
    staged.execute("UPDATE meta SET value = ? WHERE key = 'serial'", (str(serial),))
    if same_lineage:  # the history is append-only: keep what happened after the backup
        newest = staged.execute("SELECT coalesce(max(id), 0) FROM history").fetchone()[0]
        staged.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           live("SELECT * FROM history WHERE id > ? ORDER BY id", (newest,)))
    staged.execute("INSERT INTO history (serial, at, event, user, host, pid, command, details) "
                   "VALUES (?, ?, 'state-restore', ?, ?, ?, ?, ?)",
                   (serial, now_iso(), current_user(), current_host(), os.getpid(), current_command(),
                    json.dumps({"from": str(backup.path), "serial": backup.serial,
                                "lineage": backup.lineage, "replaced_serial": previous,
                                "replaced": replaced},
                               sort_keys=True, separators=(",", ":"))))
    staged.execute("COMMIT")
