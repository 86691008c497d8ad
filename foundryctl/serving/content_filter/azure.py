"""Azure AI Content Safety as the classifier (`classifier: azure`).

azure-ai-contentsafety is imported when a classifier is made, so the core install (and the
offline classifier) never needs it. The key comes from an environment variable, never from
the manifest, and never appears in an error message.
"""

from __future__ import annotations

from typing import Any

from foundryctl.serving.content_filter.policy import (
    CATEGORIES,
    SEVERITIES,
    ContentFilterUnavailable,
)

MAX_TEXT_CHARS = 10_000  # the service's limit per analyze request
# The service's names for our categories.
SERVICE_CATEGORIES = {"Hate": "hate", "Sexual": "sexual", "Violence": "violence", "SelfHarm": "self_harm"}


def severity_name(value: int | None) -> str:
    """FourSeverityLevels gives 0, 2, 4, 6; EightSeverityLevels 0-7. Both map by pairs."""
    return SEVERITIES[min(max(int(value or 0), 0), 7) // 2]


def split_text(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """Pieces of at most `limit` characters, cut at the last whitespace where there is one."""
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind(" ", limit // 2, limit), text.rfind("\n", limit // 2, limit))
        cut = cut + 1 if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


class AzureClassifier:
    """Each text is sent to `{endpoint}/contentsafety/text:analyze`; severities come back
    per category and the worst piece of a long text decides."""

    name = "azure"

    def __init__(self, endpoint: str, key: str, *, transport: Any = None, retry_total: int = 2,
                 timeout: float = 10.0) -> None:
        try:
            from azure.ai.contentsafety import ContentSafetyClient
            from azure.core.credentials import AzureKeyCredential
        except ImportError:
            # A settings problem like any other: the manifest asks for what is not installed.
            raise ValueError("content_filter: classifier azure needs the azure-ai-contentsafety package "
                             "(pip install 'foundryctl[azure]')") from None

        self.endpoint = endpoint.rstrip("/")
        self._key = key
        self._timeout = timeout
        options: dict[str, Any] = {"retry_total": retry_total}
        if transport is not None:
            options["transport"] = transport
        self._client = ContentSafetyClient(self.endpoint, AzureKeyCredential(key), **options)

    def classify(self, text: str) -> dict[str, str]:
        worst = {category: 0 for category in CATEGORIES}
        for piece in split_text(text):
            if not piece.strip():
                continue
            for category, value in self._analyze(piece).items():
                worst[category] = max(worst[category], value)
        return {category: severity_name(value) for category, value in worst.items()}

    def _analyze(self, text: str) -> dict[str, int]:
        from azure.ai.contentsafety.models import (
            AnalyzeTextOptions,
            AnalyzeTextOutputType,
            TextCategory,
        )
        from azure.core.exceptions import AzureError, HttpResponseError

        options = AnalyzeTextOptions(
            text=text, categories=[TextCategory.HATE, TextCategory.SELF_HARM, TextCategory.SEXUAL,
                                   TextCategory.VIOLENCE],
            output_type=AnalyzeTextOutputType.FOUR_SEVERITY_LEVELS)
        try:
            result = self._client.analyze_text(options, connection_timeout=self._timeout,
                                               read_timeout=self._timeout)
        except HttpResponseError as exc:
            raise ContentFilterUnavailable(self._message(exc, f"HTTP {exc.status_code} {exc.reason or ''}".strip())) \
                from None
        except AzureError as exc:  # ServiceRequestError, ServiceResponseError: no answer at all
            raise ContentFilterUnavailable(self._message(exc, "no response")) from None
        found: dict[str, int] = {}
        for item in result.categories_analysis or []:
            name = getattr(item.category, "value", item.category)  # a str, or the SDK's str enum
            category = SERVICE_CATEGORIES.get(str(name))
            if category is not None:
                found[category] = int(item.severity or 0)
        return found

    def _message(self, exc: Exception, what: str) -> str:
        detail = getattr(getattr(exc, "error", None), "message", None) or type(exc).__name__
        message = f"Azure AI Content Safety at {self.endpoint}: {what}: {detail}"
        return message.replace(self._key, "***") if self._key else message
