"""The spec validator (tests/specs) proven against Microsoft's own examples, and shown to fail.

Contract tests run every recorded ARM request through it at teardown (azurefake.fixtures);
these tests check the validator itself: the examples vendored with each spec validate, wrong
bodies are refused with the operation and the JSON path, and the recorder pass fails a test
whose backend sends a body the spec refuses.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from specs.contract import PENDING, check_call, registry
from specs.validate import SPEC_ROOT, SpecRegistry

ROLE_PUT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
            "Microsoft.Authorization/roleAssignments/05c5a614-a7d6-4502-b150-c2fb455033ff")
ARM = "https://management.azure.com"
GOOD_ROLE = {"properties": {
    "roleDefinitionId": "/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/"
                        "roleDefinitions/64702f94-c441-49e6-a78b-ef80e0188fee",
    "principalId": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "principalType": "ServicePrincipal"}}


def _examples() -> list[tuple[str, str]]:
    return [(op.label, title) for op, title, _ in registry().examples()]


@pytest.mark.parametrize(("operation", "title"), _examples())
def test_every_vendored_example_request_validates(operation: str, title: str) -> None:
    specs = registry()
    op, _, example = next(e for e in specs.examples() if e[0].label == operation and e[1] == title)
    assert op.body is not None, "an example is vendored only for operations with a body"
    assert specs.check(op, specs.example_body(op, example)) == []


def test_every_spec_file_has_examples_and_provenance() -> None:
    provenance = (SPEC_ROOT.parent / "PROVENANCE.md").read_text()
    for vendored in SPEC_ROOT.rglob("*.json"):
        relative = vendored.relative_to(SPEC_ROOT).as_posix()
        assert f"`{relative}`" in provenance, f"{relative} has no line in tests/specs/PROVENANCE.md"
    spec_files = {op.spec_file for op in registry().operations}
    assert spec_files
    for spec_file in spec_files:
        for op in registry().operations:
            if op.spec_file == spec_file and op.body is not None:
                assert op.examples, f"{op.label} has a body but no vendored example"
                for example in op.examples.values():
                    assert (spec_file.parent / example).exists(), example


def test_operations_are_found_by_method_path_and_api_version() -> None:
    specs = registry()
    scoped = ROLE_PUT.replace("/providers/Microsoft.Authorization", "/providers/Microsoft.MachineLearningServices/"
                              "workspaces/xbox-support/providers/Microsoft.Authorization")
    for path in (ROLE_PUT, scoped):
        op = specs.operation("PUT", path, "2022-04-01")
        assert op is not None and op.operation_id == "RoleAssignments_Create"
    assert specs.operation("PUT", ROLE_PUT, "2015-07-01") is None
    assert specs.operation("PATCH", ROLE_PUT, "2022-04-01") is None


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda b: b["properties"].update(principalType="Robot"), "$.properties.principalType", "is not one of"),
    (lambda b: b["properties"].pop("principalId"), "$.properties", "'principalId' is a required property"),
    (lambda b: b["properties"].update(scope="/subscriptions/x"), "$.properties.scope", "read-only"),
    (lambda b: b["properties"].update(principalId=42), "$.properties.principalId", "is not of type 'string'"),
    (lambda b: b.pop("properties"), "$", "'properties' is a required property"),
])
def test_a_wrong_body_is_refused_with_the_operation_and_the_json_path(mutate, json_path: str, message: str) -> None:
    specs = registry()
    op = specs.operation("PUT", ROLE_PUT, "2022-04-01")
    body = copy.deepcopy(GOOD_ROLE)
    assert specs.check(op, body) == []
    mutate(body)
    violations = specs.check(op, body)
    assert violations, body
    assert any(v.json_path == json_path and message in v.message for v in violations), violations
    assert all("RoleAssignments_Create" in str(v) for v in violations)


def test_a_missing_body_is_refused_when_the_spec_requires_one() -> None:
    op = registry().operation("PUT", ROLE_PUT, "2022-04-01")
    assert [v.message for v in registry().check(op, None)] == ["a request body is required"]


def test_unvendored_operations_and_api_versions_fail_unless_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_call("PUT", ARM + ROLE_PUT, "2022-04-01", GOOD_ROLE) == []
    [drift] = check_call("PUT", ARM + ROLE_PUT, "2020-10-01-preview", GOOD_ROLE)
    assert "no vendored spec" in drift and "vendored api-versions: 2022-04-01" in drift
    [unknown] = check_call("PUT", ARM + "/subscriptions/s/providers/Microsoft.Foo/bars/b", "2025-01-01", {"a": 1})
    assert "Microsoft.Foo/bars/b api-version 2025-01-01" in unknown
    # Bodies to other hosts, and body-less requests, are out of scope.
    assert check_call("PATCH", "https://eastus2.api.azureml.ms/history/v1.0/runs/r", "v1.0", {"hidden": True}) == []
    assert check_call("POST", ARM + "/subscriptions/s/providers/Microsoft.Foo/register", "2025-04-01", None) == []
    from specs import contract

    bar = "/subscriptions/s/providers/Microsoft.Foo/bars/b"
    monkeypatch.setattr(contract, "PENDING", (contract.Pending("PUT", r"/subscriptions/[^/]+/providers/"
                                                               r"Microsoft\.Foo/bars/[^/]+", "2025-01-01", "demo"),))
    assert check_call("PUT", ARM + bar, "2025-01-01", {"a": 1}) == []
    assert check_call("PUT", ARM + bar, "2025-02-01", {"a": 1}) != []  # pending is per api-version
    assert all(p.why for p in PENDING)


def test_polymorphism_allof_and_nullable_are_translated(tmp_path: Path) -> None:
    """A discriminator picks the derived definition; inherited properties pass additionalProperties: false."""
    root = tmp_path / "azure-rest-api-specs"
    spec = root / "specification/demo/stable/2024-01-01/demo.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({
        "swagger": "2.0", "info": {"version": "2024-01-01"},
        "paths": {"/things/{name}": {"put": {"operationId": "Things_Put", "parameters": [
            {"in": "body", "name": "body", "required": True, "schema": {"$ref": "#/definitions/Thing"}}]}}},
        "definitions": {
            "Thing": {"type": "object", "required": ["kind"], "discriminator": "kind",
                      "properties": {"kind": {"type": "string"}, "id": {"type": "string", "readOnly": True},
                                     "note": {"type": "string", "x-nullable": True}},
                      "additionalProperties": False},
            "Job": {"type": "object", "allOf": [{"$ref": "#/definitions/Thing"}], "x-ms-discriminator-value": "job",
                    "required": ["command"], "properties": {"command": {"type": "string"}},
                    "additionalProperties": False},
        }}))
    specs = SpecRegistry(root)
    op = specs.operation("PUT", "/things/a", "2024-01-01")
    assert op is not None
    assert specs.check(op, {"kind": "job", "command": "echo", "note": None}) == []
    assert [v.json_path for v in specs.check(op, {"kind": "job"})] == ["$"]  # command is required for jobs
    assert any("'other' is not one of" in v.message for v in specs.check(op, {"kind": "other"}))
    assert any(v.json_path == "$.id" for v in specs.check(op, {"kind": "job", "command": "x", "id": "i"}))
    assert any("Additional properties" in v.message for v in specs.check(op, {"kind": "job", "command": "x", "y": 1}))


def test_the_recorder_pass_fails_a_contract_test_whose_backend_sends_a_bad_body(tmp_path: Path) -> None:
    """A role assignment PUT the spec refuses makes an otherwise passing contract test fail at teardown."""
    tests = Path(__file__).resolve().parent
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests)!r})\nimport pytest\n"
        "def require(reason):\n    pytest.skip(reason)\n"
        "pytest_plugins = ['azurefake.fixtures']\n")
    (tmp_path / "test_bad.py").write_text(textwrap.dedent(f"""
        import requests
        def test_sends_a_bad_role_assignment(fake_azure):
            body = {{"properties": {{"roleDefinitionId": "/r", "principalId": "p", "principalType": "Robot"}}}}
            requests.put("{ARM}{ROLE_PUT}?api-version=2022-04-01", json=body)
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "test_bad.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert re.search(r"1 passed.* 1 error", result.stdout), result.stdout + result.stderr
    assert re.search(r"RoleAssignments_Create \(PUT .*api-version 2022-04-01\): at \$\.properties\.principalType: "
                     r"'Robot' is not one of", result.stdout), result.stdout


