"""Tests for the chat-completion dataset validator, its statistics and the train/validation split.

Everything runs the real validator on real files: the two real datasets under
tests/data/datasets, one small file per problem category under tests/data/datasets/problems,
and files generated in tmp_path where the content is about bytes (invalid UTF-8, a BOM, a
truncated last line) or size (many examples). Expected lines and categories are written out
by hand from the files' contents; statistics are recomputed independently of the validator.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
from pathlib import Path

import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundryctl.datasets import (
    CATEGORIES,
    MIN_TRAINING_EXAMPLES,
    RECOMMENDED_EXAMPLES,
    ApproximateCounter,
    DatasetReport,
    TokenizerCounter,
    ValidationOptions,
    validate_dataset,
    write_split,
)
from foundryctl.datasets.report import ERROR

DATASETS = DATA / "datasets"
PROBLEMS = DATASETS / "problems"
COOKBOOK = DATASETS / "openai_cookbook_toy_chat.jsonl"
XBOX = DATASETS / "xbox_support_seed.jsonl"
ERRORS = {name for name, (severity, _) in CATEGORIES.items() if severity == ERROR}
BOM = b"\xef\xbb\xbf"

# -- helpers ------------------------------------------------------------------------------


def example(user: str, *, system: str | None = "You are a terse Xbox support agent.",
            reply: str | None = None, **top: object) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": user},
                 {"role": "assistant", "content": reply or f"Answer to: {user}"}]
    return {"messages": messages, **top}


def jsonl(*objects: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def unique_examples(n: int, tag: str = "q") -> list[dict]:
    return [example(f"Question {tag}{i}: how do I fix error 0x{i:04x}?") for i in range(n)]


def found(report: DatasetReport) -> collections.Counter:
    """(line, category) of every reported problem, as a multiset."""
    return collections.Counter((p.line, p.category) for p in report.problems)


def validate(path: Path, **options) -> DatasetReport:
    return validate_dataset(path, ValidationOptions(**options))


def assert_consistent(report: DatasetReport) -> None:
    """What must hold for any report: counts agree with the listed problems, validity agrees
    with the error categories, and every line is either an example or has an error."""
    assert sum(report.counts.values()) == len(report.problems) + report.omitted
    if report.omitted == 0:
        assert collections.Counter(p.category for p in report.problems) == collections.Counter(report.counts)
    has_error = any(report.counts.get(c) for c in ERRORS)
    assert report.valid is (not has_error)
    assert report.error_count == sum(n for c, n in report.counts.items() if c in ERRORS)
    lines_with_errors = {p.line for p in report.problems if p.category in ERRORS and p.line > 0}
    if report.omitted == 0:
        assert report.examples + len(lines_with_errors) == report.lines
    assert all(0 <= p.line <= report.lines for p in report.problems)
    json.dumps(report.to_dict())  # serializable


# -- the two real datasets ----------------------------------------------------------------


def test_cookbook_file_reports_its_known_problems_with_approximate_counts():
    """The OpenAI cookbook's toy dataset: too few examples, line 3 lacks a system message,
    line 4 a user message, and line 5 is far over a 4,096-token context."""
    report = validate(COOKBOOK, base_model="Phi-3-mini-4k-instruct", context_length=4096)
    assert found(report) == collections.Counter({
        (3, "example_missing_system_message"): 1,
        (4, "example_missing_user_message"): 1,
        (5, "over_context_length"): 1,
        (0, "too_few_examples"): 1,
    })
    assert not report.valid and report.error_count == 1 and report.warning_count == 3
    assert report.examples == 5 and report.lines == 5 and report.over_context == 1
    assert not report.tokens_exact and "approximate" in report.token_counting
    over = next(p for p in report.problems if p.category == "over_context_length")
    assert "about " in over.message and "Phi-3-mini-4k-instruct" in over.message
    assert report.total_tokens.max > 4096 * 1.5  # far over, not borderline
    assert_consistent(report)


def test_cookbook_file_with_exact_smollm2_counts(smollm2_counter: TokenizerCounter):
    """The same problems with SmolLM2's real tokenizer; the report says the counts are exact."""
    report = validate(COOKBOOK, counter=smollm2_counter, base_model="SmolLM2-135M-Instruct",
                      context_length=4096)
    assert found(report) == collections.Counter({
        (3, "example_missing_system_message"): 1,
        (4, "example_missing_user_message"): 1,
        (5, "over_context_length"): 1,
        (0, "too_few_examples"): 1,
    })
    assert report.tokens_exact and report.token_counting.startswith("exact")
    over = next(p for p in report.problems if p.category == "over_context_length")
    assert "about" not in over.message
    # Line 5's size, recounted message by message with the tokenizer itself.
    messages = json.loads(COOKBOOK.read_text(encoding="utf-8").splitlines()[4])["messages"]
    tokens = sum(len(smollm2_counter.tokenizer.encode(m["content"], add_special_tokens=False).ids)
                 for m in messages) + smollm2_counter.overhead(tuple(m["role"] for m in messages))
    assert report.total_tokens.max == tokens > 4096
    assert f"{tokens:,} tokens" in over.message


