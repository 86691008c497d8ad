"""Contract tests of the Hub and Project handlers on Azure: every request azure-ai-ml sends for
them (method, path, api-version, body), answered by the fake in the shapes of the
azure-rest-api-specs examples."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azurefake import arm_error
from azurefake.families.workspaces import (
    DEPLOYMENTS_API,
    WORKSPACES_API,
    fail_next_deployment,
    instant_sdk_waits,
    recover_in_portal,
    seed_workspace,
    soft_delete_workspace,
    soft_deleted,
    workspace_body,
    workspace_id,
)
from azurefake.fixtures import LOCATION, RESOURCE_GROUP, SUBSCRIPTION, TOKEN

from foundryctl.backends.base import Progress, Target
from foundryctl.errors import BackendError

RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces"
# azure-ai-ml spells the resource group segment in lower case for template deployments.
DEPLOYMENTS = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/providers/Microsoft.Resources/deployments"
DEPLOYMENT_OPS = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/deployments"
WS_OPERATIONS = (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/"
                 f"{LOCATION}/workspaceOperationsStatus")
HUB_ATTRS = {"location": "eastus2", "display_name": None, "description": "Fine-tuning hub",
             "tags": {"team": "ml-platform"}}
PROJECT_ATTRS = {"hub": "ft-hub", "display_name": "Xbox support", "description": "", "tags": {"cost": "xbox"}}


# -- how the SDK is made deterministic and fast -------------------------------------------

@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch, fake_azure: Any) -> list[float]:
    """azure-ai-ml hard-codes 5 s and 30 s waits (azure-core ignores `Retry-After: 0`) and
    polls a template deployment from two threads: the waits are recorded instead of slept,
    and the two threads ordered, so each test runs in milliseconds with one request order
    (see instant_sdk_waits)."""
    return instant_sdk_waits(monkeypatch, fake_azure)


@pytest.fixture
def sdk_log() -> Iterator[list[logging.LogRecord]]:
    """What azure-ai-ml would print on the stderr handlers it installs (INFO and up)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.INFO:
                records.append(record)

    handler = Collect()
    loggers = [logging.getLogger(n) for n in ("azure.ai.ml", "azure.ai.ml._arm_deployments.arm_deployment_executor")]
    for logger in loggers:
        logger.addHandler(handler)
    yield records
    for logger in loggers:
        logger.removeHandler(handler)


# -- helpers ------------------------------------------------------------------------------

def hub_target(**attrs: Any) -> Target:
    return Target("Hub.ft-hub", "Hub", "ft-hub", {**HUB_ATTRS, **attrs})


def project_target(**attrs: Any) -> Target:
    return Target("Project.xbox", "Project", "xbox", {**PROJECT_ATTRS, **attrs})


def requests(fake: Any) -> list[tuple[str, str, str | None]]:
    """(method, path with the deployment's random suffix as {n}, api-version) of every call."""
    return [(c.method, re.sub(r"/deployments/([\w-]+?)-\d+", r"/deployments/\1-{n}", c.path), c.api_version)
            for c in fake.calls]


def create_calls(ws: str) -> list[tuple[str, str, str | None]]:
    """The template deployment azure-ai-ml runs for a new workspace, through the final GET."""
    deployment = f"{DEPLOYMENTS}/{ws}-{{n}}"
    return [
        ("PUT", deployment, DEPLOYMENTS_API),
        ("GET", deployment.replace("resourcegroups", "resourceGroups") + "/operationStatuses/" + "{op}",
         DEPLOYMENTS_API),
        ("GET", deployment.replace("resourcegroups", "resourceGroups") + "/operationStatuses/" + "{op}",
         DEPLOYMENTS_API),
        ("GET", deployment, DEPLOYMENTS_API),  # final state: the deployment itself
        ("GET", f"{DEPLOYMENT_OPS}/{ws}-{{n}}/operations", DEPLOYMENTS_API),  # the SDK's progress loop
        ("GET", f"{DEPLOYMENT_OPS}/{ws}-{{n}}/operations", DEPLOYMENTS_API),  # its last look
        ("GET", f"{WS}/{ws}", WORKSPACES_API),
    ]