SERVERLESS_PUT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
                  "Microsoft.MachineLearningServices/workspaces/xbox-support/serverlessEndpoints/xbox-bot")
SDK_SERVERLESS = {"properties": {"modelSettings": {"modelId": "azureml://locations/eastus2/workspaces/g/models/m/versions/1"}},
                  "sku": {"name": "Consumption"}, "location": "eastus2"}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda b: b.pop("location"), "$", "'location' is a required property"),  # from TrackedResource (common-types)
    (lambda b: b["properties"].update(modelId="m"), "$.properties", "Additional properties"),
    (lambda b: b["properties"]["modelSettings"].pop("modelId"), "$.properties.modelSettings", "'modelId' is a required"),
    (lambda b: b["properties"].update(authMode="key"), "$.properties.authMode", "'key' is not one of"),
    (lambda b: b["properties"].update(provisioningState="Succeeded"), "$.properties.provisioningState", "read-only"),
    (lambda b: b.update(identity={"type": "Both"}), "$.identity.type", "'Both' is not one of"),
    (lambda b: b.update(id="/x"), "$.id", "read-only"),  # Resource, two allOf levels up
])
def test_serverless_endpoint_bodies_follow_the_2024_01_01_preview_spec(mutate, json_path: str, message: str) -> None:
    specs = registry()
    op = specs.operation("PUT", SERVERLESS_PUT, "2024-01-01-preview")
    assert op is not None and op.operation_id == "ServerlessEndpoints_CreateOrUpdate"
    body = copy.deepcopy(SDK_SERVERLESS)
    assert specs.check(op, body) == []
    mutate(body)
    assert any(v.json_path == json_path and message in v.message for v in specs.check(op, body)), specs.check(op, body)


