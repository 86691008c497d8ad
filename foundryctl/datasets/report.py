"""What a dataset validation finds: problems by line and category, and statistics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ERROR, WARNING = "error", "warning"

# Every category a report can contain, with its severity and what it means (docs/datasets.md
# shows an example of each).
CATEGORIES: dict[str, tuple[str, str]] = {
    "data_type": (ERROR, "the line is not UTF-8, not JSON, not a JSON object, or blank"),
    "missing_messages_list": (ERROR, "`messages` is missing, empty or not a list"),
    "message_missing_key": (ERROR, "a message has no `role` or no `content`"),
    "message_unrecognized_key": (ERROR, "a message has a key other than role, content, name, weight"),
    "unrecognized_role": (ERROR, "a role other than system, user or assistant"),
    "missing_content": (ERROR, "content is empty, blank or not a string"),
    "example_missing_assistant_message": (ERROR, "the example has no assistant message to learn from"),
    "invalid_weight": (ERROR, "`weight` is not 0 or 1, or is set on a non-assistant message"),
    "too_few_examples": (ERROR, "fewer training examples than Azure's minimum of 10"),
    "file_too_large": (ERROR, "the file is larger than Azure's 512 MB limit"),
    "few_examples": (WARNING, "fewer than 50 training examples; results are usually poor"),
    "example_missing_system_message": (WARNING, "the example has no system message"),
    "example_missing_user_message": (WARNING, "the example has no user message"),
    "example_unrecognized_key": (WARNING, "the example has a key besides `messages` (ignored)"),
    "example_all_weights_zero": (WARNING, "every assistant message has weight 0: nothing is learned"),
    "duplicate_example": (WARNING, "the example repeats an earlier one exactly"),
    "over_context_length": (WARNING, "the example is longer than the base model's context; it will be truncated"),
    "chat_template_error": (WARNING, "the base model's chat template refuses this conversation shape"),
    # text_classification datasets (`{"text": ..., "label": ...}`)
    "missing_text": (ERROR, "`text` is missing, empty, blank or not a string"),
    "missing_label": (ERROR, "`label` is missing, empty, or not a string or integer"),
    "unknown_label": (ERROR, "a label that is not in the dataset's declared `labels`"),
    "too_few_labels": (ERROR, "fewer than 2 distinct labels: nothing to tell apart"),
    "conflicting_label": (WARNING, "the same text appears earlier with another label"),
    "label_imbalance": (WARNING, "the rarest label has under a fifth of the examples of the most common"),
    "label_without_examples": (WARNING, "a declared label no training example has"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based; 0 for the file as a whole
    category: str
    message: str

    @property
    def severity(self) -> str:
        return CATEGORIES[self.category][0]

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "severity": self.severity, "category": self.category,
                "message": self.message}


@dataclass(frozen=True)
class Distribution:
    """min, p10, median, p90 and max of a per-example quantity, plus its total."""

    count: int
    total: int
    min: int
    p10: int
    median: int
    p90: int
    max: int

    @classmethod
    def of(cls, values: Iterable[int]) -> Distribution:
        ordered = sorted(values)
        n = len(ordered)
        if n == 0:
            return cls(0, 0, 0, 0, 0, 0, 0)

        def pct(q: float) -> int:  # nearest rank
            return ordered[min(n - 1, max(0, round(q * (n - 1))))]

        return cls(n, sum(ordered), ordered[0], pct(0.10), pct(0.50), pct(0.90), ordered[-1])

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "min": self.min, "p10": self.p10, "median": self.median,
                "p90": self.p90, "max": self.max, "mean": round(self.mean, 2)}


@dataclass
class SplitSummary:
    fraction: float
    seed: int
    training_examples: int
    validation_examples: int
    threshold: int  # examples whose split key is <= this go to validation

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed,
                "training_examples": self.training_examples,
                "validation_examples": self.validation_examples}


@dataclass
class DatasetReport:
    path: str
    size: int = 0
    sha256: str = ""
    lines: int = 0
    examples: int = 0  # examples without errors
    role: str = "training"  # or "validation"
    messages_per_example: Distribution = field(default_factory=lambda: Distribution.of(()))
    total_tokens: Distribution = field(default_factory=lambda: Distribution.of(()))
    assistant_tokens: Distribution = field(default_factory=lambda: Distribution.of(()))
    token_counting: str = ""
    tokens_exact: bool = False
    base_model: str | None = None
    context_length: int | None = None
    over_context: int = 0
    epochs: int = 1
    billed_tokens_per_epoch: int = 0
    duplicates: int = 0
    split: SplitSummary | None = None
    task: str = "chat_completion"
    label_counts: dict[str, int] = field(default_factory=dict)  # text_classification: examples per label
    problems: list[Problem] = field(default_factory=list)  # the first `max_problems`
    counts: dict[str, int] = field(default_factory=dict)  # every problem, by category

    @property
    def error_count(self) -> int:
        return sum(n for c, n in self.counts.items() if CATEGORIES[c][0] == ERROR)

    @property
    def warning_count(self) -> int:
        return sum(n for c, n in self.counts.items() if CATEGORIES[c][0] == WARNING)

    @property
    def valid(self) -> bool:
        return self.error_count == 0

    @property
    def omitted(self) -> int:
        return sum(self.counts.values()) - len(self.problems)

    @property
    def training_examples(self) -> int:
        return self.split.training_examples if self.split else self.examples

    @property
    def billed_tokens(self) -> int:
        """Σ min(context, tokens) × epochs, the figure Azure bills training by."""
        return self.billed_tokens_per_epoch * self.epochs

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "role": self.role, "valid": self.valid, "size": self.size,
            "sha256": self.sha256, "lines": self.lines, "examples": self.examples,
            "error_count": self.error_count, "warning_count": self.warning_count,
            "counts": dict(sorted(self.counts.items())),
            "problems": [p.to_dict() for p in self.problems], "omitted_problems": self.omitted,
            "statistics": {
                "messages_per_example": self.messages_per_example.to_dict(),
                "total_tokens": self.total_tokens.to_dict(),
                "assistant_tokens": self.assistant_tokens.to_dict(),
                "token_counting": self.token_counting, "tokens_exact": self.tokens_exact,
                "base_model": self.base_model, "context_length": self.context_length,
                "over_context_examples": self.over_context, "duplicate_examples": self.duplicates,
                "epochs": self.epochs, "billed_tokens_per_epoch": self.billed_tokens_per_epoch,
                "billed_tokens": self.billed_tokens,
            },
            "split": self.split.to_dict() if self.split else None,
            **({"task": self.task, "labels": dict(sorted(self.label_counts.items()))}
               if self.task != "chat_completion" else {}),
        }
