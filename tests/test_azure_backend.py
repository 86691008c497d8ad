"""The azure backend end to end over the HTTP fakes: the quickstart's plan -> apply ->
empty plan -> destroy cycle through the real CLI (in-process, so `responses` answers the
SDKs' requests), parallel refresh, throttling, and the credential chain's error."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from azurefake import arm_error
from azurefake.families.endpoints import endpoint_id, keys_of, teach
from azurefake.families.workspaces import instant_sdk_waits
from azurefake.fixtures import PRINCIPAL, RESOURCE_GROUP, SUBSCRIPTION, TOKEN
from click.testing import CliRunner
from conftest import REPO


def quickstart(tmp_path: Path) -> Path:
    """The project's quickstart and its data, with a variable file for the fake subscription."""
    shutil.copytree(REPO / "manifests", tmp_path / "manifests")
    (tmp_path / "fake.yaml").write_text(
        (tmp_path / "manifests" / "envs" / "azure.yaml").read_text().replace(
            "  location: eastus2\n", "  location: eastus2\n  poll_interval: 0.01\n"))
    return tmp_path


class Cli:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = root
        monkeypatch.chdir(root)
        self.env = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "FOUNDRYCTL_RESOURCE_GROUP": RESOURCE_GROUP,
                    "FOUNDRYCTL_PRINCIPAL": PRINCIPAL, "NO_COLOR": "1", "COLUMNS": "200"}
        self.outputs: list[str] = []

    def __call__(self, *command: str) -> Any:
        from foundryctl.cli import cli

        result = CliRunner().invoke(cli, [*command, "-f", "manifests/quickstart.yaml", "--var-file", "fake.yaml"],
                                    env=self.env, catch_exceptions=False)
        self.outputs.append(result.output)
        return result


