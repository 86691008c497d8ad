"""Eval-gated promotion through the real CLI on the local backend.

A tiny SmolLM2 fine-tune is scored on its held-out split against the untrained base model and
the model being served. The first apply trains, evaluates and deploys because the gate passes;
a retrain that learns almost nothing (a tiny learning rate, one epoch) fails the gate against
the serving model, so apply exits non-zero, the old model keeps answering on the endpoint, and
the failed candidate's results stay inspectable with `foundryctl evals show`.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest
from conftest import Project
from test_finetune_job import finetune_project, smollm2  # noqa: F401 (a fixture)

from foundryctl.training.jobdir import pid_alive

GATED = """
  - kind: Evaluation
    name: heldout
    project: xbox-support
    target: {job: xbox-agent}
    data: xbox-chat                    # its held-out split
    metrics: [rouge_l, token_f1, ends_with_eos, mean_length_tokens]
    baseline: {base: true, serving: xbox-bot}
    generation: {max_tokens: 40}
    gate:
      - rouge_l >= baseline.base + 0.05
      - rouge_l >= baseline.serving - 0.02

  - kind: Deployment
    name: xbox-bot
    project: xbox-support
    model: {job: xbox-agent}
    promote_when: [Evaluation.heldout]
    serving:
      max_batch_size: 4
"""


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, smollm2) -> Project:  # noqa: F811
    project = Project(tmp_path_factory.mktemp("gated"))
    finetune_project(project, epochs=2)
    with open(project.manifest, "a") as manifest:
        manifest.write(GATED)
    yield project
    project.cli("destroy", "--auto-approve", timeout=300)
    for status_file in [*project.cloud_path.glob("endpoints/*/*/status.json"),
                        *project.cloud_path.glob("jobs/*/*/status.json")]:
        status = json.loads(status_file.read_text())
        if status.get("pid") and pid_alive(status["pid"], status.get("pid_start")):
            os.killpg(status["pid"], signal.SIGKILL)


def served(project: Project) -> dict:
    (config,) = project.cloud_path.glob("endpoints/*/xbox-bot/config.json")
    return json.loads(config.read_text())


def ask(project: Project) -> str:
    keys = json.loads(project.cli("deployments", "keys", "xbox-bot", "--format", "json").stdout)
    request = urllib.request.Request(
        f"http://127.0.0.1:{served(project)['port']}/v1/chat/completions", method="POST",
        data=json.dumps({"messages": [{"role": "user", "content": "My controller light blinks red."}],
                         "max_tokens": 8}).encode(),
        headers={"Content-Type": "application/json", "api-key": keys["key1"]})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (127.0.0.1)
        return json.loads(response.read())["choices"][0]["message"]["content"]


def results(project: Project) -> dict:
    shown = project.cli("evals", "show", "heldout", "--json")
    assert shown.code == 0, shown
    return json.loads(shown.stdout)


def test_a_passing_gate_promotes_the_first_model(gated: Project) -> None:
    plan = gated.cli("plan")
    assert plan.code == 0, plan
    assert "+ Evaluation.heldout" in plan.stdout
    assert "gated on Evaluation.heldout (not yet run for this model)" in plan.stdout, plan
    result = gated.cli("apply", "--auto-approve", timeout=1500)
    assert result.code == 0, result
    out = results(gated)
    assert out["examples"] == 4  # the 25% split of 16 conversations
    assert set(out["values"]) >= {"rouge_l", "token_f1", "ends_with_eos", "mean_length_tokens"}
    assert out["gate"]["passed"] is True
    # The fine-tune learnt the answers: it beats the untrained base model by a margin.
    assert out["values"]["rouge_l"] >= out["baselines"]["base"]["rouge_l"] + 0.05
    assert "serving" not in out["baselines"]  # nothing was served yet: that condition is skipped
    assert any("skipped" in c["text"] for c in out["gate"]["conditions"])
    assert served(gated)["model_id"].endswith(out["model"].split(":")[0] + "/versions/1")
    assert ask(gated).strip()
    again = gated.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again  # scored and promoted: nothing to do, nothing re-run


def test_a_retrain_that_fails_the_gate_keeps_the_old_model_serving(gated: Project) -> None:
    before = served(gated)
    old_run = results(gated)["target_version"]
    gated.edit("learning_rate_multiplier: 2", "learning_rate_multiplier: 0.01")
    gated.edit("epochs: 2", "epochs: 1")
    plan = gated.cli("plan")
    assert plan.code == 0, plan
    assert "gated on Evaluation.heldout (not yet run for this model)" in plan.stdout, plan
    result = gated.cli("apply", "--auto-approve", timeout=1500)
    assert result.code != 0, result
    assert "failed its gate" in result.output and "current model keeps serving" in result.output, result
    assert "This is a bug" not in result.output
    # The old model still answers, from the same server and model.
    after = served(gated)
    assert (after["model_id"], after["adapter_dir"]) == (before["model_id"], before["adapter_dir"])
    assert ask(gated).strip()
    # The failed candidate is inspectable: its results, its baselines, its examples.
    out = results(gated)
    assert out["target_version"] != old_run and out["gate"]["passed"] is False
    assert out["values"]["rouge_l"] < out["baselines"]["serving"]["rouge_l"] - 0.02
    shown = gated.cli("evals", "show", "heldout", "--examples", "2")
    assert shown.code == 0, shown
    assert "FAILED" in shown.stdout and "expected:" in shown.stdout and "answer:" in shown.stdout
    # The next plan shows the gate's result against the serving model, in text and Markdown.
    plan = gated.cli("plan")
    assert "Evaluation.heldout gate FAILED" in plan.stdout, plan
    markdown = gated.cli("plan", "--format", "markdown")
    assert "### Promotion gates" in markdown.stdout and "baseline.serving" in markdown.stdout, markdown
    # ... and apply refuses again without running anything anew.
    again = gated.cli("apply", "--auto-approve", timeout=600)
    assert again.code != 0 and "failed its gate" in again.output, again
    assert served(gated)["model_id"] == before["model_id"]
