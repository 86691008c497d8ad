"""FineTuneJob end to end through the real CLI on the local backend: validation of the job's
fields, the seed workflow (apply trains SmolLM2-135M-Instruct for real in a detached process
and registers the model), `foundryctl jobs`, replacement on a new hyperparameter, Azure's
preconditions (RBAC, Microsoft.Network), a killed job resumed from its checkpoint, and
destroy canceling a running job.

The training data is 16 short conversations (12 to train on, 4 held out), two epochs: each
training run takes a few seconds of the CPU once the model is loaded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project, require

from foundryctl.backends import arm
from foundryctl.training.jobdir import JobDir, pid_alive

BASE_MODEL = "SmolLM2-135M-Instruct"
JOB = "FineTuneJob.xbox-agent"
COLOURS = ["red", "blue", "green", "white", "black", "orange", "purple", "yellow",
           "silver", "gold", "pink", "grey", "brown", "teal", "navy", "lime"]


@pytest.fixture(scope="session")
def smollm2(model_cache: Path) -> Path:
    """The model in the session's model cache, converted from the packaged GGUF once up front
    (apply would otherwise do it inside the first test that trains)."""
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model(BASE_MODEL))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"{BASE_MODEL} is not available: {exc}")
        raise


# (pid, start time) of the training processes a test saw start, for no_stray_training.
STARTED: list[tuple[int, str | None]] = []


@pytest.fixture(autouse=True)
def no_stray_training(project: Project):
    """Whatever a test leaves running (a failed assertion mid-run), its training processes end
    with it: the pids recorded in its job directories, and those it saw start."""
    yield
    seen = list(STARTED)
    STARTED.clear()
    for status_file in (project.cloud_path / "jobs").glob("*/*/status.json"):
        status = JobDir(status_file.parent).read_status()
        if status.get("pid"):
            seen.append((status["pid"], status.get("pid_start")))
    for pid, start in seen:
        if pid_alive(pid, start):
            try:
                os.killpg(pid, signal.SIGKILL)  # started with start_new_session: its own group
            except ProcessLookupError:
                pass


def write_conversations(path: Path, count: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            colour = COLOURS[i % len(COLOURS)]
            out.write(json.dumps({"messages": [
                {"role": "system", "content": "You are an Xbox support agent."},
                {"role": "user", "content": f"My controller light blinks {colour}. What now?"},
                {"role": "assistant", "content": f"A {colour} blink means low battery: charge the "
                                                 "controller for an hour, then pair it again."},
            ]}) + "\n")
    return path


def job_manifest(*, epochs: int = 2, batch_size: int = 4, multiplier: float = 2, job_project: str = "xbox-support",
                 base_model: str = BASE_MODEL) -> str:
    return f"""
  - kind: Dataset
    name: xbox-chat
    project: xbox-support
    path: data/train.jsonl
    validation: {{split: 0.25, seed: 7}}
    description: Xbox support conversations

  - kind: FineTuneJob
    name: xbox-agent
    project: {job_project}
    base_model: {base_model}
    training_data: xbox-chat
    hyperparameters:
      epochs: {epochs}
      batch_size: {batch_size}
      learning_rate_multiplier: {multiplier}
      max_seq_length: 256