def test_xbox_seed_is_well_formed_but_too_small():
    """Three well-formed 3-message examples: the only problem is too few examples."""
    report = validate(XBOX)
    assert found(report) == collections.Counter({(0, "too_few_examples"): 1})
    assert "3 training examples" in report.problems[0].message
    assert report.examples == 3 and report.lines == 3
    mpe = report.messages_per_example
    assert (mpe.count, mpe.total, mpe.min, mpe.median, mpe.max) == (3, 9, 3, 3, 3)
    assert 0 < report.assistant_tokens.min and report.assistant_tokens.total < report.total_tokens.total
    assert report.total_tokens.min <= report.total_tokens.median <= report.total_tokens.max
    assert report.billed_tokens == report.total_tokens.total  # no context limit, one epoch
    assert report.size == XBOX.stat().st_size
    assert report.sha256 == hashlib.sha256(XBOX.read_bytes()).hexdigest()
    assert report.duplicates == 0 and report.over_context == 0
    assert_consistent(report)


# -- one file per problem category --------------------------------------------------------

TOO_FEW = (0, "too_few_examples")
CASES: dict[str, list[tuple[int, str]]] = {
    "blank_line.jsonl": [(2, "data_type"), TOO_FEW],
    "json_array.jsonl": [(2, "data_type"), TOO_FEW],
    "not_json.jsonl": [(2, "data_type"), (3, "data_type"), TOO_FEW],
    "messages_list.jsonl": [(2, "example_unrecognized_key"), (2, "missing_messages_list"),
                            (3, "missing_messages_list"), (4, "missing_messages_list"),
                            (5, "missing_messages_list"), (6, "missing_messages_list"), TOO_FEW],
    "message_not_object.jsonl": [(2, "data_type"), (3, "data_type"), TOO_FEW],
    "message_missing_key.jsonl": [(2, "message_missing_key"), (3, "message_missing_key"),
                                  (4, "message_unrecognized_key"), (4, "message_missing_key"), TOO_FEW],
    "unrecognized_role.jsonl": [(2, "unrecognized_role"), (3, "unrecognized_role"),
                                (3, "example_missing_assistant_message"), (4, "unrecognized_role"),
                                (5, "unrecognized_role"), TOO_FEW],
    "missing_content.jsonl": [(n, "missing_content") for n in range(2, 7)] + [TOO_FEW],
    "no_assistant.jsonl": [(2, "example_missing_assistant_message"),
                           (3, "example_missing_assistant_message"), TOO_FEW],
    "invalid_weight.jsonl": [(n, "invalid_weight") for n in range(2, 7)] + [TOO_FEW],
    "all_weights_zero.jsonl": [(2, "example_all_weights_zero"), TOO_FEW],
    "duplicates.jsonl": [(3, "duplicate_example"), (5, "duplicate_example"), (6, "duplicate_example"),
                         TOO_FEW],
    "unrecognized_top_level_key.jsonl": [(2, "example_unrecognized_key"), (3, "example_unrecognized_key"),
                                         (3, "example_unrecognized_key"), TOO_FEW],
    "missing_system_or_user.jsonl": [(2, "example_missing_system_message"),
                                     (3, "example_missing_user_message"),
                                     (4, "example_missing_system_message"),
                                     (4, "example_missing_user_message"), TOO_FEW],
    "bad_name.jsonl": [(3, "data_type"), (4, "data_type"), TOO_FEW],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_problem_file_reports_exactly_its_problems(name: str):
    """Each small file reports exactly the expected (line, category) pairs, nothing more."""
    report = validate(PROBLEMS / name)
    assert found(report) == collections.Counter(CASES[name])
    lines = [p.line for p in report.problems if p.line]
    assert lines == sorted(lines), "problems are reported in line order"
    assert_consistent(report)


def messages_at(report: DatasetReport, line: int) -> list[str]:
    return [p.message for p in report.problems if p.line == line]


def test_problem_messages_explain_the_fix():
    """Messages say what is wrong and, for near misses, what was meant."""
    keys = validate(PROBLEMS / "message_missing_key.jsonl")
    assert any("did you mean 'content'?" in m for m in messages_at(keys, 4))
    assert any("no 'role'" in m for m in messages_at(keys, 2))
    assert any("no 'content'" in m for m in messages_at(keys, 3))
    roles = validate(PROBLEMS / "unrecognized_role.jsonl")
    assert any("'bot'" in m and "expected system, user or assistant" in m for m in messages_at(roles, 2))
    assert any("did you mean 'assistant'?" in m for m in messages_at(roles, 3))
    assert any("did you mean 'system'?" in m for m in messages_at(roles, 4))
    content = validate(PROBLEMS / "missing_content.jsonl")
    assert [m.split(" has ")[1] for m in (messages_at(content, n)[0] for n in range(2, 7))] == [
        "empty content", "blank content", "null content, not a string", "a number content, not a string",
        "an array content, not a string"]
    weights = validate(PROBLEMS / "invalid_weight.jsonl")
    assert "weight 2; it must be 0 or 1" in messages_at(weights, 2)[0]
    assert "weight '1'" in messages_at(weights, 3)[0]
    assert "only assistant messages take one" in messages_at(weights, 4)[0]
    assert "weight True" in messages_at(weights, 5)[0]
    duplicates = validate(PROBLEMS / "duplicates.jsonl")
    assert [m for n in (3, 5, 6) for m in messages_at(duplicates, n)] == [
        "the example repeats line 1 exactly", "the example repeats line 2 exactly",
        "the example repeats line 1 exactly"]
    assert duplicates.duplicates == 3 and duplicates.examples == 6  # duplicates still count
    lists = validate(PROBLEMS / "messages_list.jsonl")
    assert [messages_at(lists, n)[-1] for n in range(2, 7)] == [
        "`messages` is missing", "`messages` is empty", "`messages` is a string, not a list",
        "`messages` is an object, not a list", "`messages` is null, not a list"]
    array = validate(PROBLEMS / "json_array.jsonl")
    assert messages_at(array, 2) == ["expected a JSON object, found an array"]
    blank = validate(PROBLEMS / "blank_line.jsonl")
    assert "blank line" in messages_at(blank, 2)[0]


def test_mixed_file_reports_every_problem_in_one_run():
    """A file with one line of each kind: all problems come out of a single pass."""
    report = validate(PROBLEMS / "mixed_problems.jsonl")
    assert found(report) == collections.Counter([
        (2, "data_type"), (3, "data_type"), (4, "data_type"),
        (5, "missing_messages_list"),
        (6, "example_unrecognized_key"), (6, "missing_messages_list"),
        (7, "data_type"),
        (8, "message_missing_key"),
        (9, "message_unrecognized_key"), (9, "message_missing_key"),
        (10, "unrecognized_role"), (10, "example_missing_assistant_message"),
        (11, "missing_content"),
        (12, "example_missing_assistant_message"),
        (13, "invalid_weight"),
        (14, "example_all_weights_zero"),
        (15, "duplicate_example"),
        (16, "example_unrecognized_key"),
        (17, "example_missing_system_message"),
        (18, "example_missing_user_message"),
        (0, "too_few_examples"),  # every problem in one run: the size too
    ])
    assert "7 valid training examples" in next(p.message for p in report.problems if not p.line)
    assert report.examples == 7 and report.lines == 19
    assert report.error_count == 15 and report.warning_count == 6
    assert_consistent(report)


def test_invalid_utf8_is_reported_on_its_line(tmp_path: Path):
    """Bytes that are not UTF-8 are a data_type error naming the byte; other lines still count."""
    good = jsonl(example("Hi"))
    bad = b'{"messages": [{"role": "user", "content": "caf\xe9"}, {"role": "assistant", "content": "ok"}]}\n'
    report = validate(write(tmp_path / "latin1.jsonl", good + bad + jsonl(example("Bye"))))
    assert found(report) == collections.Counter({(2, "data_type"): 1, TOO_FEW: 1})
    assert "not valid UTF-8: byte 0xe9" in report.problems[0].message
    assert report.examples == 2
    assert_consistent(report)


def test_truncated_last_line_is_reported_as_possibly_truncated(tmp_path: Path):
    """A cut-off last line without a newline: a data_type error that suggests truncation."""
    data = jsonl(example("Hi"), example("Bye")) + b'{"messages": [{"role": "user", "content": "Hel'
    report = validate(write(tmp_path / "cut.jsonl", data))
    assert found(report) == collections.Counter({(3, "data_type"): 1, TOO_FEW: 1})
    assert "truncated" in report.problems[0].message
    assert report.lines == 3 and report.examples == 2
    assert_consistent(report)


def test_complete_last_line_without_newline_is_fine(tmp_path: Path):
    """A well-formed last line without a trailing newline is an ordinary example."""
    data = jsonl(*unique_examples(10)).rstrip(b"\n")
    report = validate(write(tmp_path / "no-final-newline.jsonl", data))
    assert report.examples == 10 and report.lines == 10
    assert set(report.counts) == {"few_examples"}


def test_bom_at_file_start_is_allowed_but_not_elsewhere(tmp_path: Path):
    """A UTF-8 BOM is accepted at the very start of the file (and CRLF endings), not mid-file."""
    lines = [json.dumps(e).encode() for e in unique_examples(12)]
    report = validate(write(tmp_path / "bom.jsonl", BOM + b"\r\n".join(lines) + b"\r\n"))
    assert report.examples == 12 and set(report.counts) == {"few_examples"}
    report = validate(write(tmp_path / "bom-mid.jsonl", b"\n".join([lines[0], BOM + lines[1]]) + b"\n"))
    assert found(report) == collections.Counter({(2, "data_type"): 1, TOO_FEW: 1})
    assert "BOM" in report.problems[0].message


def test_lone_surrogate_and_nan_are_not_valid_json(tmp_path: Path):
    """JSON that Python would accept but is not valid JSON text is a data_type error."""
    data = (b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}\n'
            b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", '
            b'"weight": NaN}]}\n')
    report = validate(write(tmp_path / "odd.jsonl", data))
    # The surrogate line is still checked as an example (it has no system message), but not counted.
    assert found(report) == collections.Counter({(1, "data_type"): 1, (1, "example_missing_system_message"): 1,
                                                 (2, "data_type"): 1, TOO_FEW: 1})
    assert "surrogate" in report.problems[0].message and report.examples == 0


