"""The local backend keeps Azure's rules.

`LocalCloud` emulates a slice of Azure Resource Manager in SQLite (like Azurite for
storage); `LocalBackend` drives it through one handler per kind. These tests use real
SQLite files under pytest's tmp_path and check ARM id shapes, etags, provider
registration over time, workspace rules, role assignments, RBAC evaluation, the
handlers' round trips and two cloud objects sharing one directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local import AuthorizationFailed, LocalBackend, LocalCloud
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.config import LocalBackendConfig
from foundryctl.errors import BackendError
from foundryctl.kinds.role_assignment import assignment_name
from foundryctl.state.lock import current_user

RG = "rg-test"
DELAY = 0.3  # registration_delay for the emulator under test

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
ROLE_GUIDS = {"Owner": OWNER, "Contributor": CONTRIBUTOR, "Reader": READER,
              "Azure AI Developer": AI_DEVELOPER}

JOBS_WRITE = "Microsoft.MachineLearningServices/workspaces/jobs/write"
JOBS_READ = "Microsoft.MachineLearningServices/workspaces/jobs/read"
WORKSPACE_WRITE = "Microsoft.MachineLearningServices/workspaces/write"
ASSIGN_ROLES = "Microsoft.Authorization/roleAssignments/write"

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# -- helpers and fixtures --------------------------------------------------------------


@dataclass
class Caught:
    """The BackendError an `arm_error` block raised (set when the block ends)."""

    error: BackendError | None = None

    @property
    def message(self) -> str:
        assert self.error is not None
        return self.error.message

    @property
    def hint(self) -> str:
        assert self.error is not None and self.error.hint is not None
        return self.error.hint


@contextmanager
def arm_error(code: str) -> Iterator[Caught]:
    """Expect the block to raise a BackendError carrying ARM error `code`."""
    caught = Caught()
    with pytest.raises(BackendError) as excinfo:
        yield caught
    caught.error = excinfo.value
    assert excinfo.value.code == code, f"expected {code}, got {excinfo.value}"


def wait_for_state(cloud: LocalCloud, sub: str, namespace: str, goal: str,
                   timeout: float = DELAY + 2.0) -> list[str]:
    """Poll provider_state until it reads `goal`; returns every state seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        state = cloud.provider_state(sub, namespace)
        seen.append(state)
        if state == goal:
            return seen
        assert time.monotonic() < deadline, f"{namespace} never became {goal}: saw {seen[-3:]}"
        time.sleep(0.02)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    """A fresh emulated control plane with a short registration delay."""
    c = LocalCloud(tmp_path / "cloud", registration_delay=DELAY)
    yield c
    c.close()


@pytest.fixture
def sub(cloud: LocalCloud) -> str:
    return cloud.default_subscription_id


@pytest.fixture
def hub(cloud: LocalCloud, sub: str) -> ArmResource:
    return cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")


@pytest.fixture
def project(cloud: LocalCloud, sub: str, hub: ArmResource) -> ArmResource:
    return cloud.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=hub.id)


@pytest.fixture
def project_b(cloud: LocalCloud, sub: str, hub: ArmResource) -> ArmResource:
    return cloud.create_workspace(sub, RG, "proj-b", kind="Project", hub_id=hub.id)