def normalized(calls: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
    return [(m, re.sub(r"/operationStatuses/[^/]+$", "/operationStatuses/{op}", p), v) for m, p, v in calls]


class Messages(Progress):
    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__(self.messages.append)


def backend_with(tmp_path: Path, **overrides: Any) -> Any:
    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    config = AzureBackendConfig(type="azure", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                location=LOCATION, poll_interval=0.01, **overrides)
    return AzureBackend(config, tmp_path)


# -- Hub create ---------------------------------------------------------------------------

def test_hub_create_runs_the_template_deployment_and_observes_the_desired_attributes(
        fake_azure: Any, azure_backend: Any, sdk_log: list, capfd: pytest.CaptureFixture) -> None:
    progress = Messages()
    observed = azure_backend.handler("Hub").create(hub_target(), progress)

    assert normalized(requests(fake_azure)) == [
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # foundryctl: is the name taken? (404)
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # azure-ai-ml's own check (404)
        *create_calls("ft-hub"),
    ]
    assert [c.headers["Authorization"] for c in fake_azure.calls] == [f"Bearer {TOKEN}"] * len(fake_azure.calls)

    put = fake_azure.calls[2]
    assert re.fullmatch(r"ft-hub-\d+", put.path.rsplit("/", 1)[-1])
    assert put.body["properties"]["mode"] == "incremental"
    template, parameters = put.body["properties"]["template"], put.body["properties"]["parameters"]
    [workspace] = [r for r in template["resources"] if r["type"] == "Microsoft.MachineLearningServices/workspaces"]
    assert (workspace["kind"], workspace["location"], workspace["tags"]) == (
        "[parameters('kind')]", "[parameters('location')]", "[parameters('tagValues')]")
    assert workspace["properties"]["description"] == "[parameters('description')]"
    value = {k: v["value"] for k, v in parameters.items()}
    assert (value["workspaceName"], value["kind"], value["location"], value["resourceGroupName"]) == (
        "ft-hub", "hub", "eastus2", RESOURCE_GROUP)
    assert value["description"] == "Fine-tuning hub"
    assert value["friendlyName"] == "ft-hub"  # no display_name: the SDK uses the name
    assert value["tagValues"] == {"team": "ml-platform", "createdByToolkit": "sdk-v2-1.35.2"}
    # The hub's dependent resources are new ones, in the same resource group.
    assert (value["storageAccountOption"], value["keyVaultOption"]) == ("new", "new")
    assert value["storageAccountResourceGroupName"] == value["keyVaultResourceGroupName"] == RESOURCE_GROUP

    assert observed.id == f"{WS}/ft-hub"
    assert observed.attributes == HUB_ATTRS
    assert observed.outputs["storage_account"] == (
        f"{RG}/providers/Microsoft.Storage/storageAccounts/{value['storageAccountName']}")
    assert observed.outputs["key_vault"] == f"{RG}/providers/Microsoft.KeyVault/vaults/{value['keyVaultName']}"
    assert observed.outputs["location"] == "eastus2"
    assert observed.outputs["soft_delete"] is True
    assert progress.messages and "hub ft-hub" in progress.messages[0]

    # On Azure: a Hub, with the SDK's tag kept there (hidden from the attributes above).
    stored = fake_azure.get(f"{WS}/ft-hub")
    assert stored["kind"] == "Hub" and stored["tags"]["createdByToolkit"] == "sdk-v2-1.35.2"
    # Nothing from the SDK on stdout or its stderr log handlers.
    assert capfd.readouterr().out == ""
    assert [r.getMessage() for r in sdk_log] == []


@pytest.mark.parametrize(("display_name", "description"), [(None, ""), ("ft-hub", "ft-hub"), ("Hub", "x")])
def test_hub_reads_back_what_was_applied(fake_azure: Any, azure_backend: Any, display_name: str | None,
                                         description: str) -> None:
    """The SDK fills an empty display name and description with the workspace name: a read
    reports the manifest's value back, so the next plan is empty."""
    handler = azure_backend.handler("Hub")
    target = hub_target(display_name=display_name, description=description)
    created = handler.create(target, Progress())
    assert created.attributes == target.attributes

    fake_azure.calls.clear()
    state = Target(target.address, "Hub", "ft-hub", created.attributes, created.id)
    assert handler.read(state).attributes == target.attributes
    assert requests(fake_azure) == [("GET", f"{WS}/ft-hub", WORKSPACES_API)]


def test_create_adopts_an_existing_hub_with_an_update_of_what_differs(fake_azure: Any, azure_backend: Any) -> None:
    body = seed_workspace(fake_azure, "ft-hub", kind="Hub")
    body["tags"] = {"team": "ml-platform", "createdByToolkit": "sdk-v2-1.30.0"}

    observed = azure_backend.handler("Hub").create(hub_target(), Progress())

    assert requests(fake_azure) == [
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # begin_update's own read
        ("PATCH", f"{WS}/ft-hub", WORKSPACES_API),
        ("GET", f"{WS_OPERATIONS}/{fake_azure.calls[3].path.rsplit('/', 1)[-1]}", WORKSPACES_API),
        ("GET", f"{WS_OPERATIONS}/{fake_azure.calls[3].path.rsplit('/', 1)[-1]}", WORKSPACES_API),
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),
    ]
    assert fake_azure.calls[2].body == {"properties": {"description": "Fine-tuning hub"}}
    assert observed.attributes == HUB_ATTRS