@pytest.mark.parametrize("depth", [1020, 5000, 200_000])
def test_deeply_nested_json_is_reported_not_raised(tmp_path: Path, depth: int):
    """Regression: nesting past the JSON parsers' recursion limits raised RecursionError
    (in json.loads, or in repr() when quoting the value); now it is a per-line problem."""
    nest = b"[" * depth + b"]" * depth
    data = (nest + b"\n"
            + b'{"messages": [{"role": ' + nest + b', "content": "Hi"}, {"role": "assistant", "content": "x"}]}\n'
            + b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x", '
              b'"weight": ' + nest + b"}]}\n")
    report = validate(write(tmp_path / "deep.jsonl", data))
    assert {line for line, _ in found(report)} == {0, 1, 2, 3}  # 0: too few examples
    assert report.examples == 0 and not report.valid
    assert_consistent(report)


def test_example_counts_decide_too_few_and_few_examples(tmp_path: Path):
    """< 10 examples: too_few_examples error; 10-49: few_examples warning only; >= 50: neither."""
    for n, expected in [(1, {"too_few_examples"}), (MIN_TRAINING_EXAMPLES - 1, {"too_few_examples"}),
                        (MIN_TRAINING_EXAMPLES, {"few_examples"}), (RECOMMENDED_EXAMPLES - 1, {"few_examples"}),
                        (RECOMMENDED_EXAMPLES, set()), (120, set())]:
        report = validate(write(tmp_path / f"{n}.jsonl", jsonl(*unique_examples(n))))
        assert set(report.counts) == expected, n
        assert report.examples == n
        assert all(p.line == 0 for p in report.problems)
        assert report.valid is (n >= MIN_TRAINING_EXAMPLES)


