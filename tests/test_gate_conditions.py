"""Gate conditions: the grammar, judging on values and baselines, and a rendering that never
makes a failing condition read as a true comparison."""

from __future__ import annotations

import operator
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundryctl.evaluation.gate import distinguishing, evaluate, evaluate_gate, parse_condition

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}


@pytest.mark.parametrize(("text", "metric", "op", "number", "baseline", "margin"), [
    ("exact_match >= 0.8", "exact_match", ">=", 0.8, None, 0.0),
    ("  refusal_rate<=0.05 ", "refusal_rate", "<=", 0.05, None, 0.0),
    ("f1_macro >= baseline + 0.02", "f1_macro", ">=", None, "", 0.02),
    ("rouge_l > baseline.serving - 0.01", "rouge_l", ">", None, "serving", -0.01),
    ("ends_with_eos == baseline.base", "ends_with_eos", "==", None, "base", 0.0),
    ("f1[billing] >= 0.7", "f1[billing]", ">=", 0.7, None, 0.0),
    ("mean_length_tokens < 2e2", "mean_length_tokens", "<", 200.0, None, 0.0),
])
def test_parses_each_form(text, metric, op, number, baseline, margin) -> None:
    condition = parse_condition(text)
    assert (condition.metric, condition.op, condition.number, condition.baseline) == (metric, op, number, baseline)
    assert condition.margin == pytest.approx(margin)


@pytest.mark.parametrize(("text", "message"), [
    ("exact_match => 0.8", "is not of the form"),
    ("exact_match >= ", "is not of the form"),
    ("exact_match >= baseline.previous", "baseline.previous is not a baseline"),
    ("0.8 <= exact_match", "is not of the form"),
    ("exact_match >= 0.8 and rouge_l > 0.1", "is not of the form"),
    ("x >= inf", "is not of the form"),
])
def test_bad_conditions_say_the_grammar(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_condition(text)


def test_judged_on_values_and_baselines() -> None:
    values = {"f1_macro": 0.71, "rouge_l": 0.30}
    baselines = {"base": {"f1_macro": 0.60, "rouge_l": 0.1}, "serving": {"f1_macro": 0.70, "rouge_l": 0.31}}
    gate = evaluate_gate(["f1_macro >= baseline + 0.02", "f1_macro >= baseline.base + 0.1",
                          "rouge_l >= baseline.serving - 0.02"], values, baselines)
    assert [o.passed for o in gate.outcomes] == [False, True, True] and gate.passed is False
    # plain `baseline` is the serving one when there is one
    assert gate.outcomes[0].text == "f1_macro 0.71 >= 0.72 (baseline.serving 0.7 + 0.02)"
    assert evaluate(parse_condition("f1_macro >= baseline"), values, {"base": baselines["base"]}).passed is True


def test_a_missing_value_cannot_pass() -> None:
    outcome = evaluate(parse_condition("perplexity <= 20"), {"rouge_l": 0.3}, {})
    assert outcome.passed is None and "no value for perplexity" in outcome.text
    assert evaluate_gate(["perplexity <= 20"], {}, {}).passed is False
    assert evaluate(parse_condition("x >= baseline.base"), {"x": 1.0}, {}).passed is None


def test_near_misses_print_their_difference() -> None:
    outcome = evaluate(parse_condition("exact_match >= 0.8"), {"exact_match": 0.7999999}, {})
    assert outcome.passed is False and outcome.text == "exact_match 0.7999999 >= 0.8"


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@settings(max_examples=300, deadline=None)
@given(actual=finite, threshold=finite, op=st.sampled_from(sorted(OPS)))
def test_a_rendered_condition_reads_as_it_was_judged(actual: float, threshold: float, op: str) -> None:
    """Parsed back as numbers, the printed comparison is true exactly when the condition passed."""
    outcome = evaluate(parse_condition(f"m {op} {threshold!r}"), {"m": actual}, {})
    assert outcome.passed == OPS[op](actual, threshold)
    left, shown_op, right = outcome.text.split(" ")[1:4]
    assert OPS[shown_op](float(left), float(right)) == outcome.passed, outcome.text


@given(a=finite, b=finite)
def test_distinct_values_never_print_alike(a: float, b: float) -> None:
    shown_a, shown_b = distinguishing(a, b)
    assert (shown_a == shown_b) == (a == b)
