"""Gate conditions: `METRIC OP RHS`, one string each.

    exact_match >= 0.8
    f1_macro >= baseline + 0.02          the baseline (serving when declared, else base) plus a margin
    rouge_l >= baseline.serving - 0.01   a named baseline: base or serving
    refusal_rate <= 0.05
    mean_length_tokens < 200

OP is one of >=, >, <=, <, ==. The comparison uses the exact values; the rendering shows enough
digits that a failing condition never reads as a true one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

GRAMMAR = ("METRIC OP VALUE with OP one of >=, >, <=, <, == and VALUE a number, `baseline`, "
           "`baseline.NAME` (base or serving), or either plus/minus a number, e.g. `rouge_l >= baseline.base + 0.05`")
_METRIC = r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]\s]+\])?"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?P<metric>{_METRIC})\s*(?P<op>>=|<=|==|>|<)\s*(?:"
    rf"(?P<number>{_NUMBER})|"
    rf"baseline(?:\.(?P<baseline>[A-Za-z_][A-Za-z0-9_]*))?\s*(?:(?P<sign>[-+])\s*(?P<margin>{_NUMBER}))?"
    rf")\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b}
BASELINES = ("base", "serving")


@dataclass(frozen=True)
class Condition:
    text: str
    metric: str
    op: str
    number: float | None = None  # an absolute threshold
    baseline: str | None = None  # "" for plain `baseline`; None when the threshold is a number
    margin: float = 0.0

    @property
    def metrics_needed(self) -> tuple[str, ...]:
        return (self.metric,)

    @property
    def baseline_needed(self) -> tuple[str, ...]:
        return () if self.baseline is None else (self.baseline,)


@dataclass(frozen=True)
class ConditionOutcome:
    condition: Condition
    passed: bool | None  # None: a value is missing, so it cannot be decided
    actual: float | None
    threshold: float | None
    text: str


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    outcomes: list[ConditionOutcome]


def parse_condition(text: str) -> Condition:
    """The condition `text` states; ValueError says what is wrong, with the grammar."""
    if not isinstance(text, str):
        raise ValueError(f"a gate condition is a string ({GRAMMAR}), not {type(text).__name__}")
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(f"gate condition {text!r} is not of the form {GRAMMAR}")
    baseline = match["baseline"]
    if match["number"] is None and baseline is not None and baseline not in BASELINES:
        raise ValueError(f"gate condition {text!r}: baseline.{baseline} is not a baseline "
                         f"(baseline.base or baseline.serving)")
    number = float(match["number"]) if match["number"] is not None else None
    margin = float(match["margin"]) * (-1 if match["sign"] == "-" else 1) if match["margin"] else 0.0
    for value in (number, margin):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"gate condition {text!r}: {value} is not a finite number")
    return Condition(" ".join(text.split()), match["metric"], match["op"], number,
                     None if number is not None else (baseline or ""), margin)


def evaluate(condition: Condition, values: Mapping[str, float],
             baselines: Mapping[str, Mapping[str, float]]) -> ConditionOutcome:
    """`condition` judged on the target's `values` and each baseline's (by name, serving first
    when plain `baseline` should mean it)."""
    actual = _finite(values.get(condition.metric))
    if condition.baseline is None:
        threshold, origin = condition.number, None
    else:
        name = condition.baseline or next((n for n in ("serving", "base") if n in baselines), next(iter(baselines), ""))
        reference = _finite((baselines.get(name) or {}).get(condition.metric))
        threshold = None if reference is None else reference + condition.margin
        origin = (f"baseline.{name}", reference)
    if actual is None or threshold is None:
        missing = condition.metric if actual is None else f"baseline.{condition.baseline or 'serving'} {condition.metric}"
        return ConditionOutcome(condition, None, actual, threshold, f"{condition.text}: no value for {missing}")
    passed = _OPS[condition.op](actual, threshold)
    shown_actual, shown_threshold = distinguishing(actual, threshold)
    text = f"{condition.metric} {shown_actual} {condition.op} {shown_threshold}"
    if origin is not None:
        name, reference = origin
        shown_reference = distinguishing(reference, threshold)[0] if reference != threshold else shown_threshold
        text += (f" ({name} {shown_reference} {'+' if condition.margin >= 0 else '-'} {abs(condition.margin):g})"
                 if condition.margin else f" ({name})")
    return ConditionOutcome(condition, passed, actual, threshold, text)


def evaluate_gate(conditions: Sequence[Condition | str], values: Mapping[str, float],
                  baselines: Mapping[str, Mapping[str, float]]) -> GateOutcome:
    outcomes = [evaluate(c if isinstance(c, Condition) else parse_condition(c), values, baselines)
                for c in conditions]
    return GateOutcome(all(o.passed is True for o in outcomes), outcomes)


def distinguishing(a: float, b: float, digits: int = 4) -> tuple[str, str]:
    """`a` and `b` rounded to `digits` significant digits, or to as many more as it takes for
    two different values not to print the same (0.7999999 and 0.8 never both read 0.8)."""
    for precision in range(digits, 18):
        shown_a, shown_b = f"{a:.{precision}g}", f"{b:.{precision}g}"
        if a == b or (shown_a != shown_b and (float(shown_a) < float(shown_b)) == (a < b)):
            return shown_a, shown_b
    return repr(a), repr(b)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