def test_split_counts_only_training_examples_towards_the_minimum(tmp_path: Path):
    """Examples held out for validation do not count towards the 10-example minimum."""
    path = write(tmp_path / "twelve.jsonl", jsonl(*unique_examples(12)))
    report = validate(path, split=(0.2, 1))  # round(2.4) = 2 held out: 10 train
    assert (report.split.training_examples, report.split.validation_examples) == (10, 2)
    assert set(report.counts) == {"few_examples"}
    assert "after holding out 2 for validation" in report.problems[0].message
    report = validate(path, split=(0.25, 1))  # 3 held out: 9 train
    assert set(report.counts) == {"too_few_examples"}
    assert "9 training examples after holding out 3" in report.problems[0].message


def test_validation_file_needs_one_example(tmp_path: Path):
    """A validation file is not held to the training minimum, but must not be empty."""
    one = validate(write(tmp_path / "one.jsonl", jsonl(example("Hi"))), role="validation")
    assert one.valid and not one.counts
    empty = validate(write(tmp_path / "empty.jsonl", b""), role="validation")
    assert found(empty) == collections.Counter({(0, "too_few_examples"): 1})


def test_max_problems_caps_the_list_but_not_the_counts(tmp_path: Path):
    """With 40 bad lines and max_problems=5: 5 listed (the first ones), counts has all 40+,
    and `omitted` says how many were left out."""
    bad = {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "ok"}]}
    lines = [json.dumps({**bad, "n": i}).encode() for i in range(40)]  # distinct, each with 2 problems
    report = validate(write(tmp_path / "bad.jsonl", b"\n".join(lines) + b"\n"), max_problems=5)
    assert report.counts == {"missing_content": 40, "example_unrecognized_key": 40, "too_few_examples": 1}
    assert len(report.problems) == 5 and report.omitted == 76
    assert [p.line for p in report.problems] == [1, 1, 2, 2, 3]
    assert report.error_count == 41 and report.warning_count == 40 and not report.valid
    assert report.to_dict()["omitted_problems"] == 76
    full = validate(tmp_path / "bad.jsonl")
    assert full.omitted == 0 and len(full.problems) == 81 and full.counts == report.counts


def test_chat_template_refusal_is_reported_once_per_shape(tmp_path: Path, smollm2_counter: TokenizerCounter):
    """A template that raises for conversations without a system message: one
    chat_template_error per conversation shape, at its first line."""
    strict = TokenizerCounter(
        smollm2_counter.tokenizer, "strict",
        "{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message must come first') }}"
        "{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}")
    data = jsonl(example("A"), example("B", system=None), example("C", system=None),
                 {"messages": [{"role": "assistant", "content": "Hi!"}]}, *unique_examples(10))
    report = validate(write(tmp_path / "shapes.jsonl", data), counter=strict, base_model="Strict-1")
    errors = [p for p in report.problems if p.category == "chat_template_error"]
    assert [p.line for p in errors] == [2, 4]
    assert "a system message must come first" in errors[0].message and "Strict-1" in errors[0].message
    assert report.valid  # a warning: Azure applies its own template


def test_format_only_mode_skips_token_statistics(tmp_path: Path):
    """count_tokens=False: the format checks and message counts still run, tokens do not."""
    path = write(tmp_path / "d.jsonl", jsonl(*unique_examples(10), example("", system=None)))
    report = validate(path, count_tokens=False, context_length=1)
    assert found(report) == collections.Counter({(11, "missing_content"): 1})
    assert report.token_counting == "skipped" and report.total_tokens.count == 0
    assert report.billed_tokens == 0 and report.over_context == 0
    assert report.messages_per_example.count == 10 and report.messages_per_example.total == 30


# -- statistics ---------------------------------------------------------------------------