RAI_PUT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
           "Microsoft.CognitiveServices/accounts/contoso-foundry/raiPolicies/strict")


@pytest.mark.parametrize(("filter_update", "message"), [
    ({"severityThreshold": "Extreme"}, "'Extreme' is not one of ['Low', 'Medium', 'High']"),
    ({"source": "Both"}, "'Both' is not one of ['Prompt', 'Completion']"),
    ({"blocking": "yes"}, "'yes' is not of type 'boolean'"),
])
def test_foundry_rai_policy_bodies_follow_the_2025_06_01_spec(filter_update: dict, message: str) -> None:
    """The Foundry kinds' content-filter policy (Microsoft.CognitiveServices 2025-06-01) is checked per category."""
    specs = registry()
    op = specs.operation("PUT", RAI_PUT, "2025-06-01")
    assert op is not None and op.operation_id == "RaiPolicies_CreateOrUpdate"
    body = {"properties": {"basePolicyName": "Microsoft.DefaultV2", "mode": "Blocking", "contentFilters": [
        {"name": "Hate", "enabled": True, "blocking": True, "severityThreshold": "Low", "source": "Prompt"}]}}
    assert specs.check(op, body) == []
    body["properties"]["contentFilters"][0].update(filter_update)
    [violation] = specs.check(op, body)
    assert violation.json_path.startswith("$.properties.contentFilters[0].") and message in violation.message
    assert [v.json_path for v in specs.check(op, {"properties": {"type": "UserManaged"}})] == ["$.properties.type"]


CS_ACCOUNT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
              "Microsoft.CognitiveServices/accounts/ft-foundry")
# What the Foundry kinds send (recorded from tests/test_azure_foundry.py).
FOUNDRY_ACCOUNT = {"identity": {"type": "SystemAssigned"}, "kind": "AIServices", "location": "eastus2",
                   "properties": {"allowProjectManagement": True, "customSubDomainName": "ft-foundry-demo",
                                  "disableLocalAuth": False, "publicNetworkAccess": "Enabled", "restore": True},
                   "sku": {"name": "S0"}, "tags": {"team": "ml"}}
FOUNDRY_PROJECT = {"identity": {"type": "SystemAssigned"}, "location": "eastus2",
                   "properties": {"description": "", "displayName": "Support bot"}, "tags": {}}


