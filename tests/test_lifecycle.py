"""End to end through the CLI on the local backend: create, no-op, update, replace, drift, destroy."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
import time

from conftest import PRINCIPAL, Project, cli_env

from foundryctl.backends import arm


def workspace(project: Project, name: str):
    cloud = project.cloud()
    try:
        return cloud.get(arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", name))
    finally:
        cloud.close()


def test_create_noop_update_replace_drift_destroy(project: Project) -> None:
    project.quickstart(description="First hub")
    assert project.cli("validate").code == 0

    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in plan.stdout
    assert "+ Hub.ft-hub" in plan.stdout and '+ location    = "eastus2"' in plan.stdout

    created = project.cli("apply", "--auto-approve")
    assert created.code == 0, created
    assert "Apply complete! Resources: 4 added, 0 changed, 0 destroyed." in created.stdout
    # Dependency order: the registration finishes before the hub starts, the hub before its project.
    lines = created.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(f"{address}: Creat"))
             for address in ("ProviderRegistration.network", "Hub.ft-hub", "Project.xbox-support",
                             "RoleAssignment.ml-engineer")]
    assert order == sorted(order)
    hub = workspace(project, "ft-hub")
    assert hub is not None and hub.location == "eastus2" and hub.kind == "Hub"

    again = project.cli("apply", "--auto-approve")
    assert again.code == 0 and "No changes." in again.stdout, again
    assert project.cli("plan", "--detailed-exitcode").code == 0

    # Update in place.
    project.edit("description: First hub", "description: Second hub")
    update = project.cli("plan", "--detailed-exitcode")
    assert update.code == 2
    assert "# Hub.ft-hub will be updated in place" in update.stdout
    assert '~ description = "First hub" -> "Second hub"' in update.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in update.stdout
    assert project.cli("apply", "--auto-approve").code == 0
    assert workspace(project, "ft-hub").properties["description"] == "Second hub"

    # Replace: location forces replacement, and the hub takes its project and role with it.
    replace = project.cli("plan", "--var", "location=westus3")
    assert "-/+ Hub.ft-hub" in replace.stdout, replace
    assert '~ location = "eastus2" -> "westus3"  # forces replacement' in replace.stdout
    assert "Project.xbox-support must be replaced (Hub.ft-hub is replaced" in replace.stdout
    assert "Plan: 3 to add, 0 to change, 3 to destroy." in replace.stdout
    replaced = project.cli("apply", "--auto-approve", "--var", "location=westus3")
    assert replaced.code == 0, replaced
    assert "3 added, 0 changed, 3 destroyed" in replaced.stdout
    assert workspace(project, "ft-hub").location == "westus3"
    assert workspace(project, "xbox-support").location == "westus3"

    # Drift: someone edits the hub in the portal and deletes the role assignment.
    cloud = project.cloud()
    hub_id = arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", "ft-hub")
    cloud.update_workspace(hub_id, description="edited in the portal")
    cloud.delete_role_assignment(cloud.role_assignments(PRINCIPAL)[0].id)
    cloud.close()
    drift = project.cli("plan", "--var", "location=westus3", "--detailed-exitcode")
    assert drift.code == 2
    assert drift.stdout.index("changed outside of foundryctl") < drift.stdout.index("will perform")
    assert "# Hub.ft-hub has changed" in drift.stdout
    assert '~ description = "Second hub" -> "edited in the portal"' in drift.stdout
    assert "# RoleAssignment.ml-engineer has been deleted" in drift.stdout
    assert "RoleAssignment.ml-engineer will be created (deleted outside foundryctl)" in drift.stdout
    assert project.cli("apply", "--auto-approve", "--var", "location=westus3").code == 0
    assert workspace(project, "ft-hub").properties["description"] == "Second hub"
    assert project.cli("plan", "--var", "location=westus3", "--detailed-exitcode").code == 0

    # Destroy: everything goes, dependents first; state is empty.
    destroyed = project.cli("destroy", "--auto-approve", "--var", "location=westus3")
    assert destroyed.code == 0, destroyed
    assert "Destroy complete! Resources: 0 added, 0 changed, 4 destroyed." in destroyed.stdout
    out = destroyed.stdout
    assert out.index("RoleAssignment.ml-engineer: Destroying") < out.index("Project.xbox-support: Destroying")
    assert out.index("Project.xbox-support: Destruction complete") < out.index("Hub.ft-hub: Destroying")
    assert project.cloud_ids() == set()
    assert project.state_rows() == {}
    cloud = project.cloud()
    assert cloud.provider_state(cloud.default_subscription_id, "Microsoft.Network") == "NotRegistered"
    cloud.close()


def test_detailed_exitcode_and_json_plan(project: Project) -> None:
    project.quickstart()
    planned = project.cli("plan", "--json", "--detailed-exitcode")
    assert planned.code == 2
    document = json.loads(planned.stdout)
    assert document["format_version"] == "1"
    assert document["summary"] == {"add": 4, "change": 0, "destroy": 0}
    changes = {c["address"]: c for c in document["resource_changes"]}
    assert changes["Hub.ft-hub"]["actions"] == ["create"]
    assert changes["Hub.ft-hub"]["before"] is None
    assert changes["Hub.ft-hub"]["after"]["location"] == "eastus2"
    assert changes["Project.xbox-support"]["dependencies"] == ["Hub.ft-hub"]
    assert "manifest_source" not in document  # --var values stay out of printed plans

    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("location: ${var.location}", "location: swedencentral")
    replaced = json.loads(project.cli("plan", "--json").stdout)
    hub = next(c for c in replaced["resource_changes"] if c["address"] == "Hub.ft-hub")
    assert hub["actions"] == ["delete", "create"]
    assert hub["before"]["location"] == "eastus2" and hub["after"]["location"] == "swedencentral"
    assert {"path": ["location"], "before": "eastus2", "after": "swedencentral", "change": "change",
            "forces_replacement": True} in hub["attribute_changes"]
    assert hub["reasons"] == ["location forces replacement"]
    network = next(c for c in replaced["resource_changes"] if c["address"] == "ProviderRegistration.network")
    assert network["actions"] == ["no-op"]

    project.edit("kind: Project", "kind: Projekt")
    broken = project.cli("plan", "--detailed-exitcode")
    assert broken.code == 1
    assert "unknown kind 'Projekt'; did you mean 'Project'?" in broken.stderr
    assert "Traceback" not in broken.output


def test_saved_plan_is_binding(project: Project) -> None:
    project.quickstart()
    saved = project.cli("plan", "--out", "tfplan")
    assert saved.code == 0 and "foundryctl apply tfplan" in saved.stdout
    plan_file = project.root / "tfplan"
    assert stat.S_IMODE(plan_file.stat().st_mode) == 0o600

    # The manifest changes after the plan: refused.
    project.edit("description: Fine-tuning hub", "description: changed after planning")
    refused = project.cli("apply", "tfplan")
    assert refused.code == 1
    assert "the manifest (or its variables or environment) changed since the plan was made" in refused.stderr
    project.edit("description: changed after planning", "description: Fine-tuning hub")

    # Unchanged: it applies exactly, without asking, from any working directory.
    applied = run_from(project, "apply", str(plan_file))
    assert applied.code == 0, applied
    assert "4 added" in applied.stdout

    # A plan made, then state changes through another apply: refused as stale.
    project.edit("description: Fine-tuning hub", "description: v2")
    assert project.cli("plan", "--out", "second").code == 0
    project.edit("description: v2", "description: v3")
    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("description: v3", "description: v2")
    stale = project.cli("apply", "second")
    assert stale.code == 1
    assert "the saved plan is stale: state changed since it was made" in stale.stderr

    # Not a plan file at all.
    (project.root / "junk").write_text("{}")
    assert "is not a foundryctl plan file" in project.cli("apply", "junk").stderr


def run_from(project: Project, *args: str):
    """Run from the parent directory: a saved plan remembers its manifest's absolute path."""
    from conftest import run_cli

    return run_cli(*args, cwd=project.root.parent)


