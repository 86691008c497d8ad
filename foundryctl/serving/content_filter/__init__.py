"""Content filtering for the local endpoint, in Azure AI Content Safety's terms: four
categories, four severities, per-deployment thresholds, prompts checked before generation
and completions checked as they stream."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from foundryctl.serving.content_filter.azure import AzureClassifier
from foundryctl.serving.content_filter.evaluation import (
    Example,
    evaluate,
    load_examples,
)
from foundryctl.serving.content_filter.guard import CompletionGuard, GuardStep
from foundryctl.serving.content_filter.offline import OfflineClassifier
from foundryctl.serving.content_filter.policy import (
    CATEGORIES,
    SEVERITIES,
    Classifier,
    ContentFilterUnavailable,
    FilterPolicy,
    FilterResult,
    check,
)

DEFAULT_KEY_ENV = "CONTENT_SAFETY_KEY"
CLASSIFIERS = ("offline", "azure")


def load_classifier(settings: Mapping[str, Any] | None, *, transport: Any = None) -> Classifier:
    """The classifier a manifest's `content_filter` block names: `offline` (the default) or
    `azure`, whose key is read from the environment variable `azure_key_env` names."""
    settings = settings or {}
    kind = settings.get("classifier") or "offline"
    if kind == "offline":
        return OfflineClassifier()
    if kind != "azure":
        raise ValueError(f"content_filter.classifier: {kind!r} is not one of {', '.join(CLASSIFIERS)}")
    endpoint = settings.get("azure_endpoint")
    if not endpoint:
        raise ValueError("content_filter: classifier azure needs azure_endpoint "
                         "(https://NAME.cognitiveservices.azure.com)")
    variable = settings.get("azure_key_env") or DEFAULT_KEY_ENV
    key = os.environ.get(variable)
    if not key:
        raise ValueError(f"content_filter: the Azure AI Content Safety key is read from the environment "
                         f"variable {variable}, which is not set")
    return AzureClassifier(endpoint, key, transport=transport)


__all__ = [
    "CATEGORIES",
    "CLASSIFIERS",
    "DEFAULT_KEY_ENV",
    "SEVERITIES",
    "AzureClassifier",
    "Classifier",
    "CompletionGuard",
    "ContentFilterUnavailable",
    "Example",
    "FilterPolicy",
    "FilterResult",
    "GuardStep",
    "OfflineClassifier",
    "check",
    "evaluate",
    "load_classifier",
    "load_examples",
]
