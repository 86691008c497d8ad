"""Contract tests of a FineTuneJob in a FoundryProject on Azure: the real openai client against
a loopback server that keeps Azure OpenAI fine-tuning's rules (azurefake/families/
openai_finetuning.py): uploads through the files API, trainingType in the body, method
supervised|dpo, adoption of the job a crashed apply started, statuses, checkpoints and
results.csv metrics, cancel on delete; and the plan -> apply -> plan -> destroy cycle through
the CLI, with the tier in the plan and the refusals validate makes before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from azurefake.families.cognitive import seed_account
from azurefake.fixtures import write_manifest
from click.testing import CliRunner

from foundryctl.backends.base import Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.finetune_job import training_run

CHAT = [{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"Q{i}?"},
                      {"role": "assistant", "content": f"A{i}."}]} for i in range(12)]
PREFERENCE = [{"input": {"messages": [{"role": "user", "content": f"Q{i}?"}]},
               "preferred_output": [{"role": "assistant", "content": f"A{i}, gladly."}],
               "non_preferred_output": [{"role": "assistant", "content": "No."}]} for i in range(12)]


class Messages(Progress):
    def __init__(self) -> None:
        self.messages: list[str] = []
        super().__init__(lambda message, *rest: self.messages.append(message))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    import hashlib

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def api(foundry_openai: Any, fake_azure: Any, azure_backend: Any) -> Any:
    seed_account(fake_azure, "ft-foundry", subdomain="ft-foundry-demo")  # in eastus2
    (azure_backend.root / "data").mkdir(exist_ok=True)
    return foundry_openai


def target(root: Path, *, method: str = "supervised", tier: str = "GlobalStandard",
           base_model: str = "gpt-4.1-mini", **hp: Any) -> Target:
    rows = PREFERENCE if method == "dpo" else CHAT
    sha = write_jsonl(root / "data" / f"{method}.jsonl", rows)
    attributes = {"foundry_project": "support", "foundry_account": "ft-foundry", "base_model": base_model,
                  "task": "chat_completion", "training_file": f"data/{method}.jsonl", "training_version": sha,
                  "training_type": tier, "method": method, "output_model": "tone", "runner": "azure", "seed": 7,
                  "description": "", "status": "Completed",
                  "hyperparameters": {"epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5, **hp}}
    return Target("FineTuneJob.tone", "FineTuneJob", "tone", attributes)


def ops(api: Any) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in api.requests]


def test_create_uploads_waits_for_processing_submits_and_follows_the_job(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    progress = Messages()
    observed = jobs.create(t, progress)

    sent = ops(api)
    assert sent[:4] == [("GET", "fine_tuning/jobs"), ("GET", "files"), ("POST", "files"),
                        ("GET", f"files/{api.jobs[observed.outputs['job_id']]['training_file']}")]
    body = next(b for m, p, b in api.requests if (m, p) == ("POST", "fine_tuning/jobs"))
    run = f"tone-{training_run(t.attributes)}"
    assert body == {
        "model": "gpt-4.1-mini-2025-04-14", "training_file": body["training_file"], "seed": 7,
        "suffix": f"tone-{training_run(t.attributes)}",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5}}},
        "metadata": {"foundryctl_run": run, "foundryctl_attempt": "1", "foundryctl_project": "support",
                     "foundryctl_address": "FineTuneJob.tone"},
        "trainingType": "GlobalStandard"}
    uploaded = api.files[body["training_file"]]
    assert uploaded["purpose"] == "fine-tune" and uploaded["_content"] == (azure_backend.root / "data/supervised.jsonl").read_bytes()
    # validating_files -> queued -> running -> succeeded, with Azure's events as progress
    assert observed.attributes["status"] == "Completed" and observed.outputs["azure_status"] == "succeeded"
    assert "Job enqueued" in progress.messages and "Job running" in progress.messages
    assert observed.id.endswith(f"/accounts/ft-foundry/projects/support/fineTuningJobs/{run}")
    assert observed.id == jobs.identify(t)
    model = observed.outputs["model"]
    assert model["name"].startswith("gpt-4.1-mini-2025-04-14.ft-")
    assert [c["epoch"] for c in observed.outputs["checkpoints"]] == [1, 2, 3]
    assert observed.outputs["checkpoints"][-1]["name"] == model["name"]
    assert observed.outputs["metrics"]["full_valid_loss"] == pytest.approx(2.1 / 12)
    assert observed.outputs["training_type"] == "GlobalStandard"


def test_dpo_sends_the_preference_method_with_beta(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    observed = jobs.create(target(azure_backend.root, method="dpo", tier="Developer", beta=0.2), Progress())
    body = next(b for m, p, b in api.requests if (m, p) == ("POST", "fine_tuning/jobs"))
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {
        "n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.5, "beta": 0.2}}}
    assert body["trainingType"] == "Developer"
    assert observed.attributes["method"] == "dpo" and observed.attributes["status"] == "Completed"


def test_a_crash_after_submitting_adopts_the_job_instead_of_starting_another(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    azure_backend.wait_for_jobs = False  # apply --no-wait: submit and return (as a crash would leave it)
    first = jobs.create(t, Progress())
    assert first.attributes["status"] == "Queued"
    azure_backend.wait_for_jobs = True
    progress = Messages()
    again = jobs.create(t, progress)  # the next apply

    assert [p for m, p in ops(api) if m == "POST"] == ["files", "fine_tuning/jobs"]  # one upload, one job
    assert again.outputs["job_id"] == first.outputs["job_id"]
    assert any(m.startswith(f"adopting fine-tuning job {first.outputs['job_id']}") for m in progress.messages)
    assert jobs.read(Target(t.address, t.kind, t.name, t.attributes, again.id)).attributes["status"] == "Completed"


def test_a_cancelled_job_is_retried_as_a_new_attempt(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    azure_backend.wait_for_jobs = False
    first = jobs.create(t, Progress())
    api.jobs[first.outputs["job_id"]]["status"] = "cancelled"  # cancelled in the portal
    assert jobs.read(t).attributes["status"] == "Canceled"
    azure_backend.wait_for_jobs = True
    second = jobs.create(t, Progress())
    assert second.outputs["job_id"] != first.outputs["job_id"]
    assert api.jobs[second.outputs["job_id"]]["metadata"]["foundryctl_attempt"] == "2"
    assert [p for m, p in ops(api) if m == "POST"].count("files") == 1  # the processed upload is reused
    assert jobs.read(t).outputs["job_id"] == second.outputs["job_id"]


def test_azure_refuses_a_tier_the_region_does_not_offer(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    with pytest.raises(BackendError) as caught:  # Standard training of gpt-4.1-mini: northcentralus, swedencentral
        jobs.create(target(azure_backend.root, tier="Standard"), Progress())
    assert caught.value.code == "invalidPayload"
    assert "Standard TrainingType is not supported for gpt-4.1-mini-2025-04-14 in eastus2" in caught.value.message
    assert not api.jobs


def test_a_file_azure_cannot_process_is_reported_with_its_reason(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    path = azure_backend.root / "data" / "supervised.jsonl"
    path.write_text(path.read_text() + "not json\n")
    import hashlib

    t.attributes["training_version"] = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(BackendError) as caught:
        jobs.create(t, Progress())
    assert caught.value.code == "FileProcessingFailed" and "Line 13 is not valid JSON" in caught.value.message
    assert not api.jobs


def test_a_failed_job_raises_training_failed_with_azures_message(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    azure_backend.wait_for_jobs = False
    first = jobs.create(t, Progress())
    job = api.jobs[first.outputs["job_id"]]
    job.update(status="failed", error={"code": "invalid_training_file", "message": "Too few examples.", "param": None})
    observed = jobs.read(t)
    assert observed.attributes["status"] == "Failed" and observed.outputs["error"] == "Too few examples."


def test_delete_cancels_a_running_job_and_removes_the_uploads(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    azure_backend.wait_for_jobs = False
    observed = jobs.create(t, Progress())
    api.hold.add(observed.outputs["job_id"])
    jobs.delete(Target(t.address, t.kind, t.name, t.attributes, observed.id), Progress())
    assert api.jobs[observed.outputs["job_id"]]["status"] == "cancelled"
    assert ("POST", f"fine_tuning/jobs/{observed.outputs['job_id']}/cancel") in ops(api)
    assert not [f for f in api.files.values() if f["purpose"] == "fine-tune"]


def test_metric_rows_read_the_results_file(api: Any, azure_backend: Any) -> None:
    jobs = azure_backend.handler("FineTuneJob")
    t = target(azure_backend.root)
    jobs.create(t, Progress())
    rows = jobs.foundry.metric_rows(t)
    assert len(rows) == 12 and rows[0]["type"] == "step" and rows[0]["step"] == 1
    assert rows[0]["train_loss"] == pytest.approx(2.0) and "full_valid_loss" not in rows[0]
    assert rows[3]["full_valid_loss"] == pytest.approx(2.0 / 4 * 1.05, rel=1e-3)


def test_requests_carry_the_entra_token_of_the_signed_in_principal(api: Any, azure_backend: Any) -> None:
    from azurefake.fixtures import TOKEN

    azure_backend.handler("FineTuneJob").read(target(azure_backend.root))
    assert api.authorizations == {f"Bearer {TOKEN}"}


# -- the CLI cycle --------------------------------------------------------------------------

RESOURCES = """\
- kind: FoundryAccount
  name: ft-foundry
  location: {location}
  custom_subdomain_name: ft-foundry-demo
