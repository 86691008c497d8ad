"""A FineTuneJob in a FoundryProject on the local backend: validate keeps Azure OpenAI
fine-tuning's rules (model, method, training tier per account region, preference-format data)
at the file and line, the plan shows the tier and its price relative to Standard, and apply
trains the catalog's local substitute for the model for real, keeping Azure's naming of the
result and refusing what Azure refuses at create time."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import PRINCIPAL, Project, require

from foundryctl.training.jobdir import pid_alive

JOB = "FineTuneJob.tone"
MANIFEST = """\
version: 1
backend:
  type: local
  principal: {principal}
resources:
  - kind: FoundryAccount
    name: ft-foundry
    location: {location}
    custom_subdomain_name: ft-foundry-local
  - kind: FoundryProject
    name: support
    account: ft-foundry
  - kind: RoleAssignment
    name: trainer
    principal: {principal}
    role: Azure AI User
    scope: {{foundry_account: ft-foundry, foundry_project: support}}
  - kind: FineTuneJob
    name: tone
    foundry_project: support
    base_model: {model}
    training_type: {tier}
    method: {method}
    training_file: data/{file}
    hyperparameters: {{epochs: 1, batch_size: 4}}
"""


def chat(path: Path, count: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Ticket {i}: my order is late."},
        {"role": "assistant", "content": f"Sorry about ticket {i}; it ships tomorrow."}]}) + "\n"
        for i in range(count)))


def preferences(path: Path, count: int = 12, broken_line: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        example = {"input": {"messages": [{"role": "user", "content": f"Ticket {i}: late order."}]},
                   "preferred_output": [{"role": "assistant", "content": f"Sorry; ticket {i} ships tomorrow."}],
                   "non_preferred_output": [{"role": "assistant", "content": "Not my problem."}]}
        if broken_line == i + 1:
            example["preferred_output"] = [{"role": "user", "content": "?"}]
        lines.append(json.dumps(example))
    path.write_text("\n".join(lines) + "\n")


def write(project: Project, *, location: str = "swedencentral", model: str = "gpt-4.1-mini",
          tier: str = "Standard", method: str = "supervised") -> None:
    project.write(MANIFEST.format(principal=PRINCIPAL, location=location, model=model, tier=tier, method=method,
                                  file="prefs.jsonl" if method == "dpo" else "chat.jsonl"))
    chat(project.root / "data" / "chat.jsonl")
    preferences(project.root / "data" / "prefs.jsonl")


def line_of(project: Project, needle: str) -> int:
    return next(n for n, line in enumerate(project.manifest.read_text().splitlines(), 1) if needle in line)


def test_validate_refuses_standard_training_outside_the_models_regions(project: Project) -> None:
    write(project, location="eastus2", tier="Standard")
    result = project.cli("validate")
    assert result.code == 0  # the local backend runs it: a warning, with what would work on Azure
    line = line_of(project, "training_type: Standard")
    assert (f"foundry.yaml:{line}:20: warning: {JOB}: gpt-4.1-mini trains with Standard only from accounts in "
            "northcentralus, swedencentral, and FoundryAccount.ft-foundry is in eastus2: the local backend runs "
            "it, Azure would refuse it") in result.output
    assert "hint: use training_type GlobalStandard or Developer, which gpt-4.1-mini has in eastus2" in result.output


def test_validate_refuses_dpo_for_a_model_without_it_and_rft_only_models(project: Project) -> None:
    write(project, model="gpt-4.1-nano", method="dpo")
    result = project.cli("validate")
    assert result.code == 1
    assert (f"foundry.yaml:{line_of(project, 'method: dpo')}:13: error: {JOB}: method: dpo is not offered for "
            "gpt-4.1-nano (it offers supervised)") in result.output
    write(project, model="o4-mini")
    result = project.cli("validate")
    assert result.code == 1 and "o4-mini is fine-tuned by reinforcement (RFT, with graders) only" in result.output


def test_validate_names_the_line_of_a_broken_preference_example(project: Project) -> None:
    write(project, method="dpo")
    preferences(project.root / "data" / "prefs.jsonl", broken_line=5)
    result = project.cli("validate")
    assert result.code == 1
    assert f"data/prefs.jsonl:5:1: error: {JOB}: preferred_output[0] has role 'user'; allowed: assistant, tool" \
        in result.output
    assert "'preferred_output' needs at least one assistant message" in result.output


def test_validate_refuses_mixed_project_kinds_and_missing_tier(project: Project) -> None:
    write(project)
    project.edit("    foundry_project: support\n", "    foundry_project: support\n    project: other\n")
    result = project.cli("validate")
    assert result.code == 1 and "a job runs in one project" in result.output
    write(project)
    project.edit("    training_type: Standard\n", "")
    result = project.cli("validate")
    assert result.code == 1 and "`training_type` is required for a job in a FoundryProject" in result.output


def test_plan_shows_the_tier_and_its_relative_price(project: Project) -> None:
    write(project, tier="Developer")
    result = project.cli("plan")
    assert result.code == 0, result
    assert "new supervised fine-tuning run of gpt-4.1-mini, training_type Developer" in result.stdout
    assert "0.35-0.45x the Standard price, no data residency, pre-emptible" in result.stdout


def test_apply_trains_the_local_substitute_and_destroy_removes_the_job(project: Project) -> None:
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        find_model(parse_base_model("SmolLM2-135M-Instruct"))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"SmolLM2-135M-Instruct is not available: {exc}")
    write(project, method="dpo")
    with open(project.manifest, "a") as manifest:  # its model deployed, with a content-filter policy
        manifest.write("""\
  - kind: RaiPolicy
    name: strict
    account: ft-foundry
    content_filters:
      - {category: Violence, source: Prompt, severity_threshold: High}
      - {category: Violence, source: Completion, severity_threshold: Low}
      - {category: Jailbreak, source: Prompt}
  - kind: FoundryDeployment
    name: tone-dev
    job: tone
    sku: {name: Developer, capacity: 1}
    rai_policy: strict
