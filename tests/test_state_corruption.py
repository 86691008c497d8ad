"""A damaged, emptied or foreign state file is refused through the real CLI, never used or
re-created; backups are taken before each apply changes the state and `state restore` puts
one back; concurrent first runs on a fresh directory name the lock holder."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from conftest import CliResult, Project


def applied(project: Project) -> Project:
    project.quickstart()
    result = project.cli("apply", "--auto-approve")
    assert result.code == 0, result
    return project


def sql(project: Project, *statements: str) -> None:
    db = sqlite3.connect(project.state_path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()  # the last connection checkpoints the WAL into the file


def lineage(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'lineage'").fetchone()[0]


def refused(result: CliResult, project: Project, *words: str) -> None:
    """A clean exit-1 StateError naming the file and each of `words`, not a crash."""
    assert result.code == 1, result
    assert "This is a bug" not in result.output and "Traceback" not in result.output, result
    assert ".foundryctl/state.db" in result.stderr, result  # as the manifest names it
    for word in words:
        assert word in result.stderr, result


# -- item 1: damage inside rows and pages ------------------------------------------------


@pytest.mark.parametrize(("statement", "words"), [
    ("UPDATE resources SET attributes = '{\"location\": ' WHERE address = 'Hub.ft-hub'",
     ("'Hub.ft-hub'", "invalid JSON in column attributes")),
    ("UPDATE resources SET outputs = '[1, 2]' WHERE address = 'Hub.ft-hub'",
     ("'Hub.ft-hub'", "not a JSON object in column outputs")),
    ("UPDATE resources SET status = 'exploded' WHERE address = 'Project.xbox-support'",
     ("'Project.xbox-support'", "unknown status", "'exploded'")),
    ("UPDATE resources SET updated_serial = 'seven' WHERE address = 'Hub.ft-hub'",
     ("'Hub.ft-hub'", "updated_serial")),
])
def test_bad_row_is_a_state_error_naming_the_resource(project: Project, statement: str,
                                                      words: tuple[str, ...]) -> None:
    applied(project)
    sql(project, statement)
    for command in (("plan",), ("state", "list"), ("apply", "--auto-approve")):
        refused(project.cli(*command), project, "is damaged", *words)
    address = words[0].strip("'")
    refused(project.cli("state", "show", address), project, "is damaged", *words)


def test_non_integer_serial_is_refused_on_open(project: Project) -> None:
    applied(project)
    sql(project, "UPDATE meta SET value = '12abc' WHERE key = 'serial'")
    refused(project.cli("plan"), project, "serial '12abc' is not an integer", "foundryctl state restore")


def test_malformed_page_fails_the_integrity_check(project: Project) -> None:
    applied(project)
    data = bytearray(project.state_path.read_bytes())
    assert len(data) >= 3 * 4096
    data[2 * 4096:2 * 4096 + 200] = b"\xa5" * 200  # garbage over a b-tree page header
    project.state_path.write_bytes(bytes(data))
    result = project.cli("state", "list")
    refused(result, project, "is damaged", "foundryctl state restore --latest")
    assert project.cli("apply", "--auto-approve").code == 1
    assert project.state_path.read_bytes() == bytes(data), "a refused file is never written"


# -- item 3: empty, dropped, foreign --------------------------------------------------------


def test_empty_file_is_refused_not_recreated(project: Project) -> None:
    applied(project)
    project.state_path.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        Path(f"{project.state_path}{suffix}").unlink(missing_ok=True)
    result = project.cli("apply", "--auto-approve")
    refused(result, project, "is empty (0 bytes)", "state.db.backups/serial-")
    assert project.state_path.stat().st_size == 0


def test_fresh_directory_still_starts_a_state(project: Project) -> None:
    project.quickstart()
    assert project.cli("plan").code == 0
    assert str(uuid.UUID(lineage(project.state_path))) == lineage(project.state_path)


def test_dropped_table_is_refused(project: Project) -> None:
    applied(project)
    before = lineage(project.state_path)
    sql(project, "DROP TABLE resources")
    refused(project.cli("plan"), project, "table(s) resources are missing", "state restore")
    with sqlite3.connect(project.state_path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "resources" not in tables, "the table must not be re-created empty"
    assert lineage(project.state_path) == before


def test_another_programs_database_is_refused_as_foreign(project: Project) -> None:
    project.quickstart()
    project.state_path.parent.mkdir()
    with sqlite3.connect(project.state_path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    refused(project.cli("plan"), project, "another program", "users")
    with sqlite3.connect(project.state_path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"users"}


def test_a_file_that_is_not_sqlite_is_refused(project: Project) -> None:
    project.quickstart()
    project.state_path.parent.mkdir()
    project.state_path.write_text('{"version": 4, "terraform_version": "1.9.0"}\n')
    refused(project.cli("plan"), project, "is not a database")


# -- item 4: backups and restore --------------------------------------------------------


def backups(project: Project) -> list[dict]:
    import json

    result = project.cli("state", "backups", "--json")
    assert result.code == 0, result
    return json.loads(result.stdout)


def test_each_apply_backs_up_once_and_rotation_keeps_five(project: Project) -> None:
    applied(project)
    assert [(b["serial"], b["resources"]) for b in backups(project)] == [(0, 0)]
    for n in range(6):
        project.edit(f"description: {'Fine-tuning hub' if n == 0 else f'hub {n - 1}'}",
                     f"description: hub {n}")
        assert project.cli("apply", "--auto-approve").code == 0
    found = backups(project)
    assert len(found) == 5
    serials = [b["serial"] for b in found]
    assert serials == sorted(serials, reverse=True) and len(set(serials)) == 5
    assert all(b["resources"] == 4 and b["problem"] is None for b in found)
    listing = project.cli("state", "backups")
    assert listing.code == 0 and "SERIAL" in listing.stdout and f"{serials[0]:>6}" in listing.stdout
    assert project.cli("plan", "--detailed-exitcode").code == 0  # a plan writes no backup
    assert len(backups(project)) == 5


def test_restore_latest_after_damage(project: Project) -> None:
    applied(project)
    project.edit("description: Fine-tuning hub", "description: second")
    assert project.cli("apply", "--auto-approve").code == 0
    before = lineage(project.state_path)
    newest = backups(project)[0]
    sql(project, "UPDATE resources SET status = 'exploded'")

    asked = project.cli("state", "restore", "--latest")
    assert asked.code == 1 and "pass --auto-approve" in asked.stderr
    done = project.cli("state", "restore", "--latest", "--auto-approve")
    assert done.code == 0, done
    assert "damaged" in done.stdout
    assert lineage(project.state_path) == before
    listed = project.cli("state", "list")
    assert listed.code == 0 and "Hub.ft-hub" in listed.stdout
    assert int(sql_value(project, "SELECT value FROM meta WHERE key = 'serial'")) > newest["serial"]
    # The state is usable again, and an apply converges on what exists.
    assert project.cli("apply", "--auto-approve").code == 0
    assert project.cli("plan", "--detailed-exitcode").code == 0
    assert "state-restore" in project.cli("state", "history").stdout


def test_restore_of_a_healthy_state_backs_it_up_and_keeps_history(project: Project) -> None:
    applied(project)
    project.edit("description: Fine-tuning hub", "description: second")
    assert project.cli("apply", "--auto-approve").code == 0
    serial_before = int(sql_value(project, "SELECT value FROM meta WHERE key = 'serial'"))
    done = project.cli("state", "restore", "0", "--auto-approve")
    assert done.code == 0, done
    assert sql_value(project, "SELECT count(*) FROM resources") == 0
    assert int(sql_value(project, "SELECT value FROM meta WHERE key = 'serial'")) == serial_before + 1
    assert any(b["serial"] == serial_before and b["resources"] == 4 for b in backups(project))
    history = project.cli("state", "history").stdout
    assert history.count("apply-finished") == 2 and "state-restore" in history
    assert sql_value(project, "SELECT count(*) FROM lock") == 0
    # Back again: the pre-restore backup brings the four resources back.
    assert project.cli("state", "restore", str(serial_before), "--auto-approve").code == 0
    assert sql_value(project, "SELECT count(*) FROM resources") == 4
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_restore_refuses_another_lineage_without_force(project: Project, tmp_path: Path) -> None:
    applied(project)
    other = Project(tmp_path / "other")
    other.root.mkdir()
    applied(other)
    foreign = other.state_path.parent / "state.db.backups" / "serial-000000-{}.db".format(
        lineage(other.state_path)[:8])
    assert foreign.exists()
    refusal = project.cli("state", "restore", str(foreign), "--auto-approve")
    assert refusal.code == 1 and "another state" in refusal.stderr and "--force" in refusal.stderr
    forced = project.cli("state", "restore", str(foreign), "--auto-approve", "--force")
    assert forced.code == 0, forced
    assert lineage(project.state_path) == lineage(other.state_path)


def test_restore_refuses_the_state_file_itself(project: Project) -> None:
    applied(project)
    serial = sql_value(project, "SELECT value FROM meta WHERE key = 'serial'")
    refusal = project.cli("state", "restore", ".foundryctl/state.db", "--auto-approve")
    assert refusal.code == 1 and "is the state file itself" in refusal.stderr, refusal
    assert sql_value(project, "SELECT value FROM meta WHERE key = 'serial'") == serial


def test_restore_waits_for_no_one_but_takes_the_lock(project: Project) -> None:
    applied(project)
    sql(project, "INSERT INTO lock (name, id, operation, command, user, host, pid, process_start, "
                 "created_at) VALUES ('state', 'ci-lock', 'apply', 'foundryctl apply', 'ci', "
                 "'build-agent-7', 4242, NULL, '2026-11-24T10:00:00Z')")
    blocked = project.cli("state", "restore", "--latest", "--auto-approve")
    assert blocked.code == 1 and "state is locked by apply by ci@build-agent-7" in blocked.stderr


def sql_value(project: Project, query: str):
    with sqlite3.connect(f"file:{project.state_path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchone()[0]


def test_restore_replaces_a_file_that_cannot_be_opened_and_keeps_it_aside(project: Project) -> None:
    applied(project)
    project.edit("description: Fine-tuning hub", "description: second")
    assert project.cli("apply", "--auto-approve").code == 0  # backed up serial with 4 resources
    project.state_path.write_bytes(b"")
    done = project.cli("state", "restore", "--latest", "--auto-approve")
    assert done.code == 0, done
    assert "moved the unusable state file" in done.stdout
    assert any(b["problem"] and "broken-" in b["path"] for b in backups(project))
    assert project.cli("state", "list").code == 0
    assert project.cli("apply", "--auto-approve").code == 0
    assert project.cli("plan", "--detailed-exitcode").code == 0
