"""SIGKILL a real apply at chosen points; the next apply converges and nothing is orphaned.

The local backend's `api_latency` widens the windows between the steps of one operation
(intent committed -> backend request -> backend committed -> result recorded), so the test
can watch the state and control-plane files and kill the process inside a chosen window.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from conftest import Project

from foundryctl.backends import arm

LATENCY = 0.6


def wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.005)


def kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def hub_id(project: Project, name: str) -> str:
    cloud = project.cloud()
    try:
        return arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", name).lower()
    finally:
        cloud.close()


def assert_converged(project: Project) -> None:
    """Apply again; afterwards state and the backend agree exactly and a plan is empty."""
    project.edit(f"api_latency: {LATENCY}", "api_latency: 0")
    converged = project.cli("apply", "--auto-approve")
    project.edit("api_latency: 0", f"api_latency: {LATENCY}")
    assert converged.code == 0, converged
    assert project.cli("plan", "--detailed-exitcode").code == 0
    store = project.state()
    records = store.records()
    store.close()
    assert all(r.status.value == "ready" for r in records)
    managed = {r.backend_id.lower() for r in records if r.kind != "ProviderRegistration"}
    assert project.cloud_ids() == managed, "orphaned or missing objects"


@pytest.fixture
def crash_project(project: Project) -> Project:
    project.quickstart(registration_delay=0.05, api_latency=LATENCY)
    return project


def test_kill_after_intent_before_backend_creates(crash_project: Project) -> None:
    project = crash_project
    apply = project.start("apply", "--auto-approve")
    wait_until(lambda: project.state_rows().get("Hub.ft-hub") == "creating")
    kill(apply)
    assert hub_id(project, "ft-hub") not in project.cloud_ids()  # killed before the request landed
    plan = project.cli("plan")
    assert "interrupted while creating this resource; it does not exist" in plan.stderr
    assert "+ Hub.ft-hub" in plan.stdout
    assert_converged(project)


def test_kill_after_backend_created_before_result_recorded(crash_project: Project) -> None:
    project = crash_project
    apply = project.start("apply", "--auto-approve")
    target = hub_id(project, "ft-hub")
    wait_until(lambda: target in project.cloud_ids())
    kill(apply)
    assert project.state_rows()["Hub.ft-hub"] == "creating"  # the result never reached state
    plan = project.cli("plan")
    assert "interrupted while creating this resource; it exists" in plan.stderr
    assert "+ Hub.ft-hub" not in plan.stdout  # known again, not created twice
    assert_converged(project)


def test_kill_during_update(crash_project: Project) -> None:
    project = crash_project
    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("description: Fine-tuning hub", "description: updated")
    apply = project.start("apply", "--auto-approve")
    wait_until(lambda: project.state_rows().get("Hub.ft-hub") == "updating")
    kill(apply)
    assert_converged(project)
    cloud = project.cloud()
    assert cloud.get(hub_id(project, "ft-hub")).properties["description"] == "updated"
    cloud.close()


@pytest.mark.parametrize("window", ["before the delete lands", "after the delete landed"])
def test_kill_during_destroy(crash_project: Project, window: str) -> None:
    project = crash_project
    assert project.cli("apply", "--auto-approve").code == 0
    destroy = project.start("destroy", "--auto-approve")
    if window == "before the delete lands":
        wait_until(lambda: project.state_rows().get("RoleAssignment.ml-engineer") == "deleting")
    else:
        wait_until(lambda: len(project.cloud_ids()) == 2)  # the role assignment is gone
    kill(destroy)
    project.edit(f"api_latency: {LATENCY}", "api_latency: 0")
    finished = project.cli("destroy", "--auto-approve")
    assert finished.code == 0, finished
    assert project.cloud_ids() == set()
    assert project.state_rows() == {}


def test_kill_at_random_points_of_a_larger_apply(project: Project) -> None:
    resources = "".join(
        f"  - {{kind: Hub, name: hub-{i}, location: eastus2}}\n"
        f"  - {{kind: Project, name: project-{i}, hub: hub-{i}}}\n"
        f"  - {{kind: RoleAssignment, name: dev-{i}, principal: dev{i}, role: Reader, "
        f"scope: {{project: project-{i}}}}}\n" for i in range(6))
    project.write(f"version: 1\nbackend: {{type: local, api_latency: 0.15}}\nresources:\n{resources}")
    rng = random.Random(20261124)
    killed = 0
    for _ in range(5):
        apply = project.start("apply", "--auto-approve", "--parallelism", "3")
        time.sleep(rng.uniform(0.3, 1.2))
        apply.send_signal(signal.SIGKILL)  # unless it finished first: either is a valid run
        killed += apply.wait() == -signal.SIGKILL
    assert killed >= 3, "the kills should land while applies are running"
    project.edit("api_latency: 0.15", f"api_latency: {LATENCY}")  # assert_converged expects it
    assert_converged(project)
    assert len(project.cloud_ids()) == 18