STATS_LINES = [
    example("Hi", reply="Hello."),
    example("My controller will not turn on. I tried new batteries.", reply=(
        "Hold the Xbox button for ten seconds, then connect it with a USB cable. " * 4)),
    {"messages": [{"role": "user", "content": "Short?"}, {"role": "assistant", "content": "Yes."}]},
    example("How much storage does the Series S have?", reply="512 GB."),
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A"},
                  {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"},
                  {"role": "assistant", "content": "D" * 150}]},
    example("naïve café question — does 🎮 work?", reply="Oui, ça marche très bien."),
    example("x" * 400, reply="That is a lot of x."),
    example("Can I play Xbox 360 games?", reply="Many of them, through backward compatibility."),
    example("Is online play free?", reply="Free-to-play games are; others need Game Pass Core."),
    example("Why is my download slow?", reply="Pause other downloads and use a wired connection." * 2),
    example("Who are you?", system="You are Clippy.", reply="I'm here to help!"),
]


def expected_tokens(counter, lines: list[dict]) -> tuple[list[int], list[int]]:
    """(total, assistant) tokens per example, counted one content at a time."""
    if isinstance(counter, TokenizerCounter):
        def count(text: str) -> int:
            return len(counter.tokenizer.encode(text, add_special_tokens=False).ids)
    else:
        def count(text: str) -> int:  # ~4 characters per token; 2 bytes per token off ASCII
            return math.ceil(len(text) / 4) if text.isascii() else math.ceil(len(text.encode()) / 2)
    totals, assistant = [], []
    for line in lines:
        messages = line["messages"]
        roles = tuple(m["role"] for m in messages)
        if isinstance(counter, TokenizerCounter):
            overhead = counter.overhead(roles)
        else:
            overhead = 3 * len(messages) + 3  # the cookbook's framing estimate
        totals.append(sum(count(m["content"]) for m in messages) + overhead)
        assistant.append(sum(count(m["content"]) for m in messages if m["role"] == "assistant"))
    return totals, assistant


@pytest.fixture(params=["approximate", "smollm2"])
def any_counter(request):
    if request.param == "approximate":
        return ApproximateCounter()
    return request.getfixturevalue("smollm2_counter")


def check_distribution(dist, values: list[int]) -> None:
    ordered = sorted(values)
    assert len(ordered) == 11  # nearest ranks: p10 = 2nd, median = 6th, p90 = 10th of 11
    assert (dist.count, dist.total, dist.min, dist.p10, dist.median, dist.p90, dist.max) == (
        11, sum(values), ordered[0], ordered[1], ordered[5], ordered[9], ordered[10])


def test_token_distributions_match_an_independent_count(tmp_path: Path, any_counter):
    """Total and assistant token distributions equal a message-by-message recount."""
    path = write(tmp_path / "stats.jsonl", jsonl(*STATS_LINES))
    report = validate(path, counter=any_counter)
    totals, assistant = expected_tokens(any_counter, STATS_LINES)
    check_distribution(report.total_tokens, totals)
    check_distribution(report.assistant_tokens, assistant)
    assert sorted(len(e["messages"]) for e in STATS_LINES) == sorted(
        [2] + [3] * 9 + [5])  # the distribution below is checked against this
    mpe = report.messages_per_example
    assert (mpe.min, mpe.p10, mpe.median, mpe.p90, mpe.max, mpe.total) == (2, 3, 3, 3, 5, 34)
    assert report.tokens_exact is any_counter.exact


@pytest.mark.parametrize("context, epochs", [(None, 1), (60, 3), (25, 2)])
def test_billed_tokens_are_context_capped_and_times_epochs(tmp_path: Path, any_counter, context, epochs):
    """billed = Σ min(context, tokens) × epochs; longer examples are flagged on their lines."""
    path = write(tmp_path / "stats.jsonl", jsonl(*STATS_LINES))
    report = validate(path, counter=any_counter, context_length=context, epochs=epochs)
    totals, _ = expected_tokens(any_counter, STATS_LINES)
    per_epoch = sum(min(t, context) if context else t for t in totals)
    assert report.billed_tokens_per_epoch == per_epoch
    assert report.billed_tokens == per_epoch * epochs
    over = [i + 1 for i, t in enumerate(totals) if context and t > context]
    assert [p.line for p in report.problems if p.category == "over_context_length"] == over
    assert report.over_context == len(over)
    if context:
        assert over, "the parameters are meant to put some examples over the context"


def test_split_bills_only_training_examples(tmp_path: Path, any_counter):
    """With a split, billed tokens are those of the training half: the same figure as
    validating the training file write_split produced on its own."""
    lines = STATS_LINES + unique_examples(29)
    path = write(tmp_path / "stats.jsonl", jsonl(*lines))
    options = {"counter": any_counter, "context_length": 60, "epochs": 2}
    whole = validate(path, **options)
    split = validate(path, split=(0.25, 11), **options)
    assert split.split.validation_examples == 10 and split.split.training_examples == 30
    training, validation = write_split(path, split, tmp_path / "train.jsonl", tmp_path / "valid.jsonl")
    train_report = validate(training.path, **options)
    valid_report = validate(validation.path, role="validation", **options)
    assert split.billed_tokens_per_epoch == train_report.billed_tokens_per_epoch
    assert split.billed_tokens_per_epoch + valid_report.billed_tokens_per_epoch == whole.billed_tokens_per_epoch
    assert 0 < split.billed_tokens < whole.billed_tokens
    assert split.billed_tokens == 2 * split.billed_tokens_per_epoch
    assert split.total_tokens == whole.total_tokens  # statistics still describe the whole file


