"""The endpoint's request validation and wire format, in process against a fake engine (no
model): every request gets a JSON answer in OpenAI's error shape or a completion, never a 5xx;
OpenAI's nullable, strictly typed and mutually dependent parameters; the body limits; the
streamed chunks the `openai` client reads; Azure's route."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from foundryctl.serving.app import MAX_BODY_BYTES, Runtime, create_app, filter_parts, key_digests
from foundryctl.serving.deploydir import DeploymentDir, ServerConfig
from foundryctl.serving.engine import Delta, EngineError, Finished, RequestHandle, check_messages, check_params

WORDS = ["Hello", " there", ",", " friend", "."]


class FakeTokenizer:
    def decode(self, ids: list[int]) -> str:
        return "".join(f"<{i}>" for i in ids)


class FakeEngine:
    """Answers every request with WORDS (one token each), validating as the real engine does."""

    vocabulary_size = 100
    tokenizer = FakeTokenizer()

    def __init__(self) -> None:
        self.submitted: list[Any] = []
        self.wake = threading.Condition()

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        check_messages(messages)
        return [1] * sum(len(m["content"].split()) + 2 for m in messages)

    def submit(self, messages: list[dict], params: Any, on_event: Any) -> RequestHandle:
        params = check_params(params)
        if any(token >= self.vocabulary_size for token in params.logit_bias):
            raise EngineError("logit_bias: not in the vocabulary", param="logit_bias")
        prompt = self.prompt_tokens(messages)
        self.submitted.append(params)
        handle = RequestHandle(self.wake)
        words = WORDS[:params.max_tokens or len(WORDS)]
        for i, word in enumerate(words):
            handle.token_ids.append(10 + i)
            if params.logprobs is not None:
                handle.logprobs.append((-0.5, [(10 + i, -0.5), (3, -1.5)][:params.logprobs]))
            on_event(Delta(word, i + 1))
        on_event(Finished("stop" if len(words) == len(WORDS) else "length", len(prompt), len(words)))
        return handle

    def stats(self) -> dict:
        return {"active": 0, "queued": 0, "max_batch_size": 8}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    directory = DeploymentDir(tmp_path_factory.mktemp("fake") / "bot")
    directory.ensure_secrets()
    config = ServerConfig(deployment="bot", model_dir="/nowhere", adapter_dir=None, model_id="models/base/versions/1",
                          port=1, device="cpu", content_filter={"enabled": True}, max_batch_size=8)
    directory.write_config(config)
    policy, classifier = filter_parts(config.content_filter, directory)
    engine = FakeEngine()
    app = create_app(directory, Runtime(config, engine, policy, classifier, key_digests(directory.keys())))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {directory.keys()['key1']}"
        yield client, directory, engine


def post(served, body: Any, path: str = "/v1/chat/completions", **kwargs: Any):
    client = served[0]
    if isinstance(body, (bytes, str)):
        return client.post(path, content=body, **kwargs)
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"}, **kwargs)


def assert_openai_error(response, status: int | None = None) -> dict:
    assert response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error) and isinstance(error["message"], str)
    return error


HI = [{"role": "user", "content": "hi"}]

# -- fuzzing: no request gets a 5xx or a non-JSON error -------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                          max_leaves=8)
FIELDS = ["model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
          "stream", "stream_options", "n", "presence_penalty", "frequency_penalty", "logit_bias", "tools",
          "functions", "tool_choice", "response_format", "logprobs", "top_logprobs", "user"]
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "developer", "robot"]),
                                 "content": st.one_of(st.text(max_size=20), JSON_VALUE)})
PLAUSIBLE = {
    "messages": st.one_of(st.lists(MESSAGE, max_size=3), JSON_VALUE),
    "max_tokens": st.one_of(st.integers(min_value=-3, max_value=2**64), st.text(max_size=3), JSON_LEAF),
    "seed": st.one_of(st.integers(min_value=-2**65, max_value=2**65), JSON_LEAF),
    "temperature": st.one_of(st.floats(min_value=-1, max_value=3), JSON_LEAF),
    "logit_bias": st.one_of(st.dictionaries(st.sampled_from(["5", "99", "100", "-1", "x", "5.0", "٣"]),
                                            st.floats(min_value=-200, max_value=200), max_size=3), JSON_VALUE),
    "stop": st.one_of(st.text(max_size=4), st.lists(st.text(max_size=4), max_size=6), JSON_LEAF),
    "n": st.one_of(st.integers(min_value=-1, max_value=40), JSON_LEAF),
    "top_logprobs": st.one_of(st.integers(min_value=-1, max_value=30), JSON_LEAF),
}
BODY = st.fixed_dictionaries({"messages": PLAUSIBLE["messages"]}, optional={
    name: PLAUSIBLE.get(name, JSON_VALUE) for name in FIELDS if name != "messages"})


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(BODY, JSON_VALUE))
def test_no_json_body_gets_a_server_error(served, body: Any) -> None:
    response = post(served, body)
    if response.status_code != 200:
        assert_openai_error(response)
    elif body.get("stream") is True:
        assert response.text.rstrip().endswith("data: [DONE]")
    else:
        assert len(response.json()["choices"]) == (body.get("n") or 1)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                                     "multipart/form-data; boundary=x", "application/json; charset=utf-8", ""]),
       path=st.sampled_from(["/v1/chat/completions", "/chat/completions", "/admin/reload",
                             "/openai/deployments/bot/chat/completions?api-version=2024-10-21"]))
def test_no_raw_body_gets_a_server_error(served, raw: bytes, content_type: str, path: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if path == "/admin/reload":
        headers["X-Foundryctl-Admin"] = served[1].admin_token()
    response = served[0].post(path, content=raw, headers=headers)
    if response.status_code != 200:
        assert_openai_error(response)


# -- the issues' cases ----------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "param"), [
    ({"seed": 2**63}, "seed"), ({"seed": -2**63 - 1}, "seed"), ({"max_tokens": "10"}, "max_tokens"),
    ({"stream": "yes"}, "stream"), ({"stop": ""}, "stop"), ({"stop": ["ok", ""]}, "stop"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"tool_choice": "auto"}, "tool_choice"), ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"logit_bias": {"word": 1}}, "logit_bias"), ({"logit_bias": {"100": 1}}, "logit_bias"),
    ({"presence_penalty": 2.5}, "presence_penalty"), ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"n": 0}, "n"), ({"n": 17}, "n"), ({"temperature": "1"}, "temperature"),
])
def test_bad_parameters_are_400_naming_the_parameter(served, extra: dict, param: str) -> None:
    error = assert_openai_error(post(served, {"messages": HI, **extra}), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_seed_at_the_int64_bounds_is_accepted(served) -> None:
    for seed in (2**63 - 1, -2**63):
        assert post(served, {"messages": HI, "seed": seed, "temperature": 1}).status_code == 200


def test_null_means_omitted(served) -> None:
    nulls = {name: None for name in FIELDS if name != "messages"}
    response = post(served, {"messages": HI, **nulls})
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 1


def test_a_form_body_is_415_and_a_deep_one_400(served) -> None:
    error = assert_openai_error(post(served, "messages=hi", headers={"Content-Type": "application/x-www-form-urlencoded"}),
                                415)
    assert error["code"] == "unsupported_media_type"
    assert_openai_error(post(served, "[" * 100_000, headers={"Content-Type": "application/json"}), 400)
    assert_openai_error(post(served, b'{"messages": NaN}', headers={"Content-Type": "application/json"}), 400)


def test_a_body_over_the_limit_is_413(served) -> None:
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 10)}]})
    assert assert_openai_error(post(served, big, headers={"Content-Type": "application/json"}), 413)["code"] == \
        "request_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = served[0].post("/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert_openai_error(response, 413)


def test_admin_reload_with_a_malformed_body_is_400(served) -> None:
    client, directory, _ = served
    admin = {"X-Foundryctl-Admin": directory.admin_token(), "Content-Type": "application/json"}
    for body in (b"{oops", b"[1, 2]", b'{"port": "x", "deployment": 3, "nonsense": []}', b'"text"'):
        assert_openai_error(client.post("/admin/reload", content=body, headers=admin), 400)
    # a config of the wrong types is named, not handed to the filter or the model loader (a 500)
    config = directory.read_config().to_dict()
    for change, param in (({"content_filter": "oops"}, "content_filter"), ({"max_batch_size": "x"}, "max_batch_size"),
                          ({"model_dir": 5}, "model_dir"), ({"port": True}, "port")):
        body = json.dumps({**config, **change}).encode()
        assert assert_openai_error(client.post("/admin/reload", content=body, headers=admin), 400)["param"] == param
    assert client.post("/admin/reload", content=json.dumps(config).encode(), headers=admin).status_code == 200


def test_parameters_reach_the_engine(served) -> None:
    engine = served[2]
    post(served, {"messages": HI, "logit_bias": {"5": -100, "7": 3.5}, "presence_penalty": 1.5,
                  "frequency_penalty": -0.5, "logprobs": True, "top_logprobs": 2})
    params = engine.submitted[-1]
    assert params.logit_bias == {5: -100, 7: 3.5} and params.logprobs == 2
    assert (params.presence_penalty, params.frequency_penalty) == (1.5, -0.5)


def test_n_choices_get_distinct_seeds_and_indexes(served) -> None:
    engine = served[2]
    before = len(engine.submitted)
    body = post(served, {"messages": HI, "n": 3, "seed": 7, "temperature": 1}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert [p.seed for p in engine.submitted[before:]] == [7, 8, 9]
    assert body["usage"]["completion_tokens"] == 3 * len(WORDS)


def test_logprobs_in_openais_shape(served) -> None:
    body = post(served, {"messages": HI, "logprobs": True, "top_logprobs": 2}).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == [f"<{10 + i}>" for i in range(len(WORDS))]
    assert content[0]["top_logprobs"][0] == {"token": "<10>", "logprob": -0.5, "bytes": list(b"<10>")}
    assert post(served, {"messages": HI}).json()["choices"][0]["logprobs"] is None


def openai_client(served, **kwargs: Any):
    import openai

    client, directory, _ = served
    return openai.OpenAI(base_url=f"{client.base_url}/v1", api_key=directory.keys()["key1"], http_client=client,
                         max_retries=0, **kwargs)


def test_the_openai_streaming_loop_reads_choices_0_of_every_chunk(served) -> None:
    client = openai_client(served)
    stream = client.chat.completions.create(model="bot", messages=HI, stream=True, n=2, logprobs=True, top_logprobs=1)
    text: dict[int, str] = {0: "", 1: ""}
    tokens = 0
    first = True
    for chunk in stream:
        if first:  # the prompt filter's annotation rides on the first real chunk
            assert chunk.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
            first = False
        text[chunk.choices[0].index] += chunk.choices[0].delta.content or ""
        if chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
            tokens += len(chunk.choices[0].logprobs.content)
    assert text == {0: "".join(WORDS), 1: "".join(WORDS)} and tokens == 2 * len(WORDS)


def test_the_azure_route(served) -> None:
    import openai

    client, directory, _ = served
    azure = openai.AzureOpenAI(azure_endpoint=str(client.base_url), api_key=directory.keys()["key1"],
                               api_version="2024-10-21", http_client=client, max_retries=0)
    assert [m.id for m in azure.models.list()] == ["bot"]
    assert azure.models.retrieve("bot").id == "bot"
    raw = client.post("/openai/deployments/bot/chat/completions?api-version=2024-10-21",
                      json={"messages": HI, "stream": True}).text
    chunks = [json.loads(line[6:]) for line in raw.split("\n\n") if line.startswith("data: {")]
    assert chunks[0]["choices"] == [] and chunks[0]["prompt_filter_results"]  # Azure's prompt-filter chunk
    with pytest.raises(openai.NotFoundError) as missing:
        azure.chat.completions.create(model="elsewhere", messages=HI)
    assert missing.value.body["code"] == "DeploymentNotFound"
    error = assert_openai_error(client.post("/openai/deployments/bot/chat/completions", json={"messages": HI}), 400)
    assert error["param"] == "api-version"
    assert_openai_error(client.get("/openai/models"), 400)


def test_the_docs_say_the_limits(served) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "deployments.md").read_text()
    assert f"{MAX_BODY_BYTES // 2**20} MiB" in docs


def test_the_sampler_applies_bias_and_penalties_as_openai_defines_them() -> None:
    import torch

    from foundryctl.serving.sampling import RowSampling, adjust, pick

    logits = torch.zeros(2, 5)
    row = RowSampling(0.0, 1.0, None, logit_bias={4: 3.0}, presence_penalty=0.5, frequency_penalty=0.25)
    row.seen.update({1: 2, 2: 1})
    plain = RowSampling(0.0, 1.0, None)
    adjusted = adjust(logits, [row, plain])
    assert adjusted[0].tolist() == [0.0, -1.0, -0.75, 0.0, 3.0] and adjusted[1].tolist() == [0.0] * 5
    assert logits.abs().sum() == 0  # the model's logits are left alone
    tokens, logprobs = pick(logits, [row, RowSampling(0.0, 1.0, None, logprobs=2)])
    assert tokens == [4, 0] and logprobs[0] is None
    chosen, top = logprobs[1]
    assert abs(chosen - torch.log(torch.tensor(0.2)).item()) < 1e-6 and len(top) == 2
    assert row.seen[4] == 1  # the chosen token now counts for the penalties