@pytest.mark.parametrize(("method", "path", "good", "mutate", "json_path", "message"), [
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b["properties"].update(publicNetworkAccess="Public"),
     "$.properties.publicNetworkAccess", "'Public' is not one of ['Enabled', 'Disabled']"),
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b["properties"].update(allowProjectManagement="yes"),
     "$.properties.allowProjectManagement", "is not of type 'boolean'"),
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b["identity"].update(type="Managed"),
     "$.identity.type", "'Managed' is not one of"),
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b.update(sku={"tier": "Standard"}), "$.sku", "'name' is a required"),
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b["properties"].update(endpoint="https://x"),
     "$.properties.endpoint", "read-only"),
    ("PUT", CS_ACCOUNT, FOUNDRY_ACCOUNT, lambda b: b.update(etag="W/1"), "$.etag", "read-only"),  # AzureEntityResource
    ("PATCH", CS_ACCOUNT, {"properties": {"publicNetworkAccess": "Disabled"}, "tags": {}},
     lambda b: b.update(tags={"team": 1}), "$.tags.team", "is not of type 'string'"),
    ("PUT", CS_ACCOUNT + "/projects/support", FOUNDRY_PROJECT, lambda b: b["properties"].update(isDefault=True),
     "$.properties.isDefault", "read-only"),
    ("PUT", CS_ACCOUNT + "/projects/support", FOUNDRY_PROJECT, lambda b: b["properties"].update(displayName=5),
     "$.properties.displayName", "is not of type 'string'"),
    ("PUT", CS_ACCOUNT + "/projects/support", FOUNDRY_PROJECT, lambda b: b["identity"].update(principalId="p"),
     "$.identity.principalId", "read-only"),
])
def test_foundry_account_and_project_bodies_follow_the_2025_06_01_spec(method: str, path: str, good: dict, mutate,
                                                                       json_path: str, message: str) -> None:
    """Accounts_Create, Accounts_Update and Projects_Create (Microsoft.CognitiveServices 2025-06-01) refuse bad bodies."""
    body = copy.deepcopy(good)
    assert check_call(method, ARM + path, "2025-06-01", body) == []
    mutate(body)
    problems = check_call(method, ARM + path, "2025-06-01", body)
    assert any(f"at {json_path}: " in p and message in p for p in problems), problems


WORKSPACE = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
             "Microsoft.MachineLearningServices/workspaces/ft-hub")


@pytest.mark.parametrize(("body", "json_path", "message"), [
    ({"properties": {"publicNetworkAccess": "Off"}}, "$.properties.publicNetworkAccess", "'Off' is not one of"),
    ({"properties": {"friendlyName": ["a"]}}, "$.properties.friendlyName", "is not of type 'string'"),
    ({"properties": {}, "tags": {"team": None}}, "$.tags.team", "is not of type 'string'"),
    ({"identity": {"type": "Both"}}, "$.identity.type", "'Both' is not one of"),
    # A subtree the trimmed spec leaves out is refused, not passed unchecked.
    ({"properties": {"managedNetwork": {"isolationMode": "Disabled"}}}, "$.properties.managedNetwork", "not vendored"),
])
def test_workspace_patch_bodies_follow_the_2024_10_01_preview_spec(body: dict, json_path: str, message: str) -> None:
    """Workspaces_Update (workspaceRP.json 2024-10-01-preview), the hub/project update the SDK sends."""
    good = {"properties": {"description": "Hub for fine-tuning", "friendlyName": "Fine-tuning"}, "tags": {"team": "ml"}}
    assert check_call("PATCH", ARM + WORKSPACE, "2024-10-01-preview", good) == []
    problems = check_call("PATCH", ARM + WORKSPACE, "2024-10-01-preview", body)
    assert any("Workspaces_Update (PATCH" in p and f"at {json_path}: " in p and message in p for p in problems), problems


