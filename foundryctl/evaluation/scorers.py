"""Per-example scorers of answer text: pure functions, one answer in, one number out.

`metrics.py` maps them over a set of examples and aggregates; keeping them apart lets each be
tested against hand-computed values.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# The whole answer is one fenced block (```json ... ``` or ``` ... ```): models often wrap JSON so.
_FENCED = re.compile(r"\A```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```\Z", re.DOTALL)
_WORD = re.compile(r"\w+")

# Phrases that open or carry a refusal, as case-insensitive regular expressions. Curly
# apostrophes are folded to straight ones before matching.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI(?:'m| am) (?:sorry|afraid|unable|not able)\b",
    r"\bI (?:cannot|can't|can not|won't|will not) (?:help|assist|provide|do|comply|answer|share)\b",
    r"\bI apologi[sz]e\b",
    r"\bas an AI\b",
    r"\b(?:cannot|can't|unable to) (?:help|assist) with (?:that|this)\b",
)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised answers; 1.0 when both are empty, 0.0 when one is."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


class _UnicodeTokenizer:
    """rouge-score's default tokenizer keeps only [a-z0-9] and scores any other script as empty;
    this one keeps every Unicode word character, lower-cased, and does no stemming."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer  # deferred: it imports nltk

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_UnicodeTokenizer())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of words); 1.0 when both have no words."""
    if not _WORD.search(prediction) and not _WORD.search(reference):
        return 1.0
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_answer(text: str) -> tuple[bool, Any]:
    """(True, value) when the answer is JSON, or one fenced block of JSON; else (False, None).

    NaN and Infinity, which Python's json module accepts by default, are not JSON.
    """
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        return False, None
    try:
        return True, json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


def fold_apostrophes(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def compile_patterns(patterns: tuple[str, ...] | list[str]) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def is_refusal(prediction: str, patterns: list[re.Pattern[str]]) -> bool:
    folded = fold_apostrophes(prediction)
    return any(p.search(folded) for p in patterns)
