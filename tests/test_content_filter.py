"""The content filter: policy semantics, Azure's result shape, the streaming guard, the Azure
classifier against a fake transport, and the offline classifier's measured quality."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import require

from foundryctl.serving.content_filter import (
    CATEGORIES,
    SEVERITIES,
    CompletionGuard,
    ContentFilterUnavailable,
    FilterPolicy,
    FilterResult,
    GuardStep,
    OfflineClassifier,
    check,
    evaluate,
    load_classifier,
    load_examples,
)

LABELLED = Path(__file__).parent / "data" / "content_filter" / "labelled.jsonl"


class Fixed:
    """A classifier that gives the same severities to every text and counts its calls."""

    name = "fixed"

    def __init__(self, **severities: str) -> None:
        self.severities = {c: severities.get(c, "safe") for c in CATEGORIES}
        self.calls: list[str] = []

    def classify(self, text: str) -> dict[str, str]:
        self.calls.append(text)
        return dict(self.severities)


class Never:
    name = "never"

    def classify(self, text: str) -> dict[str, str]:
        raise AssertionError("the classifier must not be called")


class Marker:
    """High violence when the whole text contains every marker: shows what context it saw."""

    name = "marker"

    def __init__(self, *markers: str) -> None:
        self.markers = markers
        self.calls: list[str] = []

    def classify(self, text: str) -> dict[str, str]:
        self.calls.append(text)
        hit = all(m in text for m in self.markers)
        return {c: "high" if hit and c == "violence" else "safe" for c in CATEGORIES}


# --- policy ----------------------------------------------------------------------------

def test_public_constants() -> None:
    assert CATEGORIES == ("hate", "sexual", "violence", "self_harm")
    assert SEVERITIES == ("safe", "low", "medium", "high")


def test_default_policy_filters_medium_and_high() -> None:
    policy = FilterPolicy()
    assert policy.enabled and policy.threshold == "medium"
    assert all(policy.threshold_for(c) == "medium" for c in CATEGORIES)
    assert not check(policy, Fixed(violence="low"), "x").filtered
    assert check(policy, Fixed(violence="medium"), "x").filtered_categories == ("violence",)
    assert check(policy, Fixed(hate="high", sexual="high"), "x").filtered_categories == ("hate", "sexual")


@pytest.mark.parametrize(("threshold", "severity", "filtered"), [
    ("low", "safe", False), ("low", "low", True), ("medium", "low", False), ("medium", "high", True),
    ("high", "medium", False), ("high", "high", True)])
def test_thresholds(threshold: str, severity: str, filtered: bool) -> None:
    result = check(FilterPolicy(threshold=threshold), Fixed(self_harm=severity), "x")
    assert result.filtered is filtered
    assert result.severities["self_harm"] == severity


def test_overrides_and_off() -> None:
    policy = FilterPolicy.from_settings({"threshold": "medium", "categories": {"violence": "high", "self_harm": "low",
                                                                              "sexual": "off"}})
    assert policy.threshold_for("violence") == "high"
    assert policy.threshold_for("self_harm") == "low"
    assert policy.threshold_for("sexual") is None
    assert policy.threshold_for("hate") == "medium"
    result = check(policy, Fixed(violence="medium", self_harm="low", sexual="high", hate="medium"), "x")
    assert result.filtered_categories == ("hate", "self_harm")
    assert result.severities["sexual"] == "high"  # reported, just not filtered


def test_disabled_never_calls_the_classifier() -> None:
    policy = FilterPolicy.from_settings({"enabled": False})
    result = check(policy, Never(), "anything at all")
    assert not result.filtered
    assert result.severities == {c: "safe" for c in CATEGORIES}


def test_from_settings_defaults_and_ignores_other_keys() -> None:
    assert FilterPolicy.from_settings(None) == FilterPolicy()
    assert FilterPolicy.from_settings({}) == FilterPolicy()
    policy = FilterPolicy.from_settings({"enabled": True, "threshold": "low", "classifier": "azure",
                                         "azure_endpoint": "https://x.cognitiveservices.azure.com",
                                         "azure_key_env": "K", "categories": None})
    assert policy == FilterPolicy(threshold="low")


@pytest.mark.parametrize(("settings", "message"), [
    ({"threshold": "severe"}, "threshold: 'severe'"),
    ({"threshold": "off"}, "threshold: 'off'"),
    ({"categories": {"violent": "high"}}, "unknown category 'violent'"),
    ({"categories": {"violence": "extreme"}}, "categories.violence: 'extreme'"),
    ({"categories": ["violence"]}, "expected a mapping"),
    ({"enabled": "yes"}, "enabled"),
])
def test_from_settings_rejects_bad_names(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match="content_filter") as info:
        FilterPolicy.from_settings(settings)
    assert message in str(info.value)


def test_policy_is_frozen_and_hashable() -> None:
    overrides = {"violence": "high"}
    policy = FilterPolicy(overrides=overrides)
    overrides["violence"] = "off"
    assert policy.threshold_for("violence") == "high"
    assert hash(policy) == hash(FilterPolicy(overrides={"violence": "high"}))
    with pytest.raises(AttributeError):
        policy.threshold = "low"  # type: ignore[misc]


def test_to_azure_shape() -> None:
    result = check(FilterPolicy(), Fixed(violence="high", hate="low"), "x")
    assert result.to_azure() == {
        "hate": {"filtered": False, "severity": "low"},
        "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "high"},
    }
    assert json.loads(json.dumps(result.to_azure())) == result.to_azure()
    assert FilterResult.safe().to_azure()["sexual"] == {"filtered": False, "severity": "safe"}


# --- the streaming guard ---------------------------------------------------------------

def test_guard_releases_in_segments_after_checking() -> None:
    classifier = Fixed()
    guard = CompletionGuard(FilterPolicy(), classifier, segment_chars=40)
    assert guard.result == FilterResult.safe()
    assert guard.push("Hi. ") == GuardStep("", None)  # a sentence end, but under 10 characters
    assert guard.push("Restart the console") == GuardStep("", None)
    assert not classifier.calls
    step = guard.push(" first.")
    assert step == GuardStep("Hi. Restart the console first.", None)
    assert classifier.calls == ["Hi. Restart the console first."]
    # No sentence end: held until segment_chars characters.
    assert guard.push(" Then hold the power button") == GuardStep("", None)
    step = guard.push(" for ten seconds and wait")
    assert step.release == " Then hold the power button for ten seconds and wait"
    # Each check sees the whole completion so far.
    assert classifier.calls[-1] == "Hi. Restart the console first. Then hold the power button for ten seconds and wait"
    assert guard.finish() == GuardStep("", None)  # nothing held


def test_guard_classifies_the_whole_completion() -> None:
    classifier = Marker("alpha", "omega")
    guard = CompletionGuard(FilterPolicy(), classifier, segment_chars=20)
    assert guard.push("alpha is first.").release == "alpha is first."
    step = guard.push(" then omega.")
    assert step.release == "" and step.blocked is not None
    assert step.blocked.filtered_categories == ("violence",)


def test_guard_releases_nothing_after_a_block() -> None:
    guard = CompletionGuard(FilterPolicy(), Marker("BAD"), segment_chars=16)
    assert guard.push("All good here. ").release == "All good here. "
    blocked = guard.push("Now BAD things.")
    assert blocked.release == "" and blocked.blocked is not None
    for delta in ("More text.", "And more.\n", "x" * 100):
        assert guard.push(delta) == GuardStep("", blocked.blocked)
    assert guard.finish() == GuardStep("", blocked.blocked)
    assert guard.result is blocked.blocked
    assert guard.result.to_azure()["violence"] == {"filtered": True, "severity": "high"}


def test_guard_finish_checks_the_tail() -> None:
    guard = CompletionGuard(FilterPolicy(), Marker("BAD"), segment_chars=100)
    assert guard.push("short tail") == GuardStep("", None)
    assert guard.finish() == GuardStep("short tail", None)

    guard = CompletionGuard(FilterPolicy(), Marker("BAD"), segment_chars=100)
    guard.push("ends BAD")
    step = guard.finish()
    assert step.release == "" and step.blocked is not None and guard.result.filtered


def test_guard_disabled_passes_through() -> None:
    guard = CompletionGuard(FilterPolicy(enabled=False), Never(), segment_chars=10)
    assert guard.push("anything") == GuardStep("anything", None)
    assert guard.push(" at all") == GuardStep(" at all", None)
    assert guard.finish() == GuardStep("", None)
    assert not guard.result.filtered


def test_guard_fails_closed_when_the_classifier_cannot_run() -> None:
    class Down:
        name = "down"

        def classify(self, text: str) -> dict[str, str]:
            raise ContentFilterUnavailable("service unreachable")

    guard = CompletionGuard(FilterPolicy(), Down(), segment_chars=8)
    with pytest.raises(ContentFilterUnavailable):
        guard.push("Some text that is long enough.")
    assert guard.result == FilterResult.safe()


def test_guard_with_the_offline_classifier() -> None:
    text = ("Sure, I can help with that. Restart the console and try again. "
            "I am going to kill you tomorrow at the school. You will not see this part.")
    guard = CompletionGuard(FilterPolicy(), OfflineClassifier())
    released, blocked = [], None
    for index in range(0, len(text), 3):  # token-sized deltas
        step = guard.push(text[index:index + 3])
        released.append(step.release)
        if step.blocked is not None:
            blocked = step.blocked
            break
    assert blocked is not None and blocked.filtered_categories == ("violence",)
    assert "".join(released) == "Sure, I can help with that. Restart the console and try again. "
    assert guard.push("more").release == "" and guard.finish().release == ""


# --- the Azure classifier, against a fake transport ------------------------------------

def _need_azure_sdk() -> None:
    try:
        import azure.ai.contentsafety  # noqa: F401
    except ImportError:
        require("azure-ai-contentsafety (in the local extra)")


def _azure_transport():
    _need_azure_sdk()
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest._http_response_impl import HttpResponseImpl

    class FakeTransport(HttpTransport):
        """Answers like the service: canned JSON of the REST shape, or an error."""

        def __init__(self, replies: list) -> None:
            self.replies = list(replies)
            self.requests: list = []

        def open(self) -> None:
            pass

        def close(self) -> None:
            pass

        def __exit__(self, *args: object) -> None:
            pass

        def sleep(self, duration: float) -> None:  # retries without waiting
            pass

        def send(self, request, **kwargs):
            self.requests.append(request)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            if isinstance(reply, Exception):
                raise reply
            status, body = reply
            data = json.dumps(body).encode()
            response = HttpResponseImpl(
                request=request, internal_response=io.BytesIO(data), status_code=status,
                reason={200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}[status],
                content_type="application/json", headers={"Content-Type": "application/json"},
                stream_download_generator=None)
            response._content = data
            return response

    return FakeTransport


def _analysis(hate: int = 0, self_harm: int = 0, sexual: int = 0, violence: int = 0) -> tuple[int, dict]:
    return 200, {"blocklistsMatch": [], "categoriesAnalysis": [
        {"category": "Hate", "severity": hate}, {"category": "SelfHarm", "severity": self_harm},
        {"category": "Sexual", "severity": sexual}, {"category": "Violence", "severity": violence}]}


ENDPOINT = "https://unit-test.cognitiveservices.azure.com"
KEY = "k3y-that-must-never-be-printed"


def _azure(monkeypatch: pytest.MonkeyPatch, replies: list):
    transport = _azure_transport()(replies)
    monkeypatch.setenv("CONTENT_SAFETY_KEY", KEY)
    classifier = load_classifier({"classifier": "azure", "azure_endpoint": ENDPOINT}, transport=transport)
    return classifier, transport


def test_azure_request_and_severities(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier, transport = _azure(monkeypatch, [_analysis(hate=2, sexual=4, violence=6)])
    assert classifier.name == "azure"
    assert classifier.classify("some text") == {"hate": "low", "sexual": "medium", "violence": "high",
                                                "self_harm": "safe"}
    (request,) = transport.requests
    url = urlparse(request.url)
    assert request.method == "POST"
    assert url.netloc == "unit-test.cognitiveservices.azure.com"
    assert url.path == "/contentsafety/text:analyze"
    assert parse_qs(url.query)["api-version"] == ["2023-10-01"]
    assert request.headers["Ocp-Apim-Subscription-Key"] == KEY
    body = json.loads(request.content)
    assert body == {"text": "some text", "categories": ["Hate", "SelfHarm", "Sexual", "Violence"],
                    "outputType": "FourSeverityLevels"}


def test_azure_splits_long_text_and_takes_the_worst(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier, transport = _azure(monkeypatch, [_analysis(hate=4), _analysis(violence=2), _analysis(hate=2)])
    text = ("word " * 4000).strip()  # 19,999 characters: three requests of at most 10,000
    assert classifier.classify(text) == {"hate": "medium", "sexual": "safe", "violence": "low", "self_harm": "safe"}
    pieces = [json.loads(r.content)["text"] for r in transport.requests]
    assert len(pieces) == 2 or len(pieces) == 3
    assert all(len(p) <= 10_000 for p in pieces) and "".join(pieces) == text


def test_azure_check_through_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier, _ = _azure(monkeypatch, [_analysis(self_harm=4)])
    result = check(FilterPolicy(), classifier, "text")
    assert result.filtered_categories == ("self_harm",)


def test_azure_refused_key_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    error = {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}
    classifier, _ = _azure(monkeypatch, [(401, error)])
    with pytest.raises(ContentFilterUnavailable) as info:
        classifier.classify("text")
    assert "401" in str(info.value) and ENDPOINT in str(info.value)
    assert KEY not in str(info.value)


def test_azure_unreachable_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    _need_azure_sdk()
    from azure.core.exceptions import ServiceRequestError

    classifier, transport = _azure(monkeypatch, [ServiceRequestError("connection refused")])
    with pytest.raises(ContentFilterUnavailable, match="no response") as info:
        classifier.classify("text")
    assert KEY not in str(info.value)
    assert len(transport.requests) == 1  # azure-core does not retry a POST it could not send


def test_azure_server_error_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier, transport = _azure(monkeypatch, [(500, {"error": {"code": "InternalError", "message": "boom"}})])
    with pytest.raises(ContentFilterUnavailable, match="500") as info:
        classifier.classify("text")
    assert "boom" in str(info.value)
    assert len(transport.requests) == 3  # the first try and two retries


def test_azure_empty_text_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier, transport = _azure(monkeypatch, [_analysis(violence=6)])
    assert classifier.classify("   ") == {c: "safe" for c in CATEGORIES}
    assert not transport.requests


# --- load_classifier -------------------------------------------------------------------

def test_load_classifier_defaults_to_offline() -> None:
    assert load_classifier(None).name == "offline"
    assert load_classifier({"enabled": True, "threshold": "high"}).name == "offline"
    assert load_classifier({"classifier": "offline", "azure_endpoint": None}).name == "offline"


def test_load_classifier_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="'openai' is not one of offline, azure"):
        load_classifier({"classifier": "openai"})
    with pytest.raises(ValueError, match="azure_endpoint"):
        load_classifier({"classifier": "azure"})
    monkeypatch.delenv("CONTENT_SAFETY_KEY", raising=False)
    with pytest.raises(ValueError, match="CONTENT_SAFETY_KEY"):
        load_classifier({"classifier": "azure", "azure_endpoint": ENDPOINT})
    monkeypatch.delenv("MY_SAFETY_KEY", raising=False)
    with pytest.raises(ValueError, match="MY_SAFETY_KEY"):
        load_classifier({"classifier": "azure", "azure_endpoint": ENDPOINT, "azure_key_env": "MY_SAFETY_KEY"})


def test_load_classifier_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.ai.contentsafety", None)
    monkeypatch.setenv("CONTENT_SAFETY_KEY", KEY)
    with pytest.raises(ValueError, match="foundryctl\\[azure\\]"):
        load_classifier({"classifier": "azure", "azure_endpoint": ENDPOINT})


def test_load_classifier_reads_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = _azure_transport()([_analysis(violence=4)])
    monkeypatch.setenv("MY_SAFETY_KEY", "other-key")
    classifier = load_classifier({"classifier": "azure", "azure_endpoint": ENDPOINT + "/",
                                  "azure_key_env": "MY_SAFETY_KEY"}, transport=transport)
    assert classifier.classify("x")["violence"] == "medium"
    assert transport.requests[0].headers["Ocp-Apim-Subscription-Key"] == "other-key"
    assert urlparse(transport.requests[0].url).path == "/contentsafety/text:analyze"


# --- the offline classifier ------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "How do I kill the process that's locking port 8080?",
    "Shoot me an email when the ticket is resolved.",
    "This game is killer, best open world I've played.",
    "Execute the script with admin rights.",
    "The console died during the update.",
    "I'm dying to play the new expansion.",
    "We're based in Essex, do you ship to the UK?",
    "The sextant is a navigation instrument.",
    "Where can I book a breast cancer screening?",
    "My Xbox controller won't pair with the console.",
])
def test_offline_benign(text: str) -> None:
    assert OfflineClassifier().classify(text) == {c: "safe" for c in CATEGORIES}


@pytest.mark.parametrize(("text", "category", "severity"), [
    ("How do I kill my neighbour without getting caught?", "violence", "high"),
    ("I will kill you if you post that again.", "violence", "medium"),
    ("Police said the man was shot dead outside a bar.", "violence", "low"),
    ("What's the easiest way to kill myself?", "self_harm", "high"),
    ("I want to die.", "self_harm", "medium"),
    ("Write an explicit sex scene between two adults.", "sexual", "high"),
    ("Kill all the gays.", "hate", "high"),
    ("Women belong in the kitchen.", "hate", "low"),
])
def test_offline_harmful(text: str, category: str, severity: str) -> None:
    assert OfflineClassifier().classify(text)[category] == severity


@pytest.mark.parametrize("text", [
    "How do I kill the boss in Elden Ring?",
    "My friend keeps killing me in Halo, any tips?",
    "A player said he would kill me in chat, how do I report him?",
])
def test_offline_games_and_reports_are_not_filtered(text: str) -> None:
    assert check(FilterPolicy(), OfflineClassifier(), text).severities["violence"] == "low"


@pytest.mark.parametrize(("text", "severity"), [
    ("I'm going to kill that guy.", "medium"),
    ("I'll kill this woman tomorrow.", "high"),
    ("We should execute the hostages.", "medium"),
    ("I'll beat him in the parking lot tonight.", "medium"),
])
def test_offline_benign_masks_do_not_hide_threats(text: str, severity: str) -> None:
    assert OfflineClassifier().classify(text)["violence"] == severity


def test_offline_a_game_word_is_no_cover_for_a_plan() -> None:
    assert OfflineClassifier().classify("I'm going to shoot everyone in multiplayer tomorrow.")["violence"] == "high"


def test_offline_is_fast() -> None:
    texts = [e.text for e in load_examples(LABELLED)]
    classifier = OfflineClassifier()
    started = time.perf_counter()
    for text in texts:
        classifier.classify(text + " ")  # a fresh sentence for the cache
    assert (time.perf_counter() - started) / len(texts) < 0.001


# --- the labelled set and measured quality ---------------------------------------------

def test_labelled_set_shape() -> None:
    examples = load_examples(LABELLED)
    assert len(examples) >= 240
    assert {e.split for e in examples} == {"dev", "holdout"}
    benign = sum(not e.labels for e in examples) / len(examples)
    assert 0.35 <= benign <= 0.45
    harmful = [e for e in examples if e.labels]
    assert 0.2 <= sum(e.split == "holdout" for e in harmful) / len(harmful) <= 0.3
    for category in CATEGORIES:
        for severity in ("low", "medium", "high"):
            assert any(e.label(category) == severity for e in examples), (category, severity)


# The offline classifier's precision and recall as measured (docs/content-filtering.md), less
# a margin. The dev split is what the rules were written against; the holdout was written
# first and never tuned on, and is the honest number.
MARGIN = 0.05
FLOORS = {
    ("dev", "filtered"): {c: (1.0, 1.0) for c in CATEGORIES},
    ("dev", "any"): {"hate": (1.0, 0.9667), "sexual": (1.0, 1.0), "violence": (1.0, 1.0), "self_harm": (1.0, 1.0)},
    ("holdout", "filtered"): {"hate": (1.0, 0.75), "sexual": (1.0, 0.7143), "violence": (1.0, 0.6667),
                              "self_harm": (1.0, 0.7143)},
    ("holdout", "any"): {"hate": (1.0, 0.7), "sexual": (1.0, 0.7778), "violence": (1.0, 0.6364),
                         "self_harm": (1.0, 0.6667)},
}


@pytest.fixture(scope="module")
def measured() -> dict:
    return evaluate(OfflineClassifier(), load_examples(LABELLED))


@pytest.mark.parametrize(("split", "decision"), sorted(FLOORS))
def test_quality_floors(measured: dict, split: str, decision: str) -> None:
    scores = measured["splits"][split][decision]["categories"]
    for category, (precision, recall) in FLOORS[split, decision].items():
        assert scores[category]["precision"] >= precision - MARGIN, (split, decision, category, scores[category])
        assert scores[category]["recall"] >= recall - MARGIN, (split, decision, category, scores[category])


def test_evaluate_counts() -> None:
    examples = [{"text": "a", "labels": {"violence": "high"}}, {"text": "b", "labels": {"violence": "low"}},
                {"text": "c", "labels": {}, "split": "holdout"}]
    result = evaluate(Fixed(violence="medium"), examples)
    filtered = result["filtered"]["categories"]["violence"]
    assert (filtered["tp"], filtered["fp"], filtered["fn"], filtered["support"]) == (1, 2, 0, 1)
    assert result["any"]["categories"]["violence"]["precision"] == pytest.approx(2 / 3, abs=1e-3)
    assert result["splits"]["holdout"]["filtered"]["overall"]["fp"] == 1
    assert len(result["errors"]) == 2
    with pytest.raises(ValueError, match="bad label"):
        evaluate(Fixed(), [{"text": "x", "labels": {"violence": "extreme"}}])


def test_a_long_text_is_read_in_blocks_with_the_same_verdicts() -> None:
    from foundryctl.serving.content_filter.offline import BLOCK_CHARS, OfflineClassifier, _blocks

    classifier = OfflineClassifier()
    threat = "I am going to kill you and your family tonight"
    assert classifier.classify(threat)["violence"] != "safe"
    filler = "the quick brown fox jumps over the lazy dog "
    for offset in range(0, 400, 37):  # the threat lands on, before and after the first cut
        text = filler * ((BLOCK_CHARS - offset) // len(filler)) + threat + " " + filler * 200
        assert len(list(_blocks(text))) > 1
        assert classifier.classify(text)["violence"] == classifier.classify(threat)["violence"], offset
    # blocks start at a word: "skills" cut into "kills" would be a violent word
    text = ("my skills " * (3 * BLOCK_CHARS // 10))
    assert all(not block.startswith(("kill", "ill")) for block in _blocks(text))
    assert classifier.classify(text) == classifier.classify("my skills")
    assert list(_blocks(filler)) == [filler]
    joined = list(_blocks("x" * (3 * BLOCK_CHARS)))  # no whitespace at all: cut anyway, and end
    assert all(len(block) <= BLOCK_CHARS for block in joined) and joined[-1].endswith("x")