"""


def finetune_project(project: Project, *, network: bool = True, with_job: bool = True, **job) -> None:
    """The quickstart (Microsoft.Network registered, hub, project, the Azure AI Developer role
    for the acting principal) plus a Dataset and, with `with_job`, a FineTuneJob on it."""
    project.quickstart()
    # The acting principal is the one the quickstart gives the role to.
    project.edit("  type: local\n", "  type: local\n  principal: ${var.principal}\n")
    if not network:
        project.edit("  - kind: ProviderRegistration\n    name: network\n    namespace: Microsoft.Network\n\n", "")
    text = job_manifest(**job)
    if not with_job:
        text = text.split("\n  - kind: FineTuneJob")[0] + "\n"
    with open(project.manifest, "a") as manifest:
        manifest.write(text)
    write_conversations(project.root / "data" / "train.jsonl")


def line_of(project: Project, needle: str) -> int:
    lines = project.manifest.read_text().splitlines()
    matches = [n for n, line in enumerate(lines, 1) if needle in line]
    assert len(matches) == 1, (needle, matches)
    return matches[0]


def record(project: Project, address: str = JOB):
    store = project.state()
    try:
        return store.get(address)
    finally:
        store.close()


def wait_for(condition: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def model_versions(project: Project) -> list[str]:
    cloud = project.cloud()
    try:
        return sorted(r.id for r in cloud.list(type=arm.MODEL_VERSIONS))
    finally:
        cloud.close()


def cloud_get(project: Project, resource_id: str):
    cloud = project.cloud()
    try:
        return cloud.get(resource_id)
    finally:
        cloud.close()


def jobs_root(project: Project) -> Path:
    return project.cloud_path / "jobs"


# -- validate -------------------------------------------------------------------------------------

def test_validate_rejects_hyperparameters_outside_azures_ranges(project: Project) -> None:
    """epochs 11 (Azure: 1-10), batch_size 0 (1-32) and learning_rate_multiplier 20 (0-10) are
    each an error at the line of the value, naming the field."""
    finetune_project(project, epochs=11, batch_size=0, multiplier=20)
    result = project.cli("validate")
    assert result.code == 1, result
    for field, needle, bound in (("epochs", "      epochs: 11", "less than or equal to 10"),
                                 ("batch_size", "      batch_size: 0", "greater than or equal to 1"),
                                 ("learning_rate_multiplier", "      learning_rate_multiplier: 20",
                                  "less than or equal to 10")):
        line = line_of(project, needle)
        pattern = rf"foundry\.yaml:{line}:\d+: error: {JOB}: hyperparameters\.{field}: .*{bound}"
        assert re.search(pattern, result.stderr), (pattern, result.stderr)
    assert "3 error(s)" in result.stderr
    assert project.cloud_ids() == set()


def test_validate_suggests_the_base_model_meant(project: Project) -> None:
    """A misspelt catalog name is an error at its line with a did-you-mean."""
    finetune_project(project, base_model="SmolLM2-135M-Instruckt")
    result = project.cli("validate")
    assert result.code == 1, result
    line = line_of(project, "base_model: SmolLM2-135M-Instruckt")
    assert (f"foundry.yaml:{line}:17: error: {JOB}: base_model: unknown base model 'SmolLM2-135M-Instruckt'; "
            f"did you mean '{BASE_MODEL}'?") in result.stderr, result


def test_validate_refuses_training_data_of_another_project(project: Project) -> None:
    """A job can read only data assets of its own project: training_data naming a Dataset of
    another project is an error at the training_data line."""
    finetune_project(project, job_project="other-project")
    with open(project.manifest, "a") as manifest:
        manifest.write("\n  - kind: Project\n    name: other-project\n    hub: ft-hub\n")
    result = project.cli("validate")
    assert result.code == 1, result
    line = line_of(project, "training_data: xbox-chat")
    assert (f"foundry.yaml:{line}:20: error: {JOB}: training_data 'xbox-chat' is registered in project "
            "'xbox-support', not 'other-project'") in result.stderr, result
    assert "a job can only read data assets of its own project" in result.stderr


# -- the seed workflow ------------------------------------------------------------------------------

def test_seed_workflow_trains_registers_and_a_new_hyperparameter_is_a_new_run(project: Project, smollm2) -> None:
    """apply trains for real (progress lines, then the registered model); state, `jobs
    list/show/metrics/logs` and the metrics show the run and that the held-out loss fell;
    a second plan has nothing to do. Then a changed hyperparameter plans a replacement with
    the new run's estimate, and apply trains a new job before destroying the old one: new
    job id, model version 2, version 1 and the old job directory gone."""
    finetune_project(project)
    assert project.cli("validate").code == 0

    applied = project.cli("apply", "--auto-approve", timeout=600)
    assert applied.code == 0, applied
    out = applied.stdout
    assert re.search(rf"{JOB}: training started \(pid \d+, log .*train\.log\)", out), out
    progress = re.findall(rf"^{JOB}: (waiting for the training process to start|epoch \d+/2, step \d+/6.*) "
                          r"\[\d+s elapsed\]$", out, re.MULTILINE)
    assert progress, out
    assert f"{JOB}: registered model xbox-agent:1" in out
    assert "Apply complete! Resources: 6 added" in out

    first = record(project)
    assert first is not None and first.status.value == "ready"
    outputs = first.outputs
    assert outputs["status"] == "Completed" and outputs["step"] == outputs["total_steps"] == 6
    assert outputs["model"]["name"] == "xbox-agent" and outputs["model"]["version"] == "1"
    assert outputs["model"]["id"].endswith("/models/xbox-agent/versions/1")
    job_dir = Path(outputs["job_dir"])
    assert (job_dir / "model" / "adapter_model.safetensors").is_file() and outputs["report"]
    assert model_versions(project) == [outputs["model"]["id"]]

    listed = project.cli("jobs", "list")
    assert listed.code == 0, listed
    assert re.search(r"^xbox-agent\s+Completed\s+2/2\s+6/6\s+\d+\.\d{4}\s+[\d,]+\s+xbox-agent:1\s*$",
                     listed.stdout, re.MULTILINE), listed
    shown = project.cli("jobs", "show", "xbox-agent")
    assert shown.code == 0, shown
    assert f"{JOB}  Completed" in shown.stdout and f"job_dir = {job_dir}" in shown.stdout
    assert "model = xbox-agent:1 (" in shown.stdout and "report = " in shown.stdout
    assert "epoch 0 (step 0): valid_loss" in shown.stdout and "epoch 2 (step 6): train_loss" in shown.stdout

    metrics = project.cli("jobs", "metrics", "xbox-agent", "--format", "json")
    assert metrics.code == 0, metrics
    rows = json.loads(metrics.stdout)
    assert [r["step"] for r in rows if r["type"] == "step"] == [1, 2, 3, 4, 5, 6]
    before = next(r["valid_loss"] for r in rows if r["type"] == "eval")
    after = [r["valid_loss"] for r in rows if r["type"] == "epoch"][-1]
    assert after < 0.8 * before, (before, after)
    assert outputs["metrics"]["valid_loss"] == pytest.approx(after)
    table = project.cli("jobs", "metrics", "xbox-agent")
    assert table.code == 0 and len(re.findall(r"^step\s", table.stdout, re.MULTILINE)) == 6, table
    results = project.cli("jobs", "metrics", "xbox-agent", "--format", "csv")
    assert results.stdout.splitlines()[0].startswith("step,epoch,train_loss,")
    logs = project.cli("jobs", "logs", "xbox-agent")
    assert logs.code == 0 and "before training: validation loss" in logs.stdout, logs
    assert "checkpoint epoch-2 saved" in logs.stdout and "completed: 6 steps" in logs.stdout
    missing = project.cli("jobs", "show", "xbox-agnet")
    assert missing.code != 0 and "did you mean 'xbox-agent'" in missing.output

    assert project.cli("plan", "--detailed-exitcode").code == 0

    # A new hyperparameter is a new run, created before the old one is destroyed.
    project.edit("learning_rate_multiplier: 2", "learning_rate_multiplier: 3")
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert re.search(rf"# {JOB} must be replaced \(hyperparameters\.learning_rate_multiplier forces "
                     r"replacement, new training run: [\d,]+ tokens x 2 epoch\(s\), est\. ", plan.stdout), plan
    assert f"-/+ {JOB}" in plan.stdout

    replaced = project.cli("apply", "--auto-approve", timeout=600)
    assert replaced.code == 0, replaced
    out = replaced.stdout
    assert f"{JOB}: registered model xbox-agent:2" in out
    created = out.index(f"{JOB}: Creation complete")
    assert created < out.index(f"{JOB}: Destroying...")
    second = record(project)
    assert second.backend_id != first.backend_id
    assert second.outputs["model"]["version"] == "2"
    assert cloud_get(project, first.backend_id) is None
    assert cloud_get(project, outputs["model"]["id"]) is None  # version 1 went with its job
    assert model_versions(project) == [second.outputs["model"]["id"]]
    assert not job_dir.exists() and Path(second.outputs["job_dir"]).is_dir()
    assert project.cli("plan", "--detailed-exitcode").code == 0


# -- Azure's preconditions --------------------------------------------------------------------------

def test_without_the_role_apply_fails_before_any_training(project: Project, smollm2) -> None:
    """With the Azure AI Developer role held by someone else, creating the job fails with
    AuthorizationFailed (naming the role to add) before anything trains: no job directory,
    no process, no model."""
    finetune_project(project, with_job=False)
    assert project.cli("apply", "--auto-approve").code == 0  # the data is uploaded with the role
    with open(project.manifest, "a") as manifest:
        text = job_manifest()
        manifest.write(text[text.index("\n  - kind: FineTuneJob"):])
    project.edit("    principal: ${var.principal}\n    role:", "    principal: someone-else@contoso.com\n    role:")

    failed = project.cli("apply", "--auto-approve")
    assert failed.code == 1, failed
    assert f"{JOB} (create): AuthorizationFailed" in failed.stderr
    assert "Microsoft.MachineLearningServices/workspaces/jobs/write" in failed.stderr
    assert "Azure AI Developer" in failed.stderr
    assert "training started" not in failed.stdout
    assert not jobs_root(project).exists() or not any(jobs_root(project).rglob("*"))
    assert project.state_rows().get(JOB) != "ready"
    assert model_versions(project) == []


def test_without_microsoft_network_apply_says_to_register_it(project: Project, smollm2) -> None:
    """Without a ProviderRegistration for Microsoft.Network the job fails with
    MissingSubscriptionRegistration, and the hint says to add one; nothing trains."""
    finetune_project(project, network=False)
    failed = project.cli("apply", "--auto-approve")
    assert failed.code == 1, failed
    assert (f"{JOB} (create): MissingSubscriptionRegistration: fine-tuning needs the Microsoft.Network "
            "resource provider registered") in failed.stderr
    assert "hint: add `- kind: ProviderRegistration` with `namespace: Microsoft.Network`" in failed.stderr
    assert "training started" not in failed.stdout
    assert not jobs_root(project).exists() or not any(jobs_root(project).rglob("*"))


# -- detached runs: kill and resume, cancel ---------------------------------------------------------

def start_detached(project: Project, **job) -> tuple[JobDir, dict]:
    """`apply --no-wait`: returns once the job process is started; the job dir from state."""
    finetune_project(project, **job)
    started = time.monotonic()
    applied = project.cli("apply", "--auto-approve", "--no-wait")
    elapsed = time.monotonic() - started
    assert applied.code == 0, applied
    assert "training started (pid" in applied.stdout and "registered model" not in applied.stdout
    assert elapsed < 30, elapsed  # it did not wait for the training
    outputs = record(project).outputs
    assert outputs["status"] in ("Queued", "Running") and outputs["model"] is None
    directory = JobDir(Path(outputs["job_dir"]))
    status = directory.read_status()
    STARTED.append((status["pid"], status.get("pid_start")))
    assert pid_alive(status["pid"], status.get("pid_start"))
    return directory, status


def test_a_killed_job_reads_interrupted_and_apply_resumes_it(project: Project, smollm2) -> None:
    """apply --no-wait starts the job; SIGKILL its process after the epoch-1 checkpoint. The
    job then reads Interrupted, plan says apply resumes it from its last checkpoint, and apply
    does: the log says 'resumed from epoch-1', no step is trained twice from the start, the
    job completes with all its steps and its model is registered."""
    directory, status = start_detached(project, batch_size=2)  # 6 steps an epoch, 12 in all
    wait_for(lambda: directory.state() == "Running", 60, "the job to run")
    listed = project.cli("jobs", "list")
    assert re.search(r"^xbox-agent\s+Running\s", listed.stdout, re.MULTILINE), listed

    wait_for(lambda: (directory.checkpoints / "epoch-1" / "checkpoint.done").exists(), 360,
             "the epoch-1 checkpoint")
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(status["pid"], status.get("pid_start")), 30, "the process to die")
    assert not (directory.checkpoints / "epoch-2").exists()
    assert directory.state() == "Interrupted"

    plan = project.cli("plan")
    assert plan.code == 0, plan
    assert f"# {JOB} will be updated in place (training is interrupted; apply resumes it from its " \
           "last checkpoint)" in plan.stdout, plan
    assert 'status = "Interrupted" -> "Completed"' in plan.stdout
    listed = project.cli("jobs", "list")
    assert re.search(r"^xbox-agent\s+Interrupted\s+[12]/2\s", listed.stdout, re.MULTILINE), listed

    resumed = project.cli("apply", "--auto-approve", timeout=600)
    assert resumed.code == 0, resumed
    assert f"{JOB}: resuming from epoch-1" in resumed.stdout
    assert f"{JOB}: registered model xbox-agent:1" in resumed.stdout
    log = directory.log.read_text()
    assert "resumed from epoch-1: epoch 1, step 6" in log
    assert log.count("before training: validation loss") == 1
    steps = [r["step"] for r in directory.read_metrics("step")]
    assert steps.count(1) == 1 and steps[-1] == 12 and set(steps) == set(range(1, 13)), steps
    final = directory.read_status()
    assert final["state"] == "Completed" and final["step"] == final["total_steps"] == 12
    assert final["pid"] != status["pid"]
    assert record(project).outputs["model"]["version"] == "1"
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_destroy_cancels_a_running_job(project: Project, smollm2) -> None:
    """Destroying a job that is training stops its process (SIGTERM, between steps), removes
    its directory, and no model is registered."""
    directory, status = start_detached(project, epochs=3, batch_size=2)
    wait_for(lambda: (directory.read_status().get("step") or 0) >= 1, 360, "the first training step")
    assert directory.read_status()["step"] < 18

    started = time.monotonic()
    destroyed = project.cli("destroy", "--auto-approve", "--target", JOB, timeout=120)
    assert destroyed.code == 0, destroyed
    assert f"{JOB}: canceling the running job (pid {status['pid']})" in destroyed.stdout
    assert time.monotonic() - started < 50  # it stopped on SIGTERM, not the SIGKILL after 60 s
    assert not pid_alive(status["pid"], status.get("pid_start"))
    assert not directory.path.exists()
    assert record(project) is None
    assert model_versions(project) == []
    assert record(project, "Dataset.xbox-chat") is not None  # only the job was targeted