def test_a_reference_that_is_not_vendored_is_refused_only_when_the_body_reaches_it(tmp_path: Path) -> None:
    root = tmp_path / "azure-rest-api-specs"
    spec = root / "specification/demo/stable/2024-01-01/demo.json"
    spec.parent.mkdir(parents=True)
    spec.write_text(json.dumps({
        "swagger": "2.0", "info": {"version": "2024-01-01"},
        "paths": {"/things/{name}": {"put": {"operationId": "Things_Put", "parameters": [
            {"in": "body", "name": "body", "required": True, "schema": {"$ref": "#/definitions/Thing"}}]}}},
        "definitions": {"Thing": {"type": "object", "properties": {
            "name": {"type": "string"},
            "network": {"$ref": "#/definitions/TrimmedOut"},
            "shared": {"$ref": "../../../common/v9/types.json#/definitions/Elsewhere"}}}}}))
    specs = SpecRegistry(root)
    op = specs.operation("PUT", "/things/a", "2024-01-01")
    assert specs.check(op, {"name": "a"}) == []
    [network] = specs.check(op, {"name": "a", "network": {}})
    assert network.json_path == "$.network" and "'#/definitions/TrimmedOut' is not vendored" in network.message
    [shared] = specs.check(op, {"shared": 1})
    assert shared.json_path == "$.shared" and "Elsewhere' is not vendored" in shared.message


JOB_PUT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/"
           "Microsoft.MachineLearningServices/workspaces/xbox-support/jobs/xbox-agent-6fc2bc7f")
_DATA = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-foundry/providers/" \
        "Microsoft.MachineLearningServices/workspaces/xbox-support/data/"
# The FineTuning job azure-ai-ml 1.35 sends for a chat fine-tune (recorded from tests/test_azure_data_jobs.py).
SDK_JOB = {"properties": {
    "description": "", "displayName": "xbox-agent", "experimentName": "xbox-agent", "isArchived": False,
    "jobType": "FineTuning", "properties": {}, "tags": {"foundryctl.owner": "xbox-agent"},
    "fineTuningDetails": {
        "hyperParameters": {"learning_rate": "0.0002", "num_train_epochs": "3", "per_device_train_batch_size": "4"},
        "model": {"jobInputType": "mlflow_model",
                  "uri": "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"},
        "modelProvider": "Custom", "taskType": "chatCompletion",
        "trainingData": {"jobInputType": "uri_file", "uri": _DATA + "xbox-chat/versions/f6b2eac4a2ee2f267b3f2081"},
        "validationData": {"jobInputType": "uri_file",
                           "uri": _DATA + "xbox-chat-validation/versions/f6b2eac4a2ee2f267b3f2081"}},
    "outputs": {"registered_model": {"assetName": "xbox-agent", "jobOutputType": "mlflow_model"}}}}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda p: p.update(jobType="Finetuning"), "$.properties.jobType", "'Finetuning' is not one of"),
    (lambda p: p.pop("outputs"), "$.properties", "'outputs' is a required property"),
    (lambda p: p["fineTuningDetails"].pop("trainingData"), "$.properties.fineTuningDetails",
     "'trainingData' is a required property"),
    (lambda p: p["fineTuningDetails"].update(modelProvider="OpenAI"), "$.properties.fineTuningDetails.modelProvider",
     "'OpenAI' is not one of"),
    (lambda p: p["fineTuningDetails"]["hyperParameters"].update(num_train_epochs=3),
     "$.properties.fineTuningDetails.hyperParameters.num_train_epochs", "is not of type 'string'"),
    (lambda p: p["fineTuningDetails"]["model"].update(jobInputType="model"),
     "$.properties.fineTuningDetails.model.jobInputType", "'model' is not one of"),
    (lambda p: p["fineTuningDetails"]["trainingData"].pop("uri"), "$.properties.fineTuningDetails.trainingData",
     "'uri' is a required property"),
    (lambda p: p["outputs"]["registered_model"].update(assetVersion="1"), "$.properties.outputs.registered_model",
     "Additional properties are not allowed ('assetVersion' was unexpected)"),
    (lambda p: p.update(status="Running"), "$.properties.status", "read-only"),
    # The tolerated SDK casing is exactly one value: another wrong casing still fails.
    (lambda p: p["fineTuningDetails"].update(taskType="chat_completion"), "$.properties.fineTuningDetails.taskType",
     "'chat_completion' is not one of"),
])
def test_fine_tuning_job_bodies_follow_the_2024_10_01_preview_spec(mutate, json_path: str, message: str) -> None:
    """Jobs_CreateOrUpdate (mfe.json 2024-10-01-preview): the FineTuning job, Custom model provider."""
    body = copy.deepcopy(SDK_JOB)
    assert check_call("PUT", ARM + JOB_PUT, "2024-10-01-preview", body) == []
    mutate(body["properties"])
    problems = check_call("PUT", ARM + JOB_PUT, "2024-10-01-preview", body)
    assert any("Jobs_CreateOrUpdate (PUT" in p and f"at {json_path}: " in p and message in p for p in problems), problems


