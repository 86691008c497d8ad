"""State locking between real processes: fail fast naming the holder, wait, recover, force-unlock."""

from __future__ import annotations

import signal
import sqlite3
import time

from conftest import Project

SLOW_HUBS = """\
version: 1
backend: {type: local, api_latency: 0.4}
resources:
""" + "".join(f"  - {{kind: Hub, name: hub-{i}, location: eastus2}}\n" for i in range(5))


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def lock_row(project: Project) -> tuple | None:
    if not project.state_path.exists():
        return None
    with sqlite3.connect(f"file:{project.state_path}?mode=ro", uri=True, timeout=5) as db:
        try:
            return db.execute("SELECT id, pid, operation, host FROM lock").fetchone()
        except sqlite3.OperationalError:
            return None


def test_second_run_fails_fast_naming_the_holder_or_waits(project: Project) -> None:
    project.write(SLOW_HUBS)
    holder = project.start("apply", "--auto-approve", "--parallelism", "1")
    try:
        wait_for(lambda: lock_row(project) is not None)
        lock_id, pid, operation, _ = lock_row(project)
        assert pid == holder.pid and operation == "apply"

        started = time.monotonic()
        blocked = project.cli("plan")
        assert time.monotonic() - started < 10
        assert blocked.code == 1
        assert "state is locked by apply by" in blocked.stderr
        assert f"(pid {holder.pid})" in blocked.stderr
        assert f"foundryctl force-unlock {lock_id}" in blocked.stderr

        waited = project.cli("plan", "--detailed-exitcode", "--lock-timeout", "60")
        assert holder.poll() is not None, "the waiting plan finished before the holder did"
        assert waited.code == 0, waited  # the holder applied everything meanwhile
    finally:
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert lock_row(project) is None


def test_lock_of_a_killed_process_is_released_automatically(project: Project) -> None:
    project.write(SLOW_HUBS)
    holder = project.start("apply", "--auto-approve", "--parallelism", "1")
    wait_for(lambda: len(project.state_rows()) >= 2)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_row(project) is not None  # a killed process cannot clean up

    recovered = project.cli("apply", "--auto-approve")
    assert recovered.code == 0, recovered
    assert "released a stale state lock: apply by" in recovered.stderr
    assert "that process is gone" in recovered.stderr
    assert lock_row(project) is None
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_force_unlock_for_a_holder_on_another_host(project: Project) -> None:
    project.quickstart()
    assert project.cli("plan").code == 0  # creates the state file
    with sqlite3.connect(project.state_path) as db:
        db.execute("INSERT INTO lock (name, id, operation, command, user, host, pid, process_start, "
                   "created_at) VALUES ('state', 'lock-from-ci', 'apply', 'foundryctl apply', 'ci', "
                   "'build-agent-7', 4242, NULL, '2026-11-24T10:00:00Z')")
    blocked = project.cli("plan")
    assert blocked.code == 1
    assert "state is locked by apply by ci@build-agent-7 (pid 4242)" in blocked.stderr

    no_tty = project.cli("force-unlock", "lock-from-ci")
    assert no_tty.code == 1 and "pass --force" in no_tty.stderr
    wrong = project.cli("force-unlock", "some-other-id", "--force")
    assert wrong.code == 1 and "does not match the current lock" in wrong.stderr
    released = project.cli("force-unlock", "lock-from-ci", "--force")
    assert released.code == 0 and "Released the lock held by apply by ci@build-agent-7" in released.stdout
    assert project.cli("plan").code == 0
    assert "force-unlock" in project.cli("state", "history").stdout


def test_concurrent_first_applies_on_a_fresh_directory_name_the_holder(tmp_path) -> None:
    """Runs racing to create the state file: one creates it (atomically), the others open
    that same file and either wait for or are refused by the lock, naming its holder."""
    for trial in range(6):
        project = Project(tmp_path / f"trial-{trial}")
        project.root.mkdir()
        project.quickstart()
        runs = [project.start("apply", "--auto-approve") for _ in range(5)]
        results = [(run.wait(timeout=120), *run.communicate()) for run in runs]
        for code, _, stderr in results:
            assert "database is locked" not in stderr and "This is a bug" not in stderr, stderr
            assert code == 0 or ("state is locked by apply by" in stderr and "(pid " in stderr), stderr
        assert any(code == 0 for code, _, _ in results)
        with sqlite3.connect(f"file:{project.state_path}?mode=ro", uri=True) as db:
            assert db.execute("SELECT count(*) FROM resources").fetchone()[0] == 4
        assert not list(project.state_path.parent.glob(".state.db.new-*")), "no temporary file left"
