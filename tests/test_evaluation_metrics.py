"""Evaluation metrics against hand-computed values, their settings' checks, and the LLM judge
against a real OpenAI-compatible server on 127.0.0.1 called through the official client."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from foundryctl.errors import BackendError
from foundryctl.evaluation.judge import parse_score
from foundryctl.evaluation.metrics import Example, check_metrics, compute, parse_metrics, provided_by


def chat(prediction: str, reference: str | None = "Charge the controller.", *, tokens: int = 5,
         finish: str = "stop", nll: float | None = None, ref_tokens: int | None = None, index: int = 0) -> Example:
    return Example(index, [{"role": "user", "content": "My controller died."}], reference, None, prediction,
                   tokens, finish, nll, ref_tokens)


def value(metric, examples, task="chat_completion") -> float:
    results = compute(parse_metrics([metric]), examples, task)
    return results[metric if isinstance(metric, str) else metric["name"]].value


def test_text_metrics_against_hand_computed_values() -> None:
    same, other = chat("Charge the controller."), chat("Restart the console")
    assert value("exact_match", [same, other]) == 0.5
    assert value("normalized_match", [chat("charge  THE controller!"), other]) == 0.5
    # "charge controller" vs "charge the controller": LCS 2 words; P = 2/2, R = 2/3 -> F = 0.8
    assert value("rouge_l", [chat("charge controller")]) == pytest.approx(0.8)
    # SQuAD token F1 drops articles: {charge, controller} vs {charge, controller} -> 1.0
    assert value("token_f1", [chat("charge controller")]) == pytest.approx(1.0)
    assert value("token_f1", [chat("charge it")]) == pytest.approx(0.5)  # P 1/2, R 1/2
    assert value({"name": "regex_match", "pattern": r"^\d{3}$"}, [chat("123"), chat("12a")]) == 0.5
    assert value({"name": "contains", "text": "CONTROLLER"}, [chat("the controller"), chat("no")]) == 0.5
    assert value("contains", [chat("Please charge the controller. Thanks"), other]) == 0.5  # the reference
    assert value("mean_length_tokens", [chat("a", tokens=10), chat("b", tokens=30)]) == 20
    assert value("ends_with_eos", [chat("a"), chat("b", finish="length")]) == 0.5
    assert value("refusal_rate", [chat("I'm sorry, I can't help with that."), chat("Charge it.")]) == 0.5
    assert value({"name": "refusal_rate", "patterns": ["nope"]}, [chat("Nope."), chat("Charge it.")]) == 0.5


def test_json_metrics_accept_a_fenced_block_and_check_the_schema() -> None:
    answers = [chat('{"order": 12}'), chat('```json\n{"order": "x"}\n```'), chat("order 12"), chat("NaN")]
    assert value("json_valid", answers) == 0.5
    schema = {"name": "json_schema", "schema": {"type": "object", "properties": {"order": {"type": "integer"}},
                                                "required": ["order"]}}
    assert value(schema, answers) == 0.25


def test_perplexity_is_per_reference_token_over_all_examples() -> None:
    examples = [chat("x", nll=2.0, ref_tokens=2), chat("y", nll=4.0, ref_tokens=2), chat("z")]
    result = compute(parse_metrics(["perplexity"]), examples, "chat_completion")["perplexity"]
    assert result.value == pytest.approx(math.exp(6.0 / 4))
    assert result.per_example[2] is None and not result.higher_is_better


def test_classification_metrics_come_from_scikit_learn() -> None:
    gold = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "a"]
    examples = [Example(i, [], None, g, p, 0, "stop") for i, (g, p) in enumerate(zip(gold, predicted))]
    results = compute(parse_metrics(["accuracy", "f1_macro", "per_label"]), examples, "text_classification")
    assert results["accuracy"].value == pytest.approx(3 / 5)
    # per label F1: a = 2*0.5*0.5/1 = 0.5, b = 2*(2/3)*1/(5/3) = 0.8, c = 0 -> macro 1.3/3
    assert results["f1_macro"].value == pytest.approx(1.3 / 3)
    assert results["f1[b]"].value == pytest.approx(0.8) and results["recall[a]"].value == pytest.approx(0.5)
    assert provided_by("per_label")("f1[b]") and not provided_by("per_label")("f1_macro")


@pytest.mark.parametrize(("raw", "message"), [
    (["exact_matsh"], "unknown metric 'exact_matsh'"),
    ([{"name": "regex_match"}], "regex_match needs `pattern`"),
    ([{"name": "regex_match", "pattern": "("}], "is not a regular expression"),
    ([{"name": "json_schema", "schema": {"type": "objekt"}}], "not a valid JSON Schema"),
    ([{"name": "rouge_l", "pattern": "x"}], "`pattern` belongs to regex_match"),
    (["rouge_l", "rouge_l"], "listed twice"),
    ([{"name": "judge", "judge": {"endpoint": "http://x/v1", "prompt": "Grade {answer}"}}], "unknown placeholder"),
    ("rouge_l", "is a list"),
])
def test_bad_metric_settings_name_the_item(raw, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_metrics(raw)


def test_metrics_of_another_task_are_refused() -> None:
    assert "does not apply to chat_completion data" in check_metrics(parse_metrics(["accuracy"]), "chat_completion")[0]
    assert check_metrics(parse_metrics(["rouge_l"]), "text_classification")
    with pytest.raises(ValueError, match="no examples"):
        compute(parse_metrics(["rouge_l"]), [], "chat_completion")


@pytest.mark.parametrize(("reply", "scale", "expected"), [
    ("4", (1, 5), 4.0), ("Score: 5/5", (1, 5), 5.0), ("I'd say 7, no, 3", (1, 5), 3.0), ("great", (1, 5), None),
    ("2.5", (1, 5), None), ("PASS", "pass_fail", 1.0), ("fail: off topic", "pass_fail", 0.0), ("ok", "pass_fail", None),
])
def test_the_judge_reply_is_read_on_its_scale(reply: str, scale, expected) -> None:
    assert parse_score(reply, scale) == expected


class _Judge(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that grades 5 when the answer mentions charging, 1
    otherwise, and answers gibberish for answers that say 'mumble'."""

    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != "Bearer judge-key":
            self._send(401, {"error": {"message": "bad key"}})
            return
        answer = body["messages"][-1]["content"].split("Answer:", 1)[-1].split("\n", 1)[0]
        grade = "mumble" if "mumble" in answer else ("5" if "charg" in answer.lower() else "1")
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": grade}}]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def judge_metric(url: str) -> dict:
    return {"name": "judge", "judge": {"endpoint": url, "model": "grader", "key_env": "JUDGE_KEY",
                                       "prompt": "Question: {prompt}\nReference: {reference}\nAnswer: {prediction}\n"
                                                 "Grade 1-5.", "prompt_version": "2"}}


