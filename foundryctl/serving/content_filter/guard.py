"""Streaming completions through the filter: text is held back until it has been checked
(Azure OpenAI's default streaming mode), a segment at a time."""

from __future__ import annotations

from dataclasses import dataclass

from foundryctl.serving.content_filter.policy import (
    Classifier,
    FilterPolicy,
    FilterResult,
    check,
)

_SENTENCE_ENDS = ".!?\n"


@dataclass(frozen=True)
class GuardStep:
    release: str  # text now safe to send to the client ("" when nothing)
    blocked: FilterResult | None  # set once the completion crossed a threshold; final


class CompletionGuard:
    """Holds streamed completion text back until it has been checked (Azure's default streaming mode).

    Held text is checked when it reaches a sentence end after at least segment_chars/4
    characters, or when it reaches segment_chars. The whole completion so far is classified
    each time, because context decides severity ("I will" in one delta, "kill him" in the
    next); the held part is released only if nothing is filtered. Once blocked, nothing more
    is ever released.
    """

    def __init__(self, policy: FilterPolicy, classifier: Classifier, segment_chars: int = 120) -> None:
        if segment_chars < 1:
            raise ValueError("segment_chars must be at least 1")
        self.policy = policy
        self.classifier = classifier
        self.segment_chars = segment_chars
        self._min_chars = max(1, segment_chars // 4)
        self._released: list[str] = []
        self._held = ""
        self._blocked: FilterResult | None = None
        self._result = FilterResult.safe()

    @property
    def result(self) -> FilterResult:
        """The latest assessment of the whole text so far (all-safe before any check)."""
        return self._result

    @property
    def held(self) -> str:
        return self._held

    def push(self, delta: str) -> GuardStep:
        if self._blocked is not None:
            return GuardStep("", self._blocked)
        if not self.policy.enabled:
            return GuardStep(delta, None)
        self._held += delta
        if self._due():
            return self._check()
        return GuardStep("", None)

    def finish(self) -> GuardStep:
        """Check whatever is still held; call once, after the last delta."""
        if self._blocked is not None:
            return GuardStep("", self._blocked)
        if not self.policy.enabled or not self._held:
            return GuardStep("", None)
        return self._check()

    def _due(self) -> bool:
        held = self._held
        if len(held) >= self.segment_chars:
            return True
        if len(held) < self._min_chars:
            return False
        # A sentence end after the first min_chars characters: the segment is a whole thought.
        return any(held.rfind(end, self._min_chars - 1) >= 0 for end in _SENTENCE_ENDS)

    def _check(self) -> GuardStep:
        text = "".join(self._released) + self._held
        self._result = check(self.policy, self.classifier, text)
        if self._result.filtered:
            self._blocked = self._result
            self._held = ""
            return GuardStep("", self._blocked)
        release, self._held = self._held, ""
        self._released.append(release)
        return GuardStep(release, None)