def rg_scope(sub: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{RG}"


def ws_id(sub: str, name: str) -> str:
    """The ARM id of workspace `name` in the test resource group (written out, not via arm.py)."""
    return f"{rg_scope(sub)}/providers/Microsoft.MachineLearningServices/workspaces/{name}"


# -- ARM id shapes ---------------------------------------------------------------------


class TestArmIds:
    def test_workspace_id_shape(self, cloud: LocalCloud, sub: str, hub: ArmResource) -> None:
        """Hubs live at the ARM id of a Microsoft.MachineLearningServices workspace."""
        expected = (f"/subscriptions/{sub}/resourceGroups/{RG}"
                    "/providers/Microsoft.MachineLearningServices/workspaces/hub1")
        assert arm.workspace_id(sub, RG, "hub1") == expected
        assert hub.id == expected
        assert hub.type == "Microsoft.MachineLearningServices/workspaces"
        assert hub.name == "hub1"
        assert cloud.get(expected) == hub

    def test_provider_and_role_ids(self, sub: str) -> None:
        assert arm.provider_id(sub, "Microsoft.Network") == f"/subscriptions/{sub}/providers/Microsoft.Network"
        scope = ws_id(sub, "proj-a")
        assert (arm.role_assignment_id(scope, "abc")
                == f"{scope}/providers/Microsoft.Authorization/roleAssignments/abc")
        assert (arm.role_definition_id(sub, READER)
                == f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}")
        assert arm.scope_of_assignment(arm.role_assignment_id(scope, "abc")) == scope

    @pytest.mark.parametrize("name,guid", sorted(ROLE_GUIDS.items()))
    def test_catalog_has_real_role_guids(self, name: str, guid: str) -> None:
        """Built-in roles are found by name (any case) and by Azure's real GUID."""
        assert catalog.find_role(name).id == guid  # type: ignore[union-attr]
        assert catalog.find_role(name.upper()).id == guid  # type: ignore[union-attr]
        assert catalog.find_role(guid).name == name  # type: ignore[union-attr]

    def test_default_subscription_is_a_guid(self, sub: str) -> None:
        assert GUID.match(sub)


# -- resource metadata: etag, timestamps, provisioning state, to_arm() -------------------


class TestResourceMetadata:
    def test_new_workspace_is_succeeded_with_etag(self, hub: ArmResource) -> None:
        assert hub.provisioning_state == "Succeeded"
        assert re.match(r'^"[0-9a-f-]{36}"$', hub.etag)
        assert hub.created_at == hub.modified_at
        assert hub.created_by == current_user()

    def test_etag_changes_and_modified_at_moves_on_every_write(
            self, cloud: LocalCloud, hub: ArmResource) -> None:
        etags, stamps = [hub.etag], [hub.modified_at]
        for i in range(3):
            time.sleep(0.005)  # timestamps have millisecond resolution
            updated = cloud.update_workspace(hub.id, description=f"rev {i}")
            etags.append(updated.etag)
            stamps.append(updated.modified_at)
            stored = cloud.get(hub.id)
            assert stored is not None
            assert stored.etag == updated.etag and stored.modified_at == updated.modified_at
            assert stored.properties["description"] == f"rev {i}"
            assert stored.created_at == hub.created_at
            assert stored.provisioning_state == "Succeeded"
        assert len(set(etags)) == len(etags)
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    def test_to_arm_shape(self, sub: str, hub: ArmResource) -> None:
        body = hub.to_arm()
        assert body["id"] == hub.id
        assert body["name"] == "hub1"
        assert body["type"] == "Microsoft.MachineLearningServices/workspaces"
        assert body["kind"] == "Hub"
        assert body["location"] == "eastus2"
        assert body["etag"] == hub.etag
        assert body["tags"] == {}
        props = body["properties"]
        assert props["provisioningState"] == "Succeeded"
        assert props["friendlyName"] == "hub1"
        assert GUID.match(props["workspaceId"])
        assert props["discoveryUrl"] == "https://eastus2.api.azureml.ms/discovery"
        assert body["systemData"] == {"createdAt": hub.created_at, "createdBy": hub.created_by,
                                      "lastModifiedAt": hub.modified_at}

    def test_to_arm_of_role_assignment_has_no_kind_or_location(
            self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        body = cloud.create_role_assignment(sub, project.id, "alice", "User", READER).to_arm()
        assert "kind" not in body and "location" not in body
        assert body["type"] == "Microsoft.Authorization/roleAssignments"
        assert body["properties"]["provisioningState"] == "Succeeded"
        assert body["properties"]["scope"] == project.id


# -- resource provider registration ----------------------------------------------------


class TestProviders:
    def test_unregistered_namespace_registers_after_the_delay(self, cloud: LocalCloud, sub: str) -> None:
        assert cloud.provider_state(sub, "Microsoft.Network") == "NotRegistered"
        started = time.monotonic()
        assert cloud.register_provider(sub, "Microsoft.Network") == "Registering"
        assert cloud.provider_state(sub, "Microsoft.Network") == "Registering"
        assert cloud.register_provider(sub, "Microsoft.Network") == "Registering"  # idempotent
        seen = wait_for_state(cloud, sub, "Microsoft.Network", "Registered")
        elapsed = time.monotonic() - started
        assert set(seen[:-1]) == {"Registering"}
        assert DELAY - 0.05 <= elapsed < DELAY + 1.5
        # Settled for good, in any spelling of the namespace.
        assert cloud.provider_state(sub, "microsoft.network") == "Registered"
        assert cloud.register_provider(sub, "MICROSOFT.NETWORK") == "Registered"

    def test_registration_is_per_subscription(self, cloud: LocalCloud, sub: str) -> None:
        cloud.register_provider(sub, "Microsoft.Storage")
        other = str(uuid.uuid4())
        assert cloud.provider_state(other, "Microsoft.Storage") == "NotRegistered"

    @pytest.mark.parametrize("namespace", ["Microsoft.Resources", "Microsoft.Authorization",
                                           "microsoft.resources"])
    def test_default_namespaces_read_registered(self, cloud: LocalCloud, sub: str, namespace: str) -> None:
        assert cloud.provider_state(sub, namespace) == "Registered"
        cloud.require_registered(sub, namespace)  # does not raise
        assert cloud.register_provider(sub, namespace) == "Registered"

    @pytest.mark.parametrize("operation", ["register_provider", "unregister_provider"])
    def test_unknown_namespace_is_invalid(self, cloud: LocalCloud, sub: str, operation: str) -> None:
        with arm_error("InvalidResourceNamespace") as caught:
            getattr(cloud, operation)(sub, "Microsoft.Nonexistent")
        assert "Microsoft.Nonexistent" in caught.message

    def test_unregister_goes_through_unregistering(self, cloud: LocalCloud, sub: str) -> None:
        cloud.register_provider(sub, "Microsoft.Network")
        wait_for_state(cloud, sub, "Microsoft.Network", "Registered")
        started = time.monotonic()
        assert cloud.unregister_provider(sub, "Microsoft.Network") == "Unregistering"
        assert cloud.provider_state(sub, "Microsoft.Network") == "Unregistering"
        seen = wait_for_state(cloud, sub, "Microsoft.Network", "NotRegistered")
        assert set(seen[:-1]) == {"Unregistering"}
        assert time.monotonic() - started >= DELAY - 0.05
        assert cloud.unregister_provider(sub, "Microsoft.Network") == "NotRegistered"

    def test_require_registered(self, cloud: LocalCloud, sub: str) -> None:
        with arm_error("MissingSubscriptionRegistration") as caught:
            cloud.require_registered(sub, "Microsoft.Network")
        assert "Microsoft.Network" in caught.message
        assert "ProviderRegistration" in caught.hint
        assert "Microsoft.Network" in caught.hint

        cloud.register_provider(sub, "Microsoft.Network")
        with arm_error("MissingSubscriptionRegistration") as caught:
            cloud.require_registered(sub, "Microsoft.Network")  # Registering is not enough
        wait_for_state(cloud, sub, "Microsoft.Network", "Registered")
        cloud.require_registered(sub, "Microsoft.Network")

    def test_zero_delay_registers_at_once(self, tmp_path: Path) -> None:
        fast = LocalCloud(tmp_path / "fast", registration_delay=0)
        try:
            assert fast.register_provider(fast.default_subscription_id, "Microsoft.Web") == "Registered"
        finally:
            fast.close()


# -- hubs ------------------------------------------------------------------------------


class TestHubs:
    @pytest.mark.parametrize("location", ["mars", "east us 9", "", None])
    def test_invalid_region(self, cloud: LocalCloud, sub: str, location: str | None) -> None:
        with arm_error("LocationNotAvailableForResourceType"):
            cloud.create_workspace(sub, RG, "hub1", kind="Hub", location=location)
        assert cloud.get(ws_id(sub, "hub1")) is None

    @pytest.mark.parametrize("location", ["East US 2", "eastus2", "EASTUS2", "east us 2"])
    def test_region_display_names_are_accepted(self, cloud: LocalCloud, sub: str, location: str) -> None:
        hub = cloud.create_workspace(sub, RG, "hub1", kind="Hub", location=location)
        assert hub.location == "eastus2"
        assert cloud.get(hub.id).location == "eastus2"  # type: ignore[union-attr]

    @pytest.mark.parametrize("name", ["ab", "-hub", "_hub", "a" * 34, "has space", "dot.name", "hub/x", ""])
    def test_invalid_workspace_name(self, cloud: LocalCloud, sub: str, name: str) -> None:
        with arm_error("InvalidWorkspaceName"):
            cloud.create_workspace(sub, RG, name, kind="Hub", location="eastus2")
        assert cloud.list(type=arm.WORKSPACES) == []

    @pytest.mark.parametrize("name", ["abc", "a" * 33, "9hub", "Hub_1-x"])
    def test_valid_workspace_names(self, cloud: LocalCloud, sub: str, name: str) -> None:
        assert cloud.create_workspace(sub, RG, name, kind="Hub", location="westus").name == name

    @pytest.mark.parametrize("kind,name", [("Hub", "hub1"), ("Project", "hub1"), ("Hub", "HUB1")])
    def test_existing_name_conflicts(self, cloud: LocalCloud, sub: str, hub: ArmResource,
                                     kind: str, name: str) -> None:
        """A workspace name is taken whatever the kind (ARM names are case-insensitive)."""
        with arm_error("Conflict"):
            cloud.create_workspace(sub, RG, name, kind=kind, location="eastus2", hub_id=hub.id)
        assert cloud.get(hub.id) == hub  # untouched
        assert len(cloud.list(type=arm.WORKSPACES)) == 1

    def test_same_name_in_another_resource_group(self, cloud: LocalCloud, sub: str, hub: ArmResource) -> None:
        other = cloud.create_workspace(sub, "rg-other", "hub1", kind="Hub", location="eastus2")
        assert other.id != hub.id

    def test_location_cannot_change(self, cloud: LocalCloud, hub: ArmResource) -> None:
        with arm_error("InvalidResourceLocation"):
            cloud.update_workspace(hub.id, location="westeurope")
        assert cloud.get(hub.id).location == "eastus2"  # type: ignore[union-attr]
        # Naming the same region in another spelling is no change.
        assert cloud.update_workspace(hub.id, location="East US 2").location == "eastus2"

    def test_update_changes_mutable_properties(self, cloud: LocalCloud, hub: ArmResource) -> None:
        updated = cloud.update_workspace(hub.id, friendly_name="Hub One", description="d",
                                         tags={"team": "ml"})
        assert updated.properties["friendlyName"] == "Hub One"
        assert updated.properties["description"] == "d"
        assert updated.tags == {"team": "ml"}
        assert updated.properties["workspaceId"] == hub.properties["workspaceId"]
        assert cloud.get(hub.id) == updated

    def test_update_missing_workspace(self, cloud: LocalCloud, sub: str) -> None:
        with arm_error("ResourceNotFound"):
            cloud.update_workspace(ws_id(sub, "nope"), description="x")

    def test_hub_with_projects_cannot_be_deleted(self, cloud: LocalCloud, hub: ArmResource,
                                                  project: ArmResource, project_b: ArmResource) -> None:
        with arm_error("Conflict") as caught:
            cloud.delete_workspace(hub.id)
        assert "proj-a" in caught.message and "proj-b" in caught.message
        assert cloud.get(hub.id) is not None

        assert cloud.delete_workspace(project.id) is True
        with arm_error("Conflict") as caught:
            cloud.delete_workspace(hub.id)
        assert "proj-b" in caught.message and "proj-a" not in caught.message

        assert cloud.delete_workspace(project_b.id) is True
        assert cloud.delete_workspace(hub.id) is True
        assert cloud.get(hub.id) is None
        assert cloud.list(type=arm.WORKSPACES) == []

    def test_delete_is_idempotent(self, cloud: LocalCloud, sub: str, hub: ArmResource) -> None:
        assert cloud.delete_workspace(ws_id(sub, "never-was")) is False
        assert cloud.delete_workspace(hub.id) is True
        assert cloud.delete_workspace(hub.id) is False


# -- projects --------------------------------------------------------------------------


class TestProjects:
    def test_project_needs_an_existing_hub(self, cloud: LocalCloud, sub: str) -> None:
        with arm_error("HubNotFound"):
            cloud.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=ws_id(sub, "missing"))
        with arm_error("HubNotFound"):
            cloud.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=None)
        assert cloud.list(type=arm.WORKSPACES) == []

    def test_a_project_is_not_a_hub(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        with arm_error("HubNotFound"):
            cloud.create_workspace(sub, RG, "proj-c", kind="Project", hub_id=project.id)

    def test_project_location_follows_the_hub(self, cloud: LocalCloud, sub: str, hub: ArmResource) -> None:
        project = cloud.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=hub.id,
                                         location="westeurope")
        assert project.location == hub.location == "eastus2"
        assert project.kind == "Project"
        assert project.parent_id == hub.id
        assert project.properties["hubResourceId"] == hub.id
        assert project.id == ws_id(sub, "proj-a")
        assert [p.name for p in cloud.list(type=arm.WORKSPACES, parent_id=hub.id)] == ["proj-a"]

    def test_hub_of_a_project_is_immutable(self, cloud: LocalCloud, sub: str, hub: ArmResource,
                                           project: ArmResource) -> None:
        other = cloud.create_workspace(sub, RG, "hub2", kind="Hub", location="eastus2")
        for new_hub in (other.id, None):
            with arm_error("BadRequest"):
                cloud.update_workspace(project.id, hub_id=new_hub)
        assert cloud.get(project.id).parent_id == hub.id  # type: ignore[union-attr]
        # The same hub (ids are case-insensitive) is no change.
        assert cloud.update_workspace(project.id, hub_id=hub.id.upper()).parent_id == hub.id

    def test_project_location_cannot_change(self, cloud: LocalCloud, project: ArmResource) -> None:
        with arm_error("InvalidResourceLocation"):
            cloud.update_workspace(project.id, location="westus")


