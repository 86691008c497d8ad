"""Foundry accounts and Foundry projects (Microsoft.CognitiveServices accounts of kind
AIServices and their accounts/projects) on the local backend: the manifest, the plan's
ordering, and the rules the emulator keeps (names, global custom subdomains, projects need
an account with an identity, 48-hour soft delete with restore or purge)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Project

from foundryctl.backends import arm
from foundryctl.backends.local import LocalCloud
from foundryctl.errors import BackendError
from foundryctl.manifest import load_manifest

SUB = "00000000-1111-2222-3333-444444444444"
RG = "rg-test"

MANIFEST = """\
version: 1
backend:
  type: local
  purge_on_delete: false  # Azure's soft delete, which these tests exercise
resources:
  - kind: FoundryAccount
    name: ft-foundry
    location: East US 2
    custom_subdomain_name: ft-foundry-demo
    tags: {team: ml}
  - kind: FoundryProject
    name: support
    account: ft-foundry
    display_name: Support bot
  - kind: RoleAssignment
    name: dev
    principal: alice
    role: Azure AI User
    scope: {foundry_account: ft-foundry, foundry_project: support}
  - kind: RoleAssignment
    name: lead
    principal: bob
    role: Foundry Project Manager
    scope: {foundry_account: ft-foundry}
"""


OTHER_ACCOUNT = """\
  - kind: FoundryAccount
    name: other
    location: eastus2
    custom_subdomain_name: other-sub
  - kind: RoleAssignment
    name: wrong
    principal: carol
    role: Foundry User
    scope: {foundry_account: other, foundry_project: support}
