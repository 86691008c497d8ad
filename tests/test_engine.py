"""The engine's parts on their own: graph, attribute diff, operation ordering, the walker, plan data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Annotated, ClassVar, Literal

import pytest
from pydantic import Field

from foundryctl.apply.operations import Operation, operations
from foundryctl.apply.walker import walk
from foundryctl.graph import CycleError, Graph
from foundryctl.kinds import KINDS, Kind, Ref, Spec, register
from foundryctl.manifest import load_manifest
from foundryctl.plan import Action, Mode, Plan, ResourceChange, StateRepair
from foundryctl.plan.diff import diff_attributes

# -- graph --------------------------------------------------------------------------------

def test_topological_order_closure_and_cycles() -> None:
    graph = Graph()
    graph.add_edge("Project.p", "Hub.h")
    graph.add_edge("RoleAssignment.r", "Project.p")
    graph.add_edge("Hub.h", "ProviderRegistration.n")
    graph.add_node("Hub.other")
    order = graph.topological_order()
    assert order.index("ProviderRegistration.n") < order.index("Hub.h") < order.index("Project.p") \
        < order.index("RoleAssignment.r")
    assert graph.closure(["Project.p"]) == {"Project.p", "Hub.h", "ProviderRegistration.n"}
    assert graph.closure(["Hub.h"], reverse=True) == {"Hub.h", "Project.p", "RoleAssignment.r"}

    graph.add_edge("ProviderRegistration.n", "RoleAssignment.r")
    with pytest.raises(CycleError) as cycle:
        graph.topological_order()
    path = cycle.value.cycle
    assert path[0] == path[-1] and len(path) == 5
    assert set(path) == {"ProviderRegistration.n", "Hub.h", "Project.p", "RoleAssignment.r"}


class NotebookSpec(Spec):
    kind: Literal["Notebook"]
    project: Annotated[str, Ref("Project", containment=True)]


class Notebook(Kind):
    """A data-plane kind for the test: it needs a role, so it waits for covering assignments."""

    name: ClassVar[str] = "Notebook"
    spec = NotebookSpec
    needs_role = True

    @classmethod
    def scope_chain(cls, decl, manifest):
        project = manifest.resources[f"Project.{decl.spec.project}"]
        return [f"Hub.{project.spec.hub}", f"Project.{decl.spec.project}"]


@pytest.fixture
def notebook_kind():
    register(Notebook)
    yield Notebook
    KINDS.pop("Notebook")


def test_data_plane_kinds_wait_for_covering_role_assignments(tmp_path, notebook_kind) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("""\
version: 1
resources:
  - {kind: Hub, name: hub-a, location: eastus2}
  - {kind: Project, name: proj-a, hub: hub-a}
  - {kind: Project, name: proj-b, hub: hub-a}
  - {kind: RoleAssignment, name: on-rg, principal: me, role: Reader, scope: resource_group}
  - {kind: RoleAssignment, name: on-hub, principal: me, role: Reader, scope: {hub: hub-a}}
  - {kind: RoleAssignment, name: on-a, principal: me, role: Reader, scope: {project: proj-a}}
  - {kind: RoleAssignment, name: on-b, principal: me, role: Reader, scope: {project: proj-b}}
  - {kind: Notebook, name: nb, project: proj-a}