def test_the_judge_grades_every_answer_through_the_openai_client(judge_url, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "judge-key")
    examples = [chat("Charge it overnight.", index=0), chat("Buy a new one.", index=1), chat("mumble", index=2)]
    result = compute(parse_metrics([judge_metric(judge_url)]), examples, "chat_completion")["judge"]
    assert result.per_example == [5.0, 1.0, None]  # an unreadable grade is no grade, not a zero
    assert result.value == pytest.approx(3.0)
    assert {s["body"]["model"] for s in _Judge.seen} == {"grader"}
    assert any("Reference: Charge the controller.\nAnswer: Buy a new one." in s["body"]["messages"][-1]["content"]
               for s in _Judge.seen)
    assert "judge-key" not in repr(result)


def test_a_missing_or_wrong_judge_key_is_a_clear_error_without_the_key(judge_url, monkeypatch) -> None:
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    with pytest.raises(BackendError, match="JUDGE_KEY is not set"):
        compute(parse_metrics([judge_metric(judge_url)]), [chat("x")], "chat_completion")
    monkeypatch.setenv("JUDGE_KEY", "wrong-key")
    with pytest.raises(BackendError, match="answered 401") as failed:
        compute(parse_metrics([judge_metric(judge_url)]), [chat("x")], "chat_completion")
    assert "wrong-key" not in str(failed.value)
