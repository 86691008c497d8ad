"""Contract tests of the azure backend's Deployment handler (serverless endpoints): every
request it sends (method, path, api-version, body), answered by the fake Azure; keys never in
what it returns; the model switch, content safety, a Failed endpoint, throttling, delete."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from azurefake import arm_error
from azurefake.families.endpoints import endpoint_id, keys_of, model_id, seed_endpoint
from azurefake.families.workspaces import seed_workspace
from azurefake.fixtures import LOCATION, RESOURCE_GROUP, SUBSCRIPTION, write_manifest

from foundryctl.backends.base import Progress, Target
from foundryctl.errors import BackendError

ENDPOINTS_API = "2024-01-01-preview"  # azure-ai-ml 1.35.2's serverless endpoint operations
RAW_API = "2024-10-01"  # the handler's generic-resource requests (contentSafety is in its schema)
WORKSPACES_API = "2024-10-01-preview"  # azure-ai-ml's workspaces

PROJECT = "xbox-support"
NAME = "xbox-bot"
RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
WS = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/{PROJECT}"
EP = f"{WS}/serverlessEndpoints/{NAME}"
OPS = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/{LOCATION}"

MANIFEST = """
- kind: Hub
  name: ft-hub
  location: eastus2
- kind: Project
  name: xbox-support
  hub: ft-hub
- kind: Deployment
  name: xbox-bot
  project: xbox-support
  model: {name: xbox-agent, version: 1}
  description: Xbox support bot
"""


# -- helpers ---------------------------------------------------------------------------------


def desired(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """Deployment.xbox-bot's desired attributes, as the planner computes them from a manifest."""
    from foundryctl.kinds.deployment import Deployment
    from foundryctl.manifest.loader import load_manifest

    directory = tmp_path / "manifest"
    directory.mkdir(exist_ok=True)
    manifest = load_manifest(write_manifest(directory, MANIFEST))
    attributes = Deployment.desired_attributes(manifest.resources["Deployment.xbox-bot"])
    for key, value in changes.items():
        attributes[key] = {**attributes[key], **value} if isinstance(value, dict) else value
    return attributes


def target(attributes: dict[str, Any], backend_id: str | None = None) -> Target:
    return Target("Deployment.xbox-bot", "Deployment", NAME, attributes, backend_id)


def requests_sent(fake: Any) -> list[tuple[str, str, str | None]]:
    return [(c.method, c.path, c.api_version) for c in fake.calls]


def collector() -> tuple[Progress, list[str]]:
    messages: list[str] = []
    return Progress(lambda message, *rest: messages.append(message)), messages


def op_path(fake: Any, kind: str, index: int = -1) -> str:
    """The path of the operation the last (or index-th) LRO answer pointed at."""
    ops = [c.path for c in fake.calls if f"/{kind}/" in c.path]
    return ops[index]


def guid(fake: Any) -> str:
    return fake.get(WS)["properties"]["workspaceId"]


@pytest.fixture
def project(fake_azure: Any) -> Any:
    seed_workspace(fake_azure, PROJECT)
    return fake_azure


@pytest.fixture
def handler(azure_backend: Any) -> Any:
    return azure_backend.handler("Deployment")


def job_models(monkeypatch: pytest.MonkeyPatch, backend: Any, model_of: Any) -> None:
    """The FineTuneJob handler's `model_of`, stubbed: the backend hands the Deployment handler a
    stand-in for that kind (its own module may not exist yet, and its HTTP is not under test)."""
    real = backend.handler

    class FineTuneJobStandIn:
        kind = "FineTuneJob"

    stand_in = FineTuneJobStandIn()
    stand_in.model_of = model_of  # type: ignore[attr-defined]
    monkeypatch.setattr(backend, "handler", lambda kind: stand_in if kind == "FineTuneJob" else real(kind))


def create_lro(fake: Any, status_op: str) -> list[tuple[str, str, str | None]]:
    """What creating (or switching) a serverless endpoint sends: the list that checks no other
    endpoint serves the model, then azure-ai-ml's PUT, two polls of the Azure-AsyncOperation
    (InProgress, then Succeeded) and the final GET."""
    return [("GET", f"{WS}/serverlessEndpoints", ENDPOINTS_API), ("PUT", EP, ENDPOINTS_API), ("GET", status_op, ENDPOINTS_API), ("GET", status_op, ENDPOINTS_API),
            ("GET", EP, ENDPOINTS_API)]