def test_refresh_only_records_drift_without_changing_anything(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    cloud = project.cloud()
    hub_id = arm.workspace_id(cloud.default_subscription_id, "foundryctl-local", "ft-hub")
    cloud.update_workspace(hub_id, tags={"team": "someone-else"})
    cloud.close()

    refresh = project.cli("plan", "--refresh-only", "--detailed-exitcode")
    assert refresh.code == 2
    assert '~ tags.team = "ml-platform" -> "someone-else"' in refresh.stdout
    assert "changes nothing in the backend" in refresh.stdout
    recorded = project.cli("apply", "--refresh-only", "--auto-approve")
    assert recorded.code == 0, recorded
    assert "1 state record(s) reconciled" in recorded.stdout
    assert workspace(project, "ft-hub").tags == {"team": "someone-else"}  # untouched
    store = project.state()
    assert store.get("Hub.ft-hub").attributes["tags"] == {"team": "someone-else"}
    store.close()
    assert project.cli("plan", "--refresh-only", "--detailed-exitcode").code == 0
    # A normal plan now wants to put the manifest's tag back.
    assert '~ tags.team = "someone-else" -> "ml-platform"' in project.cli("plan").stdout


def test_target_pulls_in_dependencies(project: Project) -> None:
    project.write("""\
        version: 1
        backend: {type: local, registration_delay: 0}
        resources:
          - {kind: ProviderRegistration, name: network, namespace: Microsoft.Network}
          - {kind: Hub, name: hub-one, location: eastus2}
          - {kind: Hub, name: hub-two, location: eastus2}
          - {kind: Project, name: project-one, hub: hub-one}
          - {kind: Project, name: project-two, hub: hub-two}
    """)
    targeted = project.cli("plan", "--target", "Project.project-one")
    assert targeted.code == 0, targeted
    assert "Plan: 3 to add, 0 to change, 0 to destroy." in targeted.stdout
    assert "hub-two" not in targeted.stdout
    assert project.cli("apply", "--auto-approve", "--target", "Project.project-one").code == 0
    assert set(project.state_rows()) == {"ProviderRegistration.network", "Hub.hub-one", "Project.project-one"}
    unknown = project.cli("plan", "--target", "Hub.hub-tree")
    assert unknown.code == 1 and "did you mean 'Hub.hub-two'?" in unknown.stderr
    # Destroy with a target takes what depends on it, and nothing else.
    gone = project.cli("destroy", "--auto-approve", "--target", "Hub.hub-one")
    assert gone.code == 0, gone
    assert set(project.state_rows()) == {"ProviderRegistration.network"}


def test_protect_blocks_destroy_and_replace(project: Project) -> None:
    project.quickstart()
    project.edit("    tags: {team: ml-platform}", "    tags: {team: ml-platform}\n    protect: true")
    assert project.cli("apply", "--auto-approve").code == 0

    replace = project.cli("plan", "--var", "location=westus")
    assert replace.code == 1
    assert "Hub.ft-hub has protect: true, and this plan would replace it" in replace.stderr
    assert "location forces replacement" in replace.stderr
    destroy = project.cli("destroy", "--auto-approve")
    assert destroy.code == 1 and "Hub.ft-hub has protect: true" in destroy.stderr
    assert workspace(project, "ft-hub") is not None

    # Deleting the resource from the manifest does not lift the protection: state remembers it.
    manifest = project.manifest.read_text()
    start = manifest.index("  - kind: Hub")
    project.manifest.write_text(manifest[:start] + manifest[manifest.index("  - kind: Project"):]
                                .replace("hub: ft-hub", "hub: other-hub")
                                + "  - {kind: Hub, name: other-hub, location: eastus2}\n")
    removed = project.cli("plan")
    assert removed.code == 1 and "Hub.ft-hub has protect: true" in removed.stderr
    project.manifest.write_text(manifest)

    # Lifting it is a state-only change of its own; then destroy works.
    project.edit("protect: true", "protect: false")
    lift = project.cli("plan")
    assert "Hub.ft-hub will be updated in foundryctl's state only (protect: true -> false)" in lift.stdout
    assert project.cli("apply", "--auto-approve").code == 0
    assert project.cli("destroy", "--auto-approve").code == 0
    assert project.cloud_ids() == set()


def test_state_list_show_rm_and_import(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    listing = project.cli("state", "list")
    assert listing.code == 0
    addresses = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
    assert addresses == ["ProviderRegistration.network", "Hub.ft-hub", "Project.xbox-support",
                         "RoleAssignment.ml-engineer"]
    shown = json.loads(project.cli("state", "show", "Hub.ft-hub", "--json").stdout)
    assert shown["attributes"]["location"] == "eastus2"
    assert shown["outputs"]["provisioning_state"] == "Succeeded"
    assert shown["dependencies"] == ["ProviderRegistration.network"]
    hub_id = shown["backend_id"]

    removed = project.cli("state", "rm", "Hub.ft-hub")
    assert removed.code == 0 and "it still exists" in removed.stdout
    assert workspace(project, "ft-hub") is not None  # forgotten, not deleted
    orphan = project.cli("plan")
    assert orphan.code == 1
    assert "Hub.ft-hub already exists in the backend" in orphan.stderr
    assert f"foundryctl import Hub.ft-hub {hub_id}" in orphan.stderr

    imported = project.cli("import", "Hub.ft-hub", hub_id)
    assert imported.code == 0, imported
    assert project.cli("plan", "--detailed-exitcode").code == 0
    history = project.cli("state", "history").stdout
    assert "state-rm" in history and "import" in history
    assert project.cli("state", "show", "Hub.nope").code == 1


def test_graph_output(project: Project) -> None:
    project.quickstart()
    dot = project.cli("graph")
    assert dot.code == 0
    assert '"Hub.ft-hub" -> "ProviderRegistration.network";' in dot.stdout
    assert '"RoleAssignment.ml-engineer" -> "Project.xbox-support";' in dot.stdout
    mermaid = project.cli("graph", "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart")
    assert "Project_xbox_support --> Hub_ft_hub" in mermaid


def test_apply_asks_for_confirmation(project: Project) -> None:
    project.quickstart()
    no_tty = project.cli("apply")
    assert no_tty.code == 1
    assert "needs confirmation, and there is no terminal to ask on" in no_tty.stderr
    assert project.state_rows() == {}

    def answer(text: str) -> tuple[int, str]:
        primary, secondary = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "foundryctl", "apply", "-f", project.manifest.name],
                                   cwd=project.root, env=cli_env(), stdin=secondary,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.close(secondary)
        os.write(primary, text.encode())
        output, _ = process.communicate(timeout=60)
        os.close(primary)
        return process.returncode, output

    code, output = answer("no\n")
    assert code == 1 and "Apply cancelled." in output
    assert project.state_rows() == {}
    code, output = answer("yes\n")
    assert code == 0 and "Apply complete!" in output, output


def test_failure_keeps_what_succeeded(project: Project) -> None:
    project.write("""\
        version: 1
        backend: {type: local, registration_delay: 0}
        resources:
          - {kind: Hub, name: hub-a, location: eastus2}
          - {kind: Hub, name: hub-b, location: eastus2}
          - {kind: Project, name: clash, hub: hub-a}
          - {kind: Project, name: fine, hub: hub-b}
    """)
    assert project.cli("plan", "--out", "p").code == 0
    # Between plan and apply, someone creates a hub with the project's name.
    cloud = project.cloud()
    cloud.create_workspace(cloud.default_subscription_id, "foundryctl-local", "clash", kind="Hub",
                           location="eastus2")
    cloud.close()
    failed = project.cli("apply", "p")
    assert failed.code == 1
    assert "Project.clash (create): Conflict: A workspace named 'clash' (Hub) already exists" in failed.stderr
    assert "Everything that succeeded is recorded in state" in failed.stderr
    rows = project.state_rows()
    assert rows["Hub.hub-a"] == rows["Hub.hub-b"] == "ready"
    # The failed create leaves its intent; the next plan reads the truth and tries again.
    assert rows["Project.clash"] == "creating"
    retry = project.cli("plan")
    assert "+ Project.clash" in retry.stdout


def test_independent_resources_are_applied_in_parallel(tmp_path) -> None:
    hubs = "".join(f"  - {{kind: Hub, name: hub-{i}, location: eastus2}}\n" for i in range(8))
    timings = {}
    for parallelism in (1, 8):
        project = Project(tmp_path / f"p{parallelism}")
        project.root.mkdir()
        project.write("version: 1\nbackend: {type: local, api_latency: 0.1}\nresources:\n" + hubs)
        started = time.perf_counter()
        result = project.cli("apply", "--auto-approve", "--parallelism", str(parallelism))
        timings[parallelism] = time.perf_counter() - started
        assert result.code == 0, result
    # Eight creates of 0.2 s each: about 1.6 s one at a time, one round trip in parallel.
    assert timings[8] < timings[1] - 1.0, timings


def test_saved_plan_remembers_its_state_file(project: Project) -> None:
    project.quickstart()
    assert project.cli("plan", "--state", "envs/dev.db", "--out", "dev.plan").code == 0
    applied = project.cli("apply", "dev.plan")
    assert applied.code == 0, applied
    assert (project.root / "envs" / "dev.db").exists()
    assert not project.state_path.exists()  # the default state was never touched
    assert project.cli("plan", "--state", "envs/dev.db", "--detailed-exitcode").code == 0


def test_renaming_an_address_moves_state_and_keeps_the_object(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    store = project.state()
    before = {r.address: r.backend_id for r in store.records()}
    store.close()
    project.edit("name: ml-engineer", "name: developer")
    project.edit("name: network", "name: networking")
    moved = project.cli("plan", "--detailed-exitcode")
    assert moved.code == 2, moved
    assert "# RoleAssignment.ml-engineer has moved to RoleAssignment.developer" in moved.stdout
    assert "# ProviderRegistration.network has moved to ProviderRegistration.networking" in moved.stdout
    assert "0 to add, 0 to change, 0 to destroy; 2 to move in state" in moved.stdout
    applied = project.cli("apply", "--auto-approve")
    assert applied.code == 0, applied
    store = project.state()
    after = {r.address: r.backend_id for r in store.records()}
    store.close()
    assert after["RoleAssignment.developer"] == before["RoleAssignment.ml-engineer"]
    assert "RoleAssignment.ml-engineer" not in after
    cloud = project.cloud()
    assert len(cloud.role_assignments(PRINCIPAL)) == 1  # never deleted
    assert cloud.provider_state(cloud.default_subscription_id, "Microsoft.Network") == "Registered"
    cloud.close()
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_a_replaced_or_destroyed_target_takes_its_dependents_along(project: Project) -> None:
    project.quickstart()
    assert project.cli("apply", "--auto-approve").code == 0
    replaced = project.cli("apply", "--auto-approve", "--target", "Hub.ft-hub", "--var", "location=westus")
    assert replaced.code == 0, replaced
    assert "the plan also covers what depends on them: Project.xbox-support, RoleAssignment.ml-engineer" \
        in replaced.stderr
    assert "3 added, 0 changed, 3 destroyed" in replaced.stdout
    cloud = project.cloud()
    assert len(cloud.role_assignments(PRINCIPAL)) == 1
    cloud.close()
    assert project.cli("plan", "--var", "location=westus", "--detailed-exitcode").code == 0


def test_recorded_dependencies_follow_the_manifest(project: Project) -> None:
    project.write("""\
        version: 1
        backend: {type: local, registration_delay: 0}
        resources:
          - {kind: Hub, name: hub-a, location: eastus2}
          - {kind: Hub, name: hub-b, location: eastus2}
    """)
    assert project.cli("apply", "--auto-approve").code == 0
    project.edit("{kind: Hub, name: hub-b, location: eastus2}",
                 "{kind: Hub, name: hub-b, location: eastus2, depends_on: [Hub.hub-a]}")
    unchanged = project.cli("apply", "--auto-approve")
    assert unchanged.code == 0 and "No changes." in unchanged.stdout, unchanged
    shown = json.loads(project.cli("state", "show", "Hub.hub-b", "--json").stdout)
    assert shown["dependencies"] == ["Hub.hub-a"]
    destroyed = project.cli("destroy", "--auto-approve")
    assert destroyed.stdout.index("Hub.hub-b: Destruction complete") \
        < destroyed.stdout.index("Hub.hub-a: Destroying")