# -- split --------------------------------------------------------------------------------


def split_files(path: Path, out: Path, fraction: float, seed: int):
    out.mkdir(parents=True, exist_ok=True)
    report = validate(path, split=(fraction, seed))
    parts = write_split(path, report, out / "train.jsonl", out / "valid.jsonl")
    return report, parts


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_split_is_deterministic_and_respects_the_fraction(tmp_path: Path):
    """Same file and seed: same counts and byte-identical files; 100 examples at 0.1 give 10
    for validation; part hashes and sizes describe the files written."""
    path = write(tmp_path / "data.jsonl", jsonl(*unique_examples(100)))
    first, (train1, valid1) = split_files(path, tmp_path / "a", 0.1, 42)
    second, (train2, valid2) = split_files(path, tmp_path / "b", 0.1, 42)
    assert (first.split.training_examples, first.split.validation_examples) == (90, 10)
    assert first.split == second.split
    assert train1.path.read_bytes() == train2.path.read_bytes()
    assert valid1.path.read_bytes() == valid2.path.read_bytes()
    for part, examples in [(train1, 90), (valid1, 10)]:
        data = part.path.read_bytes()
        assert part.examples == examples == len(data.splitlines())
        assert part.sha256 == hashlib.sha256(data).hexdigest() and part.size == len(data)
    assert sorted(lines_of(train1.path) + lines_of(valid1.path)) == sorted(lines_of(path))


def test_split_differs_by_seed(tmp_path: Path):
    """Another seed holds out other examples (same count)."""
    path = write(tmp_path / "data.jsonl", jsonl(*unique_examples(100)))
    _, (_, valid1) = split_files(path, tmp_path / "a", 0.1, 1)
    _, (_, valid2) = split_files(path, tmp_path / "b", 0.1, 2)
    assert len(lines_of(valid1.path)) == len(lines_of(valid2.path)) == 10
    assert set(lines_of(valid1.path)) != set(lines_of(valid2.path))


@pytest.mark.parametrize("fraction, n, held_out", [(0.1, 100, 10), (0.2, 37, 7), (0.5, 11, 5),
                                                    (0.01, 30, 1), (0.99, 30, 29)])
def test_split_fraction_rounds_and_keeps_both_sides(tmp_path: Path, fraction, n, held_out):
    """floor(fraction × n) examples are held out, at least 1 and at most n - 1."""
    path = write(tmp_path / "data.jsonl", jsonl(*unique_examples(n)))
    report = validate(path, split=(fraction, 3))
    assert (report.split.training_examples, report.split.validation_examples) == (n - held_out, held_out)


def test_duplicates_land_on_the_same_side(tmp_path: Path):
    """Exact duplicates share a split key: all copies go to training or all to validation,
    whichever the seed decides (both outcomes are seen over 30 seeds)."""
    repeated = [json.dumps(example(f"Repeated question {k}")).encode() for k in range(3)]
    others = [json.dumps(e).encode() for e in unique_examples(40)]
    lines = others[:10] + [repeated[0]] + others[10:20] + [repeated[0], repeated[1]] + others[20:30] \
        + [repeated[1], repeated[2], repeated[0]] + others[30:] + [repeated[2] + b"  "]  # whitespace-insensitive
    path = write(tmp_path / "dups.jsonl", b"\n".join(lines) + b"\n")
    sides = collections.Counter()
    for seed in range(30):
        report, (train, valid) = split_files(path, tmp_path / str(seed), 0.3, seed)
        assert report.valid and report.duplicates == 4
        train_lines, valid_lines = lines_of(train.path), lines_of(valid.path)
        for line in repeated:
            in_train = sum(1 for x in train_lines if x.strip() == line)
            in_valid = sum(1 for x in valid_lines if x.strip() == line)
            copies = in_train + in_valid
            assert copies in (2, 3) and (in_train, in_valid) in ((copies, 0), (0, copies))
            sides["validation" if in_valid else "training"] += 1
    assert sides["validation"] and sides["training"]


def test_every_line_lands_exactly_once(tmp_path: Path):
    """The two outputs partition the input lines: nothing lost, nothing doubled, no blank
    lines; CRLF endings are normalized to LF."""
    lines = [json.dumps(e).encode() for e in unique_examples(57)] + [json.dumps(example("dup")).encode()] * 3
    path = write(tmp_path / "crlf.jsonl", b"\r\n".join(lines) + b"\r\n")
    report, (train, valid) = split_files(path, tmp_path / "out", 0.15, 7)
    out = lines_of(train.path) + lines_of(valid.path)
    assert collections.Counter(out) == collections.Counter(lines)
    assert b"\r" not in train.path.read_bytes() + valid.path.read_bytes()
    assert (train.examples, valid.examples) == (report.split.training_examples, report.split.validation_examples)
    assert train.examples + valid.examples == 60


def test_file_with_bom_splits_cleanly(tmp_path: Path):
    """A BOM-prefixed file validates, and the split neither loses the first example nor
    copies the BOM into an output."""
    lines = [json.dumps(e, ensure_ascii=False).encode() for e in unique_examples(20) + [example("café ☕")]]
    path = write(tmp_path / "bom.jsonl", BOM + b"\n".join(lines) + b"\n")
    report, (train, valid) = split_files(path, tmp_path / "out", 0.2, 5)
    assert report.valid and report.examples == 21
    data = train.path.read_bytes() + valid.path.read_bytes()
    assert BOM not in data
    assert collections.Counter(data.splitlines()) == collections.Counter(lines)
    assert (train.examples, valid.examples) == (17, 4)