# -- create ------------------------------------------------------------------------------------


def test_create_puts_the_endpoint_with_the_project_model_and_polls_it(project: Any, handler: Any,
                                                                      tmp_path: Path) -> None:
    attributes = desired(tmp_path)
    progress, messages = collector()

    observed = handler.create(target(attributes), progress)

    status_op = op_path(project, "mfeOperationsStatus")
    assert status_op.startswith(f"{OPS}/mfeOperationsStatus/se:")
    assert requests_sent(project) == [
        ("GET", WS, WORKSPACES_API),  # the project's location and workspace GUID
        *create_lro(project, status_op),
        ("GET", EP, RAW_API),  # content safety: Enabled, as wanted: no raw PUT
    ]
    put = project.calls[2]
    expected_model = f"azureml://locations/eastus2/workspaces/{guid(project)}/models/xbox-agent/versions/1"
    assert put.body == {"location": LOCATION, "sku": {"name": "Consumption"},
                        "properties": {"modelSettings": {"modelId": expected_model}}}
    assert observed.id == EP
    assert observed.attributes == attributes  # the next plan is empty
    assert observed.outputs == {
        "id": EP, "endpoint": f"https://xbox-bot.{LOCATION}.models.ai.azure.com", "model_id": expected_model,
        "provisioning_state": "Succeeded", "content_safety": "Enabled"}
    assert messages == ["creating serverless endpoint xbox-bot serving xbox-agent:1"]
    stored = project.get(EP)["properties"]
    assert stored["authMode"] == "Key" and stored["provisioningState"] == "Succeeded"


def test_create_with_the_filter_off_sends_the_raw_put_of_content_safety(project: Any, handler: Any,
                                                                        tmp_path: Path) -> None:
    attributes = desired(tmp_path, content_filter={"enabled": False, "threshold": "high"})
    progress, messages = collector()

    observed = handler.create(target(attributes), progress)

    status_op, raw_op = [c.path for c in project.calls if "/mfeOperationsStatus/" in c.path][::2]
    assert requests_sent(project) == [
        ("GET", WS, WORKSPACES_API),
        *create_lro(project, status_op),
        ("GET", EP, RAW_API),
        ("PUT", EP, RAW_API), ("GET", raw_op, RAW_API), ("GET", raw_op, RAW_API), ("GET", EP, RAW_API),
    ]
    raw_put = project.requests("PUT")[1]
    model = f"azureml://locations/eastus2/workspaces/{guid(project)}/models/xbox-agent/versions/1"
    assert raw_put.body == {
        "location": LOCATION, "tags": {}, "sku": {"name": "Consumption"},
        "properties": {"modelSettings": {"modelId": model}, "authMode": "Key",
                       "contentSafety": {"contentSafetyStatus": "Disabled"}}}
    assert project.get(EP)["properties"]["contentSafety"] == {"contentSafetyStatus": "Disabled"}
    assert observed.attributes == attributes
    assert observed.outputs["content_safety"] == "Disabled"
    assert "content filter OFF: Azure AI Content Safety disabled" in messages

    # and a read (a fresh refresh) reports it off, with the local-only settings kept
    project.calls.clear()
    again = handler.read(target(attributes, EP))
    assert requests_sent(project) == [("GET", EP, RAW_API)]
    assert again.attributes["content_filter"] == attributes["content_filter"]
    assert again.attributes["content_filter"]["enabled"] is False


