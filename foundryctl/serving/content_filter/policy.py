"""What the content filter decides: categories, severities, a deployment's thresholds, and
the result of checking one text, in Azure AI Content Safety's terms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

CATEGORIES = ("hate", "sexual", "violence", "self_harm")
SEVERITIES = ("safe", "low", "medium", "high")  # ordered: an index is a rank
LEVELS = ("low", "medium", "high")  # thresholds: filter content at this severity or above
OFF = "off"

_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class Classifier(Protocol):
    name: str  # "offline" or "azure"

    def classify(self, text: str) -> dict[str, str]:
        """Every category's severity name for `text`."""
        ...


class ContentFilterUnavailable(Exception):
    """The classifier could not run (Azure unreachable, key refused). The endpoint answers
    503 rather than let unchecked text through (fail closed)."""


def severity_rank(severity: str) -> int:
    return _RANK[severity]


def _check_level(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"content_filter.{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class FilterPolicy:
    """A deployment's thresholds. On by default, filtering medium and high (Azure's default)."""

    enabled: bool = True
    threshold: str = "medium"
    overrides: dict[str, str] = field(default_factory=dict)  # category -> level or "off"
    # Per source, over `overrides`: a Foundry RAI policy sets prompts and completions apart.
    prompt_overrides: dict[str, str] = field(default_factory=dict)
    completion_overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_level(self.threshold, "threshold", LEVELS)
        for where, levels in (("categories", self.overrides), ("sources.prompt", self.prompt_overrides),
                              ("sources.completion", self.completion_overrides)):
            for category, level in levels.items():
                if category not in CATEGORIES:
                    raise ValueError(f"content_filter.{where}: unknown category {category!r} "
                                     f"(known: {', '.join(CATEGORIES)})")
                _check_level(level, f"{where}.{category}", (*LEVELS, OFF))
        # Private copies: a frozen policy must not change when the caller's dict does.
        for name in ("overrides", "prompt_overrides", "completion_overrides"):
            object.__setattr__(self, name, dict(getattr(self, name)))

    def __hash__(self) -> int:
        return hash((self.enabled, self.threshold, tuple(sorted(self.overrides.items())),
                     tuple(sorted(self.prompt_overrides.items())), tuple(sorted(self.completion_overrides.items()))))

    def for_source(self, source: str) -> FilterPolicy:
        """The policy that applies to prompts (`prompt`) or completions (`completion`)."""
        extra = {"prompt": self.prompt_overrides, "completion": self.completion_overrides}[source]
        if not extra:
            return self
        return FilterPolicy(self.enabled, self.threshold, {**self.overrides, **extra})

    def threshold_for(self, category: str) -> str | None:
        """The lowest severity filtered in `category`; None when the category is off."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown content filter category {category!r}")
        level = self.overrides.get(category, self.threshold)
        return None if level == OFF else level

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> FilterPolicy:
        """The policy from a manifest's `content_filter` block. Keys that are not the
        policy's (classifier, azure_endpoint...) are ignored; bad names raise ValueError."""
        settings = settings or {}
        enabled = settings.get("enabled", True)
        if not isinstance(enabled, bool):
            # ValueError throughout: callers report any bad setting as a manifest error.
            raise ValueError(f"content_filter.enabled: {enabled!r} is not true or false")  # noqa: TRY004
        threshold = settings.get("threshold") or "medium"
        categories = settings.get("categories") or {}
        if not isinstance(categories, Mapping):
            raise ValueError("content_filter.categories: expected a mapping of category to level, "  # noqa: TRY004
                             f"got {type(categories).__name__}")
        sources = settings.get("sources") or {}
        if not isinstance(sources, Mapping) or set(sources) - {"prompt", "completion"} or not all(
                isinstance(levels, Mapping) for levels in sources.values()):
            raise ValueError("content_filter.sources: expected {prompt: {category: level}, completion: {...}}")
        return cls(enabled=enabled, threshold=threshold, overrides=dict(categories),
                   prompt_overrides=dict(sources.get("prompt") or {}),
                   completion_overrides=dict(sources.get("completion") or {}))


@dataclass(frozen=True)
class FilterResult:
    severities: dict[str, str]  # category -> severity
    filtered_categories: tuple[str, ...]  # those at or over their threshold

    @property
    def filtered(self) -> bool:
        return bool(self.filtered_categories)

    def to_azure(self) -> dict[str, dict[str, Any]]:
        """Azure OpenAI's `content_filter_results` object."""
        return {category: {"filtered": category in self.filtered_categories,
                           "severity": self.severities.get(category, "safe")}
                for category in sorted(CATEGORIES)}

    @classmethod
    def safe(cls) -> FilterResult:
        return cls({category: "safe" for category in CATEGORIES}, ())


def assess(policy: FilterPolicy, severities: Mapping[str, str]) -> FilterResult:
    """Apply `policy` to severities a classifier already gave."""
    complete = {category: severities.get(category, "safe") for category in CATEGORIES}
    filtered = []
    for category, severity in complete.items():
        if severity not in _RANK:
            raise ValueError(f"classifier gave {category!r} an unknown severity {severity!r}")
        level = policy.threshold_for(category)
        if policy.enabled and level is not None and _RANK[severity] >= _RANK[level]:
            filtered.append(category)
    return FilterResult(complete, tuple(filtered))


def check(policy: FilterPolicy, classifier: Classifier, text: str) -> FilterResult:
    """Classify `text` and apply `policy`. A disabled policy never calls the classifier."""
    if not policy.enabled:
        return FilterResult.safe()
    return assess(policy, classifier.classify(text))