- kind: FoundryProject
  name: support
  account: ft-foundry
- kind: FineTuneJob
  name: tone
  foundry_project: support
  base_model: gpt-4.1-mini
  training_type: {tier}
  training_file: data/chat.jsonl
  hyperparameters: {{epochs: 2}}
"""


def test_plan_apply_plan_destroy_through_the_cli(foundry_openai: Any, fake_azure: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl.cli import cli

    write_jsonl(tmp_path / "data" / "chat.jsonl", CHAT)
    write_manifest(tmp_path, RESOURCES.format(location="eastus2", tier="GlobalStandard"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"},
                                  catch_exceptions=False)

    plan = run("plan")
    assert plan.exit_code == 0, plan.output
    assert "training_type GlobalStandard" in plan.output and "0.7-0.9x the Standard price" in plan.output
    apply = run("apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    api = foundry_openai
    assert len(api.jobs) == 1 and next(iter(api.jobs.values()))["status"] == "succeeded"
    again = run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    metrics = run("jobs", "metrics", "tone", "--format", "json")
    assert metrics.exit_code == 0, metrics.output
    assert json.loads(metrics.output)[0]["step"] == 1
    destroy = run("destroy", "--auto-approve")
    assert destroy.exit_code == 0, destroy.output


def test_validate_refuses_a_tier_the_account_region_lacks(fake_azure: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl.cli import cli

    write_jsonl(tmp_path / "data" / "chat.jsonl", CHAT)
    write_manifest(tmp_path, RESOURCES.format(location="eastus2", tier="Standard"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert result.exit_code == 1
    assert "foundry.yaml:21:20: error: FineTuneJob.tone: gpt-4.1-mini trains with Standard only from accounts in " \
           "northcentralus, swedencentral, and FoundryAccount.ft-foundry is in eastus2" in result.output
    assert not fake_azure.calls


DEPLOYED = RESOURCES + """\
- kind: RaiPolicy
  name: strict
  account: ft-foundry
  content_filters:
    - {{category: Hate, source: Completion, severity_threshold: Low}}