def test_create_adopts_an_endpoint_that_exists(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    observed = handler.create(target(desired(tmp_path)), Progress())
    put = project.requests("PUT")[0]
    assert put.path == EP and put.api_version == ENDPOINTS_API  # Azure's PUT is idempotent: 200, polled
    assert observed.attributes == desired(tmp_path)


def test_create_of_a_job_model_asks_the_finetune_job_handler(project: Any, handler: Any, azure_backend: Any,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, str | None]] = []

    def model_of(project_name: str, job: str, run: str | None) -> dict[str, Any] | None:
        asked.append((project_name, job, run))
        return {"id": f"{WS}/models/xbox-agent-ft/versions/3", "name": "xbox-agent-ft", "version": "3"}

    job_models(monkeypatch, azure_backend, model_of)
    attributes = desired(tmp_path, model={"job": "xbox-agent", "name": None, "version": None, "run": "1a2b3c4d"})

    observed = handler.create(target(attributes), Progress())

    expected_model = f"azureml://locations/eastus2/workspaces/{guid(project)}/models/xbox-agent-ft/versions/3"
    assert project.requests("PUT")[0].body["properties"]["modelSettings"]["modelId"] == expected_model
    assert observed.attributes == attributes
    assert asked == [(PROJECT, "xbox-agent", "1a2b3c4d")] * 2  # the model, then the check that none serves it

    # a refresh compares what Azure serves with the job's model
    assert handler.read(target(attributes, EP)).attributes == attributes
    assert asked[-1] == (PROJECT, "xbox-agent", "1a2b3c4d")


def test_a_job_without_a_model_yet_is_model_not_ready(project: Any, handler: Any, azure_backend: Any,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_models(monkeypatch, azure_backend, lambda *args: None)
    attributes = desired(tmp_path, model={"job": "xbox-agent", "name": None, "version": None, "run": "1a2b3c4d"})
    with pytest.raises(BackendError) as raised:
        handler.create(target(attributes), Progress())
    assert raised.value.code == "ModelNotReady"
    assert project.writes() == []


def test_create_in_a_missing_project_names_it(fake_azure: Any, handler: Any, tmp_path: Path) -> None:
    with pytest.raises(BackendError) as raised:
        handler.create(target(desired(tmp_path)), Progress())
    assert raised.value.code == "ProjectNotFound" and PROJECT in raised.value.message
    assert requests_sent(fake_azure) == [("GET", WS, WORKSPACES_API)]


def test_a_failed_provisioning_is_an_error_and_then_drift(project: Any, handler: Any, tmp_path: Path) -> None:
    project.state.setdefault("serverless", {"operations": {}, "keys": {}})["outcome"] = "Failed"
    with pytest.raises(BackendError) as raised:
        handler.create(target(desired(tmp_path)), Progress())
    assert "could not be provisioned" in raised.value.message
    observed = handler.read(target(desired(tmp_path), EP))
    assert observed.attributes["status"] == "Failed"
    assert observed.outputs["provisioning_state"] == "Failed"


# -- read ----------------------------------------------------------------------------------------


def test_read_of_a_missing_endpoint_is_none(project: Any, handler: Any, tmp_path: Path) -> None:
    assert handler.read(target(desired(tmp_path), EP)) is None
    assert requests_sent(project) == [("GET", EP, RAW_API)]
    assert handler.import_(EP, NAME) is None


def test_read_of_a_failed_endpoint_shows_status_failed(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1),
                  provisioning_state="Failed")
    attributes = desired(tmp_path)
    observed = handler.read(target(attributes, EP))
    assert observed.attributes == {**attributes, "status": "Failed"}  # the only drift


def test_read_maps_another_served_model_back_to_name_and_version(project: Any, handler: Any,
                                                                  tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 2))
    observed = handler.read(target(desired(tmp_path), EP))
    assert observed.attributes["model"] == {"job": None, "name": "xbox-agent", "version": 2}


