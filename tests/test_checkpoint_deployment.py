"""A checkpoint of a FineTuneJob deployed through the real CLI on the local backend.

One tiny SmolLM2 fine-tune (2 epochs, 16 conversations) is trained once; the deployment then
serves `checkpoint: epoch-1`, moves to `best(valid_loss)` without retraining, and refuses at
plan/validate time checkpoints that do not exist, naming those that do.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest
from conftest import Project
from test_finetune_job import finetune_project, line_of, smollm2  # noqa: F401 (a fixture)

from foundryctl.training.jobdir import JobDir, pid_alive

DEPLOYMENT = """
  - kind: Deployment
    name: xbox-bot
    project: xbox-support
    model:
      job: xbox-agent
      checkpoint: epoch-1
    serving:
      max_batch_size: 4
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, smollm2) -> Project:  # noqa: F811
    project = Project(tmp_path_factory.mktemp("checkpoint"))
    finetune_project(project, epochs=2)
    with open(project.manifest, "a") as manifest:
        manifest.write(DEPLOYMENT)
    result = project.cli("apply", "--auto-approve", timeout=1200)
    assert result.code == 0, result
    yield project
    project.cli("destroy", "--auto-approve", timeout=300)
    for status_file in [*project.cloud_path.glob("endpoints/*/*/status.json"),
                        *project.cloud_path.glob("jobs/*/*/status.json")]:
        status = json.loads(status_file.read_text())
        if status.get("pid") and pid_alive(status["pid"], status.get("pid_start")):
            os.killpg(status["pid"], signal.SIGKILL)


def job_dir(project: Project) -> JobDir:
    (path,) = project.cloud_path.glob("jobs/*/xbox-agent-*")
    return JobDir(path)


def served(project: Project) -> dict:
    (config,) = project.cloud_path.glob("endpoints/*/xbox-bot/config.json")
    return json.loads(config.read_text())


def answer(project: Project) -> str:
    config = served(project)
    keys = json.loads(project.cli("deployments", "keys", "xbox-bot", "--format", "json").stdout)
    request = urllib.request.Request(
        f"http://127.0.0.1:{config['port']}/v1/chat/completions", method="POST",
        data=json.dumps({"messages": [{"role": "user", "content": "My controller light blinks red."}],
                         "max_tokens": 8}).encode(),
        headers={"Content-Type": "application/json", "api-key": keys["key1"]})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (127.0.0.1)
        return json.loads(response.read())["choices"][0]["message"]["content"]


def training_trace(project: Project) -> tuple[bytes, bytes, str]:
    """What any training would change: the metrics, the log, the job's backend object."""
    directory = job_dir(project)
    record = project.state().get("FineTuneJob.xbox-agent")
    return directory.metrics.read_bytes(), directory.log.read_bytes(), record.backend_id


def lowest_valid_loss(project: Project) -> str:
    epochs = [row for row in job_dir(project).read_metrics("epoch") if "valid_loss" in row]
    return f"epoch-{min(epochs, key=lambda row: row['valid_loss'])['epoch']}"


def test_serves_the_named_checkpoint(deployed: Project) -> None:
    config = served(deployed)
    assert config["checkpoint"] == "epoch-1"
    assert config["adapter_dir"] == str(job_dir(deployed).checkpoints / "epoch-1" / "adapter")
    assert answer(deployed).strip()
    shown = deployed.cli("deployments", "show", "xbox-bot")
    assert shown.code == 0, shown
    assert "checkpoint = epoch-1" in shown.stdout
    # The served checkpoint is pinned in the job directory, with its selector.
    assert [(p["checkpoint"], p["selector"]) for p in job_dir(deployed).read_pins()] == [("epoch-1", "epoch-1")]
    again = deployed.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again  # resolved the same way: nothing to do


def test_switching_to_best_valid_loss_does_not_retrain(deployed: Project) -> None:
    before = training_trace(deployed)
    best = lowest_valid_loss(deployed)
    deployed.edit("checkpoint: epoch-1", "checkpoint: best(valid_loss)")
    plan = deployed.cli("plan")
    assert plan.code == 0, plan
    changed = [line.strip() for line in plan.stdout.splitlines() if line.strip()[:1] in "~+-"]
    assert not [line for line in changed if line.split()[1:2] and line.split()[1].startswith("FineTuneJob.")], plan
    assert "~ Deployment.xbox-bot" in plan.stdout
    if best != "epoch-1":
        assert f"model xbox-agent@epoch-1 -> xbox-agent@{best} (no retraining)" in plan.stdout
    result = deployed.cli("apply", "--auto-approve", timeout=600)
    assert result.code == 0, result
    assert training_trace(deployed) == before  # no training ran, the job is the same object
    config = served(deployed)
    assert config["checkpoint"] == best
    assert config["adapter_dir"] == str(job_dir(deployed).checkpoints / best / "adapter")
    assert answer(deployed).strip()
    assert f"checkpoint = {best}" in deployed.cli("deployments", "show", "xbox-bot").stdout
    assert [(p["checkpoint"], p["selector"]) for p in job_dir(deployed).read_pins()] == [
        (best, "best(valid_loss)")]
    assert deployed.cli("plan", "--detailed-exitcode").code == 0


def test_a_checkpoint_that_does_not_exist_is_refused_with_the_existing_ones(deployed: Project) -> None:
    current = "checkpoint: best(valid_loss)"
    deployed.edit(current, "checkpoint: step-999")
    try:
        plan = deployed.cli("plan")
        assert plan.code != 0
        line = line_of(deployed, "checkpoint: step-999")
        assert f"foundry.yaml:{line}:" in plan.output, plan
        assert "no checkpoint step-999" in plan.output and "epoch-1, epoch-2" in plan.output, plan
        assert "This is a bug" not in plan.output
        deployed.edit("checkpoint: step-999", "checkpoint: epoch-5")
        validate = deployed.cli("validate")
        assert validate.code != 0
        assert "trains 2 epoch(s), so it has no checkpoint epoch-5" in validate.output, validate
        assert f"foundry.yaml:{line_of(deployed, 'checkpoint: epoch-5')}:" in validate.output
    finally:
        text = deployed.manifest.read_text()
        deployed.manifest.write_text(text.replace("checkpoint: step-999", current)
                                     .replace("checkpoint: epoch-5", current))


def test_a_retrain_moves_the_deployment_to_the_new_runs_pick_and_drops_the_old_run(deployed: Project) -> None:
    old_run = job_dir(deployed).path
    deployed.edit("learning_rate_multiplier: 2", "learning_rate_multiplier: 3")
    plan = deployed.cli("plan")
    assert plan.code == 0, plan
    assert "serves checkpoint best(valid_loss) of the new run" in plan.stdout, plan
    result = deployed.cli("apply", "--auto-approve", timeout=1200)
    assert result.code == 0, result
    assert not old_run.exists()  # deleted once nothing served from it
    new_run = job_dir(deployed)
    best = lowest_valid_loss(deployed)
    config = served(deployed)
    assert (config["checkpoint"], config["adapter_dir"]) == (best, str(new_run.checkpoints / best / "adapter"))
    assert [(p["checkpoint"], p["selector"]) for p in new_run.read_pins()] == [(best, "best(valid_loss)")]
    assert answer(deployed).strip()
    assert deployed.cli("plan", "--detailed-exitcode").code == 0
