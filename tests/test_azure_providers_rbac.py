"""Contract tests of the azure backend's ProviderRegistration and RoleAssignment handlers:
every request they send (method, path, api-version, body), answered by the fake Azure."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azurefake import arm_error
from azurefake.families.authorization import pending_principal, seed_assignment
from azurefake.families.providers import mark_in_use, seed_provider
from azurefake.families.workspaces import seed_workspace
from azurefake.fixtures import LOCATION, PRINCIPAL, RESOURCE_GROUP, SUBSCRIPTION, TOKEN

from foundryctl.backends.base import Progress, Target
from foundryctl.errors import BackendError

RESOURCES_API = "2025-04-01"  # azure-mgmt-resource 26's ResourceManagementClient
AUTHORIZATION_API = "2022-04-01"  # azure-mgmt-authorization 4's role_assignments
WORKSPACES_API = "2024-10-01-preview"  # azure-ai-ml's workspaces

SUB = f"/subscriptions/{SUBSCRIPTION}"
RG = f"{SUB}/resourceGroups/{RESOURCE_GROUP}"
NETWORK = f"{SUB}/providers/Microsoft.Network"
AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"
AI_DEVELOPER_DEFINITION = f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{AI_DEVELOPER}"
# kinds/role_assignment.py's namespace, spelled out: a changed name would orphan every
# assignment foundryctl made before.
NAME_NAMESPACE = uuid.UUID("6f1c2b4e-3f0a-5d8e-9b7a-f0c9d1e2a3b4")


def workspace(name: str) -> str:
    return f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/{name}"


def expected_name(scope: str, principal: str = PRINCIPAL, role: str = AI_DEVELOPER) -> str:
    return str(uuid.uuid5(NAME_NAMESPACE, f"{scope.lower()}|{principal.lower()}|{role}"))


def assignment_path(scope: str, name: str) -> str:
    return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"


def requests_sent(fake: Any) -> list[tuple[str, str, str | None]]:
    return [(c.method, c.path, c.api_version) for c in fake.calls]


def collector() -> tuple[Progress, list[str]]:
    messages: list[str] = []
    return Progress(lambda message, *rest: messages.append(message)), messages


def make_backend(tmp_path: Path, **overrides: Any) -> Any:
    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    settings = {"type": "azure", "subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP,
                "location": LOCATION, "poll_interval": 0.01, "principal_retry_timeout": 2, **overrides}
    return AzureBackend(AzureBackendConfig(**settings), tmp_path)


@pytest.fixture
def providers(azure_backend: Any) -> Any:
    return azure_backend.handler("ProviderRegistration")


@pytest.fixture
def unregistering(fake_azure: Any, tmp_path: Any) -> Any:
    """The ProviderRegistration handler of a backend with `unregister_providers: true`."""
    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    config = AzureBackendConfig(type="azure", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                location=LOCATION, poll_interval=0.01, unregister_providers=True)
    backend = AzureBackend(config, tmp_path)
    yield backend.handler("ProviderRegistration")
    backend.close()


@pytest.fixture
def assignments(azure_backend: Any) -> Any:
    return azure_backend.handler("RoleAssignment")


def provider_target(namespace: str = "Microsoft.Network") -> Target:
    return Target("ProviderRegistration.network", "ProviderRegistration", "network", {"namespace": namespace})


def assignment_target(scope: dict[str, Any] | None = None, *, description: str = "",
                      principal: str = PRINCIPAL, principal_type: str = "User",
                      backend_id: str | None = None) -> Target:
    attributes = {"principal": principal, "principal_type": principal_type, "role": "Azure AI Developer",
                  "scope": scope or {"project": "xbox-support"}, "description": description}
    return Target("RoleAssignment.ml-engineer", "RoleAssignment", "ml-engineer", attributes, backend_id)


# -- ProviderRegistration ---------------------------------------------------------------


def test_register_polls_from_not_registered_through_registering_to_registered(fake_azure, providers):
    progress, messages = collector()

    observed = providers.create(provider_target(), progress)

    assert requests_sent(fake_azure) == [
        ("POST", f"{NETWORK}/register", RESOURCES_API),
        ("GET", NETWORK, RESOURCES_API),  # Registering
        ("GET", NETWORK, RESOURCES_API),  # Registering
        ("GET", NETWORK, RESOURCES_API),  # Registered
    ]
    assert fake_azure.calls[0].body in (None, b"", "")  # register sends no consent body
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in fake_azure.calls)
    assert observed.id == NETWORK
    assert observed.attributes == {"namespace": "Microsoft.Network"}  # = the desired attributes
    assert observed.outputs == {"id": NETWORK, "registration_state": "Registered"}
    assert messages == ["registering"]


def test_registering_an_already_registered_namespace_does_not_poll(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registered")

    observed = providers.create(provider_target(), Progress())

    assert requests_sent(fake_azure) == [("POST", f"{NETWORK}/register", RESOURCES_API)]
    assert observed.outputs["registration_state"] == "Registered"


def test_read_registered_provider(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registered")

    observed = providers.read(provider_target())

    assert requests_sent(fake_azure) == [("GET", NETWORK, RESOURCES_API)]
    assert (observed.id, observed.attributes, observed.outputs) == (
        NETWORK, {"namespace": "Microsoft.Network"}, {"id": NETWORK, "registration_state": "Registered"})


def test_read_registering_provider_is_present(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registering", polls=5)

    observed = providers.read(provider_target())

    assert observed is not None and observed.outputs["registration_state"] == "Registering"


@pytest.mark.parametrize("state", ["NotRegistered", "Unregistered"])
def test_read_unregistered_provider_is_absent(fake_azure, providers, state):
    seed_provider(fake_azure, "Microsoft.Network", state)

    assert providers.read(provider_target()) is None
    assert requests_sent(fake_azure) == [("GET", NETWORK, RESOURCES_API)]


def test_registration_timeout_names_the_state_and_the_time(fake_azure, tmp_path):
    fake_azure.state["provider_polls"] = 10**6  # Azure never finishes
    backend = make_backend(tmp_path, registration_timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as raised:
            backend.handler("ProviderRegistration").create(provider_target(), Progress())
    finally:
        backend.close()

    assert time.monotonic() - started < 10
    error = raised.value
    assert error.code == "RegistrationTimeout"
    assert "Microsoft.Network" in error.message and "still Registering after" in error.message
    assert "registration_timeout" in (error.hint or "")
    sent = requests_sent(fake_azure)
    assert sent[0] == ("POST", f"{NETWORK}/register", RESOURCES_API)
    assert len(sent) > 2 and set(sent[1:]) == {("GET", NETWORK, RESOURCES_API)}


def test_destroy_leaves_the_namespace_registered_by_default(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registered")
    progress, messages = collector()
    observed = providers.read(provider_target())
    fake_azure.calls.clear()

    providers.delete(provider_target(), progress)

    assert fake_azure.calls == []  # unregistering would touch the whole subscription
    assert messages == ["left Microsoft.Network registered (other resources of the subscription may need it)"]
    assert "stays registered" in providers.delete_notes(observed)[0]


def test_unregister_waits_for_unregistered(fake_azure, unregistering):
    providers = unregistering
    seed_provider(fake_azure, "Microsoft.Network", "Registered")
    progress, messages = collector()

    providers.delete(provider_target(), progress)

    assert requests_sent(fake_azure) == [
        ("POST", f"{NETWORK}/unregister", RESOURCES_API),
        ("GET", NETWORK, RESOURCES_API),  # Unregistering
        ("GET", NETWORK, RESOURCES_API),  # Unregistering
        ("GET", NETWORK, RESOURCES_API),  # Unregistered
    ]
    assert messages == ["unregistering"]
    assert providers.read(provider_target()) is None


def test_unregister_of_a_namespace_in_use_is_a_clear_error(fake_azure, unregistering):
    providers = unregistering
    seed_provider(fake_azure, "Microsoft.Network", "Registered")
    mark_in_use(fake_azure, "Microsoft.Network")

    with pytest.raises(BackendError) as raised:
        providers.delete(provider_target(), Progress())

    error = raised.value
    assert error.code == "Conflict"
    assert error.message.startswith("unregistering resource provider Microsoft.Network: ")
    assert "still has resources" in error.message
    assert "foundryctl state rm" in error.hint
    assert requests_sent(fake_azure) == [("POST", f"{NETWORK}/unregister", RESOURCES_API)]


def test_throttled_read_is_retried_after_retry_after(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registered")
    fake_azure.inject("GET", r"/providers/Microsoft\.Network$",
                      arm_error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "0"}))

    observed = providers.read(provider_target())

    assert observed is not None and observed.outputs["registration_state"] == "Registered"
    assert requests_sent(fake_azure) == [("GET", NETWORK, RESOURCES_API)] * 2


def test_import_provider_by_id(fake_azure, providers):
    seed_provider(fake_azure, "Microsoft.Network", "Registered")

    observed = providers.import_(NETWORK, "network")

    assert observed.id == NETWORK and observed.attributes == {"namespace": "Microsoft.Network"}


# -- RoleAssignment ---------------------------------------------------------------------


@pytest.mark.parametrize(("scope", "scope_id"), [
    ({"resource_group": True}, RG),
    ({"hub": "ft-hub"}, workspace("ft-hub")),
    ({"project": "xbox-support"}, workspace("xbox-support")),
])
def test_create_role_assignment_puts_the_deterministic_name(fake_azure, assignments, scope, scope_id):
    seed_workspace(fake_azure, "xbox-support", hub="ft-hub")
    target = assignment_target(scope, description="fine-tunes Phi-3")

    observed = assignments.create(target, Progress())

    name = expected_name(scope_id)
    assert requests_sent(fake_azure) == [("PUT", assignment_path(scope_id, name), AUTHORIZATION_API)]
    put = fake_azure.calls[0]
    assert put.body == {"properties": {
        "roleDefinitionId": AI_DEVELOPER_DEFINITION, "principalId": PRINCIPAL,
        "principalType": "User", "description": "fine-tunes Phi-3"}}
    assert put.headers["Authorization"] == f"Bearer {TOKEN}"
    assert assignments.identify(target) == assignment_path(scope_id, name)
    assert observed.id == assignment_path(scope_id, name)
    assert observed.attributes == target.attributes  # the next plan is empty
    assert observed.outputs == {"id": observed.id, "assignment_name": name,
                                "role_definition_id": AI_DEVELOPER_DEFINITION, "scope_id": scope_id,
                                "created_at": "2026-11-25T10:00:00.000Z"}


def test_read_role_assignment(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    target = assignment_target()
    created = assignments.create(target, Progress())
    fake_azure.calls.clear()

    observed = assignments.read(Target(target.address, target.kind, target.name, created.attributes, created.id))

    name = expected_name(workspace("xbox-support"))
    # The scope's manifest form comes from the known attributes: no workspace lookup.
    assert requests_sent(fake_azure) == [
        ("GET", assignment_path(workspace("xbox-support"), name), AUTHORIZATION_API)]
    assert observed.attributes == target.attributes and observed.outputs == created.outputs


def test_read_keeps_the_manifest_spelling_of_the_principal(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    scope_id = workspace("xbox-support")
    seed_assignment(fake_azure, scope_id, expected_name(scope_id), principal=PRINCIPAL, role_guid=AI_DEVELOPER)

    observed = assignments.read(assignment_target(principal=PRINCIPAL.upper()))

    assert observed.attributes["principal"] == PRINCIPAL.upper()


def test_missing_role_assignment_reads_as_absent(fake_azure, assignments):
    assert assignments.read(assignment_target()) is None

    name = expected_name(workspace("xbox-support"))
    assert requests_sent(fake_azure) == [
        ("GET", assignment_path(workspace("xbox-support"), name), AUTHORIZATION_API)]


def test_applying_the_same_assignment_again_answers_200(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    first = assignments.create(assignment_target(), Progress())

    second = assignments.create(assignment_target(), Progress())

    assert [c.method for c in fake_azure.calls] == ["PUT", "PUT"]
    assert second.id == first.id and second.attributes == first.attributes


def test_existing_assignment_under_another_name_is_adopted(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    scope_id = workspace("xbox-support")
    portal_name = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # made in the portal
    seed_assignment(fake_azure, scope_id, portal_name, principal=PRINCIPAL, role_guid=AI_DEVELOPER)
    target = assignment_target()
    progress, messages = collector()

    observed = assignments.create(target, progress)

    ours = expected_name(scope_id)
    sent = requests_sent(fake_azure)
    assert sent == [
        ("PUT", assignment_path(scope_id, ours), AUTHORIZATION_API),  # 409 RoleAssignmentExists
        ("GET", f"{scope_id}/providers/Microsoft.Authorization/roleAssignments", AUTHORIZATION_API),
    ]
    assert fake_azure.calls[1].query["$filter"] == f"principalId eq '{PRINCIPAL}'"
    assert observed.id == assignment_path(scope_id, portal_name)
    assert observed.attributes == target.attributes
    assert messages == [f"adopting existing role assignment {portal_name}"]
    assert fake_azure.get(assignment_path(scope_id, ours)) is None  # no duplicate made


def test_adopted_assignment_gets_the_desired_description(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    scope_id = workspace("xbox-support")
    portal_name = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    seed_assignment(fake_azure, scope_id, portal_name, principal=PRINCIPAL, role_guid=AI_DEVELOPER,
                    description="made by hand")
    target = assignment_target(description="managed by foundryctl")

    observed = assignments.create(target, Progress())

    assert [c.method for c in fake_azure.calls] == ["PUT", "GET", "PUT"]
    adopt = fake_azure.calls[2]
    assert (adopt.path, adopt.api_version) == (assignment_path(scope_id, portal_name), AUTHORIZATION_API)
    assert adopt.body["properties"]["description"] == "managed by foundryctl"
    assert observed.attributes == target.attributes


def test_existing_assignment_that_differs_is_a_clear_error(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    scope_id = workspace("xbox-support")
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    seed_assignment(fake_azure, scope_id, other, principal=PRINCIPAL, role_guid=AI_DEVELOPER,
                    principal_type="ServicePrincipal")

    with pytest.raises(BackendError) as raised:
        assignments.create(assignment_target(), Progress())

    error = raised.value
    assert error.code == "RoleAssignmentConflict"
    assert assignment_path(scope_id, other) in error.message and "ServicePrincipal" in error.message
    assert "principal_type: ServicePrincipal" in error.hint
    assert [c.method for c in fake_azure.calls] == ["PUT", "GET"]


def test_role_assignment_exists_but_cannot_be_found_is_a_clear_error(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    fake_azure.inject("PUT", r"/roleAssignments/", arm_error(409, "RoleAssignmentExists",
                                                            "The role assignment already exists."))

    with pytest.raises(BackendError) as raised:
        assignments.create(assignment_target(), Progress())

    assert raised.value.code == "RoleAssignmentExists"
    assert "The role assignment already exists." in raised.value.message
    assert "az role assignment list" in raised.value.hint


def test_principal_not_found_is_retried_until_entra_replicates_it(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    pending_principal(fake_azure, PRINCIPAL, failures=2)
    progress, messages = collector()

    observed = assignments.create(assignment_target(), progress)

    path = assignment_path(workspace("xbox-support"), expected_name(workspace("xbox-support")))
    assert requests_sent(fake_azure) == [("PUT", path, AUTHORIZATION_API)] * 3
    assert all(c.body == fake_azure.calls[0].body for c in fake_azure.calls)
    assert observed.id == path
    assert len(messages) == 2 and all("not found in Entra ID yet" in m for m in messages)


def test_principal_not_found_gives_up_after_the_timeout(fake_azure, tmp_path):
    seed_workspace(fake_azure, "xbox-support")
    pending_principal(fake_azure, PRINCIPAL, failures=-1)  # never replicates
    backend = make_backend(tmp_path, principal_retry_timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as raised:
            backend.handler("RoleAssignment").create(assignment_target(), Progress())
    finally:
        backend.close()

    assert 0.3 <= time.monotonic() - started < 10
    error = raised.value
    assert error.code == "PrincipalNotFound"
    assert PRINCIPAL in error.message and "still not found after" in error.message
    assert "principal_retry_timeout" in error.hint
    assert len(fake_azure.calls) >= 3 and {c.method for c in fake_azure.calls} == {"PUT"}


def test_other_errors_are_not_retried(fake_azure, assignments):
    fake_azure.inject("PUT", r"/roleAssignments/", arm_error(
        403, "AuthorizationFailed", "The client does not have authorization to perform action "
        "'Microsoft.Authorization/roleAssignments/write'."))

    with pytest.raises(BackendError) as raised:
        assignments.create(assignment_target({"resource_group": True}), Progress())

    assert raised.value.code == "AuthorizationFailed"
    assert raised.value.message.startswith(f"assigning Azure AI Developer to {PRINCIPAL} at {RG}: ")
    assert len(fake_azure.calls) == 1


def test_a_principal_that_is_not_an_object_id_is_refused_before_any_request(fake_azure, assignments):
    with pytest.raises(BackendError) as raised:
        assignments.create(assignment_target(principal="ml-engineer@contoso.com"), Progress())

    assert raised.value.code == "InvalidPrincipalId" and "az ad user show" in raised.value.hint
    assert fake_azure.calls == []


def test_update_changes_the_description_in_place(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    created = assignments.create(assignment_target(description="v1"), Progress())
    fake_azure.calls.clear()
    target = assignment_target(description="v2", backend_id=created.id)

    observed = assignments.update(target, created.attributes, Progress())

    assert requests_sent(fake_azure) == [("PUT", created.id, AUTHORIZATION_API)]
    assert fake_azure.calls[0].body["properties"]["description"] == "v2"
    assert observed.id == created.id and observed.attributes == target.attributes


def test_delete_role_assignment_and_delete_again(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    created = assignments.create(assignment_target(), Progress())
    fake_azure.calls.clear()
    target = assignment_target(backend_id=created.id)

    assignments.delete(target, Progress())  # 200 with the assignment
    assignments.delete(target, Progress())  # 204: already gone is done

    assert requests_sent(fake_azure) == [("DELETE", created.id, AUTHORIZATION_API)] * 2
    assert assignments.read(target) is None


def test_throttled_role_assignment_read_is_retried(fake_azure, assignments):
    seed_workspace(fake_azure, "xbox-support")
    created = assignments.create(assignment_target(), Progress())
    fake_azure.calls.clear()
    fake_azure.inject("GET", r"/roleAssignments/", arm_error(
        429, "TooManyRequests", "The request is being throttled.", {"Retry-After": "0"}))

    observed = assignments.read(assignment_target(backend_id=created.id))

    assert observed is not None and observed.id == created.id
    assert requests_sent(fake_azure) == [("GET", created.id, AUTHORIZATION_API)] * 2


@pytest.mark.parametrize(("scope_id", "form", "workspace_read"), [
    (RG, {"resource_group": True}, False),
    (workspace("ft-hub"), {"hub": "ft-hub"}, True),
    (workspace("xbox-support"), {"project": "xbox-support"}, True),
])
def test_import_derives_the_scope_form(fake_azure, assignments, scope_id, form, workspace_read):
    seed_workspace(fake_azure, "xbox-support", hub="ft-hub")
    name = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    seed_assignment(fake_azure, scope_id, name, principal=PRINCIPAL, role_guid=AI_DEVELOPER,
                    description="from the portal")

    observed = assignments.import_(assignment_path(scope_id, name), "ml-engineer")

    expected = [("GET", assignment_path(scope_id, name), AUTHORIZATION_API)]
    if workspace_read:
        expected.append(("GET", scope_id, WORKSPACES_API))
    assert requests_sent(fake_azure) == expected
    assert observed.attributes == {"principal": PRINCIPAL, "principal_type": "User",
                                   "role": "Azure AI Developer", "scope": form,
                                   "description": "from the portal"}


def test_import_of_an_assignment_outside_the_resource_group_is_refused(fake_azure, assignments):
    name = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    seed_assignment(fake_azure, SUB, name, principal=PRINCIPAL, role_guid=AI_DEVELOPER)

    with pytest.raises(BackendError) as raised:
        assignments.import_(assignment_path(SUB, name), "ml-engineer")

    assert raised.value.code == "UnsupportedScope"


# -- credentials ------------------------------------------------------------------------


def test_no_credential_is_one_clear_error(fake_azure, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no `az`, `azd` or `pwsh`
    monkeypatch.setenv("HOME", str(tmp_path / "nobody"))
    backend = make_backend(tmp_path)
    try:
        with pytest.raises(BackendError) as raised:
            backend.handler("ProviderRegistration").read(provider_target())
    finally:
        backend.close()

    error = raised.value
    assert error.code == "CredentialUnavailable"
    for link in ("environment", "managed identity", "Azure CLI", "Azure Developer CLI"):
        assert link in error.message
    assert "az login" in error.hint
    assert TOKEN not in error.message
    assert fake_azure.calls == []  # nothing reached ARM without a token


# -- through plan and apply -------------------------------------------------------------


def test_apply_then_plan_is_empty_then_destroy(fake_azure, tmp_path):
    from azurefake.fixtures import write_manifest

    from foundryctl.stack import Stack

    manifest = write_manifest(tmp_path, f"""
        - kind: ProviderRegistration
          name: network
          namespace: Microsoft.Network
        - kind: RoleAssignment
          name: ml-engineer
          principal: "{PRINCIPAL}"
          role: Azure AI Developer
          scope: resource_group
          description: fine-tuning
        """)
    with Stack.load(manifest) as stack:
        plan = stack.plan()
        assert plan.summary == (2, 0, 0)
        stack.apply(plan)
    created = sorted((c.method, c.path) for c in fake_azure.writes())
    assert created == [("POST", f"{NETWORK}/register"), ("PUT", assignment_path(RG, expected_name(RG)))]
    fake_azure.calls.clear()

    with Stack.load(manifest) as stack:
        again = stack.plan()  # what apply recorded equals what Azure now answers
        assert not again.has_changes, [(c.address, c.action, c.before, c.after) for c in again.pending]
        destroy = stack.plan(mode="destroy")
        assert destroy.summary == (0, 0, 2)
        stack.apply(destroy)
    deleted = sorted((c.method, c.path) for c in fake_azure.writes())
    assert deleted == [("DELETE", assignment_path(RG, expected_name(RG)))]  # the namespace stays registered


def test_deleting_an_assignment_whose_scope_is_gone_succeeds(fake_azure, assignments):
    scope_id = workspace("xbox-support")  # deleted with the project, and its assignments with it
    target = assignment_target(backend_id=assignment_path(scope_id, expected_name(scope_id)))
    fake_azure.inject("DELETE", r"/roleAssignments/", arm_error(
        404, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/xbox-support' "
        f"under resource group '{RESOURCE_GROUP}' was not found."))

    assignments.delete(target, Progress())

    assert requests_sent(fake_azure) == [("DELETE", target.backend_id, AUTHORIZATION_API)]


# -- principal types: Microsoft Graph, and ARM's UnmatchedPrincipalType -------------------

CI_PRINCIPAL = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # a service principal (a CI identity)


def ci_manifest(tmp_path: Path, principal_type: str = "", **backend: Any) -> Path:
    from azurefake.fixtures import write_manifest

    typed = f"\n          principal_type: {principal_type}" if principal_type else ""
    return write_manifest(tmp_path, f"""
        - kind: RoleAssignment
          name: ci
          principal: "{CI_PRINCIPAL}"{typed}
          role: Azure AI Developer
          scope: resource_group
        """, **backend)


def test_a_service_principal_without_principal_type_is_resolved_through_graph(fake_azure, tmp_path):
    from azurefake.families.graph import GRAPH, directory_object

    from foundryctl.stack import Stack

    directory_object(fake_azure, CI_PRINCIPAL, "ServicePrincipal")
    manifest = ci_manifest(tmp_path)
    with Stack.load(manifest) as stack:
        plan = stack.plan()
        (change,) = plan.pending
        assert "principal_type: ServicePrincipal (from Microsoft Graph)" in change.reasons
        stack.apply(plan)

    lookups = fake_azure.requests("GET", r"^/v1\.0/directoryObjects/")
    assert lookups and all(c.url.startswith(f"{GRAPH}/v1.0/directoryObjects/{CI_PRINCIPAL}") for c in lookups)
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in lookups)
    (put,) = fake_azure.requests("PUT", r"/roleAssignments/")
    assert put.body["properties"]["principalType"] == "ServicePrincipal"
    assert put.body["properties"]["principalId"] == CI_PRINCIPAL

    with Stack.load(manifest) as stack:
        again = stack.plan()  # Azure's ServicePrincipal against the manifest's unset type: no change
        assert not again.has_changes, [(c.address, c.action, c.attribute_changes) for c in again.pending]


def test_a_group_is_resolved_as_a_group(fake_azure, assignments):
    from azurefake.families.graph import directory_object

    directory_object(fake_azure, CI_PRINCIPAL, "Group")
    target = assignment_target(scope={"resource_group": True}, principal=CI_PRINCIPAL)
    target.attributes["principal_type"] = None

    observed = assignments.create(target, Progress())

    assert observed.attributes["principal_type"] == "Group"


def test_a_service_principal_assigned_as_a_user_gets_unmatched_principal_type(fake_azure, assignments):
    from azurefake.families.graph import directory_object

    directory_object(fake_azure, CI_PRINCIPAL, "ServicePrincipal")
    target = assignment_target(scope={"resource_group": True}, principal=CI_PRINCIPAL, principal_type="User")

    with pytest.raises(BackendError) as raised:
        assignments.create(target, Progress())

    assert raised.value.code == "UnmatchedPrincipalType"
    assert "has type 'ServicePrincipal'" in raised.value.message
    assert "set principal_type: ServicePrincipal" in raised.value.hint
    assert fake_azure.requests("GET", r"directoryObjects") == []  # an explicit type is not looked up
    assert [c.method for c in fake_azure.requests(path=r"/roleAssignments/")] == ["PUT"]  # not retried


def test_graph_refusing_the_lookup_fails_the_plan_at_the_resource_with_the_field(fake_azure, tmp_path):
    from azurefake.families.graph import deny_graph

    from foundryctl.errors import PlanError
    from foundryctl.stack import Stack

    deny_graph(fake_azure)
    manifest = ci_manifest(tmp_path)
    with Stack.load(manifest) as stack, pytest.raises(PlanError) as raised:
        stack.plan()

    (problem,) = raised.value.diagnostics
    assert problem.code == "PrincipalTypeUnresolved"
    assert problem.address == "RoleAssignment.ci"
    assert problem.position is not None and problem.position.file.endswith("foundry.yaml")
    lines = manifest.read_text().splitlines()
    assert "name: ci" in lines[problem.position.line - 1] or "kind: RoleAssignment" in lines[problem.position.line - 1]
    assert "Authorization_RequestDenied" in problem.message
    assert "set principal_type" in problem.hint and "Directory Readers" in problem.hint
    assert fake_azure.requests("PUT") == []


def test_an_explicit_principal_type_needs_no_graph(fake_azure, tmp_path):
    from azurefake.families.graph import deny_graph, directory_object

    from foundryctl.stack import Stack

    deny_graph(fake_azure)
    directory_object(fake_azure, CI_PRINCIPAL, "ServicePrincipal")
    with Stack.load(ci_manifest(tmp_path, "ServicePrincipal")) as stack:
        stack.apply(stack.plan())
    (put,) = fake_azure.requests("PUT", r"/roleAssignments/")
    assert put.body["properties"]["principalType"] == "ServicePrincipal"
    assert fake_azure.requests("GET", r"directoryObjects") == []


def test_without_graph_lookups_principal_type_is_required(fake_azure, tmp_path):
    from foundryctl.errors import PlanError
    from foundryctl.stack import Stack

    with Stack.load(ci_manifest(tmp_path, resolve_principal_types="false")) as stack, \
            pytest.raises(PlanError) as raised:
        stack.plan()
    (problem,) = raised.value.diagnostics
    assert problem.code == "PrincipalTypeRequired"
    assert "resolve_principal_types is false" in problem.message
    assert fake_azure.requests("GET", r"directoryObjects") == []


def test_a_principal_graph_does_not_know_is_a_clear_plan_error(fake_azure, tmp_path):
    from azurefake.families.graph import UNKNOWN, directory_object

    from foundryctl.errors import PlanError
    from foundryctl.stack import Stack

    directory_object(fake_azure, CI_PRINCIPAL, UNKNOWN)
    with Stack.load(ci_manifest(tmp_path)) as stack, pytest.raises(PlanError) as raised:
        stack.plan()
    (problem,) = raised.value.diagnostics
    assert problem.code == "PrincipalTypeUnresolved"
    assert "Microsoft Graph does not know it" in problem.message
    assert "az ad sp show" in problem.hint


def test_no_graph_token_is_a_field_error_not_a_crash(fake_azure, assignments, monkeypatch):
    from azure.core.exceptions import ClientAuthenticationError

    from foundryctl.backends.base import FieldError

    credential = assignments.backend.credential
    real = credential.get_token

    def arm_only(*scopes: str, **kwargs: Any) -> Any:
        if any("graph.microsoft.com" in s for s in scopes):
            raise ClientAuthenticationError("AADSTS65001: consent required for Microsoft Graph")
        return real(*scopes, **kwargs)

    monkeypatch.setattr(credential, "get_token", arm_only)
    target = assignment_target(scope={"resource_group": True}, principal=CI_PRINCIPAL)
    target.attributes["principal_type"] = None

    with pytest.raises(FieldError) as raised:
        assignments.create_notes(target)

    assert raised.value.code == "PrincipalTypeUnresolved" and raised.value.path == ("principal_type",)
    assert "no Microsoft Graph token" in raised.value.message
    assert fake_azure.requests("GET", r"directoryObjects") == []