def test_create_refuses_to_adopt_a_hub_in_another_region(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Hub", location="swedencentral")

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").create(hub_target(), Progress())

    assert caught.value.code == "Conflict"
    assert "location swedencentral" in caught.value.message
    assert fake_azure.writes() == []


def test_create_refuses_a_name_taken_by_the_other_kind(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Project", hub="other-hub")

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").create(hub_target(), Progress())

    assert caught.value.code == "Conflict"
    assert "a Project workspace named ft-hub" in caught.value.message
    assert fake_azure.writes() == []


def test_failed_deployment_names_the_error_and_creates_nothing(
        fake_azure: Any, azure_backend: Any, sdk_log: list) -> None:
    fail_next_deployment(fake_azure, "StorageAccountAlreadyTaken",
                         "The storage account named fthubstorage1883fae86dd0 is already taken.")

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").create(hub_target(), Progress())

    assert caught.value.code == "StorageAccountAlreadyTaken"
    assert caught.value.message.startswith("creating hub ft-hub: The storage account named")
    assert RESOURCE_GROUP in (caught.value.hint or "")
    # The status poll that says Failed ends the poller: no GET of the deployment, nor of the hub.
    create = create_calls("ft-hub")
    assert normalized(requests(fake_azure)) == [("GET", f"{WS}/ft-hub", WORKSPACES_API)] * 2 + create[:3] + create[4:6]
    assert fake_azure.get(f"{WS}/ft-hub") is None
    assert [r.getMessage() for r in sdk_log] == []


# -- Project create -------------------------------------------------------------------------

def test_project_create_goes_in_its_hub_and_its_region(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Hub", location="swedencentral")

    observed = azure_backend.handler("Project").create(project_target(), Progress())

    assert normalized(requests(fake_azure)) == [
        ("GET", f"{WS}/xbox", WORKSPACES_API),  # foundryctl: is the name taken? (404)
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # foundryctl: the hub, its region and network setting
        ("GET", f"{WS}/xbox", WORKSPACES_API),  # azure-ai-ml's own check (404)
        *create_calls("xbox"),
    ]
    put = fake_azure.calls[3]
    [workspace] = [r for r in put.body["properties"]["template"]["resources"]
                   if r["type"] == "Microsoft.MachineLearningServices/workspaces"]
    assert workspace["properties"]["hubResourceId"] == "[parameters('workspace_hub')]"
    value = {k: v["value"] for k, v in put.body["properties"]["parameters"].items()}
    assert value["workspace_hub"] == f"{WS}/ft-hub"
    assert (value["kind"], value["location"], value["friendlyName"]) == ("project", "swedencentral", "Xbox support")
    assert value["description"] == "xbox"  # empty: the SDK fills in the name
    assert value["tagValues"] == {"cost": "xbox", "createdByToolkit": "sdk-v2-1.35.2"}
    # The hub's setting as the template allows it (azure-ai-ml's own copy would send
    # "PublicNetworkAccessType.ENABLED" on Python 3.11+).
    assert (value["publicNetworkAccess"], value["associatedResourcePNA"]) == ("Enabled", "Enabled")
    allowed = put.body["properties"]["template"]["parameters"]["associatedResourcePNA"]["allowedValues"]
    assert value["associatedResourcePNA"] in allowed

    assert observed.attributes == PROJECT_ATTRS
    assert observed.outputs["hub_id"] == f"{WS}/ft-hub"
    assert observed.outputs["location"] == "swedencentral"
    assert observed.outputs["workspace_id"] == fake_azure.get(f"{WS}/xbox")["properties"]["workspaceId"]
    assert observed.outputs["discovery_url"] == "https://swedencentral.api.azureml.ms/discovery"


def test_project_create_without_its_hub_fails_before_any_write(fake_azure: Any, azure_backend: Any) -> None:
    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Project").create(project_target(), Progress())

    assert caught.value.code == "HubNotFound"
    assert "hub ft-hub does not exist" in caught.value.message
    assert requests(fake_azure) == [("GET", f"{WS}/xbox", WORKSPACES_API), ("GET", f"{WS}/ft-hub", WORKSPACES_API)]


# -- read -------------------------------------------------------------------------------------

def test_read_of_an_absent_workspace_is_none(fake_azure: Any, azure_backend: Any) -> None:
    assert azure_backend.handler("Hub").read(hub_target()) is None
    assert azure_backend.handler("Project").read(project_target()) is None
    assert requests(fake_azure) == [("GET", f"{WS}/ft-hub", WORKSPACES_API), ("GET", f"{WS}/xbox", WORKSPACES_API)]


def test_each_handler_sees_only_its_own_kind(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "xbox", kind="Project", hub="ft-hub")

    assert azure_backend.handler("Project").read(Target("Project.ft-hub", "Project", "ft-hub", {})) is None
    assert azure_backend.handler("Hub").read(Target("Hub.xbox", "Hub", "xbox", {})) is None
    hub = azure_backend.handler("Hub").read(Target("Hub.ft-hub", "Hub", "ft-hub", {}))
    project = azure_backend.handler("Project").read(Target("Project.xbox", "Project", "xbox", {}))
    assert hub is not None and project is not None
    assert project.attributes == {"hub": "ft-hub", "display_name": None, "description": "", "tags": {}}


def test_read_matches_the_kind_whatever_its_case(fake_azure: Any, azure_backend: Any) -> None:
    fake_azure.put(workspace_id(fake_azure, "ft-hub"), {**workspace_body(fake_azure, "ft-hub", kind="Hub"),
                                                        "kind": "hub"})
    assert azure_backend.handler("Hub").read(hub_target()) is not None


def test_throttled_read_waits_for_retry_after(fake_azure: Any, azure_backend: Any, sleeps: list[float]) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Hub")
    fake_azure.inject("GET", r"/workspaces/ft-hub$", arm_error(
        429, "TooManyRequests", "The request is being throttled.", {"Retry-After": "7"}))

    observed = azure_backend.handler("Hub").read(hub_target())

    assert sleeps == [7.0]
    assert observed is not None and observed.attributes["location"] == "eastus2"
    assert requests(fake_azure) == [("GET", f"{WS}/ft-hub", WORKSPACES_API)] * 2


def test_read_error_names_the_workspace(fake_azure: Any, azure_backend: Any) -> None:
    fake_azure.inject("GET", r"/workspaces/ft-hub$", arm_error(
        403, "AuthorizationFailed", "The client does not have authorization to perform action."))

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").read(hub_target())

    assert caught.value.code == "AuthorizationFailed"
    assert caught.value.message.startswith("reading hub ft-hub: ")


def test_import_reads_by_id_in_the_resource_group(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "xbox", kind="Project", hub="ft-hub")
    handler = azure_backend.handler("Project")

    observed = handler.import_(f"{WS}/xbox", "xbox")
    assert observed is not None and observed.attributes["hub"] == "ft-hub"

    with pytest.raises(BackendError) as caught:
        handler.import_(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/other/providers/"
                        "Microsoft.MachineLearningServices/workspaces/xbox", "xbox")
    assert caught.value.code == "InvalidResourceId"


# -- update ---------------------------------------------------------------------------------

def test_update_patches_only_the_changed_fields(fake_azure: Any, azure_backend: Any) -> None:
    handler = azure_backend.handler("Hub")
    before = handler.create(hub_target(), Progress()).attributes
    fake_azure.calls.clear()

    after = hub_target(description="Hub for fine-tuning", display_name="Fine-tuning")
    observed = handler.update(after, before, Progress())

    operation = fake_azure.calls[3].path
    assert operation.startswith(WS_OPERATIONS + "/")
    assert requests(fake_azure) == [
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # foundryctl: still there, and a Hub
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),  # begin_update's own read
        ("PATCH", f"{WS}/ft-hub", WORKSPACES_API),  # answered 202 + Location
        ("GET", operation, WORKSPACES_API),  # 202
        ("GET", operation, WORKSPACES_API),  # 200
        ("GET", f"{WS}/ft-hub", WORKSPACES_API),
    ]
    assert fake_azure.calls[2].body == {"properties": {"description": "Hub for fine-tuning",
                                                       "friendlyName": "Fine-tuning"}}
    assert observed.attributes == after.attributes


def test_update_of_tags_keeps_the_sdk_tag(fake_azure: Any, azure_backend: Any) -> None:
    handler = azure_backend.handler("Hub")
    before = handler.create(hub_target(), Progress()).attributes
    fake_azure.calls.clear()

    after = hub_target(tags={"team": "ml-platform", "cost-center": "4711"})
    observed = handler.update(after, before, Progress())

    [patch] = fake_azure.requests("PATCH")
    assert patch.body == {"tags": {"createdByToolkit": "sdk-v2-1.35.2", "team": "ml-platform",
                                   "cost-center": "4711"}, "properties": {}}
    assert observed.attributes == after.attributes
    assert fake_azure.get(f"{WS}/ft-hub")["tags"]["createdByToolkit"] == "sdk-v2-1.35.2"


def test_update_of_a_vanished_workspace_says_so(fake_azure: Any, azure_backend: Any) -> None:
    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").update(hub_target(description="x"), HUB_ATTRS, Progress())
    assert caught.value.code == "ResourceNotFound"
    assert fake_azure.writes() == []


# -- delete ---------------------------------------------------------------------------------

def test_delete_soft_deletes_by_default(fake_azure: Any, azure_backend: Any, sdk_log: list) -> None:
    seed_workspace(fake_azure, "xbox", kind="Project", hub="ft-hub")
    progress = Messages()

    azure_backend.handler("Project").delete(project_target(), progress)

    operation = fake_azure.calls[3].path
    assert requests(fake_azure) == [
        ("GET", f"{WS}/xbox", WORKSPACES_API),  # foundryctl: ours to delete?
        ("GET", f"{WS}/xbox", WORKSPACES_API),  # begin_delete's own read
        ("DELETE", f"{WS}/xbox", WORKSPACES_API),  # answered 202 + Location
        ("GET", operation, WORKSPACES_API),
        ("GET", operation, WORKSPACES_API),
    ]
    assert fake_azure.calls[2].query == {"api-version": WORKSPACES_API, "forceToPurge": "false"}
    assert fake_azure.get(f"{WS}/xbox") is None
    assert f"{WS}/xbox".lower() in fake_azure.state["workspaces.soft_deleted"]
    assert progress.messages == ["soft-deleted: recoverable for 14 days; the name stays taken until purged"]
    assert [r.getMessage() for r in sdk_log] == []


def test_delete_purges_when_configured(fake_azure: Any, tmp_path: Path) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Hub")
    backend = backend_with(tmp_path, purge_on_delete=True)
    progress = Messages()
    try:
        handler = backend.handler("Hub")
        assert handler.read(hub_target()).outputs["soft_delete"] is False
        handler.delete(hub_target(), progress)
    finally:
        backend.close()

    [delete] = fake_azure.requests("DELETE")
    assert delete.query == {"api-version": WORKSPACES_API, "forceToPurge": "true"}
    assert f"{WS}/ft-hub".lower() not in fake_azure.state.get("workspaces.soft_deleted", {})
    assert progress.messages == ["purged: deleted permanently, the name is free again"]


def test_delete_of_a_gone_workspace_succeeds_without_a_delete(fake_azure: Any, azure_backend: Any) -> None:
    azure_backend.handler("Hub").delete(hub_target(), Progress())
    assert requests(fake_azure) == [("GET", f"{WS}/ft-hub", WORKSPACES_API)]


def test_delete_leaves_a_workspace_of_the_other_kind_alone(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Project", hub="other-hub")
    azure_backend.handler("Hub").delete(hub_target(), Progress())
    assert fake_azure.writes() == []
    assert fake_azure.get(f"{WS}/ft-hub") is not None


def test_delete_failure_names_the_workspace(fake_azure: Any, azure_backend: Any) -> None:
    seed_workspace(fake_azure, "ft-hub", kind="Hub")
    fake_azure.inject("DELETE", r"/workspaces/ft-hub$", arm_error(
        409, "Conflict", "Hub ft-hub has projects: delete them first."))

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").delete(hub_target(), Progress())

    assert caught.value.code == "Conflict"
    assert caught.value.message == "deleting hub ft-hub: Hub ft-hub has projects: delete them first."


# -- soft-deleted names ----------------------------------------------------------------------

def test_a_soft_deleted_name_is_refused_with_the_choices(fake_azure: Any, azure_backend: Any) -> None:
    soft_delete_workspace(fake_azure, "ft-hub")

    with pytest.raises(BackendError) as caught:
        azure_backend.handler("Hub").create(hub_target(), Progress())

    assert caught.value.code == "SoftDeletedWorkspaceExists"
    assert "soft-deleted in the last 14 days" in caught.value.message
    assert "on_soft_deleted: purge" in caught.value.hint and "new name" in caught.value.hint
    assert fake_azure.get(f"{WS}/ft-hub") is None
    assert fake_azure.requests("DELETE") == []  # fail (the default) never purges


def test_on_soft_deleted_purge_purges_the_name_and_creates_in_the_same_apply(
        fake_azure: Any, azure_backend: Any) -> None:
    soft_delete_workspace(fake_azure, "ft-hub")
    progress = Messages()

    observed = azure_backend.handler("Hub").create(hub_target(on_soft_deleted="purge"), progress)

    [purge] = fake_azure.requests("DELETE")
    assert purge.path == f"{WS}/ft-hub"
    assert purge.query == {"api-version": WORKSPACES_API, "forceToPurge": "true"}
    deployments = [c for c in fake_azure.requests("PUT", r"/deployments/ft-hub-\d+$")]
    assert len(deployments) == 2  # refused, then created after the purge
    assert fake_azure.calls.index(deployments[0]) < fake_azure.calls.index(purge) < fake_azure.calls.index(deployments[1])
    assert soft_deleted(fake_azure) == {}
    assert observed.attributes == {**HUB_ATTRS, "on_soft_deleted": "purge"}
    assert "purging it (on_soft_deleted: purge)" in " ".join(progress.messages)


def test_on_soft_deleted_recover_says_it_is_a_portal_step_then_adopts_the_recovered_workspace(
        fake_azure: Any, azure_backend: Any) -> None:
    soft_delete_workspace(fake_azure, "ft-hub")
    handler = azure_backend.handler("Hub")

    with pytest.raises(BackendError) as caught:
        handler.create(hub_target(on_soft_deleted="recover"), Progress())
    assert caught.value.code == "SoftDeletedWorkspaceExists"
    assert "no recover operation" in caught.value.message
    assert "Recently deleted" in caught.value.hint
    assert fake_azure.requests("DELETE") == []

    recover_in_portal(fake_azure, "ft-hub")
    fake_azure.calls.clear()
    observed = handler.create(hub_target(on_soft_deleted="recover"), Progress())
    assert observed.id == f"{WS}/ft-hub"
    assert fake_azure.requests("PUT") == []  # adopted: no second deployment


def test_destroy_then_apply_of_the_same_names_converges_with_on_soft_deleted_purge(
        fake_azure: Any, tmp_path: Path) -> None:
    from azurefake.fixtures import write_manifest

    from foundryctl.stack import Stack

    resources = """
        - kind: Hub
          name: ft-hub
          location: eastus2
        - kind: Project
          name: xbox
          hub: ft-hub{extra}
        """
    manifest = write_manifest(tmp_path, resources.replace("{extra}", ""))
    with Stack.load(manifest) as stack:
        stack.apply(stack.plan())
    with Stack.load(manifest) as stack:
        destroy = stack.plan(mode="destroy")
        assert any("on_soft_deleted: purge" in r for c in destroy.pending for r in c.reasons)
        stack.apply(destroy)
    assert {f"{WS}/ft-hub".lower(), f"{WS}/xbox".lower()} <= set(soft_deleted(fake_azure))

    with Stack.load(manifest) as stack:
        plan = stack.plan()  # warned from the state's history: foundryctl deleted them itself
        assert sorted(w.address for w in plan.warnings if w.code == "name-soft-deleted") == ["Hub.ft-hub",
                                                                                            "Project.xbox"]
        refused = stack.apply(plan)  # Azure refuses the soft-deleted name
    assert not refused.ok
    [(address, _, error)] = refused.failures
    assert address == "Hub.ft-hub" and getattr(error, "code", None) == "SoftDeletedWorkspaceExists"

    manifest = write_manifest(tmp_path, resources.replace("{extra}", "\n          on_soft_deleted: purge")
                              .replace("eastus2", "eastus2\n          on_soft_deleted: purge"))
    with Stack.load(manifest) as stack:
        plan = stack.plan()
        notes = [r for c in plan.pending for r in c.reasons]
        assert sum("apply purges it first" in r for r in notes) == 2
        assert stack.apply(plan).ok
    assert fake_azure.get(f"{WS}/ft-hub") is not None and fake_azure.get(f"{WS}/xbox") is not None
    assert soft_deleted(fake_azure) == {}
    with Stack.load(manifest) as stack:
        again = stack.plan()
        assert not again.has_changes, [(c.address, c.action, c.attribute_changes) for c in again.pending]