def test_write_split_refuses_a_report_without_split_or_with_errors(tmp_path: Path):
    """Only a valid file validated with a split can be written out."""
    good = write(tmp_path / "good.jsonl", jsonl(*unique_examples(20)))
    with pytest.raises(ValueError, match="no split"):
        write_split(good, validate(good), tmp_path / "t", tmp_path / "v")
    bad = write(tmp_path / "bad.jsonl", jsonl(*unique_examples(20)) + b"\n")
    with pytest.raises(ValueError, match="has errors"):
        write_split(bad, validate(bad, split=(0.1, 1)), tmp_path / "t", tmp_path / "v")


def test_split_detects_a_file_changed_since_validation(tmp_path: Path):
    """A file edited between validation and writing the split is refused, not mis-split."""
    path = write(tmp_path / "data.jsonl", jsonl(*unique_examples(20)))
    report = validate(path, split=(0.2, 9))
    path.write_bytes(jsonl(*unique_examples(25)))  # five examples appended
    with pytest.raises(RuntimeError, match="changed"):
        write_split(path, report, tmp_path / "t.jsonl", tmp_path / "v.jsonl")


# -- property-based: the validator never raises and its verdict is coherent ---------------

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(data=st.binary(max_size=400) | st.lists(
    st.sampled_from([b"{", b"}", b"[", b"]", b'"messages"', b":", b",", b'"role"', b'"content"', b'"user"',
                     b'"assistant"', b"\n", b"\r\n", b" ", b"\xef\xbb\xbf", b"\xff", b"null", b"0", b"1",
                     b'"\\ud800"', b'"x"']), max_size=60).map(b"".join))
def test_arbitrary_bytes_never_raise(tmp_path_factory, data: bytes):
    """Any bytes at all give a report (never an exception) that is internally consistent."""
    path = tmp_path_factory.mktemp("bytes") / "any.jsonl"
    path.write_bytes(data)
    report = validate_dataset(path, ValidationOptions(context_length=50, split=(0.2, 1)))
    assert report.size == len(data) and report.sha256 == hashlib.sha256(data).hexdigest()
    assert_consistent(report)


JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=10))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=12)
ROLE = st.sampled_from(["system", "user", "assistant", "bot", "asistant", "Assistant", ""]) | JSON_SCALARS
CONTENT = st.sampled_from(["Hello there.", " ", "", "\n\t", "\x85", "naïve ☕", "<|im_start|>"]) | JSON_VALUES
MESSAGE = st.fixed_dictionaries(
    {}, optional={"role": ROLE, "content": CONTENT, "name": st.sampled_from(["alex", ""]) | JSON_SCALARS,
                  "weight": st.sampled_from([0, 1, 2, -1, "1", True, False, 1.0, None]),
                  "contents": CONTENT, "rol": ROLE})
CHAT = st.fixed_dictionaries(
    {}, optional={"messages": st.lists(MESSAGE | JSON_VALUES, max_size=5) | JSON_VALUES,
                  "metadata": JSON_VALUES})
# Mostly chat-shaped examples, some valid by construction, with arbitrary JSON mixed in.
VALID_MESSAGE = st.builds(
    lambda role, content, weight: {"role": role, "content": content,
                                   **({"weight": weight} if role == "assistant" and weight is not None else {})},
    st.sampled_from(["system", "user", "assistant"]),
    st.text(min_size=1, max_size=20).filter(lambda t: not t.isspace()), st.sampled_from([None, 0, 1]))
VALID_CHAT = st.lists(VALID_MESSAGE, min_size=1, max_size=5).map(lambda m: {"messages": m})
DELETE = object()
NEAR_MISSES = st.sampled_from(
    [("content", v) for v in ("", " ", "\n\t", "\x85", None, 1, ["x"], DELETE)]
    + [("role", v) for v in ("bot", "asistant", "Assistant", "", None, 1, DELETE)]
    + [("weight", v) for v in (0, 1, 2, -1, "1", True, False, 1.0, None)]
    + [("name", v) for v in ("alex", "", 7, None)]
    + [("contents", "x"), ("Role", "user")])


def near_miss(chat: dict, index: int, change: tuple[str, object]) -> dict:
    """A valid example with one message changed: a key set to a value, or removed."""
    messages = [dict(m) for m in chat["messages"]]
    message = messages[index % len(messages)]
    key, value = change
    if value is DELETE:
        message.pop(key, None)
    else:
        message[key] = value
    return {"messages": messages}


NEAR_MISS_CHAT = st.builds(near_miss, VALID_CHAT, st.integers(0, 4), NEAR_MISSES)
LINE = VALID_CHAT | NEAR_MISS_CHAT | CHAT | JSON_VALUES