def test_the_sdks_task_casing_is_the_only_tolerated_deviation_and_the_spec_value_passes() -> None:
    from specs.contract import TOLERATED

    op = registry().operation("PUT", JOB_PUT, "2024-10-01-preview")
    raw = [v.message for v in registry().check(op, SDK_JOB)]
    assert len(raw) == 1 and raw[0].startswith("'chatCompletion' is not one of"), raw  # the spec does refuse it
    assert [t.value for t in TOLERATED] == ["chatCompletion", "incremental"]
    spec_value = copy.deepcopy(SDK_JOB)
    spec_value["properties"]["fineTuningDetails"]["taskType"] = "ChatCompletion"
    assert registry().check(op, spec_value) == []


@pytest.mark.parametrize(("body", "json_path", "message"), [
    ({"expirableSecret": "yes", "expireAfterHours": 1}, "$.expirableSecret", "is not of type 'boolean'"),
    ({"expirableSecret": True, "expireAfterHours": 1.5}, "$.expireAfterHours", "is not of type 'integer'"),
    ({"expirableSecret": True, "expiresIn": "PT1H"}, "$", "Additional properties are not allowed"),
])
def test_datastore_list_secrets_bodies_follow_the_2024_10_01_preview_spec(body: dict, json_path: str,
                                                                           message: str) -> None:
    """Datastores_ListSecrets: the expiring-secret request azure-ai-ml sends before every upload."""
    path = WORKSPACE.replace("ft-hub", "xbox-support") + "/datastores/workspaceblobstore/listSecrets"
    assert check_call("POST", ARM + path, "2024-10-01-preview", {"expirableSecret": True, "expireAfterHours": 1}) == []
    problems = check_call("POST", ARM + path, "2024-10-01-preview", body)
    assert any(f"at {json_path}: " in p and message in p for p in problems), problems


ARM_DEPLOYMENT = ("/subscriptions/00000000-1111-2222-3333-444444444444/resourcegroups/rg-foundry/providers/"
                  "Microsoft.Resources/deployments/ft-hub-2435383")
SDK_DEPLOYMENT = {"properties": {"mode": "incremental", "template": {
    "$schema": "x", "resources": [],
    "parameters": {"kind": {"type": "string", "defaultValue": "Default", "allowedValues": ["Default", "FeatureStore",
                                                                                           "Hub", "Project"]},
                   "location": {"type": "string"},
                   "associatedResourcePNA": {"type": "string", "defaultValue": "Enabled",
                                             "allowedValues": ["Enabled", "Disabled"]},
                   "tagValues": {"type": "object", "defaultValue": {}}}},
    "parameters": {"kind": {"value": "hub"}, "location": {"value": "eastus2"}}}}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda b: b["properties"].update(mode="Partial"), "$.properties.mode", "'Partial' is not one of"),
    (lambda b: b["properties"].pop("mode"), "$.properties", "'mode' is a required property"),
    (lambda b: b["properties"].update(parameters=[1]), "$.properties.parameters", "is not of type 'object'"),
    (lambda b: b["properties"].update(parametersLink={}), "$.properties.parametersLink", "'uri' is a required"),
    (lambda b: b.pop("properties"), "$", "'properties' is a required property"),
    (lambda b: b.update(tags={"a": 1}), "$.tags.a", "is not of type 'string'"),
])
def test_template_deployment_bodies_follow_the_2020_06_01_spec(mutate, json_path: str, message: str) -> None:
    """Deployments_CreateOrUpdate (resources.json 2020-06-01): the hub/project template azure-ai-ml deploys."""
    body = copy.deepcopy(SDK_DEPLOYMENT)
    assert check_call("PUT", ARM + ARM_DEPLOYMENT, "2020-06-01", body) == []  # 'incremental' is tolerated
    mutate(body)
    problems = check_call("PUT", ARM + ARM_DEPLOYMENT, "2020-06-01", body)
    assert any("Deployments_CreateOrUpdate (PUT" in p and f"at {json_path}: " in p and message in p
               for p in problems), problems


