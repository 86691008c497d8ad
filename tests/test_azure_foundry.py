"""Contract tests of FoundryAccount and FoundryProject on Azure: every request the handlers
send (method, path, api-version, body) for create, update, delete, purge, restore and import,
answered by the fake in the shapes of the azure-rest-api-specs 2025-06-01 examples; and the
whole plan -> apply -> empty plan -> destroy cycle through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from azurefake.families.cognitive import API, account_id, deleted_id, seed_account, seed_deleted_account
from azurefake.fixtures import LOCATION, RESOURCE_GROUP, SUBSCRIPTION, write_manifest
from click.testing import CliRunner

from foundryctl.backends.base import FieldError, Observed, Progress, Target
from foundryctl.errors import BackendError

ACCOUNT_ATTRS = {"location": "eastus2", "custom_subdomain_name": "ft-foundry-demo", "sku": "S0",
                 "public_network_access": "Enabled", "disable_local_auth": False, "identity": "SystemAssigned",
                 "restore_soft_deleted": False, "tags": {"team": "ml"}}
PROJECT_ATTRS = {"account": "ft-foundry", "display_name": "Support bot", "description": "",
                 "identity": "SystemAssigned", "tags": {}}
ACCOUNT = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
           "Microsoft.CognitiveServices/accounts/ft-foundry")
PROJECT = f"{ACCOUNT}/projects/support"
OPERATIONS = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.CognitiveServices/locations/{LOCATION}/operationResults/"


class Messages(Progress):
    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__(lambda message, *rest: self.messages.append(message))


def account_target(**attrs: Any) -> Target:
    return Target("FoundryAccount.ft-foundry", "FoundryAccount", "ft-foundry", {**ACCOUNT_ATTRS, **attrs})


def project_target(**attrs: Any) -> Target:
    return Target("FoundryProject.support", "FoundryProject", "support", {**PROJECT_ATTRS, **attrs})


def sent(fake: Any) -> list[tuple[str, str, str | None]]:
    """(method, path, api-version), operation polls folded into one marker."""
    return [(c.method, "{operation}" if c.path.startswith(OPERATIONS) else c.path, c.api_version)
            for c in fake.calls]


@pytest.fixture
def accounts(azure_backend: Any) -> Any:
    return azure_backend.handler("FoundryAccount")


@pytest.fixture
def projects(azure_backend: Any) -> Any:
    return azure_backend.handler("FoundryProject")


# -- FoundryAccount ------------------------------------------------------------------------

def test_create_puts_an_aiservices_account_and_polls_it(fake_azure: Any, accounts: Any) -> None:
    observed = accounts.create(account_target(), Progress())

    assert sent(fake_azure) == [
        ("GET", ACCOUNT, API),  # does it exist already?
        ("PUT", ACCOUNT, API), ("GET", "{operation}", API), ("GET", "{operation}", API),
        ("GET", ACCOUNT, API),  # the LRO's final state
    ]
    assert fake_azure.requests("PUT")[0].body == {
        "location": "eastus2", "kind": "AIServices", "sku": {"name": "S0"}, "identity": {"type": "SystemAssigned"},
        "tags": {"team": "ml"},
        "properties": {"customSubDomainName": "ft-foundry-demo", "allowProjectManagement": True,
                       "publicNetworkAccess": "Enabled", "disableLocalAuth": False}}
    assert observed.id == ACCOUNT
    assert observed.attributes == ACCOUNT_ATTRS  # the next plan is empty
    assert observed.outputs["endpoint"] == "https://ft-foundry-demo.cognitiveservices.azure.com/"
    assert observed.outputs["principal_id"] and observed.outputs["soft_delete"] is True


def test_read_of_a_missing_account_is_absent_and_of_another_kind_is_not_ours(fake_azure: Any, accounts: Any) -> None:
    assert accounts.read(account_target()) is None
    seed_account(fake_azure, "ft-foundry", kind="OpenAI")
    assert accounts.read(account_target()) is None
    with pytest.raises(BackendError, match="of kind OpenAI has that name"):
        accounts.create(account_target(), Progress())


def test_update_patches_only_what_changed(fake_azure: Any, accounts: Any) -> None:
    before = accounts.create(account_target(), Progress()).attributes
    fake_azure.calls.clear()
    after = accounts.update(Target("FoundryAccount.ft-foundry", "FoundryAccount", "ft-foundry",
                                   {**ACCOUNT_ATTRS, "public_network_access": "Disabled", "tags": {}}, ACCOUNT),
                            before, Progress())
    patches = fake_azure.requests("PATCH")
    assert [p.path for p in patches] == [ACCOUNT] and patches[0].api_version == API
    assert patches[0].body == {"tags": {}, "properties": {"publicNetworkAccess": "Disabled"}}
    assert after.attributes["public_network_access"] == "Disabled" and after.attributes["tags"] == {}


def test_an_existing_account_is_adopted_unless_its_subdomain_differs(fake_azure: Any, accounts: Any) -> None:
    seed_account(fake_azure, "ft-foundry", subdomain="something-else")
    with pytest.raises(BackendError, match="custom_subdomain_name something-else"):
        accounts.create(account_target(), Progress())
    fake_azure.resources.clear()
    seed_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")
    messages = Messages()
    observed = accounts.create(account_target(), messages)
    assert "Foundry account ft-foundry exists: adopting it" in messages.messages
    assert not fake_azure.requests("PUT") and fake_azure.requests("PATCH")[0].body == {"tags": {"team": "ml"}}
    assert observed.attributes == ACCOUNT_ATTRS


def test_delete_soft_deletes_by_default(fake_azure: Any, accounts: Any) -> None:
    accounts.create(account_target(), Progress())
    fake_azure.calls.clear()
    messages = Messages()
    accounts.delete(account_target(), messages)
    assert sent(fake_azure) == [("GET", ACCOUNT, API), ("DELETE", ACCOUNT, API),
                                ("GET", "{operation}", API), ("GET", "{operation}", API)]
    assert "soft-deleted: recoverable for 48 hours" in messages.messages
    assert accounts.delete_notes(Observed(ACCOUNT, ACCOUNT_ATTRS, {}))[0].startswith(
        "Azure soft-deletes it: recoverable for 48 hours")
    # The name is taken now: Azure answers 409 and the error says what to do.
    with pytest.raises(BackendError) as caught:
        accounts.create(account_target(), Progress())
    assert caught.value.code == "FlagMustBeSetForRestore"
    assert "restore_soft_deleted: true" in (caught.value.hint or "")


def test_purge_on_delete_deletes_the_soft_deleted_account_too(fake_azure: Any, tmp_path: Path) -> None:
    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    config = AzureBackendConfig(type="azure", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                location=LOCATION, poll_interval=0.01, purge_on_delete=True)
    backend = AzureBackend(config, tmp_path)
    try:
        accounts = backend.handler("FoundryAccount")
        accounts.create(account_target(), Progress())
        fake_azure.calls.clear()
        accounts.delete(account_target(), Progress())
        purge = deleted_id(fake_azure, LOCATION, "ft-foundry")
        assert [(c.method, c.path) for c in fake_azure.writes()] == [("DELETE", ACCOUNT), ("DELETE", purge)]
        assert fake_azure.requests("DELETE", "deletedAccounts")[0].api_version == API
        accounts.create(account_target(), Progress())  # the name is free again
    finally:
        backend.close()


def test_restore_soft_deleted_recovers_with_restore_true(fake_azure: Any, accounts: Any) -> None:
    seed_deleted_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")
    messages = Messages()
    observed = accounts.create(account_target(restore_soft_deleted=True), messages)
    assert "recovering soft-deleted Foundry account ft-foundry" in messages.messages
    assert fake_azure.requests("GET", "deletedAccounts/ft-foundry$")  # looked before asking
    put = fake_azure.requests("PUT")[0]
    assert put.body["properties"]["restore"] is True
    # Back as it was when deleted (no tags): a PATCH brings it to the manifest.
    assert fake_azure.requests("PATCH")[0].body == {"tags": {"team": "ml"}}
    assert observed.attributes == {**ACCOUNT_ATTRS, "restore_soft_deleted": True}


def test_plan_refuses_a_name_azure_holds_soft_deleted_unless_it_is_restored(fake_azure: Any, accounts: Any,
                                                                            tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Azure lists a soft-deleted account (deletedAccounts), whoever deleted it: the plan asks,
    and refuses at restore_soft_deleted what apply would fail with (FlagMustBeSetForRestore)."""
    from foundryctl.cli import cli

    assert accounts.create_notes(account_target()) == []  # nothing deleted: nothing to say
    seed_deleted_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")
    with pytest.raises(FieldError) as caught:
        accounts.create_notes(account_target())
    assert caught.value.path == ("restore_soft_deleted",) and caught.value.code == "FlagMustBeSetForRestore"
    assert caught.value.message == ("Azure holds a soft-deleted Foundry account ft-foundry (deleted 2026-12-04 "
                                    "00:00 UTC, purged by Azure 2026-12-06 00:00 UTC), so creating it again is "
                                    "refused until then")
    assert "restore_soft_deleted: true" in (caught.value.hint or "")
    assert accounts.create_notes(account_target(restore_soft_deleted=True)) == [
        "Azure holds a soft-deleted Foundry account ft-foundry (deleted 2026-12-04 00:00 UTC, purged by Azure "
        "2026-12-06 00:00 UTC): apply recovers it (restore_soft_deleted: true), then brings it to the manifest"]

    write_manifest(tmp_path, RESOURCES)
    monkeypatch.chdir(tmp_path)
    plan = CliRunner().invoke(cli, ["plan", "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"},
                              catch_exceptions=False)
    assert plan.exit_code == 1 and "error: FoundryAccount.ft-foundry: Azure holds a soft-deleted" in plan.output, \
        plan.output
    assert not fake_azure.writes()