def error_free(value: object) -> bool:
    """An independent statement of the format rules: would Azure accept this line?"""
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list) or not value["messages"]:
        return False
    has_assistant = False
    for message in value["messages"]:
        if not isinstance(message, dict) or not set(message) <= {"role", "content", "name", "weight"}:
            return False
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str) or not content.strip():
            return False
        if "name" in message and not (isinstance(message["name"], str) and message["name"]):
            return False
        if "weight" in message and not (type(message["weight"]) is int and message["weight"] in (0, 1)
                                        and role == "assistant"):
            return False
        has_assistant = has_assistant or role == "assistant"
    return has_assistant


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(LINE, min_size=1, max_size=8), ascii_only=st.booleans())
def test_arbitrary_json_lines_never_raise_and_errors_are_exactly_the_bad_lines(
        tmp_path_factory, values: list, ascii_only: bool):
    """Random JSON values and chat-shaped examples, one per line: the validator never raises,
    `valid` is False whenever an error category is counted, and a line has an error exactly
    when an independent restatement of the rules rejects it."""
    path = tmp_path_factory.mktemp("json") / "any.jsonl"
    path.write_bytes(b"".join(json.dumps(v, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass") + b"\n"
                              for v in values))
    report = validate_dataset(path, ValidationOptions(context_length=40, split=(0.3, 5)))
    assert_consistent(report)
    if any(report.counts.get(c) for c in ERRORS):
        assert not report.valid
    error_lines = {p.line for p in report.problems if p.category in ERRORS and p.line > 0}
    assert error_lines == {i for i, v in enumerate(values, 1) if not error_free(v)}
    assert report.examples == sum(map(error_free, values))
    # The split covers exactly the valid examples, whatever else is wrong with the file.
    assert report.split.training_examples + report.split.validation_examples == report.examples
    if len({json.dumps(v, sort_keys=False) for v in values if error_free(v)}) >= 2:
        assert report.split.validation_examples >= 1 and report.split.training_examples >= 1


def test_file_over_the_size_limit_is_an_error(tmp_path, monkeypatch) -> None:
    """The 512 MiB limit, checked with a lowered limit (a real 512 MiB file is too slow to write)."""
    from foundryctl.datasets import validator

    path = tmp_path / "big.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path.write_text((line + "\n") * 60)
    monkeypatch.setattr(validator, "MAX_FILE_BYTES", path.stat().st_size - 1)
    report = validate_dataset(path)
    assert report.counts.get("file_too_large") == 1 and not report.valid
    monkeypatch.setattr(validator, "MAX_FILE_BYTES", path.stat().st_size)
    assert "file_too_large" not in validate_dataset(path).counts


def test_an_overlong_line_is_reported_and_skipped_without_holding_it(tmp_path, monkeypatch) -> None:
    """A line past MAX_LINE_BYTES is one data_type problem; the lines after it are still checked
    with the right numbers, even when the long line spans many read blocks."""
    from foundryctl.datasets import validator

    monkeypatch.setattr(validator, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(validator, "BLOCK_BYTES", 256)
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    path = tmp_path / "long.jsonl"
    path.write_text(good + "\n" + "x" * 5000 + "\n" + good.replace("q", "r") + "\n" + "[1]\n" + "y" * 3000)
    report = validate_dataset(path)
    found = [(p.line, p.category) for p in report.problems if p.severity == "error"]
    assert (2, "data_type") in found and (4, "data_type") in found and (5, "data_type") in found
    assert "longer than" in next(p.message for p in report.problems if p.line == 2)
    assert report.lines == 5 and report.examples == 2


def test_a_split_of_identical_examples_keeps_them_for_training(tmp_path: Path):
    """Ties never empty the training side: 20 copies of one example stay together in
    training, and the report says the split held out nothing."""
    path = write(tmp_path / "same.jsonl", jsonl(*[example("Same")] * 20))
    report = validate(path, split=(0.1, 1))
    assert (report.split.training_examples, report.split.validation_examples) == (20, 0)
    assert any(p.category == "too_few_examples" and "holds out no examples" in p.message
               for p in report.problems)


def test_every_defect_behind_a_huge_integer_is_reported(tmp_path: Path, smollm2_counter) -> None:
    """A >64-bit integer used to hide a lone surrogate: validate said Success and the
    tokenizer crashed later. Both are errors now, and the line is not tokenized."""
    lines = [json.dumps(e).encode() for e in unique_examples(12)]
    bad = (b'{"n": 123456789012345678901234567890, "messages": [{"role": "system", "content": "s"}, '
           b'{"role": "user", "content": "u"}, {"role": "assistant", "content": "a\\ud800"}]}')
    path = write(tmp_path / "d.jsonl", b"\n".join([*lines, bad]) + b"\n")
    for counter in (None, smollm2_counter):
        report = validate(path, counter=counter)
        assert found(report) == collections.Counter({(13, "data_type"): 2, (13, "example_unrecognized_key"): 1})
        assert report.examples == 12 and not report.valid
        messages = sorted(p.message for p in report.problems if p.category == "data_type")
        assert messages == ["integer beyond 64 bits (30 digits) at n",
                            "unpaired UTF-16 surrogate escape in the string 'a\\ud800' at messages[2].content"]


def test_long_keys_and_values_are_truncated_in_messages(tmp_path: Path) -> None:
    """Messages quote at most a few dozen characters of what a line holds."""
    key = "k" * 100_000
    data = json.dumps({"messages": [{"role": "user", "content": "q", key: 1},
                                    {"role": "r" * 100_000, "content": "a"}], key: 2}).encode()
    report = validate(write(tmp_path / "d.jsonl", data + b"\n"))
    assert report.problems and all(len(p.message) < 200 for p in report.problems)