def test_import_reads_an_endpoint_by_id_with_defaults_for_local_settings(project: Any, handler: Any,
                                                                         tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    observed = handler.import_(EP, NAME)
    assert observed.attributes == {**desired(tmp_path), "description": ""}
    with pytest.raises(BackendError) as raised:
        handler.import_(f"{WS}/onlineEndpoints/{NAME}", NAME)
    assert raised.value.code == "InvalidId"


# -- keys ----------------------------------------------------------------------------------------


def test_keys_come_from_list_keys_and_never_appear_in_what_the_handler_returns(
        project: Any, handler: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    progress, messages = collector()
    attributes = desired(tmp_path, content_filter={"enabled": False})
    created = handler.create(target(attributes), progress)
    secret = keys_of(project, EP)
    project.calls.clear()

    with caplog.at_level(logging.DEBUG):
        primary, secondary = handler.keys(target(attributes, EP))

    assert (primary, secondary) == (secret["primaryKey"], secret["secondaryKey"])
    assert requests_sent(project) == [("POST", f"{EP}/listKeys", ENDPOINTS_API)]
    read = handler.read(target(attributes, EP))
    imported = handler.import_(EP, NAME)
    shown = " ".join(repr(x) for x in (created, read, imported, messages, handler.__dict__, caplog.text))
    for key in (primary, secondary):
        assert key not in shown


def test_regenerate_key_replaces_one_key(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    before = dict(keys_of(project, EP))

    assert handler.regenerate_key(target(desired(tmp_path), EP), "key2") is None

    assert requests_sent(project) == [("POST", f"{EP}/regenerateKeys", ENDPOINTS_API)]
    assert project.calls[0].body == {"keyType": "Secondary"}  # the spec's body: no key value sent
    after = keys_of(project, EP)
    assert after["primaryKey"] == before["primaryKey"] and after["secondaryKey"] != before["secondaryKey"]
    with pytest.raises(BackendError):
        handler.regenerate_key(target(desired(tmp_path), EP), "key3")


def test_keys_of_a_missing_endpoint_is_an_error_without_secrets(project: Any, handler: Any,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(BackendError) as raised:
        handler.keys(target(desired(tmp_path), EP))
    assert raised.value.code == "ResourceNotFound" and NAME in raised.value.message


# -- update --------------------------------------------------------------------------------------


def test_a_model_change_puts_the_new_model_in_place_and_keeps_the_filter_off(
        project: Any, handler: Any, tmp_path: Path) -> None:
    old = model_id(project, PROJECT, "xbox-agent", 1)
    seed_endpoint(project, PROJECT, NAME, model=old, content_safety="Disabled")
    before = desired(tmp_path, content_filter={"enabled": False})
    after = copy.deepcopy(before)
    after["model"]["version"] = 2
    progress, messages = collector()

    observed = handler.update(target(after, EP), before, progress)

    new = model_id(project, PROJECT, "xbox-agent", 2)
    status_op, raw_op = [c.path for c in project.calls if "/mfeOperationsStatus/" in c.path][::2]
    assert requests_sent(project) == [
        ("GET", EP, RAW_API),
        ("GET", WS, WORKSPACES_API),
        *create_lro(project, status_op),  # the same endpoint, no delete: Azure switches in place
        ("GET", EP, RAW_API),  # that PUT reset content safety to Azure's default...
        ("PUT", EP, RAW_API), ("GET", raw_op, RAW_API), ("GET", raw_op, RAW_API), ("GET", EP, RAW_API),  # ...off again
    ]
    puts = project.requests("PUT")
    assert puts[0].body["properties"] == {"modelSettings": {"modelId": new}}
    assert puts[1].body["properties"]["contentSafety"] == {"contentSafetyStatus": "Disabled"}
    assert puts[1].body["properties"]["modelSettings"] == {"modelId": new}
    assert project.requests("DELETE") == []
    assert observed.attributes == after
    assert messages[0] == "switching xbox-bot from xbox-agent:1 to xbox-agent:2 in place"


def test_a_filter_change_alone_is_the_raw_put_only(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    before = desired(tmp_path)
    after = desired(tmp_path, content_filter={"enabled": False})

    observed = handler.update(target(after, EP), before, Progress())

    raw_op = op_path(project, "mfeOperationsStatus")
    assert requests_sent(project) == [
        ("GET", EP, RAW_API), ("GET", WS, WORKSPACES_API),
        ("PUT", EP, RAW_API), ("GET", raw_op, RAW_API), ("GET", raw_op, RAW_API), ("GET", EP, RAW_API)]
    assert observed.attributes == after


def test_local_only_changes_send_no_write(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    before = desired(tmp_path)
    after = desired(tmp_path, description="new words", content_filter={"threshold": "low"},
                    serving={"max_batch_size": 4})
    observed = handler.update(target(after, EP), before, Progress())
    assert project.writes() == []
    assert observed.attributes == after


def test_a_failed_endpoint_is_deleted_and_created_again(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1),
                  provisioning_state="Failed")
    attributes = desired(tmp_path)
    progress, messages = collector()

    observed = handler.update(target(attributes, EP), {**attributes, "status": "Failed"}, progress)

    delete_op = op_path(project, "mfeOperationResults")
    status_op = op_path(project, "mfeOperationsStatus")
    assert requests_sent(project) == [
        ("GET", EP, RAW_API),
        ("DELETE", EP, ENDPOINTS_API), ("GET", delete_op, ENDPOINTS_API), ("GET", delete_op, ENDPOINTS_API),
        ("GET", WS, WORKSPACES_API), *create_lro(project, status_op), ("GET", EP, RAW_API)]
    assert observed.attributes == attributes
    assert "deleting and recreating it; the endpoint is down meanwhile" in messages[0]


def test_an_endpoint_azure_is_still_changing_is_not_put_again(project: Any, handler: Any,
                                                               tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1),
                  provisioning_state="Updating")
    attributes = desired(tmp_path)
    with pytest.raises(BackendError) as raised:
        handler.update(target(attributes, EP), {**attributes, "status": "Updating"}, Progress())
    assert raised.value.code == "EndpointBusy" and "updating" in raised.value.message
    assert project.writes() == []


# -- delete --------------------------------------------------------------------------------------


def test_delete_waits_for_the_operation_and_a_second_delete_is_done(project: Any, handler: Any,
                                                                    tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))

    handler.delete(target(desired(tmp_path), EP), Progress())

    delete_op = op_path(project, "mfeOperationResults")
    assert delete_op.startswith(f"{OPS}/mfeOperationResults/se:")
    assert requests_sent(project) == [("DELETE", EP, ENDPOINTS_API), ("GET", delete_op, ENDPOINTS_API),
                                      ("GET", delete_op, ENDPOINTS_API)]
    assert project.get(EP) is None

    project.calls.clear()
    handler.delete(target(desired(tmp_path), EP), Progress())  # 204: gone already
    assert requests_sent(project) == [("DELETE", EP, ENDPOINTS_API)]


def test_delete_in_a_deleted_project_is_done(fake_azure: Any, handler: Any, tmp_path: Path) -> None:
    fake_azure.inject("DELETE", r"/serverlessEndpoints/", arm_error(404, "ParentResourceNotFound", "gone"))
    handler.delete(target(desired(tmp_path), EP), Progress())


def test_a_delete_azure_refuses_is_an_error(project: Any, handler: Any, tmp_path: Path) -> None:
    project.inject("DELETE", r"/serverlessEndpoints/", arm_error(409, "Conflict", "the endpoint is busy"))
    with pytest.raises(BackendError) as raised:
        handler.delete(target(desired(tmp_path), EP), Progress())
    assert raised.value.code == "Conflict" and "deleting serverless endpoint xbox-bot" in raised.value.message


# -- throttling ------------------------------------------------------------------------------


def test_429_retry_after_is_waited_out(project: Any, handler: Any, tmp_path: Path) -> None:
    project.inject("PUT", r"/serverlessEndpoints/", arm_error(429, "TooManyRequests", "slow down",
                                                             {"Retry-After": "1"}))
    project.inject("GET", r"/serverlessEndpoints/", arm_error(429, "TooManyRequests", "slow down",
                                                             {"Retry-After": "1"}))
    started = time.monotonic()

    observed = handler.create(target(desired(tmp_path)), Progress())

    assert time.monotonic() - started >= 2  # both Retry-After honoured (the first retry has no backoff)
    status_op = op_path(project, "mfeOperationsStatus")
    assert requests_sent(project) == [
        ("GET", WS, WORKSPACES_API), ("GET", f"{WS}/serverlessEndpoints", ENDPOINTS_API),
        ("PUT", EP, ENDPOINTS_API), ("PUT", EP, ENDPOINTS_API),  # 429, then the same PUT again
        ("GET", status_op, ENDPOINTS_API), ("GET", status_op, ENDPOINTS_API),
        ("GET", EP, ENDPOINTS_API), ("GET", EP, ENDPOINTS_API),  # 429, then again
        ("GET", EP, RAW_API)]
    puts = project.requests("PUT")
    assert puts[0].body == puts[1].body
    assert observed.attributes == desired(tmp_path)


# -- endpoints_serving -----------------------------------------------------------------------


def test_endpoints_serving_lists_the_endpoints_of_a_model_version(project: Any, azure_backend: Any) -> None:
    from foundryctl.backends.azure.handlers.deployment import endpoints_serving

    seed_endpoint(project, PROJECT, NAME, model=model_id(project, PROJECT, "xbox-agent", 1))
    seed_endpoint(project, PROJECT, "xbox-bot-2", model=model_id(project, PROJECT, "xbox-agent", 1))
    seed_endpoint(project, PROJECT, "xbox-old", model=model_id(project, PROJECT, "xbox-agent", 2))
    seed_endpoint(project, PROJECT, "phi", model="azureml://registries/azureml/models/Phi-3-mini-4k-instruct")

    serving = endpoints_serving(azure_backend, PROJECT, "xbox-agent", "1")

    assert sorted(serving) == sorted([EP, endpoint_id(project, PROJECT, "xbox-bot-2")])
    assert requests_sent(project) == [("GET", f"{WS}/serverlessEndpoints", ENDPOINTS_API)]
    assert endpoints_serving(azure_backend, PROJECT, "xbox-agent", "3") == []
    assert endpoints_serving(azure_backend, "no-such-project", "xbox-agent", "1") == []


# -- one serverless deployment per custom model ----------------------------------------------


def test_azure_refuses_a_second_endpoint_of_one_custom_model(project: Any, handler: Any, tmp_path: Path) -> None:
    seed_endpoint(project, PROJECT, "other-bot", model=model_id(project, PROJECT, "xbox-agent", 1))
    writes = len(project.writes())
    with pytest.raises(BackendError) as error:
        handler.create(target(desired(tmp_path)), Progress())
    # Checked again right before the PUT, so no endpoint is sent (nor left Failed on Azure).
    assert error.value.code == "ModelAlreadyDeployed"
    assert "already served by other-bot; Azure permits one serverless deployment per custom model" \
        in error.value.message
    assert len(project.writes()) == writes
    # The fake refuses it as Azure does when the check is bypassed.
    with pytest.raises(BackendError) as refused:
        handler._put_endpoint(PROJECT, "xbox-bot", model_id(project, PROJECT, "xbox-agent", 1), "eastus2")
    assert "Only one deployment is permitted for a custom model" in refused.value.message
    assert "other-bot" in refused.value.message
    assert handler.conflicts(target(desired(tmp_path))) == [endpoint_id(project, PROJECT, "other-bot")]
    # Another version of the model is another custom model.
    assert handler.conflicts(target(desired(tmp_path, model={"version": 2}))) == []


def test_plan_refuses_a_deployment_of_a_model_another_endpoint_serves(project: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from foundryctl.cli import cli

    seed_endpoint(project, PROJECT, "other-bot", model=model_id(project, PROJECT, "xbox-agent", 1))
    path = write_manifest(tmp_path, MANIFEST)
    monkeypatch.chdir(tmp_path)
    env = {"NO_COLOR": "1", "COLUMNS": "200"}
    for address, name in (("Hub.ft-hub", "ft-hub"), ("Project.xbox-support", PROJECT)):
        imported = CliRunner().invoke(cli, ["import", address, f"{RG}/providers/Microsoft.MachineLearningServices/"
                                            f"workspaces/{name}", "-f", str(path)], env=env, catch_exceptions=False)
        assert imported.exit_code == 0, imported.output
    writes = len(project.writes())
    result = CliRunner().invoke(cli, ["plan", "-f", str(path)], env=env, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert "foundry.yaml:19:12: error: Deployment.xbox-bot:" in result.output  # at its model
    assert (f"Deployment.xbox-bot conflicts with {endpoint_id(project, PROJECT, 'other-bot')} (not managed by "
            "this state): Azure permits one serverless deployment per custom model") in result.output
    assert len(project.writes()) == writes, "plan must only read"
    # Once the other endpoint serves something else, the plan goes through.
    project.get(endpoint_id(project, PROJECT, "other-bot"))["properties"]["modelSettings"]["modelId"] = \
        model_id(project, PROJECT, "xbox-agent", 2)
    again = CliRunner().invoke(cli, ["plan", "-f", str(path)], env={"NO_COLOR": "1", "COLUMNS": "200"},
                               catch_exceptions=False)
    assert again.exit_code == 0, again.output
