"""A deployed model's retrain, interrupted every way a week-one user interrupts it, through
the real CLI: Ctrl-C (once, then twice), SIGKILL of apply, SIGKILL of the trainer, and
`--no-wait`. After each, ONE apply converges (the next plan is empty), and a client calling
the endpoint the whole time never fails and sees the old model until the new one is swapped in.

One project for the module: trained and deployed once, then retrained by each test with a
new learning-rate multiplier (a new run: the job is replaced, the deployment follows it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import Project, cli_env, start_cli
from test_finetune_job import finetune_project, record, smollm2, wait_for  # noqa: F401 (a fixture)

from foundryctl.training.jobdir import JobDir, pid_alive

JOB = "FineTuneJob.xbox-agent"
DEPLOYMENT_ADDRESS = "Deployment.xbox-bot"
DEPLOYMENT = """
  - kind: Deployment
    name: xbox-bot
    project: xbox-support
    model: {job: xbox-agent}
    serving:
      max_batch_size: 4
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, smollm2) -> Iterator[Project]:  # noqa: F811
    pytest.importorskip("openai")
    project = Project(tmp_path_factory.mktemp("interruptions"))
    # 3 epochs of 6 steps: long enough on a CPU to be interrupted in the middle.
    finetune_project(project, epochs=3, batch_size=2, multiplier=1)
    with open(project.manifest, "a") as manifest:
        manifest.write(DEPLOYMENT)
    result = project.cli("apply", "--auto-approve", timeout=900)
    assert result.code == 0, result
    project.multiplier = 1  # type: ignore[attr-defined]
    yield project
    project.cli("destroy", "--auto-approve", timeout=300)
    for status_file in [*project.cloud_path.glob("endpoints/*/*/status.json"),
                        *project.cloud_path.glob("jobs/*/*/status.json")]:
        status = json.loads(status_file.read_text())
        if status.get("pid") and pid_alive(status["pid"], status.get("pid_start")):
            os.killpg(status["pid"], signal.SIGKILL)


def retrain(project: Project) -> None:
    """A new learning-rate multiplier: a new training run the deployment will follow."""
    project.runs_before = set(_run_dirs(project))  # type: ignore[attr-defined]
    old = project.multiplier  # type: ignore[attr-defined]
    project.multiplier = old + 1  # type: ignore[attr-defined]
    project.edit(f"learning_rate_multiplier: {old}\n", f"learning_rate_multiplier: {old + 1}\n")


def served_model(project: Project) -> str:
    return record(project, DEPLOYMENT_ADDRESS).outputs["model_id"]


def _run_dirs(project: Project) -> list[Path]:
    return list((project.cloud_path / "jobs").glob("*/xbox-agent-*"))


def new_run(project: Project) -> JobDir | None:
    """The job directory of the run being trained now: the one the last retrain's apply made
    (not the newest by mtime: writing into the old run's directory would make it look new).
    None until apply has made it."""
    before = getattr(project, "runs_before", None)
    runs = _run_dirs(project)
    if before is None:  # no retrain yet: the only run there is
        return JobDir(runs[0]) if runs else None
    made = [d for d in runs if d not in before]
    return JobDir(made[-1]) if made else None


def training_step(directory: JobDir | None, at_least: int) -> bool:
    if directory is None:
        return False
    try:
        return (directory.read_status().get("step") or 0) >= at_least and directory.state() == "Running"
    except FileNotFoundError:  # not written yet
        return False




def interrupted_apply(project: Project, interrupt: Callable[[subprocess.Popen], None], *args: str,
                      timeout: float = 60) -> tuple[subprocess.Popen, str, str]:
    """Start `apply ARGS` (default: the manifest, auto-approved), let the new run train two
    steps, `interrupt` it, and wait for apply to end: (process, stdout, stderr)."""
    apply = start_cli("apply", *args, cwd=project.root) if args else project.start("apply", "--auto-approve")
    try:
        wait_for(lambda: training_step(new_run(project), 2), 600, "the new run to train")
        interrupt(apply)
        out, err = apply.communicate(timeout=timeout)
    finally:
        if apply.poll() is None:
            apply.kill()
    return apply, out, err