def test_restore_soft_deleted_without_one_creates_normally(fake_azure: Any, accounts: Any) -> None:
    accounts.create(account_target(restore_soft_deleted=True), Progress())
    assert "restore" not in fake_azure.requests("PUT")[0].body["properties"]


def test_a_subdomain_held_elsewhere_is_azures_error(fake_azure: Any, accounts: Any) -> None:
    seed_account(fake_azure, "someone-else", subdomain="ft-foundry-demo")
    with pytest.raises(BackendError) as caught:
        accounts.create(account_target(), Progress())
    assert caught.value.code == "CustomDomainInUse"


def test_import_account_by_id(fake_azure: Any, accounts: Any) -> None:
    seed_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")
    observed = accounts.import_(ACCOUNT, "ft-foundry")
    assert observed is not None and observed.attributes["custom_subdomain_name"] == "ft-foundry-demo"
    with pytest.raises(BackendError) as caught:
        accounts.import_(f"{ACCOUNT}/projects/x", "x")
    assert caught.value.code == "InvalidResourceId"


# -- FoundryProject ------------------------------------------------------------------------

def test_project_create_reads_its_account_and_puts_in_its_location(fake_azure: Any, projects: Any) -> None:
    seed_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")
    observed = projects.create(project_target(), Progress())
    assert sent(fake_azure) == [("GET", ACCOUNT, API), ("PUT", PROJECT, API), ("GET", "{operation}", API),
                                ("GET", "{operation}", API), ("GET", PROJECT, API)]
    assert fake_azure.requests("PUT")[0].body == {
        "location": "eastus2", "identity": {"type": "SystemAssigned"}, "tags": {},
        "properties": {"description": "", "displayName": "Support bot"}}
    assert observed.id == PROJECT and observed.attributes == PROJECT_ATTRS
    assert observed.outputs["is_default"] is True
    assert observed.outputs["endpoints"]["AI Foundry API"] == \
        "https://ft-foundry-demo.services.ai.azure.com/api/projects/support"


