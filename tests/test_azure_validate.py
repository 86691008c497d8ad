"""The azure backend at validate time: offline, no credentials, and strict about what Azure
would refuse (regions, runner, base model) before anything is created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from foundryctl.errors import ManifestError
from foundryctl.manifest import load_manifest

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
BACKEND = f"""\
backend:
  type: azure
  subscription_id: {SUBSCRIPTION}
  resource_group: rg-foundry
  location: eastus2
"""
RESOURCES = """\
resources:
  - {{kind: Hub, name: ft-hub, location: {location}}}
  - {{kind: Project, name: prj, hub: ft-hub}}
  - {{kind: Dataset, name: chat, project: prj, path: chat.jsonl}}
  - kind: FineTuneJob
    name: agent
    project: prj
    base_model: {model}
    training_data: chat
{job_extra}  - kind: Deployment
    name: agent
    project: prj
    model: {{job: agent}}
{deployment_extra}"""


def manifest(tmp_path: Path, *, location: str = "eastus2", model: str = "Phi-4-mini-instruct",
             job_extra: str = "", deployment_extra: str = "", backend: str = BACKEND) -> Path:
    rows = [json.dumps({"messages": [{"role": "system", "content": "You are a support agent."},
                                     {"role": "user", "content": f"question {i}"},
                                     {"role": "assistant", "content": f"answer {i}"}]})
            for i in range(60)]
    (tmp_path / "chat.jsonl").write_text("\n".join(rows) + "\n")
    path = tmp_path / "foundry.yaml"
    path.write_text("version: 1\n" + backend + RESOURCES.format(
        location=location, model=model, job_extra=job_extra, deployment_extra=deployment_extra))
    return path


def codes(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Diagnostic code -> [(severity, address)], errors and warnings alike."""
    try:
        diagnostics = load_manifest(path).warnings
    except ManifestError as exc:
        diagnostics = exc.diagnostics
    found: dict[str, list[tuple[str, str]]] = {}
    for d in diagnostics:
        found.setdefault(d.code or "", []).append((d.severity.value, d.address or ""))
    return found


def test_a_clean_azure_manifest_validates(tmp_path: Path) -> None:
    assert codes(manifest(tmp_path)) == {}


@pytest.mark.parametrize(("location", "model", "expected"), [
    ("swedencentral", "Phi-4-mini-instruct", [("error", "FineTuneJob.agent")]),
    ("westeurope", "Phi-4-mini-instruct", [("error", "FineTuneJob.agent"), ("error", "Deployment.agent")]),
    ("westus3", "Phi-4-mini-instruct", []),
])
def test_a_hub_region_azure_cannot_serve_is_an_error_on_the_azure_backend(
        tmp_path: Path, location: str, model: str, expected: list) -> None:
    found = codes(manifest(tmp_path, location=location, model=model)).get("region-unavailable", [])
    assert sorted(found) == sorted(expected)


def test_the_same_region_is_only_a_warning_on_the_local_backend(tmp_path: Path) -> None:
    path = manifest(tmp_path, location="swedencentral", backend="backend: {type: local}\n")
    assert codes(path).get("region-unavailable") == [("warning", "FineTuneJob.agent")]


def test_a_region_error_names_the_hub_and_the_regions(tmp_path: Path) -> None:
    result = run_cli("validate", "-f", str(manifest(tmp_path, location="swedencentral")), cwd=tmp_path)
    assert result.code == 1, result
    assert "only in eastus, eastus2, northcentralus" in result.output and "Hub.ft-hub" in result.output
    assert "foundry.yaml:14:17:" in result.output  # the base_model value of the job


def test_runner_must_match_the_backend(tmp_path: Path) -> None:
    path = manifest(tmp_path, job_extra="    runner: local\n")
    assert codes(path)["runner-backend"] == [("error", "FineTuneJob.agent")]
    local = manifest(tmp_path, model="SmolLM2-135M-Instruct", job_extra="    runner: azure\n",
                     backend="backend: {type: local}\n")
    assert codes(local)["runner-backend"] == [("error", "FineTuneJob.agent")]