"""


@pytest.fixture
def cloud(tmp_path: Path):
    c = LocalCloud(tmp_path / "cloud")
    yield c
    c.close()


def account(cloud: LocalCloud, name: str = "acct", subdomain: str = "acct-sub", **kw):
    return cloud.create_cognitive_account(SUB, RG, name, location="eastus2", custom_subdomain_name=subdomain, **kw)


# -- the manifest and the graph --------------------------------------------------------

def test_project_waits_for_its_account_and_assignments_for_both(tmp_path: Path) -> None:
    path = tmp_path / "foundry.yaml"
    path.write_text(MANIFEST)
    graph = load_manifest(path).graph
    assert graph.dependencies("FoundryProject.support") == ["FoundryAccount.ft-foundry"]
    assert set(graph.dependencies("RoleAssignment.dev")) == {"FoundryAccount.ft-foundry",
                                                             "FoundryProject.support"}
    order = graph.topological_order()
    assert order.index("FoundryAccount.ft-foundry") < order.index("FoundryProject.support") \
        < order.index("RoleAssignment.dev")


@pytest.mark.parametrize(("edit", "message"), [
    ("custom_subdomain_name: ft-foundry-demo", "custom_subdomain_name: -bad-"),
    ("name: support", "name: .support"),
    ("scope: {foundry_account: ft-foundry, foundry_project: support}", "scope: {foundry_project: support}"),
])
def test_validate_names_the_field_and_line(project: Project, edit: str, message: str) -> None:
    project.write(MANIFEST)
    project.edit(edit, message)
    result = project.cli("validate")
    assert result.code == 1, result
    assert "This is a bug" not in result.output
    assert "foundry.yaml:" in result.output


def test_a_project_scope_in_another_account_is_refused(project: Project) -> None:
    project.write(MANIFEST + OTHER_ACCOUNT)
    result = project.cli("validate")
    assert result.code == 1, result
    assert "that project is in account 'ft-foundry'" in result.output
    assert "set foundry_account: ft-foundry" in result.output


def test_roles_accept_the_names_before_the_rename(project: Project) -> None:
    project.write(MANIFEST)
    result = project.cli("plan", "--json")
    assert result.code == 0, result
    assert '"role": "Foundry User"' in result.stdout  # Azure AI User is the same role


# -- apply, plan, destroy --------------------------------------------------------------

def test_apply_then_no_changes_then_update_then_destroy(project: Project) -> None:
    project.write(MANIFEST)
    assert (result := project.cli("apply", "--auto-approve")).code == 0, result
    assert (result := project.cli("plan", "--detailed-exitcode")).code == 0, result
    ids = project.cloud_ids()
    account_id = [i for i in ids if i.endswith("/microsoft.cognitiveservices/accounts/ft-foundry")]
    assert account_id and f"{account_id[0]}/projects/support" in ids

    project.edit("tags: {team: ml}", "tags: {team: ml}\n    public_network_access: Disabled")
    result = project.cli("plan", "--detailed-exitcode")
    assert result.code == 2 and "~ FoundryAccount.ft-foundry" in result.stdout, result
    assert (result := project.cli("apply", "--auto-approve")).code == 0, result

    project.edit("custom_subdomain_name: ft-foundry-demo", "custom_subdomain_name: ft-foundry-two")
    result = project.cli("plan")
    assert "-/+ FoundryAccount.ft-foundry" in result.stdout and "forces replacement" in result.stdout, result
    project.edit("custom_subdomain_name: ft-foundry-two", "custom_subdomain_name: ft-foundry-demo")

    result = project.cli("destroy", "--auto-approve")
    assert result.code == 0, result
    assert "soft-deleted: recoverable for 48 hours" in result.output
    assert not any("/accounts/" in i for i in project.cloud_ids() if "deletedaccounts" not in i)


def test_apply_after_destroy_needs_restore_and_restore_recovers(project: Project) -> None:
    project.write(MANIFEST)
    assert project.cli("apply", "--auto-approve").code == 0
    assert project.cli("destroy", "--auto-approve").code == 0
    plan = project.cli("plan")  # the state's history says foundryctl soft-deleted it
    assert "warning: FoundryAccount.ft-foundry: foundryctl deleted Foundry account ft-foundry at" in plan.output
    assert "set restore_soft_deleted: true to recover it" in plan.output
    result = project.cli("apply", "--auto-approve")
    assert result.code == 1, result
    assert "FlagMustBeSetForRestore" in result.output and "restore_soft_deleted: true" in result.output
    project.edit("tags: {team: ml}", "tags: {team: ml}\n    restore_soft_deleted: true")
    plan = project.cli("plan")
    assert "warning: FoundryAccount.ft-foundry: foundryctl deleted" not in plan.output, plan.output
    assert "recovers a soft-deleted account of this name" in plan.output
    assert "Azure keeps it soft-deleted (name and custom subdomain taken) until" in plan.output
    result = project.cli("apply", "--auto-approve")
    assert result.code == 0, result
    assert "recovered soft-deleted account ft-foundry" in result.output
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_purge_on_delete_frees_the_name(project: Project) -> None:
    project.write(MANIFEST.replace("purge_on_delete: false", "purge_on_delete: true"))
    assert project.cli("apply", "--auto-approve").code == 0
    result = project.cli("destroy", "--auto-approve")
    assert result.code == 0 and "purged" in result.output, result
    assert (result := project.cli("apply", "--auto-approve")).code == 0, result


# -- the emulator's rules ----------------------------------------------------------------

def test_account_shape(cloud: LocalCloud) -> None:
    resource, recovered = account(cloud, subdomain="Acct-Sub")
    assert not recovered
    assert resource.id == arm.cognitive_account_id(SUB, RG, "acct")
    assert resource.kind == "AIServices" and resource.properties["allowProjectManagement"] is True
    assert resource.properties["customSubDomainName"] == "acct-sub"
    assert resource.properties["endpoint"] == "https://acct-sub.cognitiveservices.azure.com/"
    assert resource.properties["identity"]["principalId"]


def test_custom_subdomains_are_global(cloud: LocalCloud) -> None:
    account(cloud)
    with pytest.raises(BackendError) as caught:
        cloud.create_cognitive_account("99999999-1111-2222-3333-444444444444", "rg-other", "acct2",
                                       location="westus", custom_subdomain_name="ACCT-SUB")
    assert caught.value.code == "CustomDomainInUse"


def test_a_soft_deleted_account_keeps_its_subdomain_until_purged(cloud: LocalCloud) -> None:
    resource, _ = account(cloud)
    assert cloud.delete_cognitive_account(resource.id)
    with pytest.raises(BackendError) as caught:
        account(cloud, name="fresh")
    assert caught.value.code == "CustomDomainInUse" and "soft-deleted" in caught.value.message
    assert cloud.deleted_account(SUB, "eastus2", RG, "acct") is not None
    assert cloud.purge_deleted_account(SUB, "eastus2", RG, "acct")
    account(cloud, name="fresh")


def test_soft_delete_ends_after_48_hours(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    import foundryctl.backends.local.cloud as cloud_module

    resource, _ = account(cloud)
    cloud.delete_cognitive_account(resource.id)
    real = cloud_module.time.time
    monkeypatch.setattr(cloud_module.time, "time", lambda: real() + 48 * 3600 + 1)
    assert cloud.deleted_account(SUB, "eastus2", RG, "acct") is None
    _, recovered = account(cloud, restore=True)
    assert not recovered  # nothing left to recover: a new account


def test_restore_brings_back_the_account_without_its_projects(cloud: LocalCloud) -> None:
    resource, _ = account(cloud, tags={"a": "b"})
    cloud.create_account_project(resource.id, "p1")
    cloud.delete_cognitive_account(resource.id)
    assert cloud.get(arm.account_project_id(resource.id, "p1")) is None
    with pytest.raises(BackendError) as caught:
        account(cloud)
    assert caught.value.code == "FlagMustBeSetForRestore"
    back, recovered = account(cloud, restore=True)
    assert recovered and back.tags == {"a": "b"} and back.created_at == resource.created_at
    assert cloud.deleted_account(SUB, "eastus2", RG, "acct") is None


def test_project_rules(cloud: LocalCloud) -> None:
    with pytest.raises(BackendError) as caught:
        cloud.create_account_project(arm.cognitive_account_id(SUB, RG, "missing"), "p1")
    assert caught.value.code == "ResourceNotFound"
    no_identity, _ = account(cloud, name="plain", subdomain="plain-sub", identity="None")
    with pytest.raises(BackendError, match="no managed identity"):
        cloud.create_account_project(no_identity.id, "p1")
    resource, _ = account(cloud)
    first = cloud.create_account_project(resource.id, "p1")
    second = cloud.create_account_project(resource.id, "p2", display_name="Two")
    assert first.properties["isDefault"] and not second.properties["isDefault"]
    assert first.location == "eastus2" and first.properties["displayName"] == "p1"
    assert first.properties["endpoints"]["AI Foundry API"] == \
        "https://acct-sub.services.ai.azure.com/api/projects/p1"
    with pytest.raises(BackendError) as caught:
        cloud.create_account_project(resource.id, "p1")
    assert caught.value.code == "Conflict"
    with pytest.raises(BackendError) as caught:
        cloud.create_account_project(resource.id, "-bad")
    assert caught.value.code == "InvalidResourceName"


def test_subdomain_and_location_cannot_change(cloud: LocalCloud) -> None:
    resource, _ = account(cloud)
    with pytest.raises(BackendError, match="cannot be changed"):
        cloud.update_cognitive_account(resource.id, customSubDomainName="other")
    with pytest.raises(BackendError) as caught:
        cloud.update_cognitive_account(resource.id, location="westus")
    assert caught.value.code == "InvalidResourceLocation"
    updated = cloud.update_cognitive_account(resource.id, publicNetworkAccess="Disabled", tags={"x": "y"})
    assert updated.properties["publicNetworkAccess"] == "Disabled" and updated.tags == {"x": "y"}


def test_foundry_user_at_the_account_covers_its_projects(cloud: LocalCloud) -> None:
    resource, _ = account(cloud)
    project_id = cloud.create_account_project(resource.id, "p1").id
    cloud.create_role_assignment(SUB, resource.id, "alice", "User", "53ca6127-db72-4b80-b1b0-d745d6d5456d")
    action = "Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/write"
    assert cloud.check_access("alice", action, project_id, data_action=True) == "Foundry User"
    with pytest.raises(BackendError):
        cloud.check_access("alice", "Microsoft.CognitiveServices/accounts/write", resource.id)


def test_allowed_regions_covers_foundry_accounts(project: Project) -> None:
    project.write(MANIFEST + "policies:\n  allowed_regions: {regions: [westus3]}\n")
    result = project.cli("validate")
    assert result.code == 1, result
    assert "allowed_regions" in result.output and "FoundryAccount.ft-foundry" in result.output
    assert "region eastus2 is not allowed" in result.output


def test_markdown_plan_says_what_deleting_an_account_loses(project: Project) -> None:
    project.write(MANIFEST)
    assert project.cli("apply", "--auto-approve").code == 0
    result = project.cli("plan", "--destroy", "--format", "markdown")
    assert result.code == 0, result
    assert "deleting a Foundry account deletes its projects" in result.stdout
    assert "soft-deleted for 48 hours" in result.stdout