def test_project_without_its_account_is_a_clear_error(fake_azure: Any, projects: Any) -> None:
    with pytest.raises(BackendError, match="Foundry account ft-foundry does not exist"):
        projects.create(project_target(), Progress())
    assert not fake_azure.writes()


def test_project_in_an_account_without_identity_is_azures_error(fake_azure: Any, projects: Any) -> None:
    body = seed_account(fake_azure, "ft-foundry")
    body["identity"] = {"type": "None"}
    with pytest.raises(BackendError, match="managed identity"):
        projects.create(project_target(), Progress())


def test_project_update_patches_and_delete_deletes(fake_azure: Any, projects: Any) -> None:
    seed_account(fake_azure, "ft-foundry")
    before = projects.create(project_target(), Progress()).attributes
    fake_azure.calls.clear()
    after = projects.update(project_target(description="tier 1", display_name=None), before, Progress())
    assert fake_azure.requests("PATCH")[0].body == {"properties": {"description": "tier 1"}}
    assert after.attributes["description"] == "tier 1"
    fake_azure.calls.clear()
    projects.delete(project_target(), Progress())
    assert [(c.method, c.path) for c in fake_azure.writes()] == [("DELETE", PROJECT)]
    assert projects.read(project_target()) is None
    projects.delete(project_target(), Progress())  # gone already: nothing to do