def test_the_runner_defaults_to_the_backend_and_is_part_of_the_job(tmp_path: Path) -> None:
    from foundryctl.kinds import KINDS

    on_azure = load_manifest(manifest(tmp_path))  # valid: no error raised
    decl = on_azure.resources["FineTuneJob.agent"]
    assert KINDS["FineTuneJob"].desired_attributes(decl)["runner"] == "azure"
    local = load_manifest(manifest(tmp_path, model="SmolLM2-135M-Instruct", backend="backend: {type: local}\n"))
    assert KINDS["FineTuneJob"].desired_attributes(local.resources["FineTuneJob.agent"])["runner"] == "local"


def test_a_model_azure_does_not_fine_tune_is_refused(tmp_path: Path) -> None:
    found = codes(manifest(tmp_path, model="SmolLM2-135M-Instruct"))
    assert found["model-unavailable"] == [("error", "FineTuneJob.agent")]


def test_local_only_settings_are_pointed_out_on_azure(tmp_path: Path) -> None:
    path = manifest(tmp_path, job_extra="    hyperparameters: {epochs: 2, lora_r: 16}\n",
                    deployment_extra="    content_filter: {threshold: low}\n")
    found = codes(path)["local-only-setting"]
    assert sorted(found) == [("warning", "Deployment.agent"), ("warning", "FineTuneJob.agent")]
    # Azure's own knobs (epochs, batch size, learning rate multiplier) raise nothing.
    assert "local-only-setting" not in codes(manifest(tmp_path, job_extra="    hyperparameters: {epochs: 2}\n"))


def test_the_quickstart_switches_to_azure_with_its_variable_file(tmp_path: Path) -> None:
    env = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "FOUNDRYCTL_PRINCIPAL": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}
    manifest_path = REPO / "manifests" / "quickstart.yaml"
    loaded = load_manifest(manifest_path, var_files=[REPO / "manifests" / "envs" / "azure.yaml"], env=env)
    assert loaded.backend.type == "azure" and loaded.backend.subscription_id == SUBSCRIPTION
    assert loaded.resources["FineTuneJob.xbox-agent"].spec.base_model == "Phi-4-mini-instruct"
    assert load_manifest(manifest_path, env={}).backend.type == "local"