""")
    graph = load_manifest(manifest).graph
    assert set(graph.dependencies("Notebook.nb")) == {"Project.proj-a", "RoleAssignment.on-rg",
                                                      "RoleAssignment.on-hub", "RoleAssignment.on-a"}
    assert graph.dependencies("Hub.hub-a") == []


def test_ref_fields_become_edges_for_new_kinds() -> None:
    class GadgetSpec(Spec):
        kind: Literal["Gadget"]
        hub: Annotated[str, Ref("Hub")]
        projects: Annotated[list[str], Ref("Project", containment=True)] = Field(default_factory=list)

    class Gadget(Kind):
        name: ClassVar[str] = "Gadget"
        spec = GadgetSpec

    spec = GadgetSpec(kind="Gadget", name="g", hub="h", projects=["p1", "p2"])
    refs = Gadget.references(spec)
    assert [(r.path, r.target, r.containment) for r in refs] == [
        (("hub",), "Hub.h", False), (("projects", 0), "Project.p1", True), (("projects", 1), "Project.p2", True)]


# -- diff -----------------------------------------------------------------------------------

def test_diff_ignores_unmanaged_and_flags_forced_replacement() -> None:
    actual = {"location": "eastus2", "display_name": "Portal name", "tags": {"a": "1", "b": "2"},
              "description": ""}
    desired = {"location": "westus", "display_name": None, "tags": {"a": "1", "c": "3"}, "description": ""}
    changes = diff_attributes(actual, desired, force_new={"location"})
    summary = [(c.dotted, c.kind, c.before, c.after, c.forces_replacement) for c in changes]
    assert summary == [("location", "change", "eastus2", "westus", True),
                       ("tags.b", "remove", "2", None, False),
                       ("tags.c", "add", None, "3", False)]
    assert diff_attributes(actual, dict(actual, display_name=None)) == []
    # Drift compares everything, None included.
    assert [c.dotted for c in diff_attributes(actual, dict(actual, display_name=None),
                                              managed_only=False)] == ["display_name"]


# -- operations and the walker ----------------------------------------------------------------

def change(address: str, action: Action, deps: list[str] = (), cbd: bool = False,
           prior: list[str] | None = None) -> ResourceChange:
    """A planned change; `prior` are the dependencies recorded when the object was applied."""
    return ResourceChange(address=address, kind=address.split(".")[0], name=address.split(".")[1],
                          action=action, before={}, after={}, dependencies=list(deps),
                          prior_dependencies=list(prior if prior is not None else deps),
                          create_before_destroy=cbd)


def order_of(changes: list[ResourceChange]) -> list[Operation]:
    ops, waits = operations(changes)
    done: list[Operation] = []
    walk(ops, waits, done.append, parallelism=1)
    return done


def test_replace_destroys_dependents_first_then_recreates_in_dependency_order() -> None:
    done = order_of([change("Hub.h", Action.REPLACE), change("Project.p", Action.REPLACE, ["Hub.h"]),
                     change("RoleAssignment.r", Action.REPLACE, ["Project.p"])])
    position = {op: i for i, op in enumerate(done)}
    op = Operation
    assert position[op("RoleAssignment.r", "delete")] < position[op("Project.p", "delete")] \
        < position[op("Hub.h", "delete")] < position[op("Hub.h", "create")] \
        < position[op("Project.p", "create")] < position[op("RoleAssignment.r", "create")]


def test_deletion_follows_the_dependencies_the_object_was_applied_with() -> None:
    # A project moves from hub-a (leaving the manifest) to hub-b: its old object must go
    # before hub-a can, although its new dependencies no longer mention hub-a.
    done = order_of([change("Hub.hub-b", Action.NOOP),
                     change("Project.p", Action.REPLACE, ["Hub.hub-b"], prior=["Hub.hub-a"]),
                     change("Hub.hub-a", Action.DELETE)])
    assert done.index(Operation("Project.p", "delete")) < done.index(Operation("Hub.hub-a", "delete"))
    assert done.index(Operation("Project.p", "delete")) < done.index(Operation("Project.p", "create"))


def test_create_before_destroy_moves_dependents_before_the_old_object_goes() -> None:
    done = order_of([change("Job.j", Action.REPLACE, cbd=True),
                     change("Deployment.d", Action.UPDATE, ["Job.j"])])
    assert done == [Operation("Job.j", "create"), Operation("Deployment.d", "update"),
                    Operation("Job.j", "delete")]


def test_walker_runs_independent_work_in_parallel_and_stops_on_failure() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(node: str) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        if node == "bad":
            raise RuntimeError("backend said no")

    nodes = [f"n{i}" for i in range(6)] + ["bad", "after-bad", "late"]
    waits = {n: set() for n in nodes}
    waits["after-bad"] = {"bad"}
    waits["late"] = {"n0", "n1", "n2", "n3", "n4", "n5", "bad"}
    result = walk(nodes, waits, work, parallelism=4)
    assert peak[0] == 4
    assert [(n, str(e)) for n, e in result.failed] == [("bad", "backend said no")]
    assert "after-bad" in result.not_started and "late" in result.not_started
    assert set(result.completed) == {f"n{i}" for i in range(6)}


def test_ctrl_c_anywhere_on_the_main_thread_stops_the_walk_in_order() -> None:
    """A Ctrl-C that lands outside the walker's wait (here: inside the on_interrupt callback,
    and between two completions) is still the orderly stop, then the abort: never a bare
    KeyboardInterrupt that would unwind past the running operations."""
    from foundryctl.apply.walker import ApplyAborted

    release = threading.Event()
    heard: list[list[str]] = []

    def work(node: str) -> None:
        if node == "slow":
            release.wait(10)

    def on_interrupt(running: list[str]) -> None:
        heard.append(running)
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C arrives while we print the first
        time.sleep(0.3)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(ApplyAborted) as aborted:
            walk(["quick", "slow"], {}, work, parallelism=2, on_interrupt=on_interrupt)
        assert time.monotonic() - started < 3
        assert heard == [["slow"]] and aborted.value.running == ["slow"]
        release.set()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's handler is back
        _one_ctrl_c_among_many_completions()
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)


def _one_ctrl_c_among_many_completions() -> None:
    """One Ctrl-C while many operations complete: the walk stops starting new ones and ends."""
    def burst(node: str) -> None:
        if node == "n3":
            os.kill(os.getpid(), signal.SIGINT)

    nodes = [f"n{i}" for i in range(30)]
    result = walk(nodes, {n: ({nodes[i - 1]} if i else set()) for i, n in enumerate(nodes)}, burst,
                  parallelism=1, on_interrupt=lambda running: None)
    assert result.interrupted and "n29" in result.not_started and "n3" in result.completed


# -- plan data ------------------------------------------------------------------------------

def test_plan_round_trips_through_its_json_form() -> None:
    plan = Plan(
        mode=Mode.NORMAL,
        changes=[change("Hub.h", Action.REPLACE), change("Project.p", Action.NOOP, ["Hub.h"])],
        drift=[], repairs=[StateRepair("Hub.x", "Hub", "x", "deleted outside foundryctl")],
        lineage="lineage-1", serial=7, backend={"type": "local"}, manifest_fingerprint="abc",
        manifest_source={"path": "/m.yaml", "variables": {"a": "1"}}, targets=["Hub.h"])
    again = Plan.from_dict(plan.to_dict())
    assert again.to_dict() == plan.to_dict()
    assert plan.summary == (1, 0, 1) and plan.has_changes
    assert "manifest_source" not in plan.to_dict(include_source=False)


# -- start-up cost ------------------------------------------------------------------------------

def test_help_starts_fast_without_heavy_imports() -> None:
    probe = ("import sys\nfrom foundryctl.cli import main\n"
             "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('pydantic', 'yaml', 'rich', 'deepdiff', 'sqlite3') if m in sys.modules]\n"
             "print('HEAVY', heavy)\n")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "foundryctl", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - started < 1.0