@pytest.mark.parametrize(("given", "message"), [
    ({"associatedResourcePNA": {"value": "PublicNetworkAccessType.ENABLED"}},
     "template parameter 'associatedResourcePNA': 'PublicNetworkAccessType.ENABLED' is not one of the "
     "allowedValues ['Enabled', 'Disabled']"),
    ({"tagValues": {"value": "cost=xbox"}}, "template parameter 'tagValues': 'cost=xbox' is not of type object"),
    ({"kind": {"value": True}}, "template parameter 'kind': True is not of type string"),
    ({"storageAccountName": {"value": "st1"}}, "template parameter 'storageAccountName' is not declared"),
])
def test_template_deployments_follow_the_templates_own_parameter_rules(given: dict, message: str) -> None:
    """ARM checks an inline template's parameters (InvalidTemplate) although resources.json
    leaves them free-form: allowedValues (case-insensitive), types, declared names, defaults."""
    body = copy.deepcopy(SDK_DEPLOYMENT)
    body["properties"]["parameters"]["associatedResourcePNA"] = {"value": "disabled"}  # ARM ignores case
    assert check_call("PUT", ARM + ARM_DEPLOYMENT, "2020-06-01", body) == []
    body["properties"]["parameters"].update(given)
    problems = check_call("PUT", ARM + ARM_DEPLOYMENT, "2020-06-01", body)
    assert any(message in p and p.startswith(f"PUT {ARM_DEPLOYMENT}: ") for p in problems), problems
    del body["properties"]["parameters"]["location"]
    assert any("template parameter 'location' has no value and no defaultValue" in p
               for p in check_call("PUT", ARM + ARM_DEPLOYMENT, "2020-06-01", body))


DATA_PUT = _DATA + "xbox-chat/versions/f6b2eac4a2ee2f267b3f2081"
SDK_DATA = {"properties": {
    "dataType": "uri_file", "description": "Xbox support conversations", "isAnonymous": False, "isArchived": False,
    "dataUri": "azureml://datastores/workspaceblobstore/paths/LocalUpload/511daf94/training.jsonl",
    "properties": {}, "tags": {"foundryctl.owner": "xbox-chat", "foundryctl.examples": "65"}}}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda p: p.update(dataType="jsonl"), "$.properties.dataType", "'jsonl' is not one of"),
    (lambda p: p.update(dataUri=""), "$.properties.dataUri", "does not match"),
    (lambda p: p.pop("dataUri"), "$.properties", "'dataUri' is a required property"),
    (lambda p: p["tags"].update({"foundryctl.examples": 65}), "$.properties.tags.foundryctl.examples",
     "is not of type 'string'"),
    (lambda p: p.update(isArchived="no"), "$.properties.isArchived", "is not of type 'boolean'"),
    (lambda p: p.update(version="1"), "$.properties", "Additional properties are not allowed ('version'"),
    (lambda p: p.update(intellectualProperty={"publisher": "x"}), "$.properties.intellectualProperty", "not vendored"),
])
def test_data_version_bodies_follow_the_2023_04_01_preview_spec(mutate, json_path: str, message: str) -> None:
    """DataVersions_CreateOrUpdate (mfe.json 2023-04-01-preview): every training/validation file registered."""
    body = copy.deepcopy(SDK_DATA)
    assert check_call("PUT", ARM + DATA_PUT, "2023-04-01-preview", body) == []
    mutate(body["properties"])
    problems = check_call("PUT", ARM + DATA_PUT, "2023-04-01-preview", body)
    assert any("DataVersions_CreateOrUpdate (PUT" in p and f"at {json_path}: " in p and message in p
               for p in problems), problems


