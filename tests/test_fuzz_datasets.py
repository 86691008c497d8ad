"""Property-based fuzzing of the dataset validator: whatever the bytes of a JSONL file, the
validator returns a report (never raises), every problem names its line and a known
category, time and memory per file are bounded, and a file it calls valid is one the
tokenizer and the training data loader can read (no lone surrogates, no numbers Python's
JSON cannot print).

Lines mix chat-shaped examples with wrong types, random JSON values, lone surrogate
escapes, integers beyond 64 bits (alone and together with a surrogate), very long lines,
deep nesting, BOMs, CRLF, blank lines and invalid UTF-8. Derandomized and bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import runaway_guard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundryctl.datasets import ApproximateCounter, ValidationOptions, validate_dataset
from foundryctl.datasets.report import CATEGORIES

CASES = 200
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SECONDS_PER_FILE = 2.0  # CPU time: other work on a shared CI machine does not count
BYTES_PER_FILE = 64 * 1024 * 1024

ROLES = st.sampled_from(["system", "user", "assistant", "asistant", "", "tool", None, 1])
TEXT = st.text(max_size=40)  # any code point, surrogates included (written as \ud800 escapes)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(allow_nan=False),
                         TEXT, st.sampled_from([0, 1, 2**64, -2**63 - 1, "\ud800", "a\udfffb", "\x00", "\u2028"]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(TEXT | st.sampled_from(["role", "content", "weight"]), inner,
                                             max_size=3), max_leaves=10)
MESSAGE = st.fixed_dictionaries(
    {}, optional={"role": ROLES | JSON_VALUES, "content": TEXT | JSON_VALUES, "name": TEXT | JSON_VALUES,
                  "weight": st.sampled_from([0, 1, 2, -1, 0.5, True, 2**70, "1"]), "rol": TEXT})
EXAMPLE = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE | JSON_VALUES, max_size=5) | JSON_VALUES}, optional={"extra": JSON_VALUES})
WELL_FORMED = st.builds(lambda s, u, a: {"messages": [{"role": "system", "content": s}, {"role": "user", "content": u},
                                                        {"role": "assistant", "content": a}]},
                        st.text(min_size=1, max_size=30).filter(lambda t: not t.isspace()),
                        st.text(min_size=1, max_size=30).filter(lambda t: not t.isspace()),
                        st.text(min_size=1, max_size=30).filter(lambda t: not t.isspace()))


@st.composite
def json_line(draw: st.DrawFn) -> bytes:
    value = draw(WELL_FORMED | EXAMPLE | JSON_VALUES)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # an unescaped surrogate: invalid UTF-8


@st.composite
def odd_line(draw: st.DrawFn) -> bytes:
    choice = draw(st.sampled_from(["huge_int_and_surrogate", "huge_int", "digits", "long", "deep", "blank",
                                   "bytes", "nan", "truncated", "bom", "control"]))
    if choice == "huge_int_and_surrogate":  # the first defect orjson meets must not hide the second
        return draw(st.sampled_from([
            b'{"messages": [{"role": "user", "content": "hi", "weight": 123456789012345678901234567890}, '
            b'{"role": "assistant", "content": "\\ud800"}]}',
            b'{"n": 123456789012345678901234567890, "messages": [{"role": "system", "content": "s"}, '
            b'{"role": "user", "content": "u"}, {"role": "assistant", "content": "a\\ud800"}]}']))
    if choice == "huge_int":
        digits = b"9" * draw(st.integers(20, 5000))
        return b'{"messages": [{"role": "assistant", "content": "x"}], "n": ' + digits + b"}"
    if choice == "digits":
        return b'{"messages": [{"role": "assistant", "content": "x", "weight": 1e999}]}'
    if choice == "long":
        size = draw(st.sampled_from([70_000, 140_000]))  # past COUNT_PIECE_CHARS
        content = draw(st.sampled_from(["a ", "word\n", "x", "\u00e9t\u00e9 ", " "])) * (size // 2)
        return json.dumps({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": content}]}).encode()
    if choice == "deep":
        depth = draw(st.sampled_from([100, 1000, 5000]))
        return b'{"messages": ' + b"[" * depth + b"]" * depth + b"}"
    if choice == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
    if choice == "bytes":
        return draw(st.binary(max_size=60))
    if choice == "nan":
        return b'{"messages": [{"role": "assistant", "content": "x", "weight": NaN}]}'
    if choice == "truncated":
        line = json.dumps(draw(WELL_FORMED)).encode()
        return line[:draw(st.integers(0, len(line)))]
    if choice == "bom":
        return b"\xef\xbb\xbf" + json.dumps(draw(WELL_FORMED)).encode()
    return json.dumps({"messages": [{"role": "assistant", "content": draw(st.sampled_from(
        ["[bold]x[/]", ":x:", "root:x:0:0", "\x1b[31mred", "\x00\x07"]))}]}).encode()


@st.composite
def jsonl(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(json_line() | odd_line(), min_size=0, max_size=14))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = ending.join(lines)
    if draw(st.booleans()):
        body += ending
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return body


def validate_bounded(path: Path, options: ValidationOptions) -> Any:
    """The report, checking CPU time (a run on its own) and memory (a second run under
    tracemalloc, which slows it several times)."""
    with runaway_guard(10 * SECONDS_PER_FILE):
        started = time.process_time()
        report = validate_dataset(path, options)
        elapsed = time.process_time() - started
        tracemalloc.start()
        try:
            validate_dataset(path, options)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert elapsed < SECONDS_PER_FILE, f"{elapsed:.1f} s for {path.read_bytes()[:200]!r}"
    assert peak < BYTES_PER_FILE, f"{peak / 2**20:.0f} MiB for {path.read_bytes()[:200]!r}"
    return report


def assert_sound(report: Any, data: bytes) -> None:
    """Problems are located and categorised; a valid report is readable downstream."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    for problem in report.problems:
        assert problem.category in CATEGORIES
        assert 0 <= problem.line <= max(lines, 1), problem
        problem.message.encode("utf-8")  # printable: no lone surrogate in a message
    json.dumps(report.to_dict())
    if len(report.problems) < report.error_count + report.warning_count:
        return  # some problems were not listed (max_problems)
    with_errors = {p.line for p in report.problems if p.severity == "error"}
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        if number not in with_errors:
            # What the tokenizer and the training data loader do with a line that passed:
            # parse it and encode its text.
            example = json.loads(raw)
            json.dumps(example, ensure_ascii=False).encode("utf-8")


