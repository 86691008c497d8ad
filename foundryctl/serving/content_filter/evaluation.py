"""Measuring a classifier on labelled texts: precision, recall and F1 per category, for the
decision the endpoint makes (filtered at the policy's thresholds) and for "any severity above
safe", overall and per split."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from foundryctl.serving.content_filter.policy import (
    CATEGORIES,
    SEVERITIES,
    Classifier,
    FilterPolicy,
    assess,
    severity_rank,
)

DECISIONS = ("filtered", "any")
DEFAULT_POLICY = FilterPolicy()  # Azure's default: filter medium and high


@dataclass(frozen=True)
class Example:
    text: str
    labels: dict[str, str] = field(default_factory=dict)  # categories not listed are "safe"
    split: str = "dev"

    def label(self, category: str) -> str:
        return self.labels.get(category, "safe")


def _example(item: Example | Mapping[str, Any]) -> Example:
    if isinstance(item, Example):
        return item
    labels = dict(item.get("labels") or {})
    for category, severity in labels.items():
        if category not in CATEGORIES or severity not in SEVERITIES:
            raise ValueError(f"bad label {category}={severity} for {item.get('text')!r}")
    return Example(str(item["text"]), labels, str(item.get("split", "dev")))


def load_examples(path: str | os.PathLike) -> list[Example]:
    """A labelled JSONL file: {"text": ..., "labels": {category: severity}, "split": ...}."""
    with open(path, encoding="utf-8") as handle:
        return [_example(json.loads(line)) for line in handle if line.strip()]


@dataclass
class _Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    support: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        self.support += truth
        self.tp += truth and predicted
        self.fp += predicted and not truth
        self.fn += truth and not predicted

    def scores(self) -> dict[str, float | int]:
        # With nothing predicted precision is vacuous: report 1.0, as recall then shows the miss.
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                "support": self.support, "tp": self.tp, "fp": self.fp, "fn": self.fn}


def _truth_filtered(policy: FilterPolicy, example: Example, category: str) -> bool:
    level = policy.threshold_for(category)
    return policy.enabled and level is not None and severity_rank(example.label(category)) >= severity_rank(level)


def _score(policy: FilterPolicy, scored: list[tuple[Example, dict[str, str]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"examples": len(scored)}
    exact = 0
    for decision in DECISIONS:
        per = {category: _Counts() for category in CATEGORIES}
        texts = _Counts()
        for example, severities in scored:
            filtered = set(assess(policy, severities).filtered_categories)
            any_truth = any_predicted = False
            for category in CATEGORIES:
                if decision == "filtered":
                    truth, predicted = _truth_filtered(policy, example, category), category in filtered
                else:
                    truth, predicted = example.label(category) != "safe", severities[category] != "safe"
                per[category].add(truth, predicted)
                any_truth, any_predicted = any_truth or truth, any_predicted or predicted
            texts.add(any_truth, any_predicted)
        overall = _Counts(*(sum(getattr(c, name) for c in per.values()) for name in ("tp", "fp", "fn", "support")))
        out[decision] = {"categories": {c: per[c].scores() for c in CATEGORIES},
                         "overall": overall.scores(), "texts": texts.scores()}
    for example, severities in scored:
        exact += sum(severities[c] == example.label(c) for c in CATEGORIES)
    out["exact_severity"] = round(exact / (len(scored) * len(CATEGORIES)), 4) if scored else 1.0
    return out


def evaluate(classifier: Classifier, examples: Iterable[Example | Mapping[str, Any]],
             policy: FilterPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """Scores for all examples and for each split, plus the examples the decision got wrong.

    "filtered": truth is a label at or over the policy's threshold for its category, the
    prediction is the policy applied to the classifier's severities. "any": truth and
    prediction are "not safe". "overall" sums the categories; "texts" asks per text whether
    anything was (or should have been) flagged.
    """
    scored = [(example, classifier.classify(example.text)) for example in map(_example, examples)]
    result = _score(policy, scored)
    splits = sorted({example.split for example, _ in scored})
    result["splits"] = {split: _score(policy, [s for s in scored if s[0].split == split]) for split in splits}
    errors = []
    for example, severities in scored:
        wrong = {c: {"label": example.label(c), "predicted": severities[c]} for c in CATEGORIES
                 if _truth_filtered(policy, example, c) != (c in assess(policy, severities).filtered_categories)}
        if wrong:
            errors.append({"text": example.text, "split": example.split, "categories": wrong})
    result["errors"] = errors
    result["policy"] = {"enabled": policy.enabled, "threshold": policy.threshold, "overrides": dict(policy.overrides)}
    return result
