"""The SQLite state store keeps its promises.

A 0600 file in WAL mode; a lineage that never changes and a serial that moves by one per
write transaction; snapshots equal to what was written; an append-only history; a lock
that names its holder, waits, recovers from dead holders on this host (only) and can be
forced open by id. Real SQLite files under tmp_path, no mocks.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundryctl.errors import StateError, StateLockedError
from foundryctl.state import LockInfo, ResourceRecord, StateStore, Status
from foundryctl.state.lock import current_command, current_user

# -- helpers and fixtures --------------------------------------------------------------


def record(address: str, **overrides: Any) -> ResourceRecord:
    """A ResourceRecord for `Kind.name` with some non-trivial content."""
    kind, name = address.split(".", 1)
    fields: dict[str, Any] = {
        "address": address, "kind": kind, "name": name,
        "backend_id": f"/subscriptions/s/resourceGroups/rg/providers/X/{name}",
        "status": Status.READY,
        "attributes": {"location": "eastus2", "tags": {"team": "ml", "z": "é☃"},
                       "nested": [1, 2.5, None, True, {"k": [0.1, 1e-7]}]},
        "outputs": {"id": f"/x/{name}", "etag": '"e1"', "count": 3},
        "dependencies": [], "protect": False,
    }
    fields.update(overrides)
    return ResourceRecord(**fields)


def content(r: ResourceRecord) -> tuple:
    """What the caller wrote (everything but the store-assigned serial and time)."""
    return (r.address, r.kind, r.name, r.backend_id, r.status, r.attributes, r.outputs,
            r.dependencies, r.protect)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "foundryctl.db"


@pytest.fixture
def store(path: Path) -> Iterator[StateStore]:
    s = StateStore(path)
    yield s
    s.close()


@pytest.fixture
def other(path: Path, store: StateStore) -> Iterator[StateStore]:
    """A second store on the same file, as a second foundryctl process would open it."""
    s = StateStore(path)
    yield s
    s.close()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 000, so any restriction of the file mode is the store's doing."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, bypassing StateStore."""
    return sqlite3.connect(path, isolation_level=None, timeout=5)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def insert_lock(path: Path, *, pid: int, host: str, operation: str = "apply") -> str:
    """Write a lock row directly, as another foundryctl would have; returns its id."""
    lock_id = str(uuid.uuid4())
    with raw(path) as db:
        db.execute("INSERT INTO lock (name, id, operation, command, user, host, pid, process_start, "
                   "created_at) VALUES ('state', ?, ?, ?, ?, ?, ?, NULL, ?)",
                   (lock_id, operation, "foundryctl apply", "someone", host, pid,
                    "2026-01-01T00:00:00.000Z"))
    return lock_id


# -- the file --------------------------------------------------------------------------