def test_import_project_by_id(fake_azure: Any, projects: Any) -> None:
    seed_account(fake_azure, "ft-foundry")
    projects.create(project_target(), Progress())
    observed = projects.import_(PROJECT, "support")
    assert observed is not None and observed.attributes == PROJECT_ATTRS
    with pytest.raises(BackendError) as caught:
        projects.import_(ACCOUNT, "support")
    assert caught.value.code == "InvalidResourceId"


# -- the CLI, end to end -----------------------------------------------------------------

RESOURCES = """
- kind: FoundryAccount
  name: ft-foundry
  location: eastus2
  custom_subdomain_name: ft-foundry-demo
  tags: {team: ml}
- kind: FoundryProject
  name: support
  account: ft-foundry
  display_name: Support bot
- kind: RoleAssignment
  name: dev
  principal: 9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
  principal_type: ServicePrincipal
  role: Foundry User
  scope: {foundry_account: ft-foundry, foundry_project: support}
"""


def test_plan_apply_empty_plan_destroy(fake_azure: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl.cli import cli

    from azurefake.families.graph import directory_object

    write_manifest(tmp_path, RESOURCES)
    directory_object(fake_azure, "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "ServicePrincipal")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"},
                                  catch_exceptions=False)

    plan = run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2 and "Plan: 3 to add, 0 to change, 0 to destroy." in plan.output, plan.output
    assert not fake_azure.writes()
    apply = run("apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    puts = [c.path for c in fake_azure.requests("PUT")]
    assert puts[0] == ACCOUNT and puts[1] == PROJECT and puts[2].startswith(f"{PROJECT}/providers/Microsoft.Authorization")
    again = run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    destroy = run("destroy", "--auto-approve")
    assert destroy.exit_code == 0, destroy.output
    assert "soft-deleted: recoverable for 48 hours" in destroy.output
    deletes = [c.path for c in fake_azure.requests("DELETE")]
    assert deletes[-2:] == [PROJECT, ACCOUNT]
    assert account_id(fake_azure, "ft-foundry").lower() not in fake_azure.resources


# -- RoleAssignment at Foundry scopes -------------------------------------------------------

@pytest.mark.parametrize(("scope_id", "form"), [
    (ACCOUNT, {"foundry_account": "ft-foundry"}),
    (PROJECT, {"foundry_account": "ft-foundry", "foundry_project": "support"}),
])
def test_import_role_assignment_at_a_foundry_scope(fake_azure: Any, azure_backend: Any, scope_id: str,
                                                    form: dict[str, str]) -> None:
    from azurefake.families.authorization import assignment_id, seed_assignment

    seed_assignment(fake_azure, scope_id, "0c2b6a1e-1b7a-4d2a-9a5e-3f1c2d4e5f60",
                    principal="9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
                    role_guid="eadc314b-1a2d-4efa-be10-5d325db5065e")
    assignments = azure_backend.handler("RoleAssignment")
    observed = assignments.import_(assignment_id(scope_id, "0c2b6a1e-1b7a-4d2a-9a5e-3f1c2d4e5f60"), "lead")
    assert observed is not None
    assert observed.attributes["scope"] == form
    assert observed.attributes["role"] == "Foundry Project Manager"
    assert assignments.scope_id(form) == scope_id