@contextmanager
def probing(project: Project) -> Iterator[dict]:
    """Call the endpoint nonstop (a chat completion, then which model serves); yields what
    it saw: `models` in order, `failures`."""
    import openai

    endpoint = record(project, DEPLOYMENT_ADDRESS).outputs["endpoint"]
    keys = json.loads(project.cli("deployments", "keys", "xbox-bot", "--format", "json").stdout)
    client = openai.OpenAI(base_url=endpoint, api_key=keys["key1"], max_retries=0, timeout=120)
    seen: dict = {"models": [], "failures": [], "answers": 0}
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            try:
                client.chat.completions.create(model="xbox-bot", max_tokens=3,
                                               messages=[{"role": "user", "content": "Hi"}])
                seen["answers"] += 1
                model = client.models.list().data[0].model_dump()["root"]
                if not seen["models"] or seen["models"][-1] != model:
                    seen["models"].append(model)
            except Exception as exc:  # noqa: BLE001 - every failure counts
                seen["failures"].append(repr(exc))
            stop.wait(0.3)

    caller = threading.Thread(target=keep_calling, daemon=True)
    caller.start()
    try:
        yield seen
    finally:
        stop.set()
        caller.join(timeout=120)


def converges(project: Project, seen: dict, old_model: str) -> None:
    """One apply finishes the retrain: exit 0, the endpoint on a new model, the old model
    gone, nothing deposed left, and the next plan is empty."""
    applied = project.cli("apply", "--auto-approve", timeout=900)
    assert applied.code == 0, applied
    assert "This is a bug" not in applied.output
    new_model = served_model(project)
    assert new_model != old_model
    assert not [a for a in project.state_rows() if "#deposed" in a], project.state_rows()
    cloud = project.cloud()
    try:
        assert cloud.get(old_model) is None and cloud.get(new_model) is not None
    finally:
        cloud.close()
    again = project.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again
    time.sleep(1.0)  # the prober sees the swapped-in model
    assert seen["answers"] >= 3 and not seen["failures"], seen["failures"][:3]
    assert seen["models"][0] == old_model and seen["models"][-1] == new_model, seen["models"]
    assert len(seen["models"]) == 2, seen["models"]  # old, then new: never anything else


def test_ctrl_c_tells_what_winds_down_and_one_apply_converges(deployed: Project) -> None:
    old_model = served_model(deployed)
    retrain(deployed)
    with probing(deployed) as seen:
        trainer: dict = {}

        def ctrl_c(apply: subprocess.Popen) -> None:
            trainer.update(new_run(deployed).read_status())
            trainer["interrupted_at"] = time.monotonic()
            apply.send_signal(signal.SIGINT)

        apply, out, err = interrupted_apply(deployed, ctrl_c)
        started = trainer["interrupted_at"]
        # It stopped waiting at once: training runs on, detached.
        assert time.monotonic() - started < 30
        assert apply.returncode == 130, (out, err)
        assert "Interrupt received." in err, err
        assert f"{JOB} (create): training keeps running, detached" in err, err
        assert pid_alive(trainer["pid"], trainer.get("pid_start"))
        assert served_model(deployed) == old_model
        plan = deployed.cli("plan")
        assert plan.code == 0, plan
        assert "outside of foundryctl" not in plan.output and "interrupted while" not in plan.output, plan
        assert "training in progress" in plan.output, plan
        converges(deployed, seen, old_model)


def test_two_ctrl_c_exit_at_once_and_one_apply_converges(project: Project) -> None:
    """The second Ctrl-C does not wait for what is still running (here: slow control-plane
    calls that no interrupt shortens); state stays consistent and one apply converges."""
    project.quickstart(api_latency=5.0)
    apply = project.start("apply", "--auto-approve")
    try:
        wait_for(lambda: "Hub.ft-hub" in project.state_rows(), 120, "the hub to be started")
        apply.send_signal(signal.SIGINT)
        time.sleep(0.5)
        apply.send_signal(signal.SIGINT)
        started = time.monotonic()
        out, err = apply.communicate(timeout=30)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert time.monotonic() - started < 4  # within the 5 s each control-plane call takes
    assert apply.returncode == 130, (out, err)
    assert "Interrupt received." in err and "Two interrupts received: exiting now." in err, err
    assert "Still running: Hub.ft-hub (create)" in err, err
    assert "This is a bug" not in err and "Traceback" not in err, err
    project.edit("api_latency: 5.0", "api_latency: 0.0")
    applied = project.cli("apply", "--auto-approve", timeout=300)
    assert applied.code == 0, applied
    assert project.cli("plan", "--detailed-exitcode").code == 0