class TestFile:
    def test_created_with_mode_0600(self, tmp_path: Path, open_umask: None) -> None:
        path = tmp_path / "new" / "state.db"
        store = StateStore(path)
        try:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        finally:
            store.close()

    def test_wal_and_shm_files_are_private(self, path: Path, open_umask: None) -> None:
        store = StateStore(path)
        try:
            store.put(record("Hub.a"))
            store.append_history("apply", {"n": 1})
            companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(p.exists() for p in companions), "WAL mode keeps -wal/-shm while open"
            for p in [path, *companions]:
                mode = stat.S_IMODE(p.stat().st_mode)
                assert mode & 0o077 == 0, f"{p.name} has mode {oct(mode)}"
        finally:
            store.close()

    def test_journal_mode_is_wal(self, store: StateStore, path: Path) -> None:
        with raw(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"

    def test_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "state.db"
        path.write_bytes(b"this is not a SQLite database, just some text\n" * 200)
        with pytest.raises(StateError) as excinfo:
            StateStore(path)
        error = excinfo.value
        assert str(path) in error.message
        assert "not a database" in error.message
        assert error.hint and "state file" in error.hint

    def test_newer_schema_is_refused(self, path: Path) -> None:
        StateStore(path).close()
        with raw(path) as db:
            db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
        with pytest.raises(StateError, match="newer foundryctl"):
            StateStore(path)


    def test_a_second_store_in_one_process_leaves_the_first_ones_locks(
            self, path: Path, store: StateStore, other: StateStore) -> None:
        """Opening `other` beside `store` (an SDK caller's second Stack) must not drop the
        process's POSIX locks: without them, another process that closes takes itself for
        the last connection, checkpoints and deletes the WAL, and this process goes on
        reading a WAL index that no longer matches the file (stale rows, then "database disk
        image is malformed")."""
        writer = ("import sys\n"
                  "from foundryctl.state import ResourceRecord, StateStore, Status\n"
                  "s = StateStore(sys.argv[1])\n"
                  "for n in range(int(sys.argv[2])):\n"
                  "    s.put(ResourceRecord(address=f'Hub.h{n % 20}', kind='Hub', name=f'h{n % 20}',\n"
                  "                         backend_id=None, status=Status.READY,\n"
                  "                         attributes={'n': n, 'pad': 'x' * 3000}))\n"
                  "print('written', flush=True)\n"
                  "sys.stdin.readline()\n"
                  "s.close()\n")

        def start(writes: int) -> subprocess.Popen:
            process = subprocess.Popen([sys.executable, "-c", writer, str(path), str(writes)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None and process.stdout.readline() == "written\n"
            return process

        def finish(process: subprocess.Popen) -> None:
            process.communicate("\n", timeout=60)
            assert process.returncode == 0

        first = start(400)
        assert store.get("Hub.h0").attributes["n"] == 380  # this process reads the first's WAL
        finish(first)  # the first writer closes; it is not the last connection
        second = start(20)
        try:
            assert store.get("Hub.h0").attributes["n"] == 0
            fresh = StateStore(path)
            try:
                assert {r.name: r.attributes["n"] for r in fresh.records()} == {f"h{n}": n for n in range(20)}
            finally:
                fresh.close()
        finally:
            finish(second)

# -- lineage and serial ----------------------------------------------------------------


class TestSerial:
    def test_lineage_is_a_stable_uuid(self, path: Path, tmp_path: Path) -> None:
        store = StateStore(path)
        lineage = store.lineage
        assert str(uuid.UUID(lineage)) == lineage
        store.put(record("Hub.a"))
        store.close()
        reopened = StateStore(path)
        try:
            assert reopened.lineage == lineage
            assert reopened.snapshot().lineage == lineage
        finally:
            reopened.close()
        elsewhere = StateStore(tmp_path / "other.db")
        try:
            assert elsewhere.lineage != lineage
        finally:
            elsewhere.close()

    def test_serial_moves_by_one_per_write(self, store: StateStore, other: StateStore) -> None:
        assert store.serial == 0
        assert store.put(record("Hub.a")) == 1
        assert store.put(record("Hub.a", protect=True)) == 2
        assert store.write(puts=[record("Hub.b"), record("Project.c")]) == 3
        assert store.remove("Hub.b") == 4
        assert store.write(puts=[record("Hub.d")], removes=["Project.c"]) == 5
        assert store.serial == other.serial == store.snapshot().serial == 5

    def test_serial_survives_reopen(self, path: Path) -> None:
        store = StateStore(path)
        store.put(record("Hub.a"))
        store.put(record("Hub.b"))
        store.close()
        reopened = StateStore(path)
        try:
            assert reopened.serial == 2
            assert reopened.put(record("Hub.c")) == 3
        finally:
            reopened.close()

    def test_history_and_locks_do_not_move_the_serial(self, store: StateStore) -> None:
        store.put(record("Hub.a"))
        lock, _ = store.acquire_lock("apply")
        store.append_history("apply", {})
        store.release_lock(lock.id)
        assert store.serial == 1

    def test_records_carry_the_serial_that_wrote_them(self, store: StateStore) -> None:
        store.put(record("Hub.a"))
        serial = store.write(puts=[record("Hub.b"), record("Hub.c")])
        records = store.snapshot().records
        assert records["Hub.a"].updated_serial == 1
        assert records["Hub.b"].updated_serial == records["Hub.c"].updated_serial == serial == 2
        assert records["Hub.b"].updated_at == records["Hub.c"].updated_at != ""

    def test_write_is_one_transaction(self, store: StateStore, other: StateStore) -> None:
        store.write(puts=[record("Hub.a"), record("Hub.b")])
        serial = store.write(puts=[record("Hub.c")], removes=["Hub.a"])
        snap = other.snapshot()
        assert snap.serial == serial == 2
        assert list(snap.records) == ["Hub.b", "Hub.c"]

    def test_failed_write_changes_nothing(self, store: StateStore) -> None:
        """If a write fails part way, neither its puts nor its removes nor a serial bump remain."""
        store.put(record("Hub.a"))
        before = store.snapshot()

        def removes() -> Iterator[str]:
            yield "Hub.a"
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            store.write(puts=[record("Hub.new")], removes=removes())
        after = store.snapshot()
        assert after.serial == before.serial == 1
        assert list(after.records) == ["Hub.a"]
        # And the store is still usable.
        assert store.put(record("Hub.b")) == 2


# -- snapshot --------------------------------------------------------------------------


class TestSnapshot:
    def test_records_round_trip_in_insertion_order(self, store: StateStore) -> None:
        written = [
            record("ProviderRegistration.net", attributes={"namespace": "Microsoft.Network"}, outputs={}),
            record("Hub.main", protect=True),
            record("Project.zeta", dependencies=["Hub.main", "ProviderRegistration.net"],
                   status=Status.CREATING, backend_id=None),
            record("RoleAssignment.alpha", dependencies=["Project.zeta"], status=Status.UPDATING),
            record("Project.old", status=Status.DELETING),
        ]
        for r in written:
            store.put(r)
        snap = store.snapshot()
        assert list(snap.records) == [r.address for r in written]
        assert [content(r) for r in snap.records.values()] == [content(r) for r in written]
        assert [content(r) for r in store.records()] == [content(r) for r in written]
        for r in written:
            got = store.get(r.address)
            assert got is not None and got == snap.records[r.address]
        assert isinstance(snap.records["Hub.main"].status, Status)
        assert snap.records["Hub.main"].protect is True
        assert snap.records["Project.zeta"].protect is False

    def test_one_write_keeps_its_order(self, store: StateStore) -> None:
        addresses = [f"Hub.h{i:02d}" for i in range(20, 0, -1)]
        store.write(puts=[record(a) for a in addresses])
        assert list(store.snapshot().records) == addresses

    def test_removed_records_are_gone(self, store: StateStore) -> None:
        store.write(puts=[record("Hub.a"), record("Hub.b")])
        store.remove("Hub.a")
        assert list(store.snapshot().records) == ["Hub.b"]
        assert store.get("Hub.a") is None

    def test_other_store_sees_writes(self, store: StateStore, other: StateStore) -> None:
        r = record("Hub.a")
        store.put(r)
        got = other.get("Hub.a")
        assert got is not None and content(got) == content(r)

    def test_empty(self, store: StateStore) -> None:
        snap = store.snapshot()
        assert snap.serial == 0 and snap.records == {}
        assert store.get("Hub.nothing") is None


# -- history ---------------------------------------------------------------------------


class TestHistory:
    def test_entries_come_back_in_order(self, store: StateStore) -> None:
        store.append_history("plan", {"changes": 0})
        store.put(record("Hub.a"))
        store.append_history("apply", {"created": ["Hub.a"]})
        store.append_history("state-rm", {"address": "Hub.a", "nested": {"x": [1, 2]}})
        entries = store.history()
        assert [e.event for e in entries] == ["plan", "apply", "state-rm"]
        assert [e.details for e in entries] == [{"changes": 0}, {"created": ["Hub.a"]},
                                               {"address": "Hub.a", "nested": {"x": [1, 2]}}]
        assert [e.serial for e in entries] == [0, 1, 1]
        assert [e.id for e in entries] == sorted(e.id for e in entries)
        for e in entries:
            assert e.user == current_user()
            assert e.host == socket.gethostname()
            assert e.pid == os.getpid()
            assert e.command == current_command()
            assert e.at.endswith("Z")
        assert [e.event for e in store.history(limit=2)] == ["apply", "state-rm"]

    @pytest.mark.parametrize("statement", [
        "UPDATE history SET event = 'tampered'",
        "UPDATE history SET details = '{}' WHERE event = 'apply'",
        "DELETE FROM history",
        "DELETE FROM history WHERE event = 'plan'",
    ])
    def test_history_is_append_only(self, store: StateStore, path: Path, statement: str) -> None:
        store.append_history("plan", {})
        store.append_history("apply", {"a": 1})
        db = raw(path)
        try:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
        finally:
            db.close()
        assert [(e.event, e.details) for e in store.history()] == [("plan", {}), ("apply", {"a": 1})]


# -- the lock --------------------------------------------------------------------------


class TestLock:
    def test_acquire_names_the_holder(self, store: StateStore) -> None:
        lock, stale = store.acquire_lock("apply", command="foundryctl apply -auto-approve")
        assert stale is None
        assert isinstance(lock, LockInfo)
        assert str(uuid.UUID(lock.id)) == lock.id
        assert lock.operation == "apply"
        assert lock.command == "foundryctl apply -auto-approve"
        assert lock.pid == os.getpid()
        assert lock.host == socket.gethostname()
        assert lock.user == current_user()
        assert store.current_lock() == lock
        store.release_lock(lock.id)
        assert store.current_lock() is None

    def test_default_command_is_this_process(self, store: StateStore) -> None:
        lock, _ = store.acquire_lock("plan")
        assert lock.command == current_command()

    def test_second_acquire_is_refused(self, store: StateStore, other: StateStore) -> None:
        lock, _ = store.acquire_lock("apply")
        started = time.monotonic()
        with pytest.raises(StateLockedError) as excinfo:
            other.acquire_lock("destroy", timeout=0)
        assert time.monotonic() - started < 1.0
        error = excinfo.value
        assert f"pid {os.getpid()}" in error.message
        assert "apply" in error.message
        assert lock.id in error.message
        assert error.hint is not None and f"force-unlock {lock.id}" in error.hint
        assert error.holder == lock
        assert other.current_lock() == lock  # still held by the first

    def test_release_lets_the_next_in(self, store: StateStore, other: StateStore) -> None:
        first, _ = store.acquire_lock("apply")
        store.release_lock(first.id)
        second, stale = other.acquire_lock("apply", timeout=0)
        assert stale is None and second.id != first.id
        assert store.current_lock() == second

    def test_release_with_another_id_does_nothing(self, store: StateStore) -> None:
        lock, _ = store.acquire_lock("apply")
        store.release_lock(str(uuid.uuid4()))
        assert store.current_lock() == lock

    def test_waits_until_released(self, store: StateStore, other: StateStore) -> None:
        lock, _ = store.acquire_lock("apply")
        releaser = threading.Timer(0.3, store.release_lock, args=(lock.id,))
        started = time.monotonic()
        releaser.start()
        try:
            mine, stale = other.acquire_lock("plan", timeout=10)
        finally:
            releaser.join()
        waited = time.monotonic() - started
        assert stale is None
        assert 0.25 <= waited < 3.0
        assert store.current_lock() == mine and mine.operation == "plan"

    def test_wait_gives_up_after_timeout(self, store: StateStore, other: StateStore) -> None:
        store.acquire_lock("apply")
        started = time.monotonic()
        with pytest.raises(StateLockedError):
            other.acquire_lock("plan", timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 2.0

    def test_dead_holder_on_this_host_is_released(self, store: StateStore, path: Path) -> None:
        pid = dead_pid()
        stale_id = insert_lock(path, pid=pid, host=socket.gethostname())
        lock, stale = store.acquire_lock("apply", timeout=0)
        assert stale is not None
        assert stale.id == stale_id and stale.pid == pid and stale.operation == "apply"
        assert lock.id != stale_id and lock.pid == os.getpid()
        assert store.current_lock() == lock
        recovered = store.history()[-1]
        assert recovered.event == "lock-recovered"
        assert recovered.details["stale_lock"]["id"] == stale_id

    def test_holder_on_another_host_is_not_released(self, store: StateStore, path: Path) -> None:
        pid = dead_pid()  # dead here, but that says nothing about a process on another host
        held_id = insert_lock(path, pid=pid, host=f"not-{socket.gethostname()}.example")
        with pytest.raises(StateLockedError) as excinfo:
            store.acquire_lock("apply", timeout=0)
        assert excinfo.value.hint is not None and f"force-unlock {held_id}" in excinfo.value.hint
        current = store.current_lock()
        assert current is not None and current.id == held_id

    def test_force_unlock(self, store: StateStore, other: StateStore) -> None:
        lock, _ = store.acquire_lock("apply")
        with pytest.raises(StateError, match=lock.id):
            other.force_unlock(str(uuid.uuid4()))
        assert other.current_lock() == lock

        removed = other.force_unlock(lock.id)
        assert removed == lock
        assert store.current_lock() is None
        entry = other.history()[-1]
        assert entry.event == "force-unlock"
        assert entry.details["lock"]["id"] == lock.id
        assert entry.pid == os.getpid()

        again, _ = other.acquire_lock("plan", timeout=0)  # free for the next one
        assert store.current_lock() == again

    def test_force_unlock_when_not_locked(self, store: StateStore) -> None:
        with pytest.raises(StateError, match="not locked"):
            store.force_unlock(str(uuid.uuid4()))
        assert store.history() == []