@pytest.mark.parametrize("var_files", [[], ["azure-foundry.yaml"]], ids=["local", "azure"])
def test_the_foundry_example_validates_on_both_backends_without_warnings(var_files: list[str]) -> None:
    """manifests/foundry is what the live suite applies on Azure; CI keeps it valid on both backends."""
    env = {"AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "FOUNDRYCTL_PRINCIPAL": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}
    loaded = load_manifest(REPO / "manifests" / "foundry",
                           var_files=[REPO / "manifests" / "envs" / name for name in var_files], env=env)
    assert loaded.backend.type == ("azure" if var_files else "local")
    assert sorted(loaded.resources) == ["FineTuneJob.xbox-nano", "FoundryAccount.xbox-foundry",
                                        "FoundryDeployment.xbox-nano", "FoundryProject.xbox-support",
                                        "RaiPolicy.strict", "RoleAssignment.ml-engineer"]
    assert [str(w) for w in loaded.warnings] == []


def test_an_unset_environment_variable_in_a_variable_file_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AZURE_SUBSCRIPTION_ID"}
    env.update(FOUNDRYCTL_PRINCIPAL="x", NO_COLOR="1")
    process = subprocess.run([sys.executable, "-m", "foundryctl", "validate", "-f",
                              str(REPO / "manifests" / "quickstart.yaml"), "--var-file",
                              str(REPO / "manifests" / "envs" / "azure.yaml")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert process.returncode == 1
    assert "azure.yaml:6:20: error: environment variable AZURE_SUBSCRIPTION_ID is not set" in process.stderr


def test_validate_needs_no_credentials_and_no_azure_sdk(tmp_path: Path) -> None:
    """validate of an azure manifest imports none of the Azure SDKs (and so cannot sign in)."""
    path = manifest(tmp_path)
    code = ("import sys; from foundryctl.cli import main\n"
            "try:\n    main(['validate', '-f', sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(('azure.', 'msal', 'torch')))\n"
            "print('HEAVY', heavy, 'CODE', code)\n")
    process = subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, capture_output=True, check=False,
                             text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "HEAVY [] CODE 0" in process.stdout, process.stdout + process.stderr


@pytest.fixture
def pinned_today(monkeypatch: pytest.MonkeyPatch):
    """Pin the date the retirement checks read."""
    import datetime as dt

    from foundryctl import catalog

    def pin(day: str) -> None:
        monkeypatch.setattr(catalog, "today", lambda: dt.date.fromisoformat(day))
    return pin


@pytest.mark.parametrize("model", ["Phi-3-mini-4k-instruct", "Phi-3-mini-128k-instruct", "Phi-3.5-mini-instruct"])
def test_a_retired_model_is_refused_on_the_azure_backend(tmp_path: Path, model: str, pinned_today) -> None:
    pinned_today("2026-12-04")
    found = codes(manifest(tmp_path, model=model))
    assert found.get("model-retired") == [("error", "FineTuneJob.agent")]
    assert "model-unavailable" not in found  # the retirement is the reason, said once


def test_the_retirement_error_names_the_date_the_replacement_and_the_line(tmp_path: Path) -> None:
    result = run_cli("validate", "-f", str(manifest(tmp_path, model="Phi-3-mini-128k-instruct")), cwd=tmp_path)
    assert result.code == 1, result
    assert "foundry.yaml:14:17:" in result.output
    assert "retired on Azure on 2025-08-30" in result.output and "use Phi-4-mini-instruct" in result.output


def test_a_model_retiring_within_90_days_is_a_warning(tmp_path: Path, pinned_today) -> None:
    path = manifest(tmp_path, model="Phi-3-mini-128k-instruct")
    pinned_today("2025-06-01")  # 90 days before 2025-08-30
    assert codes(path).get("model-retiring") == [("warning", "FineTuneJob.agent")]
    pinned_today("2025-06-02")
    assert "model-retiring" in codes(path) and "model-retired" not in codes(path)
    pinned_today("2025-05-31")  # 91 days before: nothing yet
    assert not {"model-retiring", "model-retired"} & set(codes(path))
    pinned_today("2025-08-30")  # the day itself: retired
    assert codes(path).get("model-retired") == [("error", "FineTuneJob.agent")]


def test_retirement_does_not_touch_the_local_backend(tmp_path: Path, pinned_today) -> None:
    pinned_today("2026-12-04")
    local = manifest(tmp_path, model="Phi-3-mini-4k-instruct", backend="backend: {type: local}\n")
    assert not {"model-retired", "model-retiring"} & set(codes(local))


def test_the_local_quickstart_keeps_its_smollm2_model() -> None:
    loaded = load_manifest(REPO / "manifests" / "quickstart.yaml", env={})
    assert loaded.resources["FineTuneJob.xbox-agent"].spec.base_model == "SmolLM2-135M-Instruct"


SECOND_DEPLOYMENT = """\
  - kind: Deployment
    name: agent-two
    project: prj
    model: {job: agent}
"""


def test_a_second_deployment_of_one_custom_model_is_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, deployment_extra=SECOND_DEPLOYMENT)
    assert codes(path).get("one-deployment-per-model") == [("error", "Deployment.agent-two")]
    result = run_cli("validate", "-f", str(path), cwd=tmp_path)
    assert result.code == 1, result
    # The error sits at the second deployment's model and names the first one with its line.
    assert "foundry.yaml:23:12: error: Deployment.agent-two:" in result.output
    assert "Deployment.agent (" in result.output and "foundry.yaml:19:12)" in result.output
    assert "1 serverless deployment per custom model" in result.output


def test_two_deployments_of_one_registered_model_version_are_refused(tmp_path: Path) -> None:
    path = manifest(tmp_path, deployment_extra=(
        "  - {kind: Deployment, name: reg-one, project: prj, model: {name: support, version: 2}}\n"
        "  - {kind: Deployment, name: reg-two, project: prj, model: {name: support, version: 2}}\n"
        "  - {kind: Deployment, name: reg-three, project: prj, model: {name: support, version: 3}}\n"))
    assert codes(path).get("one-deployment-per-model") == [("error", "Deployment.reg-two")]


def test_the_same_model_deployed_twice_is_fine_on_the_local_backend(tmp_path: Path) -> None:
    path = manifest(tmp_path, model="SmolLM2-135M-Instruct", deployment_extra=SECOND_DEPLOYMENT,
                    backend="backend: {type: local}\n")
    assert "one-deployment-per-model" not in codes(path)


def test_more_fine_tuned_deployments_than_azure_allows_per_project(tmp_path: Path) -> None:
    extra = "".join(f"  - {{kind: Deployment, name: reg-{i}, project: prj, model: {{name: support, version: {i}}}}}\n"
                    for i in range(1, 6))  # 5 more: 6 in the project, Azure allows 5
    assert codes(manifest(tmp_path, deployment_extra=extra)).get("quota-deployments") == [
        ("error", "Deployment.reg-5")]
    fewer = "".join(f"  - {{kind: Deployment, name: reg-{i}, project: prj, model: {{name: support, version: {i}}}}}\n"
                    for i in range(1, 5))
    assert "quota-deployments" not in codes(manifest(tmp_path, deployment_extra=fewer))


def test_more_fine_tuning_jobs_than_azure_allows_per_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from foundryctl import catalog

    small = dataclasses.replace(catalog.azure_limits(), training_jobs_per_resource=2, running_jobs_per_resource=1,
                                queued_jobs_per_resource=0)
    monkeypatch.setattr(catalog, "azure_limits", lambda: small)
    jobs = "".join(f"  - {{kind: FineTuneJob, name: more-{i}, project: prj, base_model: Phi-4-mini-instruct, "
                   f"training_data: chat, seed: {i}}}\n" for i in range(2))
    found = codes(manifest(tmp_path, deployment_extra=jobs))
    assert found.get("quota-jobs") == [("error", "FineTuneJob.more-1")]  # the third job of the project
    one_more = codes(manifest(tmp_path, deployment_extra=jobs.split("\n")[0] + "\n"))
    assert "quota-jobs" not in one_more
    assert one_more.get("quota-queued-jobs") == [("warning", "FineTuneJob.more-0")]  # 2 > 1 running + 0 queued


def test_the_training_token_maximum_is_checked_at_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from foundryctl import catalog

    small = dataclasses.replace(catalog.azure_limits(), max_training_tokens=1000)
    monkeypatch.setattr(catalog, "azure_limits", lambda: small)
    found = codes(manifest(tmp_path))
    assert found.get("quota-training-tokens") == [("error", "FineTuneJob.agent")]


def test_a_new_azure_deployment_shows_its_rate_limit_in_the_plan(tmp_path: Path) -> None:
    from foundryctl.kinds import KINDS

    loaded = load_manifest(manifest(tmp_path))
    decl = loaded.resources["Deployment.agent"]
    notes = KINDS["Deployment"].describe_changes(None, KINDS["Deployment"].desired_attributes(decl), decl)
    assert notes == ["Azure limits a serverless deployment to 200,000 tokens and 1,000 requests per minute"]