MODEL_PUT = WORKSPACE.replace("ft-hub", "xbox-support") + "/models/xbox-agent/versions/1"
SDK_MODEL = {"properties": {"flavors": {"mlflow": {"data": {}}}, "isAnonymous": False, "isArchived": True,
                            "jobName": "xbox-agent-6fc2bc7f", "modelType": "mlflow_model",
                            "modelUri": "azureml://locations/eastus2/workspaces/xbox-support/models/xbox-agent/versions/1",
                            "properties": {}, "tags": {}}}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda p: p["flavors"]["mlflow"].update(data={"python_version": 3}), "$.properties.flavors.mlflow.data.python_version",
     "is not of type 'string'"),
    (lambda p: p["flavors"].update(mlflow={"loader": "x"}), "$.properties.flavors.mlflow", "Additional properties"),
    (lambda p: p.update(isArchived="true"), "$.properties.isArchived", "is not of type 'boolean'"),
    (lambda p: p.update(provisioningState="Succeeded"), "$.properties.provisioningState", "read-only"),
    (lambda p: p.update(modelUri=7), "$.properties.modelUri", "is not of type 'string'"),
])
def test_model_version_bodies_follow_the_2023_08_01_preview_spec(mutate, json_path: str, message: str) -> None:
    """ModelVersions_CreateOrUpdate (mfe.json 2023-08-01-preview): the archive/restore of a registered model."""
    body = copy.deepcopy(SDK_MODEL)
    assert check_call("PUT", ARM + MODEL_PUT, "2023-08-01-preview", body) == []
    mutate(body["properties"])
    problems = check_call("PUT", ARM + MODEL_PUT, "2023-08-01-preview", body)
    assert any("ModelVersions_CreateOrUpdate (PUT" in p and f"at {json_path}: " in p and message in p
               for p in problems), problems


@pytest.mark.parametrize(("body", "json_path", "message"), [
    ({"keyType": "Tertiary"}, "$.keyType", "'Tertiary' is not one of ['Primary', 'Secondary']"),
    ({}, "$", "'keyType' is a required property"),
    ({"keyType": "Primary", "keyValue": 12}, "$.keyValue", "is not of type 'string'"),
    ({"keyType": "Primary", "regenerate": True}, "$", "Additional properties are not allowed"),
])
def test_serverless_regenerate_keys_bodies_follow_the_2024_01_01_preview_spec(body: dict, json_path: str,
                                                                              message: str) -> None:
    """ServerlessEndpoints_RegenerateKeys: `deployments regenerate-key`."""
    path = SERVERLESS_PUT + "/regenerateKeys"
    assert check_call("POST", ARM + path, "2024-01-01-preview", {"keyType": "Secondary"}) == []
    problems = check_call("POST", ARM + path, "2024-01-01-preview", body)
    assert any("ServerlessEndpoints_RegenerateKeys (POST" in p and f"at {json_path}: " in p and message in p
               for p in problems), problems


SDK_SERVERLESS_2024_10 = {"location": "eastus2", "sku": {"name": "Consumption"}, "tags": {},
                          "properties": {"authMode": "Key", "contentSafety": {"contentSafetyStatus": "Disabled"},
                                         "modelSettings": {"modelId": SDK_SERVERLESS["properties"]["modelSettings"]["modelId"]}}}


@pytest.mark.parametrize(("mutate", "json_path", "message"), [
    (lambda b: b["properties"].pop("authMode"), "$.properties", "'authMode' is a required property"),
    (lambda b: b["properties"].update(authMode="AAD"), "$.properties.authMode", "'AAD' is not one of ['Key']"),
    (lambda b: b["properties"].update(contentSafety={"contentSafetyStatus": "Off"}),
     "$.properties.contentSafety.contentSafetyStatus", "'Off' is not one of"),
    (lambda b: b["properties"].update(contentSafety={}), "$.properties.contentSafety",
     "'contentSafetyStatus' is a required property"),
    (lambda b: b["properties"].update(offer={"publisher": "x", "offerName": "y"}), "$.properties",
     "Additional properties are not allowed ('offer'"),  # 2024-01-01-preview's offer is gone in 2024-10-01
    (lambda b: b.pop("location"), "$", "'location' is a required property"),
])
def test_serverless_endpoint_bodies_follow_the_2024_10_01_spec(mutate, json_path: str, message: str) -> None:
    """ServerlessEndpoints_CreateOrUpdate (stable mfe.json 2024-10-01): the content-safety endpoint PUT."""
    body = copy.deepcopy(SDK_SERVERLESS_2024_10)
    assert check_call("PUT", ARM + SERVERLESS_PUT, "2024-10-01", body) == []
    mutate(body)
    problems = check_call("PUT", ARM + SERVERLESS_PUT, "2024-10-01", body)
    assert any("ServerlessEndpoints_CreateOrUpdate (PUT" in p and f"at {json_path}: " in p and message in p
               for p in problems), problems