""")
    applied = project.cli("apply", "--auto-approve", timeout=600)
    assert applied.code == 0, applied
    assert f"{JOB}: training SmolLM2-135M-Instruct in place of gpt-4.1-mini-2025-04-14 (Standard)" in applied.stdout
    state = project.state()
    try:
        record = state.get(JOB)
    finally:
        state.close()
    outputs = record.outputs
    assert outputs["status"] == "Completed"
    assert re.fullmatch(r"gpt-4\.1-mini-2025-04-14\.ft-[0-9a-f]{32}", outputs["model"]["name"])
    assert record.backend_id.endswith("/accounts/ft-foundry/projects/support/fineTuningJobs/" + record.backend_id.rsplit("/", 1)[1])
    job_dir = Path(outputs["job_dir"])
    trained_on = (job_dir / "training-preferred.jsonl").read_text().splitlines()
    assert json.loads(trained_on[0])["messages"][-1] == {"role": "assistant", "content": "Sorry; ticket 0 ships tomorrow."}
    state = project.state()
    try:
        deployment = state.get("FoundryDeployment.tone-dev")
    finally:
        state.close()
    assert deployment.outputs["model"] == outputs["model"]["name"] and deployment.attributes["rai_policy"] == "strict"
    assert deployment.outputs["status"] == "Running" and deployment.outputs["served"]
    assert "RAI policy strict: Jailbreak not applied locally" in applied.stdout
    metrics = project.cli("jobs", "metrics", "tone", "--format", "json")
    assert metrics.code == 0 and any(r["type"] == "step" for r in json.loads(metrics.stdout))
    assert project.cli("plan", "--detailed-exitcode").code == 0
    server = check_the_served_deployment(project, deployment.outputs["model"])

    # The policy changes: the running server takes it without a restart, as Azure applies it at once.
    project.write(project.manifest.read_text().replace(
        "{category: Violence, source: Prompt, severity_threshold: High}",
        "{category: Violence, source: Prompt, severity_threshold: Medium}"))
    applied = project.cli("apply", "--auto-approve", timeout=300)
    assert applied.code == 0, applied
    assert "deployment tone-dev: content filter reloaded" in applied.stdout
    assert server.read_status()["pid"] == server_pid(server)
    with pytest.raises(openai.BadRequestError) as refused:
        client(project).chat.completions.create(model="tone-dev", messages=[{"role": "user", "content": MEDIUM}],
                                                max_tokens=4)
    assert refused.value.code == "content_filter"

    # A server that dies is drift: the plan says so and one apply serves again.
    os.killpg(server_pid(server), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid_alive(server_pid(server)) and time.monotonic() < deadline:
        time.sleep(0.1)
    planned = project.cli("plan", "--detailed-exitcode")
    assert planned.code == 2 and "apply deploys it again" in planned.stdout, planned
    applied = project.cli("apply", "--auto-approve", timeout=300)
    assert applied.code == 0, applied
    assert client(project).chat.completions.create(
        model="tone-dev", messages=[{"role": "user", "content": "Ticket 3: my order is late."}],
        max_tokens=4).choices[0].message.content is not None
    assert project.cli("plan", "--detailed-exitcode").code == 0

    pid = server_pid(server)
    destroyed = project.cli("destroy", "--auto-approve", timeout=300)
    assert destroyed.code == 0, destroyed
    assert not job_dir.exists() and not server.path.exists()
    assert not pid_alive(pid)


MEDIUM = "I am going to punch my neighbour"
HIGH = "I am going to kill him tonight, I have a plan and a knife"


def server_pid(server: Any) -> int:
    return server.read_status()["pid"]


def client(project: Project) -> Any:
    keys = project.cli("deployments", "keys", "tone-dev", "--format", "json")
    assert keys.code == 0, keys
    found = json.loads(keys.stdout)
    return openai.OpenAI(base_url=found["endpoint"], api_key=found["key1"], max_retries=0)


def check_the_served_deployment(project: Project, model: str) -> Any:
    """The deployment answers the openai client on both routes, with its own keys, behind the
    RAI policy's thresholds per source; `deployments list/show` know it."""
    from foundryctl.serving.content_filter.offline import OfflineClassifier
    from foundryctl.serving.content_filter.policy import FilterPolicy, assess
    from foundryctl.serving.deploydir import DeploymentDir

    state = project.state()
    try:
        record = state.get("FoundryDeployment.tone-dev")
    finally:
        state.close()
    listed = project.cli("deployments", "list")
    assert listed.code == 0 and "tone-dev" in listed.stdout and "Running" in listed.stdout, listed
    shown = project.cli("deployments", "show", "tone-dev")
    assert shown.code == 0 and "prompt: violence high" in shown.stdout, shown
    plain = client(project)
    answer = plain.chat.completions.create(
        model="tone-dev", messages=[{"role": "user", "content": "Ticket 3: my order is late."}], max_tokens=8)
    assert answer.choices[0].message.content and answer.model == "tone-dev"
    port = record.outputs["port"]
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{port}", api_key=plain.api_key,
                               api_version="2024-10-21", max_retries=0)
    assert azure.chat.completions.create(model="tone-dev", messages=[{"role": "user", "content": "Ticket 1: late."}],
                                         max_tokens=4).choices[0].message.content is not None
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=record.outputs["endpoint"], api_key="wrong", max_retries=0).chat.completions.create(
            model="tone-dev", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    # Medium violence in a prompt: Azure's default policy blocks it, this policy (High) does not.
    classifier = OfflineClassifier()
    assert classifier.classify(MEDIUM)["violence"] == "medium" and classifier.classify(HIGH)["violence"] == "high"
    assert assess(FilterPolicy(), {"violence": "medium"}).filtered
    passed = plain.chat.completions.create(model="tone-dev", messages=[{"role": "user", "content": MEDIUM}],
                                           max_tokens=4)
    assert passed.choices[0].finish_reason in ("stop", "length", "content_filter")
    with pytest.raises(openai.BadRequestError) as refused:
        plain.chat.completions.create(model="tone-dev", messages=[{"role": "user", "content": HIGH}], max_tokens=4)
    assert refused.value.code == "content_filter"
    return DeploymentDir(Path(record.outputs["directory"]))


def test_apply_refuses_what_azure_refuses_at_create_time(project: Project) -> None:
    # A manifest validate only warns about on the local backend: the emulator refuses it as Azure does.
    write(project, location="eastus2", tier="Standard")
    applied = project.cli("apply", "--auto-approve", timeout=300)
    assert applied.code == 1
    assert "Standard TrainingType is not supported for gpt-4.1-mini-2025-04-14 in eastus2" in applied.output


def test_a_deployment_of_a_foundry_job_is_refused_until_foundry_deployments_exist(project: Project) -> None:
    write(project)
    project.quickstart()
    text = project.manifest.read_text()
    project.write(text + MANIFEST.format(principal=PRINCIPAL, location="swedencentral", model="gpt-4.1-mini",
                                         tier="Standard", method="supervised", file="chat.jsonl")
                  .split("resources:\n", 1)[1] + """\
  - kind: Deployment
    name: tone-endpoint
    project: xbox-support
    model: {job: tone}
""")
    result = project.cli("validate")
    assert result.code == 1, result
    assert "FineTuneJob 'tone' trains in FoundryProject 'support'; a Deployment serves models of a hub project" \
        in result.output