def test_quickstart_plan_apply_empty_plan_destroy(fake_azure, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    instant_sdk_waits(monkeypatch, fake_azure)  # azure-ai-ml's fixed 5-30 s poll intervals
    run = Cli(quickstart(tmp_path), monkeypatch)

    teach(fake_azure, tmp_path / "manifests" / "data" / "xbox_support.jsonl")  # its Evaluation scores the endpoint
    plan = run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert "Plan: 8 to add, 0 to change, 0 to destroy." in plan.output
    assert not fake_azure.writes(), "plan must only read"

    apply = run("apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    assert "Apply complete! Resources: 8 added, 0 changed, 0 destroyed." in apply.output

    again = run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.output

    # The evaluation scored the serverless endpoint as a client calls it, with its key as a bearer
    # token read from Azure at run time; its results are kept beside the manifest.
    calls = fake_azure.requests("POST", r"/chat/completions$")
    assert calls and all(c.url.startswith("https://xbox-agent.eastus2.models.ai.azure.com/") for c in calls)
    evaluation = run("evals", "show", "xbox-heldout", "--json")
    assert evaluation.exit_code == 0, evaluation.output
    scored = json.loads(evaluation.output)
    assert scored["examples"] == len(calls) and scored["model"] == "Deployment.xbox-agent"
    assert set(scored["values"]) == {"rouge_l", "token_f1", "ends_with_eos", "mean_length_tokens"}
    assert scored["values"]["ends_with_eos"] == 1.0 and "passed" in scored["gate"]

    # The endpoint's keys come from Azure on request (the only command that prints them).
    endpoint_keys = dict(keys_of(fake_azure, endpoint_id(fake_azure, "xbox-support", "xbox-agent")))
    shown = run("deployments", "keys", "xbox-agent", "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {"endpoint": "https://xbox-agent.eastus2.models.ai.azure.com",
                                        "key1": endpoint_keys["primaryKey"], "key2": endpoint_keys["secondaryKey"]}
    run.outputs.pop()  # printing them was the point
    rotated = run("deployments", "regenerate-key", "xbox-agent", "--key", "key2")
    assert rotated.exit_code == 0, rotated.output
    new_keys = keys_of(fake_azure, endpoint_id(fake_azure, "xbox-support", "xbox-agent"))
    assert new_keys["primaryKey"] == endpoint_keys["primaryKey"]
    assert new_keys["secondaryKey"] != endpoint_keys["secondaryKey"]
    endpoint_keys["rotated"] = new_keys["secondaryKey"]
    listing = run("deployments", "list")
    assert re.search(r"xbox-agent\s+Running\s+https://xbox-agent\.eastus2\.models\.ai\.azure\.com\s+xbox-agent:1",
                     listing.output), listing.output
    show = run("deployments", "show", "xbox-agent")
    assert "provisioning_state = Succeeded" in show.output, show.output
    logs = run("deployments", "logs", "xbox-agent")
    assert logs.exit_code == 1 and "is on Azure" in logs.output
    job = run("jobs", "show", "xbox-agent")
    assert "Completed" in job.output and "model = xbox-agent:1" in job.output, job.output
    assert re.search(r"xbox-agent\s+Completed", run("jobs", "list").output)
    job_logs = run("jobs", "logs", "xbox-agent")
    assert job_logs.exit_code == 1 and "is on Azure" in job_logs.output
    # Training metrics come from the workspace's MLflow tracking server (the fake's trainer
    # logs them on a child run of the job), one row per step, in `jobs metrics`' fields.
    metrics = run("jobs", "metrics", "xbox-agent", "--format", "json")
    assert metrics.exit_code == 0, metrics.output
    assert json.loads(metrics.output) == [
        {"type": "step", "step": 10, "train_loss": 1.9, "learning_rate": 2e-4},
        {"type": "step", "step": 20, "train_loss": 1.4, "learning_rate": 1e-4},
        {"type": "step", "step": 30, "train_loss": 1.1, "learning_rate": 0.0, "valid_loss": 1.25}]
    table = run("jobs", "metrics", "xbox-agent")
    assert re.search(r"step\s+30\s+1\.1\d*\s+1\.25", table.output), table.output

    # The model an endpoint serves cannot go alone (Azure refuses; the plan refuses first).
    alone = run("destroy", "--target", "FineTuneJob.xbox-agent", "--auto-approve")
    assert alone.exit_code == 1, alone.output
    assert "its model is served by Deployment.xbox-agent" in alone.output

    writes_before_destroy = len(fake_azure.writes())
    destroy = run("destroy", "--auto-approve")
    assert destroy.exit_code == 0, destroy.output
    assert "8 destroyed" in destroy.output
    removals = [c for c in fake_azure.writes()[writes_before_destroy:]
                if c.method == "DELETE" or (isinstance(c.body, dict) and c.body.get("properties", {}).get("isArchived"))]
    paths = [c.path.lower() for c in removals]
    endpoint = next(i for i, p in enumerate(paths) if "/serverlessendpoints/" in p)
    model = next(i for i, p in enumerate(paths) if "/models/" in p)  # archived: Azure keeps model versions
    assert endpoint < model, "Azure requires the endpoint to go before its model"
    hub = next(i for i, p in enumerate(paths) if p.endswith("/workspaces/ft-hub"))
    project = next(i for i, p in enumerate(paths) if p.endswith("/workspaces/xbox-support"))
    assert project < hub

    final = run("plan", "--detailed-exitcode")
    assert final.exit_code == 2 and "8 to add" in final.output  # everything is gone again
    # Azure soft-deleted the hub and project (purge_on_delete is off): the plan knows it from
    # the state's history and names the choices before an apply would be refused.
    for kind, name in (("hub", "ft-hub"), ("project", "xbox-support")):
        assert f"foundryctl deleted {kind} {name} at" in final.output, final.output
    assert "set on_soft_deleted: purge (its data is lost) or recover, or pick a new name" in final.output

    # Keys and tokens never reach output, state or plans.
    secrets = [TOKEN, *endpoint_keys.values()]
    state_bytes = b"".join(p.read_bytes() for p in (tmp_path / ".foundryctl").rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in "".join(run.outputs)
        assert secret.encode() not in state_bytes


def test_a_deployment_of_the_manifest_judges_an_evaluation_with_its_key_from_azure(
        fake_azure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLM judge named by Deployment: its endpoint and key are read from Azure when the
    evaluation runs (the key is never in the manifest, the plan, state or the results)."""
    from azurefake import route_openai_through_fake
    from azurefake.families import endpoints

    instant_sdk_waits(monkeypatch, fake_azure)
    route_openai_through_fake(monkeypatch)  # the judge speaks through the openai client
    root = quickstart(tmp_path)
    manifest = root / "manifests" / "quickstart.yaml"
    manifest.write_text(manifest.read_text().replace(
        "    metrics: [rouge_l, token_f1, ends_with_eos, mean_length_tokens]\n",
        "    metrics:\n      - rouge_l\n      - ends_with_eos\n      - mean_length_tokens\n      - name: judge\n        judge:\n          deployment: xbox-agent\n"
        "          prompt: 'Answer: {prediction}. Expected: {reference}. Grade 1-5.'\n"))
    run = Cli(root, monkeypatch)
    teach(fake_azure, root / "manifests" / "data" / "xbox_support.jsonl")
    monkeypatch.setattr(endpoints, "DEFAULT_ANSWER", "4")  # what the judge replies to a grading prompt

    apply = run("apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    graded = [c for c in fake_azure.requests("POST", r"/chat/completions$")
              if "Expected:" in json.dumps(c.body)]
    key = keys_of(fake_azure, endpoint_id(fake_azure, "xbox-support", "xbox-agent"))["primaryKey"]
    assert graded and all(c.headers["Authorization"] == f"Bearer {key}" for c in graded)
    assert all(c.url.startswith("https://xbox-agent.eastus2.models.ai.azure.com/") for c in graded)
    scored = json.loads(run("evals", "show", "xbox-heldout", "--json").output)
    assert scored["values"]["judge"] == 4.0 and len(graded) == scored["examples"]
    state_bytes = b"".join(p.read_bytes() for p in (root / ".foundryctl").rglob("*") if p.is_file())
    assert key.encode() not in state_bytes and key not in "".join(run.outputs)


def test_every_request_carries_the_cli_login(fake_azure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Cli(quickstart(tmp_path), monkeypatch)
    assert run("plan").exit_code == 0
    arm = [c for c in fake_azure.calls if "management.azure.com" in c.url]
    assert arm and all(c.headers.get("Authorization") == f"Bearer {TOKEN}" for c in arm)


def test_without_any_credential_plan_says_how_to_log_in(fake_azure, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no az, pwsh or azd: every link of the chain fails
    run = Cli(quickstart(tmp_path), monkeypatch)
    result = run("plan")
    assert result.exit_code == 1
    assert "CredentialUnavailable" in result.output
    assert "az login" in result.output and "managed identity" in result.output
    assert "Traceback" not in result.output


def _role_assignments(count: int) -> str:
    return "".join(f"""
  - kind: RoleAssignment
    name: reader-{i}
    principal: {PRINCIPAL[:-4]}{i:04d}
    role: Reader
    scope: resource_group
""" for i in range(count))


def test_refresh_reads_in_parallel_and_waits_out_throttling(fake_azure, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """300 resources, each read answered after 50 ms: one at a time that is 15 s; the
    backend's parallel refresh takes a fraction, and a 429 with Retry-After is retried."""
    from foundryctl import Stack

    count, delay = 300, 0.05
    in_flight, peak, lock = [0], [0], threading.Lock()
    original = fake_azure.mock.registered()
    for registered in original:
        if registered.method == "GET" and "roleAssignments" in str(getattr(registered, "url", "")):
            callback = registered.callback

            def slow(request: Any, callback: Any = callback) -> Any:
                with lock:
                    in_flight[0] += 1
                    peak[0] = max(peak[0], in_flight[0])
                time.sleep(delay)
                try:
                    return callback(request)
                finally:
                    with lock:
                        in_flight[0] -= 1

            registered.callback = slow
    fake_azure.inject("GET", r"/roleAssignments/", arm_error(429, "TooManyRequests", "throttled",
                                                              {"Retry-After": "1"}), times=3)
    path = tmp_path / "many.yaml"
    path.write_text(f"""version: 1
backend:
  type: azure
  subscription_id: {SUBSCRIPTION}
  resource_group: {RESOURCE_GROUP}
  location: eastus2
resources:{_role_assignments(count)}""")
    with Stack.load(path) as stack:
        started = time.monotonic()
        plan = stack.plan()
        elapsed = time.monotonic() - started
    assert len([c for c in plan.changes if c.action.value == "create"]) == count
    reads = fake_azure.requests("GET", r"/roleAssignments/")
    assert len(reads) == count + 3  # the three throttled reads were retried
    assert peak[0] >= 8, f"at most {peak[0]} reads in flight"
    assert elapsed < count * delay / 4, f"refresh took {elapsed:.1f}s"


def test_responses_sees_the_sdks_own_http_calls(fake_azure, azure_backend) -> None:
    """The premise of every contract test: the SDK methods themselves send through
    azure-core's requests transport, so the fake sees (and answers) their real requests."""
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
    from azurefake.families.endpoints import model_id, seed_endpoint
    from azurefake.families.providers import seed_provider
    from azurefake.families.workspaces import seed_workspace

    clients = azure_backend.clients
    seed_provider(fake_azure, "Microsoft.Network", "NotRegistered")
    provider = clients.resources.providers.register("Microsoft.Network")
    assert provider.namespace == "Microsoft.Network"
    register = fake_azure.calls[-1]
    assert (register.method, register.path, register.api_version) == (
        "POST", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Network/register", "2025-04-01")

    scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
    role = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/64702f94-c441-49e6-a78b-ef80e0188fee"
    name = "3f2c1a0e-8d7b-5c6a-9e4f-1b2a3c4d5e6f"
    created = clients.authorization.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
        role_definition_id=role, principal_id=PRINCIPAL, principal_type="User"))
    assert created.principal_id == PRINCIPAL
    put = fake_azure.calls[-1]
    assert (put.method, put.path, put.api_version) == (
        "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}", "2022-04-01")
    assert put.body == {"properties": {"roleDefinitionId": role, "principalId": PRINCIPAL, "principalType": "User"}}

    seed_workspace(fake_azure, "xbox-support")
    seed_endpoint(fake_azure, "xbox-support", "xbox-agent", model=model_id(fake_azure, "xbox-support", "xbox-agent", 1))
    endpoint = clients.ml("xbox-support").serverless_endpoints.get("xbox-agent")
    assert endpoint.model_id == model_id(fake_azure, "xbox-support", "xbox-agent", 1)
    get = fake_azure.calls[-1]
    assert get.method == "GET" and get.path == (
        f"{scope}/providers/Microsoft.MachineLearningServices/workspaces/xbox-support/serverlessEndpoints/xbox-agent")
    assert get.api_version == "2024-01-01-preview"
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in fake_azure.calls)


def test_one_sign_in_serves_every_client_and_thread_and_the_tenant_is_asked_for(
        fake_azure, az_login: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's Azure CLI link starts a process per token request: the backend keeps the
    token for all its SDK clients and refresh threads, and passes `tenant_id` on."""
    from azurefake.fixtures import CLI_TOKEN, TENANT

    calls = tmp_path / "az-calls"
    az_login.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat <<'EOF'\n{CLI_TOKEN}\nEOF\n")
    root = quickstart(tmp_path)
    (root / "fake.yaml").write_text((root / "fake.yaml").read_text().replace(
        "  location: eastus2\n", f"  location: eastus2\n  tenant_id: {TENANT}\n"))
    run = Cli(root, monkeypatch)
    result = run("plan")
    assert result.exit_code == 0, result.output
    invocations = calls.read_text().splitlines()
    # One token per audience: ARM's, and Microsoft Graph's for the role assignment's principal
    # type (a token is only good for the audience it was asked for).
    audiences = [next((a for a in i.split() if a.startswith("https://")), "") for i in invocations]
    assert sorted(audiences) == sorted(set(audiences)), invocations
    assert {a.split("/.default")[0].rstrip("/") for a in audiences} <= {
        "https://management.azure.com", "https://graph.microsoft.com"}, invocations
    assert all("account get-access-token" in i and f"--tenant {TENANT}" in i for i in invocations)
    assert len({c.path for c in fake_azure.calls}) >= 4  # several clients and reads, one token


def test_a_fresh_subscription_reads_as_empty_not_as_an_error(fake_azure, tmp_path: Path) -> None:
    """Before Microsoft.MachineLearningServices is registered, ARM answers reads under it with
    409 MissingSubscriptionRegistration. azure-mgmt-core then tries to register the namespace
    itself; where the identity may not (403, as here), the first plan still shows creates."""
    from azurefake.fixtures import write_manifest

    from foundryctl import Stack

    fake_azure.inject("GET", r"/workspaces/", arm_error(
        409, "MissingSubscriptionRegistration", "The subscription is not registered to use namespace "
        "'Microsoft.MachineLearningServices'."), times=2)
    fake_azure.inject("POST", r"/providers/Microsoft\.MachineLearningServices/register$", arm_error(
        403, "AuthorizationFailed", "The client does not have authorization to perform action "
        "'Microsoft.MachineLearningServices/register/action'."), times=2)
    path = write_manifest(tmp_path, """
        - {kind: Hub, name: ft-hub, location: eastus2}
        - {kind: Project, name: xbox-support, hub: ft-hub}
        """)
    with Stack.load(path) as stack:
        plan = stack.plan()
    assert plan.summary == (2, 0, 0)
    assert len(fake_azure.requests("GET", r"/workspaces/")) == 2
    assert len(fake_azure.requests("POST", r"/register$")) == 2  # the SDK's own attempts


def test_missing_registration_on_a_write_says_what_to_declare() -> None:
    from azure.core.exceptions import HttpResponseError

    from foundryctl.backends.azure.errors import backend_error

    class Response:
        status_code = 409
        reason = "Conflict"
        headers: ClassVar[dict] = {}

        def text(self) -> str:
            return ('{"error": {"code": "MissingSubscriptionRegistration", "message": "The subscription '
                    'is not registered to use namespace \'Microsoft.Storage\'."}}')

    error = backend_error(HttpResponseError(response=Response()), "creating hub ft-hub")
    assert error.code == "MissingSubscriptionRegistration"
    assert "Microsoft.Storage" in error.message and "kind: ProviderRegistration" in (error.hint or "")