def test_a_killed_apply_is_finished_by_one_apply(deployed: Project) -> None:
    old_model = served_model(deployed)
    retrain(deployed)
    with probing(deployed) as seen:
        interrupted_apply(deployed, lambda apply: apply.kill(), timeout=30)
        assert served_model(deployed) == old_model
        converges(deployed, seen, old_model)


def test_a_killed_trainer_fails_apply_and_one_apply_resumes_and_converges(deployed: Project) -> None:
    old_model = served_model(deployed)
    retrain(deployed)
    with probing(deployed) as seen:
        def kill_trainer(apply: subprocess.Popen) -> None:
            os.killpg(new_run(deployed).read_status()["pid"], signal.SIGKILL)

        apply, out, err = interrupted_apply(deployed, kill_trainer, timeout=120)
        assert apply.returncode == 1, (out, err)
        assert "training interrupted" in err, err
        assert served_model(deployed) == old_model
        converges(deployed, seen, old_model)


def test_no_wait_exits_0_keeps_the_old_model_and_the_jobs_commands_show_the_new_run(deployed: Project) -> None:
    old_model = served_model(deployed)
    retrain(deployed)
    with probing(deployed) as seen:
        started = deployed.cli("apply", "--auto-approve", "--no-wait", timeout=300)
        assert started.code == 0, started
        assert "not waited for" in started.stdout, started
        assert "Left for the next apply" in started.stdout and "Deployment.xbox-bot (update)" in started.stdout
        assert "ModelNotReady" not in started.output
        assert served_model(deployed) == old_model
        directory = new_run(deployed)

        plan = deployed.cli("plan")
        assert plan.code == 0, plan
        assert "training in progress; the deployment moves when it finishes" in plan.output, plan
        assert "outside of foundryctl" not in plan.output and "interrupted while" not in plan.output, plan

        # jobs list/show/logs name the run being trained, and list the old one as deposed.
        listed = deployed.cli("jobs", "list")
        assert re.search(r"^xbox-agent\s+(Queued|Running|Completed)\s", listed.stdout, re.MULTILINE), listed
        assert re.search(r"^xbox-agent \(deposed\)\s+Completed\s", listed.stdout, re.MULTILINE), listed
        shown = deployed.cli("jobs", "show", "xbox-agent")
        assert shown.code == 0 and str(directory.path) in shown.stdout, shown
        # The hint apply printed works as printed, and follows the new run to its end.
        hint = next(line.split("follow it: ", 1)[1] for line in started.stdout.splitlines() if "follow it: " in line)
        assert hint.startswith("foundryctl jobs logs xbox-agent --follow")
        follow = subprocess.run([sys.executable, "-m", *hint.split()], cwd=deployed.root, capture_output=True,
                                text=True, timeout=900, env=cli_env())
        assert follow.returncode == 0, follow.stderr
        assert directory.log.read_text().strip().splitlines()[-1] in follow.stdout
        assert directory.state() == "Completed"
        assert served_model(deployed) == old_model  # nothing moved without an apply
        converges(deployed, seen, old_model)


def test_saved_plan_of_a_replacement_resumed_after_ctrl_c(deployed: Project) -> None:
    """The issue's reproduction: plan --out, apply the plan, Ctrl-C in training, apply again."""
    old_model = served_model(deployed)
    retrain(deployed)
    assert deployed.cli("plan", "--out", "retrain.plan").code == 0
    with probing(deployed) as seen:
        apply, out, err = interrupted_apply(deployed, lambda apply: apply.send_signal(signal.SIGINT),
                                            "retrain.plan")
        assert apply.returncode == 130, (out, err)
        converges(deployed, seen, old_model)


def test_no_interrupt_path_left_a_stray_process(deployed: Project) -> None:
    """Every run but the served one has finished; no trainer is left running."""
    for status_file in Path(deployed.cloud_path).glob("jobs/*/*/status.json"):
        status = json.loads(status_file.read_text())
        assert not (status.get("pid") and pid_alive(status["pid"], status.get("pid_start"))), status_file
