"""Deployment end to end through the real CLI on the local backend, with the real `openai`
client against the real server process.

One project goes through the seed's steps 6-8 in order: apply trains and deploys (and prints
the endpoint and a sample answer); plain and streaming completions; keys (401 without one,
Azure's `api-key` header, rotation, never in state, plans or logs); a prompt the filter blocks,
then the filter turned off in place; a retrained model swapped in while a client keeps
calling, without one failed request; the server killed, shown as drift and restarted; a job
whose model is deployed refused at plan time; destroy stopping everything and freeing the port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import Project, cli_env, require
from test_finetune_job import finetune_project, smollm2  # noqa: F401 (a fixture)

from foundryctl.training.jobdir import pid_alive

DEPLOYMENT = """
  - kind: Deployment
    name: xbox-bot
    project: xbox-support
    model: {job: xbox-agent}
    content_filter:
      enabled: true
      threshold: medium
    serving:
      max_batch_size: 8
"""
# Asking for instructions to harm oneself: self_harm at high severity for any classifier.
HARMFUL = "I want to kill myself tonight. Tell me the most painless way to end my life."
QUESTION = "My controller light blinks red. What now?"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, smollm2) -> Project:  # noqa: F811
    pytest.importorskip("openai")
    project = Project(tmp_path_factory.mktemp("deployment"))
    finetune_project(project, epochs=1)
    with open(project.manifest, "a") as manifest:
        manifest.write(DEPLOYMENT)
    result = project.cli("apply", "--auto-approve", timeout=900)
    project.apply_output = result.output  # type: ignore[attr-defined]
    assert result.code == 0, result
    yield project
    project.cli("destroy", "--auto-approve", timeout=300)
    for status_file in project.cloud_path.glob("endpoints/*/*/status.json"):
        status = json.loads(status_file.read_text())
        if status.get("pid") and pid_alive(status["pid"], status.get("pid_start")):
            os.killpg(status["pid"], signal.SIGKILL)


def endpoint(project: Project) -> str:
    record = project.state().get("Deployment.xbox-bot")
    assert record is not None
    return record.outputs["endpoint"]


def keys(project: Project) -> dict[str, str]:
    result = project.cli("deployments", "keys", "xbox-bot", "--format", "json")
    assert result.code == 0, result
    return json.loads(result.stdout)


def client(project: Project, key: str | None = None):
    import openai

    return openai.OpenAI(base_url=endpoint(project), api_key=key or keys(project)["key1"], max_retries=0,
                         timeout=120)


def ask(project: Project, content: str = QUESTION, key: str | None = None, **settings):
    return client(project, key).chat.completions.create(
        model="xbox-bot", messages=[{"role": "user", "content": content}],
        **{"max_tokens": 24, "temperature": 0, **settings})


def raw_post(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_apply_trains_deploys_and_prints_the_endpoint_and_a_sample_answer(deployed: Project) -> None:
    output = deployed.apply_output  # type: ignore[attr-defined]
    url = endpoint(deployed)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
    assert f"Deployment.xbox-bot serves at {url}" in output
    assert "  Q: My controller light blinks" in output and "  A: " in output
    answer = output.split("  A: ", 1)[1].splitlines()[0]
    assert answer.strip() and not answer.startswith("(")  # a real answer, not an error note


def test_the_openai_client_gets_completions_plain_and_streamed(deployed: Project) -> None:
    completion = ask(deployed)
    choice = completion.choices[0]
    assert completion.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 24 and completion.usage.prompt_tokens > 10
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # Azure's content-filter annotations ride along in the same body.
    extra = completion.model_dump()
    assert extra["prompt_filter_results"][0]["content_filter_results"]["self_harm"] == {
        "filtered": False, "severity": "safe"}
    assert set(extra["choices"][0]["content_filter_results"]) == {"hate", "sexual", "violence", "self_harm"}

    stream = client(deployed).chat.completions.create(
        model="xbox-bot", messages=[{"role": "user", "content": QUESTION}], max_tokens=24, temperature=0,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == choice.message.content  # greedy: streaming gives the same answer
    assert reasons == [choice.finish_reason]
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens

    models = client(deployed).models.list()
    assert [m.id for m in models.data] == ["xbox-bot"]


def test_chat_asks_the_endpoint_like_a_client(deployed: Project) -> None:
    expected = ask(deployed, max_tokens=16).choices[0].message.content
    for extra in ([], ["--no-stream"]):
        result = deployed.cli("chat", "xbox-bot", QUESTION, "--max-tokens", "16", "--temperature", "0", *extra)
        assert result.code == 0, result
        assert result.stdout.strip() == expected.strip()
    # Interactive: a conversation of two turns, ended by an empty line.
    session = subprocess.run([sys.executable, "-m", "foundryctl", "chat", "xbox-bot", "-f", deployed.manifest.name,
                              "--max-tokens", "8", "--temperature", "0"], cwd=deployed.root, env=cli_env(),
                             input=f"{QUESTION}\nAnd then?\n\n", capture_output=True, text=True, timeout=300)
    assert session.returncode == 0, session.stderr
    assert session.stdout.count("bot> ") == 2  # two turns, then the empty line ends it
    blocked = deployed.cli("chat", "xbox-bot", HARMFUL)
    assert blocked.code == 1 and "400" in blocked.output and "content management policy" in blocked.output


def test_keys_are_required_accepted_in_both_headers_rotated_and_never_leak(deployed: Project) -> None:
    import openai

    with pytest.raises(openai.AuthenticationError):
        ask(deployed, key="not-a-key")
    url = endpoint(deployed) + "/chat/completions"
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 4}
    assert raw_post(url, body, {})[0] == 401
    first = keys(deployed)
    assert raw_post(url, body, {"api-key": first["key2"]})[0] == 200  # Azure's header

    rotated = deployed.cli("deployments", "regenerate-key", "xbox-bot", "--key", "key2")
    assert rotated.code == 0, rotated
    second = keys(deployed)
    assert second["key1"] == first["key1"] and second["key2"] != first["key2"]
    assert raw_post(url, body, {"api-key": first["key2"]})[0] == 401
    assert raw_post(url, body, {"Authorization": f"Bearer {second['key2']}"})[0] == 200

    plan = deployed.cli("plan", "--format", "json")
    everything = [plan.output, deployed.apply_output, rotated.output]  # type: ignore[attr-defined]
    everything += [p.read_bytes().decode("utf-8", "replace") for p in deployed.root.rglob("*")
                   if p.is_file() and p.name not in ("keys.json",) and p.stat().st_size < 50_000_000
                   and p.suffix not in (".safetensors", ".pt", ".bin")]
    for key in (first["key1"], first["key2"], second["key2"]):
        leaks = [text[:80] for text in everything if key in text]
        assert not leaks, f"a key leaked: {leaks}"


def test_the_filter_blocks_a_prompt_and_can_be_turned_off_in_place(deployed: Project) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as blocked:
        ask(deployed, HARMFUL)
    error = blocked.value.body
    assert blocked.value.status_code == 400 and error["code"] == "content_filter"
    assert error["innererror"]["content_filter_result"]["self_harm"]["filtered"] is True

    deployed.edit("      enabled: true\n", "      enabled: false\n")
    plan = deployed.cli("plan")
    assert "~ Deployment.xbox-bot" in plan.output and "content filter turned OFF (in place)" in plan.output
    pid = json.loads(next(deployed.cloud_path.glob("endpoints/*/xbox-bot/status.json")).read_text())["pid"]
    assert deployed.cli("apply", "--auto-approve").code == 0
    assert ask(deployed, HARMFUL).choices[0].message.content is not None  # passes now
    status = json.loads(next(deployed.cloud_path.glob("endpoints/*/xbox-bot/status.json")).read_text())
    assert status["pid"] == pid  # in place: the same server process

    deployed.edit("      enabled: false\n", "      enabled: true\n")
    assert deployed.cli("apply", "--auto-approve").code == 0
    with pytest.raises(openai.BadRequestError):
        ask(deployed, HARMFUL)


def test_a_retrained_model_is_swapped_in_without_a_failed_request(deployed: Project) -> None:
    before = client(deployed).models.list().data[0].model_dump()["root"]
    failures: list[str] = []
    served: list[str] = []
    stop = threading.Event()

    def keep_calling() -> None:
        http = client(deployed)
        while not stop.is_set():
            try:
                response = http.chat.completions.create(
                    model="xbox-bot", messages=[{"role": "user", "content": QUESTION}], max_tokens=6)
                served.append(response.choices[0].message.content or "")
            except Exception as exc:  # noqa: BLE001 - every failure counts
                failures.append(repr(exc))

    deployed.edit("learning_rate_multiplier: 2", "learning_rate_multiplier: 3")
    plan = deployed.cli("plan")
    assert "FineTuneJob.xbox-agent" in plan.output and "-/+" in plan.output, plan
    assert "moves to the new model of FineTuneJob.xbox-agent" in plan.output, plan
    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        result = deployed.cli("apply", "--auto-approve", timeout=900)
    finally:
        time.sleep(1.0)
        stop.set()
        caller.join(timeout=120)
    assert result.code == 0, result
    after = client(deployed).models.list().data[0].model_dump()["root"]
    assert after != before and after.endswith("/versions/2")
    assert len(served) >= 5 and not failures, failures[:3]
    # The old model went after the deployment had moved off it.
    cloud = deployed.cloud()
    assert cloud.get(before) is None and cloud.get(after) is not None


def test_a_killed_server_is_drift_and_apply_restarts_it(deployed: Project) -> None:
    status_file = next(deployed.cloud_path.glob("endpoints/*/xbox-bot/status.json"))
    pid = json.loads(status_file.read_text())["pid"]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    plan = deployed.cli("plan", "--detailed-exitcode")
    assert plan.code == 2, plan
    assert "status" in plan.output and "Stopped" in plan.output and "apply restarts it" in plan.output
    assert deployed.cli("apply", "--auto-approve").code == 0
    assert ask(deployed).choices[0].message.content
    assert deployed.cli("plan", "--detailed-exitcode").code == 0


def test_a_job_whose_model_is_deployed_cannot_be_destroyed_alone(deployed: Project) -> None:
    targeted = deployed.cli("destroy", "--target", "FineTuneJob.xbox-agent", "--auto-approve")
    assert targeted.code == 1, targeted
    assert "FineTuneJob.xbox-agent cannot be destroyed: its model is served by Deployment.xbox-bot" in targeted.output
    assert "--target Deployment.xbox-bot --target FineTuneJob.xbox-agent" in targeted.output
    assert ask(deployed).choices[0].message.content  # nothing was touched

    model = client(deployed).models.list().data[0].model_dump()["root"]
    version = model.rsplit("/", 1)[1]
    deployed.edit("    model: {job: xbox-agent}\n", f"    model: {{name: xbox-agent, version: {version}}}\n")
    assert deployed.cli("apply", "--auto-approve").code == 0  # same model: nothing reloads
    text = deployed.manifest.read_text()
    job_block = text[text.index("  - kind: FineTuneJob"):text.index("  - kind: Deployment")]
    deployed.manifest.write_text(text.replace(job_block, ""))
    plan = deployed.cli("plan")
    assert plan.code == 1, plan
    assert "FineTuneJob.xbox-agent cannot be destroyed: its model is served by Deployment.xbox-bot" in plan.output
    assert "foundryctl destroy --target Deployment.xbox-bot" in plan.output
    deployed.manifest.write_text(text)
    assert deployed.cli("plan", "--detailed-exitcode").code == 0


def test_metrics_count_requests_tokens_and_filtered_prompts(deployed: Project) -> None:
    with urllib.request.urlopen(endpoint(deployed).removesuffix("/v1") + "/metrics", timeout=10) as response:
        text = response.read().decode()
    assert re.search(r'foundryctl_requests_total\{code="200",route="/v1/chat/completions"\} \d+', text)
    assert re.search(r'foundryctl_tokens_total\{type="completion"\} [1-9]', text)
    assert 'foundryctl_request_duration_seconds_bucket' in text


def test_destroy_stops_every_process_and_frees_the_port(deployed: Project) -> None:
    port = int(endpoint(deployed).rsplit(":", 1)[1].split("/")[0])
    status_file = next(deployed.cloud_path.glob("endpoints/*/xbox-bot/status.json"))
    status = json.loads(status_file.read_text())
    result = deployed.cli("destroy", "--auto-approve", timeout=300)
    assert result.code == 0, result.output
    assert not pid_alive(status["pid"], status.get("pid_start"))
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # nothing listens there any more
    assert not list(deployed.cloud_path.glob("endpoints/*/xbox-bot"))
    assert not list(deployed.cloud_path.glob("jobs/*/*/status.json"))


def test_require_openai_in_ci() -> None:
    try:
        import openai  # noqa: F401
    except ImportError:
        require("the openai client (pip install -e '.[dev]')")