# -- role assignments ------------------------------------------------------------------


class TestRoleAssignments:
    @pytest.mark.parametrize("role_name,guid", sorted(ROLE_GUIDS.items()))
    def test_ids_and_role_definition(self, cloud: LocalCloud, sub: str, project: ArmResource,
                                     role_name: str, guid: str) -> None:
        assignment = cloud.create_role_assignment(sub, project.id, "alice", "User", guid, "why")
        name = assignment_name(project.id, "alice", guid)
        assert uuid.UUID(name).version == 5
        assert assignment.name == name
        assert assignment.id == f"{project.id}/providers/Microsoft.Authorization/roleAssignments/{name}"
        assert assignment.type == "Microsoft.Authorization/roleAssignments"
        props = assignment.properties
        assert props["roleDefinitionId"] == (
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
        assert props["principalId"] == "alice"
        assert props["principalType"] == "User"
        assert props["scope"] == project.id
        assert props["description"] == "why"
        assert assignment.provisioning_state == "Succeeded"
        assert cloud.get(assignment.id) == assignment

    def test_assignment_at_resource_group_scope(self, cloud: LocalCloud, sub: str) -> None:
        scope = rg_scope(sub)
        assignment = cloud.create_role_assignment(sub, scope, "bob", "User", READER)
        assert assignment.id == (f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                                 f"{assignment_name(scope, 'bob', READER)}")

    def test_same_triple_twice_is_idempotent(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        first = cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        second = cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        third = cloud.create_role_assignment(sub, project.id, "ALICE", "User", AI_DEVELOPER)
        assert first.id == second.id == third.id
        assert second.etag == first.etag and second.created_at == first.created_at
        assert [a.id for a in cloud.role_assignments()] == [first.id]

    def test_different_roles_are_different_assignments(self, cloud: LocalCloud, sub: str,
                                                       project: ArmResource) -> None:
        a = cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        b = cloud.create_role_assignment(sub, project.id, "alice", "User", READER)
        c = cloud.create_role_assignment(sub, project.id, "bob", "User", READER)
        assert len({a.id, b.id, c.id}) == 3
        assert len(cloud.role_assignments()) == 3
        assert {r.id for r in cloud.role_assignments("Alice")} == {a.id, b.id}

    def test_reassigning_with_new_description_updates_it(self, cloud: LocalCloud, sub: str,
                                                         project: ArmResource) -> None:
        first = cloud.create_role_assignment(sub, project.id, "alice", "User", READER, "old")
        again = cloud.create_role_assignment(sub, project.id, "alice", "User", READER, "new")
        assert again.id == first.id
        assert again.properties["description"] == "new"
        assert again.etag != first.etag
        assert len(cloud.role_assignments()) == 1

    @pytest.mark.parametrize("role", [str(uuid.UUID(int=0)), "11111111-2222-3333-4444-555555555555",
                                      "Not A Role"])
    def test_unknown_role(self, cloud: LocalCloud, sub: str, project: ArmResource, role: str) -> None:
        with arm_error("RoleDefinitionDoesNotExist") as caught:
            cloud.create_role_assignment(sub, project.id, "alice", "User", role)
        assert role in caught.message
        assert cloud.role_assignments() == []

    @pytest.mark.parametrize("scope_of", [
        pytest.param(lambda sub: ws_id(sub, "no-such-project"), id="missing-workspace"),
        pytest.param(lambda sub: f"/subscriptions/{uuid.uuid4()}/resourceGroups/{RG}", id="other-subscription"),
        pytest.param(lambda sub: f"/subscriptions/{uuid.uuid4()}", id="other-subscription-root"),
        pytest.param(lambda sub: "/subscriptions", id="truncated"),
        pytest.param(lambda sub: f"/subscriptions/{sub}/resourceGroups", id="resource-group-without-name"),
        pytest.param(lambda sub: f"/subscriptions/{sub}/notResourceGroups/{RG}", id="not-a-resource-group"),
        pytest.param(lambda sub: "/", id="root"),
    ])
    def test_scope_that_does_not_exist(self, cloud: LocalCloud, sub: str, scope_of: Any) -> None:
        """Assigning at a scope that does not exist is an ARM error (a BackendError), never a crash."""
        with pytest.raises(BackendError):
            cloud.create_role_assignment(sub, scope_of(sub), "alice", "User", READER)
        assert cloud.role_assignments() == []

    def test_assignments_at_subscription_scope(self, cloud: LocalCloud, sub: str) -> None:
        assignment = cloud.create_role_assignment(sub, f"/subscriptions/{sub}", "alice", "User", READER)
        assert assignment.id.startswith(f"/subscriptions/{sub}/providers/Microsoft.Authorization/")

    def test_deleting_a_workspace_removes_its_assignments(self, cloud: LocalCloud, sub: str,
                                                          hub: ArmResource, project: ArmResource,
                                                          project_b: ArmResource) -> None:
        at_project = cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        at_project_b = cloud.create_role_assignment(sub, project_b.id, "alice", "User", AI_DEVELOPER)
        at_hub = cloud.create_role_assignment(sub, hub.id, "bob", "User", READER)
        at_rg = cloud.create_role_assignment(sub, rg_scope(sub), "carol", "User", READER)

        assert cloud.delete_workspace(project.id)
        assert cloud.get(at_project.id) is None
        assert {a.id for a in cloud.role_assignments()} == {at_project_b.id, at_hub.id, at_rg.id}

        assert cloud.delete_workspace(project_b.id)
        assert cloud.delete_workspace(hub.id)
        assert {a.id for a in cloud.role_assignments()} == {at_rg.id}

        # A project created again under the old name does not inherit the old assignment.
        cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
        again = cloud.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=hub.id)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, again.id)

    def test_delete_removes_only_that_workspaces_assignments(self, cloud: LocalCloud, sub: str) -> None:
        """'_' is a LIKE wildcard: deleting hub 'a_b' must not touch assignments on hub 'aXb'."""
        underscore = cloud.create_workspace(sub, RG, "a_b", kind="Hub", location="eastus2")
        lookalike = cloud.create_workspace(sub, RG, "aXb", kind="Hub", location="eastus2")
        prefixed = cloud.create_workspace(sub, RG, "a_b2", kind="Hub", location="eastus2")
        keep = [cloud.create_role_assignment(sub, w.id, "alice", "User", READER)
                for w in (lookalike, prefixed)]
        gone = cloud.create_role_assignment(sub, underscore.id, "alice", "User", READER)
        assert cloud.delete_workspace(underscore.id)
        assert cloud.get(gone.id) is None
        assert {a.id for a in cloud.role_assignments()} == {k.id for k in keep}

    def test_update_and_delete_assignment(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        assignment = cloud.create_role_assignment(sub, project.id, "alice", "User", READER)
        updated = cloud.update_role_assignment(assignment.id, description="reviewed")
        assert updated.properties["description"] == "reviewed"
        assert updated.etag != assignment.etag
        assert cloud.delete_role_assignment(assignment.id) is True
        assert cloud.delete_role_assignment(assignment.id) is False
        with arm_error("RoleAssignmentNotFound"):
            cloud.update_role_assignment(assignment.id, description="x")


# -- authorization (RBAC) --------------------------------------------------------------


class TestAuthorization:
    def test_ai_developer_on_a_project(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        assert cloud.check_access("alice", JOBS_WRITE, project.id) == "Azure AI Developer"
        assert cloud.check_access("alice", JOBS_WRITE, project.id + "/jobs/job-1") == "Azure AI Developer"
        with pytest.raises(AuthorizationFailed):  # a NotAction of the role
            cloud.check_access("alice", WORKSPACE_WRITE, project.id)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", "Microsoft.MachineLearningServices/workspaces/delete", project.id)

    def test_resource_group_assignment_covers_a_project(self, cloud: LocalCloud, sub: str,
                                                        project: ArmResource) -> None:
        cloud.create_role_assignment(sub, rg_scope(sub), "alice", "User", AI_DEVELOPER)
        assert cloud.check_access("alice", JOBS_WRITE, project.id) == "Azure AI Developer"

    def test_assignment_in_another_resource_group_does_not_cover(self, cloud: LocalCloud, sub: str,
                                                                 project: ArmResource) -> None:
        cloud.create_role_assignment(sub, f"/subscriptions/{sub}/resourceGroups/{RG}-other",
                                     "alice", "User", AI_DEVELOPER)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, project.id)

    def test_hub_assignment_covers_its_projects(self, cloud: LocalCloud, sub: str, hub: ArmResource,
                                                project: ArmResource, project_b: ArmResource) -> None:
        cloud.create_role_assignment(sub, hub.id, "alice", "User", AI_DEVELOPER)
        for p in (project, project_b):
            assert cloud.check_access("alice", JOBS_WRITE, p.id) == "Azure AI Developer"
        other_hub = cloud.create_workspace(sub, RG, "hub2", kind="Hub", location="eastus2")
        elsewhere = cloud.create_workspace(sub, RG, "proj-z", kind="Project", hub_id=other_hub.id)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, elsewhere.id)

    def test_project_assignment_does_not_cover_sibling_or_hub(self, cloud: LocalCloud, sub: str,
                                                              hub: ArmResource, project: ArmResource,
                                                              project_b: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, project_b.id)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, hub.id)

    def test_project_name_prefix_does_not_cover(self, cloud: LocalCloud, sub: str, hub: ArmResource,
                                                project: ArmResource) -> None:
        """Scopes nest by path segment: 'proj-a' does not cover 'proj-a2'."""
        longer = cloud.create_workspace(sub, RG, "proj-a2", kind="Project", hub_id=hub.id)
        cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, longer.id)

    def test_reader(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "rita", "User", READER)
        assert cloud.check_access("rita", JOBS_READ, project.id) == "Reader"
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("rita", JOBS_WRITE, project.id)

    def test_contributor(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "carl", "User", CONTRIBUTOR)
        assert cloud.check_access("carl", WORKSPACE_WRITE, project.id) == "Contributor"
        assert cloud.check_access("carl", JOBS_WRITE, project.id) == "Contributor"
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("carl", ASSIGN_ROLES, project.id)

    def test_owner_may_assign_roles(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "olga", "User", OWNER)
        assert cloud.check_access("olga", ASSIGN_ROLES, project.id) == "Owner"

    def test_data_actions_are_separate(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        chat = "Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"
        cloud.create_role_assignment(sub, project.id, "olga", "User", OWNER)
        cloud.create_role_assignment(sub, project.id, "dev", "User", AI_DEVELOPER)
        assert cloud.check_access("dev", chat, project.id, data_action=True) == "Azure AI Developer"
        with pytest.raises(AuthorizationFailed):  # Owner has actions, not data actions
            cloud.check_access("olga", chat, project.id, data_action=True)

    def test_no_role_is_authorization_failed(self, cloud: LocalCloud, sub: str, project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "somebody-else", "User", OWNER)
        with pytest.raises(AuthorizationFailed) as excinfo:
            cloud.check_access("mallory", JOBS_WRITE, project.id)
        error = excinfo.value
        assert isinstance(error, BackendError) and error.code == "AuthorizationFailed"
        assert "mallory" in error.message
        assert JOBS_WRITE in error.message
        assert project.id in error.message
        assert error.hint is not None
        for granting in ("Owner", "Contributor", "Azure AI Developer"):
            assert granting in error.hint
        assert "Reader" not in error.hint

    def test_principal_matching_is_case_insensitive(self, cloud: LocalCloud, sub: str,
                                                    project: ArmResource) -> None:
        cloud.create_role_assignment(sub, project.id, "Alice@Contoso.com", "User", AI_DEVELOPER)
        assert cloud.check_access("alice@contoso.com", JOBS_WRITE, project.id) == "Azure AI Developer"
        assert cloud.check_access("ALICE@CONTOSO.COM", JOBS_WRITE, project.id) == "Azure AI Developer"

    def test_revoked_assignment_no_longer_grants(self, cloud: LocalCloud, sub: str,
                                                 project: ArmResource) -> None:
        assignment = cloud.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
        cloud.check_access("alice", JOBS_WRITE, project.id)
        cloud.delete_role_assignment(assignment.id)
        with pytest.raises(AuthorizationFailed):
            cloud.check_access("alice", JOBS_WRITE, project.id)


# -- LocalBackend and its handlers -----------------------------------------------------


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(LocalBackendConfig(resource_group=RG, registration_delay=0.1,
                                        principal="tester"), root=tmp_path)
    yield b
    b.close()


def hub_target(name: str = "hub1", **attributes: Any) -> Target:
    attrs = {"location": "eastus2", "display_name": None, "description": "", "tags": {}, **attributes}
    return Target(f"Hub.{name}", "Hub", name, attrs)


def project_target(name: str = "proj-a", hub: str = "hub1", **attributes: Any) -> Target:
    attrs = {"hub": hub, "display_name": None, "description": "", "tags": {}, **attributes}
    return Target(f"Project.{name}", "Project", name, attrs)


def assignment_target(name: str, principal: str, role: str, scope: dict[str, Any],
                      description: str = "") -> Target:
    attrs = {"principal": principal, "principal_type": "User", "role": role, "scope": scope,
             "description": description}
    return Target(f"RoleAssignment.{name}", "RoleAssignment", name, attrs)


def provider_target(namespace: str) -> Target:
    name = namespace.replace(".", "-")
    return Target(f"ProviderRegistration.{name}", "ProviderRegistration", name, {"namespace": namespace})


def with_id(target: Target, backend_id: str) -> Target:
    """The target as state knows it after create: with its backend id."""
    return Target(target.address, target.kind, target.name, target.attributes, backend_id)


class Messages(Progress):
    """A Progress that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__(self.messages.append)


class TestBackend:
    def test_describe(self, backend: LocalBackend, tmp_path: Path) -> None:
        assert backend.describe() == {
            "type": "local", "path": str((tmp_path / ".foundryctl" / "local").resolve()),
            "subscription_id": backend.cloud.default_subscription_id, "resource_group": RG,
            "principal": "tester"}
        assert (tmp_path / ".foundryctl" / "local" / LocalCloud.FILE_NAME).is_file()

    def test_configured_subscription_is_used(self, tmp_path: Path) -> None:
        sub = "00000000-1111-2222-3333-444444444444"
        b = LocalBackend(LocalBackendConfig(subscription_id=sub, path="cp"), root=tmp_path)
        try:
            assert b.subscription_id == sub
            assert b.describe()["subscription_id"] == sub
            assert b.describe()["path"] == str((tmp_path / "cp").resolve())
            assert b.describe()["resource_group"] == "foundryctl-local"
            observed = b.handler("Hub").create(hub_target(), Progress())
            assert observed.id.startswith(f"/subscriptions/{sub}/resourceGroups/foundryctl-local/")
        finally:
            b.close()

    def test_principal_from_config_then_env_then_os_user(self, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FOUNDRYCTL_PRINCIPAL", "from-env")
        principals = []
        for i, config in enumerate([LocalBackendConfig(principal="from-config"), LocalBackendConfig()]):
            b = LocalBackend(config, root=tmp_path / str(i))
            principals.append((b.principal, b.describe()["principal"]))
            b.close()
        monkeypatch.delenv("FOUNDRYCTL_PRINCIPAL")
        b = LocalBackend(LocalBackendConfig(), root=tmp_path / "os")
        principals.append((b.principal, b.describe()["principal"]))
        b.close()
        assert principals == [("from-config", "from-config"), ("from-env", "from-env"),
                              (current_user(), current_user())]

    def test_authorize_checks_the_acting_principal(self, backend: LocalBackend) -> None:
        backend.handler("Hub").create(hub_target(), Progress())
        project = backend.handler("Project").create(project_target(), Progress())
        with pytest.raises(AuthorizationFailed) as excinfo:
            backend.authorize(JOBS_WRITE, project.id)
        assert "tester" in excinfo.value.message
        backend.handler("RoleAssignment").create(
            assignment_target("dev", "TESTER", "Azure AI Developer", {"project": "proj-a"}), Progress())
        assert backend.authorize(JOBS_WRITE, project.id) == "Azure AI Developer"

    def test_unknown_kind(self, backend: LocalBackend) -> None:
        with arm_error("UnsupportedKind"):
            backend.handler("Notebook")

    def test_a_handler_for_every_kind(self, backend: LocalBackend) -> None:
        from foundryctl.kinds import KINDS

        for kind in KINDS:
            assert backend.handler(kind).kind == kind


class TestProviderRegistrationHandler:
    def test_round_trip(self, backend: LocalBackend) -> None:
        handler = backend.handler("ProviderRegistration")
        sub = backend.subscription_id
        target = provider_target("Microsoft.Network")
        assert handler.read(target) is None

        progress = Messages()
        created = handler.create(target, progress)
        expected_id = f"/subscriptions/{sub}/providers/Microsoft.Network"
        assert created.id == handler.identify(target) == expected_id
        assert created.attributes == {"namespace": "Microsoft.Network"}
        assert created.outputs == {"id": expected_id, "registration_state": "Registered"}
        assert progress.messages == ["registering"]
        assert backend.cloud.provider_state(sub, "Microsoft.Network") == "Registered"
        assert handler.read(target) == created
        assert handler.read(with_id(target, created.id)) == created

        assert handler.update(target, created.attributes, Progress()) == created  # no-op
        handler.delete(target, Progress())
        assert backend.cloud.provider_state(sub, "Microsoft.Network") == "NotRegistered"
        assert handler.read(target) is None

    def test_default_namespace_reads_registered(self, backend: LocalBackend) -> None:
        observed = backend.handler("ProviderRegistration").read(provider_target("Microsoft.Resources"))
        assert observed is not None
        assert observed.outputs["registration_state"] == "Registered"

    def test_unknown_namespace(self, backend: LocalBackend) -> None:
        with arm_error("InvalidResourceNamespace"):
            backend.handler("ProviderRegistration").create(provider_target("Microsoft.Bogus"), Progress())


class TestWorkspaceHandlers:
    def test_hub_round_trip(self, backend: LocalBackend) -> None:
        handler = backend.handler("Hub")
        target = hub_target(location="East US 2", display_name="Hub One", description="d",
                            tags={"team": "ml"})
        assert handler.read(target) is None

        created = handler.create(target, Progress())
        assert created.id == handler.identify(target) == ws_id(backend.subscription_id, "hub1")
        assert created.attributes == {"location": "eastus2", "display_name": "Hub One",
                                      "description": "d", "tags": {"team": "ml"}}
        assert created.outputs["provisioning_state"] == "Succeeded"
        assert created.outputs["location"] == "eastus2"
        assert GUID.match(created.outputs["workspace_id"])
        assert handler.read(target) == created
        assert handler.read(with_id(target, created.id)) == created

        time.sleep(0.005)
        desired = hub_target(display_name="Hub Uno", description="d2", tags={"team": "ai"})
        updated = handler.update(with_id(desired, created.id), created.attributes, Progress())
        assert updated.id == created.id
        assert updated.attributes == {"location": "eastus2", "display_name": "Hub Uno",
                                      "description": "d2", "tags": {"team": "ai"}}
        assert updated.outputs["etag"] != created.outputs["etag"]
        assert updated.outputs["modified_at"] > created.outputs["modified_at"]
        assert updated.outputs["workspace_id"] == created.outputs["workspace_id"]
        assert handler.read(desired) == updated

        handler.delete(with_id(desired, created.id), Progress())
        assert handler.read(desired) is None
        handler.delete(desired, Progress())  # deleting what is gone succeeds

    def test_hub_create_conflict(self, backend: LocalBackend) -> None:
        handler = backend.handler("Hub")
        handler.create(hub_target(), Progress())
        with arm_error("Conflict"):
            handler.create(hub_target(), Progress())

    def test_project_round_trip(self, backend: LocalBackend) -> None:
        hub = backend.handler("Hub").create(hub_target(location="swedencentral"), Progress())
        handler = backend.handler("Project")
        target = project_target(description="p")
        assert handler.read(target) is None

        created = handler.create(target, Progress())
        assert created.id == handler.identify(target) == ws_id(backend.subscription_id, "proj-a")
        assert created.attributes == {"hub": "hub1", "display_name": "proj-a", "description": "p",
                                      "tags": {}}
        assert created.outputs["hub_id"] == hub.id
        assert created.outputs["location"] == "swedencentral"
        assert handler.read(target) == created

        desired = project_target(description="p2", tags={"a": "b"})
        updated = handler.update(desired, created.attributes, Progress())
        assert updated.attributes["description"] == "p2" and updated.attributes["tags"] == {"a": "b"}
        assert handler.read(desired) == updated

        handler.delete(desired, Progress())
        assert handler.read(desired) is None
        backend.handler("Hub").delete(hub_target(), Progress())  # now it may go
        assert backend.handler("Hub").read(hub_target()) is None

    def test_project_needs_hub(self, backend: LocalBackend) -> None:
        with arm_error("HubNotFound"):
            backend.handler("Project").create(project_target(hub="nope"), Progress())

    def test_kinds_do_not_read_each_other(self, backend: LocalBackend) -> None:
        """A Project handler does not report a hub of the same name, nor the reverse."""
        backend.handler("Hub").create(hub_target("shared"), Progress())
        backend.handler("Project").create(project_target("proj-a", hub="shared"), Progress())
        assert backend.handler("Project").read(project_target("shared", hub="shared")) is None
        assert backend.handler("Hub").read(hub_target("proj-a")) is None
        with arm_error("Conflict"):
            backend.handler("Project").create(project_target("shared", hub="shared"), Progress())


class TestRoleAssignmentHandler:
    @pytest.fixture
    def workspaces(self, backend: LocalBackend) -> dict[str, Observed]:
        hub = backend.handler("Hub").create(hub_target(), Progress())
        project = backend.handler("Project").create(project_target(), Progress())
        return {"hub": hub, "project": project}

    @pytest.mark.parametrize("scope,scope_name", [({"project": "proj-a"}, "project"),
                                                  ({"hub": "hub1"}, "hub"),
                                                  ({"resource_group": True}, "resource_group")])
    def test_round_trip(self, backend: LocalBackend, workspaces: dict[str, Observed],
                        scope: dict[str, Any], scope_name: str) -> None:
        handler = backend.handler("RoleAssignment")
        sub = backend.subscription_id
        scope_id = rg_scope(sub) if scope_name == "resource_group" else workspaces[scope_name].id
        target = assignment_target("dev", "alice", "Azure AI Developer", scope, "first")
        assert handler.read(target) is None

        created = handler.create(target, Progress())
        name = assignment_name(scope_id, "alice", AI_DEVELOPER)
        assert created.id == handler.identify(target) == (
            f"{scope_id}/providers/Microsoft.Authorization/roleAssignments/{name}")
        assert created.attributes == target.attributes
        assert created.outputs["assignment_name"] == name
        assert created.outputs["scope_id"] == scope_id
        assert created.outputs["role_definition_id"] == (
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{AI_DEVELOPER}")
        assert handler.read(target) == created
        assert handler.read(with_id(target, created.id)) == created
        assert handler.import_(created.id, "dev") == created

        desired = assignment_target("dev", "alice", "Azure AI Developer", scope, "second")
        updated = handler.update(with_id(desired, created.id), created.attributes, Progress())
        assert updated.id == created.id
        assert updated.attributes["description"] == "second"
        assert handler.read(desired) == updated

        handler.delete(desired, Progress())
        assert handler.read(desired) is None
        handler.delete(desired, Progress())  # idempotent

    def test_role_by_guid_identifies_the_same_assignment(self, backend: LocalBackend,
                                                         workspaces: dict[str, Observed]) -> None:
        handler = backend.handler("RoleAssignment")
        by_name = assignment_target("a", "alice", "Reader", {"project": "proj-a"})
        by_guid = assignment_target("a", "alice", READER, {"project": "proj-a"})
        assert handler.identify(by_guid) == handler.identify(by_name)
        created = handler.create(by_guid, Progress())
        assert created.id == handler.identify(by_name)
        assert created.attributes["role"] == "Reader"
        again = handler.create(by_name, Progress())  # adopts the existing assignment
        assert again.id == created.id
        assert len(backend.cloud.role_assignments()) == 1

    def test_unknown_role(self, backend: LocalBackend, workspaces: dict[str, Observed]) -> None:
        target = assignment_target("x", "alice", "Galactic Overlord", {"project": "proj-a"})
        for call in (lambda: backend.handler("RoleAssignment").identify(target),
                     lambda: backend.handler("RoleAssignment").create(target, Progress())):
            with arm_error("RoleDefinitionDoesNotExist"):
                call()

    def test_scope_that_does_not_exist(self, backend: LocalBackend) -> None:
        with pytest.raises(BackendError):
            backend.handler("RoleAssignment").create(
                assignment_target("x", "alice", "Reader", {"project": "ghost"}), Progress())
        assert backend.cloud.role_assignments() == []


class TestReadMany:
    def test_read_many_agrees_with_read(self, backend: LocalBackend) -> None:
        progress = Progress()
        backend.handler("ProviderRegistration").create(provider_target("Microsoft.Network"), progress)
        hubs = [hub_target("hub1"), hub_target("hub2", location="westus"), hub_target("absent-hub")]
        projects = [project_target("proj-a"), project_target("proj-b", hub="hub2"),
                    project_target("absent-proj")]
        assignments = [
            assignment_target("a", "alice", "Azure AI Developer", {"project": "proj-a"}),
            assignment_target("b", "bob", "Reader", {"hub": "hub2"}),
            assignment_target("c", "carol", "Contributor", {"resource_group": True}),
            assignment_target("absent", "dave", "Owner", {"project": "proj-a"}),
        ]
        providers = [provider_target("Microsoft.Network"), provider_target("Microsoft.Storage"),
                     provider_target("Microsoft.Resources")]
        for target in hubs[:2] + projects[:2] + assignments[:3]:
            backend.handler(target.kind).create(target, progress)

        everything = providers + hubs + projects + assignments
        by_read = {t.address: backend.handler(t.kind).read(t) for t in everything}
        assert [a for a, o in by_read.items() if o is None] == [
            "ProviderRegistration.Microsoft-Storage", "Hub.absent-hub", "Project.absent-proj",
            "RoleAssignment.absent"]
        for group in (providers, hubs, projects, assignments):
            handler = backend.handler(group[0].kind)
            assert handler.read_many(group) == [by_read[t.address] for t in group]
        assert backend.read_many(everything) == by_read

        # With backend ids (and ids in another case), as targets come from state.
        known = [with_id(t, o.id.upper()) for t in everything if (o := by_read[t.address]) is not None
                 and t.kind != "ProviderRegistration"]
        assert backend.read_many(known) == {t.address: by_read[t.address] for t in known}


# -- several cloud objects on one directory --------------------------------------------


class TestSharedDirectory:
    def test_two_clouds_see_each_others_writes(self, tmp_path: Path) -> None:
        first = LocalCloud(tmp_path / "shared", registration_delay=DELAY)
        second = LocalCloud(tmp_path / "shared", registration_delay=DELAY)
        try:
            sub = first.default_subscription_id
            assert second.default_subscription_id == sub

            hub = first.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
            assert second.get(hub.id) == hub
            project = second.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=hub.id)
            with arm_error("Conflict"):
                first.create_workspace(sub, RG, "proj-a", kind="Project", hub_id=hub.id)
            with arm_error("Conflict"):
                first.delete_workspace(hub.id)

            first.create_role_assignment(sub, project.id, "alice", "User", AI_DEVELOPER)
            assert second.check_access("alice", JOBS_WRITE, project.id) == "Azure AI Developer"

            assert first.register_provider(sub, "Microsoft.Network") == "Registering"
            assert second.provider_state(sub, "Microsoft.Network") == "Registering"
            wait_for_state(second, sub, "Microsoft.Network", "Registered")
            assert first.provider_state(sub, "Microsoft.Network") == "Registered"

            updated = second.update_workspace(hub.id, description="by second")
            assert first.get(hub.id) == updated
            assert second.delete_workspace(project.id)
            assert first.get(project.id) is None
            assert first.role_assignments() == []
        finally:
            first.close()
            second.close()

    def test_default_subscription_is_stable_across_reopen(self, tmp_path: Path) -> None:
        first = LocalCloud(tmp_path / "cp")
        sub = first.default_subscription_id
        hub = first.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
        first.close()
        reopened = LocalCloud(tmp_path / "cp")
        try:
            assert reopened.default_subscription_id == sub
            assert reopened.get(hub.id) == hub
        finally:
            reopened.close()
        other = LocalCloud(tmp_path / "another")
        try:
            assert other.default_subscription_id != sub
        finally:
            other.close()

    def test_another_process_sees_writes(self, tmp_path: Path) -> None:
        """A real second process writes; this one reads it (and the reverse)."""
        directory = tmp_path / "cp"
        cloud = LocalCloud(directory)
        try:
            sub = cloud.default_subscription_id
            cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
            script = textwrap.dedent(f"""
                from foundryctl.backends.local import LocalCloud
                c = LocalCloud({str(directory)!r})
                sub = c.default_subscription_id
                assert sub == {sub!r}, "child sees another subscription"
                hub = c.get({ws_id(sub, 'hub1')!r})
                assert hub is not None, "child cannot see the parent's hub"
                c.create_workspace(sub, {RG!r}, "proj-a", kind="Project", hub_id=hub.id)
                print(sub)
            """)
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == sub
            project = cloud.get(ws_id(sub, "proj-a"))
            assert project is not None and project.parent_id == ws_id(sub, "hub1")
        finally:
            cloud.close()


# -- soft-deleted workspace names (Azure's rule, emulated) --------------------------------


def test_a_soft_deleted_name_is_taken_until_purged_or_recovered(cloud: LocalCloud, sub: str) -> None:
    hub = cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2", description="first")
    assert cloud.delete_workspace(hub.id, purge=False) is True
    assert cloud.get(hub.id) is None

    with arm_error("SoftDeletedWorkspaceExists") as caught:
        cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
    assert "Please purge or recover it" in caught.message
    with arm_error("SoftDeletedWorkspaceExists"):
        cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2", on_soft_deleted="fail")

    recovered = cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2",
                                       description="second", on_soft_deleted="recover")
    assert recovered.properties["workspaceId"] == hub.properties["workspaceId"]  # the same workspace
    assert recovered.properties["description"] == "first"  # as it was deleted

    assert cloud.delete_workspace(hub.id, purge=False)
    purged = cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2", on_soft_deleted="purge")
    assert purged.properties["workspaceId"] != hub.properties["workspaceId"]  # a new one
    assert cloud.delete_workspace(purged.id)  # purge (the default): the name is free at once
    assert cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2").name == "hub1"


def test_a_soft_deleted_name_is_free_after_the_retention_period(cloud: LocalCloud, sub: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl.backends.local import cloud as cloud_module

    hub = cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2")
    cloud.delete_workspace(hub.id, purge=False)
    later = time.time() + cloud_module.SOFT_DELETE_RETENTION + 1
    monkeypatch.setattr(cloud_module.time, "time", lambda: later)
    assert cloud.create_workspace(sub, RG, "hub1", kind="Hub", location="eastus2").name == "hub1"


def test_the_same_manifest_meets_the_soft_delete_rule_locally(tmp_path: Path) -> None:
    from foundryctl.stack import Stack

    def manifest(extra: str = "") -> Path:
        path = tmp_path / "foundry.yaml"
        path.write_text(textwrap.dedent(f"""\
            version: 1
            backend: {{type: local, registration_delay: 0, purge_on_delete: false}}
            resources:
              - {{kind: Hub, name: hub-a, location: eastus2, description: fine-tuning{extra}}}
              - {{kind: Project, name: proj-a, hub: hub-a{extra}}}
            """))
        return path

    with Stack.load(manifest()) as stack:
        assert stack.apply(stack.plan()).ok
    with Stack.load(manifest()) as stack:
        destroy = stack.plan(mode="destroy")
        assert any("soft-deleted, as Azure does" in r for c in destroy.pending for r in c.reasons)
        assert stack.apply(destroy).ok

    with Stack.load(manifest()) as stack:
        plan = stack.plan()
        # The plan knows from the state's history that these names are still held, and says so.
        held = [w for w in plan.warnings if w.code == "name-soft-deleted"]
        assert sorted(w.address for w in held) == ["Hub.hub-a", "Project.proj-a"]
        assert all("set on_soft_deleted: purge (its data is lost) or recover, or pick a new name" in w.message
                   and "without purging it" in w.message for w in held)
        refused = stack.apply(plan)
    assert not refused.ok
    [(address, _, error)] = refused.failures
    assert address == "Hub.hub-a" and getattr(error, "code", None) == "SoftDeletedWorkspaceExists"

    with Stack.load(manifest(", on_soft_deleted: recover")) as stack:
        plan = stack.plan()
        assert sum("apply recovers it" in r for c in plan.pending for r in c.reasons) >= 2
        assert not [w for w in plan.warnings if w.code == "name-soft-deleted"]
        assert stack.apply(plan).ok
    with Stack.load(manifest(", on_soft_deleted: recover")) as stack:
        again = stack.plan()
        assert not again.has_changes, [(c.address, c.action, c.attribute_changes) for c in again.pending]
    # A second destroy soft-deletes them again; purge_on_delete set afterwards does not free
    # names already held, so the plan still warns.
    with Stack.load(manifest(", on_soft_deleted: recover")) as stack:
        assert stack.apply(stack.plan(mode="destroy")).ok
    purged = tmp_path / "foundry.yaml"
    purged.write_text(purged.read_text().replace("purge_on_delete: false", "purge_on_delete: true")
                      .replace(", on_soft_deleted: recover", ""))
    with Stack.load(purged) as stack:
        plan = stack.plan()
        assert [w.address for w in plan.warnings if w.code == "name-soft-deleted"] == ["Hub.hub-a", "Project.proj-a"]