- kind: FoundryDeployment
  name: tone-gs
  job: tone
  sku: {{name: GlobalStandard, capacity: 20}}
  rai_policy: strict
"""


def test_the_fine_tuned_model_is_deployed_with_its_sku_and_content_filter_policy(
        foundry_openai: Any, fake_azure: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from foundryctl.cli import cli

    write_jsonl(tmp_path / "data" / "chat.jsonl", CHAT)
    write_manifest(tmp_path, DEPLOYED.format(location="eastus2", tier="GlobalStandard"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "-f", "foundry.yaml"], env={"NO_COLOR": "1", "COLUMNS": "200"},
                                  catch_exceptions=False)

    plan = run("plan")
    assert plan.exit_code == 0, plan.output
    assert "deploys the model of FineTuneJob.tone once it is trained" in plan.output
    apply = run("apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    [put] = [c for c in fake_azure.requests("PUT") if "/deployments/" in c.path]
    [job] = foundry_openai.jobs.values()
    assert put.path.endswith("/accounts/ft-foundry/deployments/tone-gs") and put.api_version == "2025-06-01"
    assert put.body == {"sku": {"name": "GlobalStandard", "capacity": 20}, "properties": {
        "model": {"format": "OpenAI", "name": job["fine_tuned_model"], "version": "1"}, "raiPolicyName": "strict"}}
    assert run("plan", "--detailed-exitcode").exit_code == 0
    # A deployment whose provisioning ended Failed (or Canceled) is drift one apply repairs;
    # one still Updating counts as deployed.
    for state, drift in (("Updating", False), ("Failed", True), ("Canceled", True)):
        deployed = fake_azure.get(put.path)
        deployed["properties"]["provisioningState"] = state
        plan = run("plan", "--detailed-exitcode")
        assert plan.exit_code == (2 if drift else 0), plan.output
        if drift:
            assert f"the deployment is {state.lower()}; apply deploys it again" in plan.output, plan.output
            assert run("apply", "--auto-approve").exit_code == 0
            assert fake_azure.get(put.path)["properties"]["provisioningState"] == "Succeeded"
        else:
            deployed["properties"]["provisioningState"] = "Succeeded"
    assert run("plan", "--detailed-exitcode").exit_code == 0
    # Retraining (new hyperparameters) deploys the new run's model in place.
    (tmp_path / "foundry.yaml").write_text((tmp_path / "foundry.yaml").read_text().replace("{epochs: 2}", "{epochs: 3}"))
    assert run("apply", "--auto-approve").exit_code == 0
    newest = max(foundry_openai.jobs.values(), key=lambda j: j["created_at"])
    assert fake_azure.get(put.path)["properties"]["model"]["name"] == newest["fine_tuned_model"] != job["fine_tuned_model"]
    destroy = run("destroy", "--auto-approve")
    assert destroy.exit_code == 0, destroy.output
    assert fake_azure.get(put.path) is None