@pytest.fixture(scope="module")
def counters(request: pytest.FixtureRequest) -> list[Any]:
    """The approximate counter, and SmolLM2's exact one where its tokenizer is available."""
    found: list[Any] = [ApproximateCounter()]
    try:
        found.append(request.getfixturevalue("smollm2_counter"))
    except pytest.skip.Exception:
        pass
    return found


@FUZZ
@given(data=jsonl())
def test_any_jsonl_gives_a_located_report(counters: list[Any], data: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "data.jsonl"
        path.write_bytes(data)
        for counter in counters:
            options = ValidationOptions(counter=counter, context_length=512, split=(0.2, 7))
            assert_sound(validate_bounded(path, options), data)


def test_surrogate_behind_a_huge_integer_is_reported_with_it(tmp_path: Path) -> None:
    """The adversarial run's case: both defects of the line are errors; it is not an example."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"messages": [{"role": "user", "content": "hi", "weight": 123456789012345678901234567890}, '
                     b'{"role": "assistant", "content": "\\ud800"}]}\n')
    report = validate_dataset(path)
    messages = [p.message for p in report.problems if p.category == "data_type"]
    assert any("beyond 64 bits" in m and "messages[0].weight" in m for m in messages), messages
    assert any("surrogate" in m and "messages[1].content" in m for m in messages), messages
    assert report.examples == 0 and not report.valid


def test_data_validate_json_stays_json(tmp_path: Path) -> None:
    """The CLI path once: a hostile file prints one JSON report and exits 1, not a bug."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf\xff\xfe\n" + b"[" * 5000 + b"\n" + b'{"messages": "\\ud800"}\r\n\n')
    result = subprocess.run([sys.executable, "-m", "foundryctl", "data", "validate", str(path), "--format", "json"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 1 and "This is a bug" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    assert not report["valid"] and {p["line"] for p in report["problems"]} >= {1, 2, 3, 4}
