"""Generated token ids to text, a piece at a time, and stop strings cut out of that text.

`Detokenizer` emits text whose pieces join to exactly `tokenizer.decode(ids,
skip_special_tokens=True)`, and never half a character: a byte-level tokenizer splits an emoji
or a CJK character over several tokens, and decoding a prefix of them gives U+FFFD. Like vLLM
and TGI it decodes a short window of recent ids (with a few ids of context before it, so a
SentencePiece tokenizer's leading space survives), so each token costs the same however long
the completion is. `StopMatcher` holds back text that may be the start of a stop string, so the
stop string itself is never sent.
"""

from __future__ import annotations

import logging
from typing import Any

REPLACEMENT = "\ufffd"  # what decoding an incomplete UTF-8 sequence gives

log = logging.getLogger(__name__)


PROBE = "a . b , c ! d ? e n't f 's g"


def decodes_locally(tokenizer: Any) -> bool:
    """Whether decoding a window of ids gives that window's share of the text. Not so where
    decoding rewrites text across tokens, as clean_up_tokenization_spaces does (" ." -> ".")."""
    try:
        ids = tokenizer.encode(PROBE, add_special_tokens=False)
        return tokenizer.decode(ids, skip_special_tokens=True) == PROBE
    except Exception:
        return False


class Detokenizer:
    def __init__(self, tokenizer: Any, window: bool = True):
        """`window`: decode only recent ids (see `decodes_locally`); else decode them all each
        time and hold back from the last space, as every clean-up rule starts with one."""
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""  # emitted so far
        self._prefix = 0  # ids[_prefix:_read] is context already reflected in `text`
        self._read = 0
        self._window = window

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        """Add one generated id; returns the text it completes (often "", never half a char)."""
        self.ids.append(token)
        if self._window:
            before = self._decode(self.ids[self._prefix:self._read])
            after = self._decode(self.ids[self._prefix:])
            if len(after) <= len(before) or after.endswith(REPLACEMENT) or not after.startswith(before):
                return ""
            self._prefix, self._read = self._read, len(self.ids)
            delta = after[len(before):]
        else:
            full = self._decode(self.ids)
            end = full.rfind(" ")
            if full.endswith(REPLACEMENT) or end <= len(self.text) or not full.startswith(self.text):
                return ""
            delta = full[len(self.text):end]
        self.text += delta
        return delta

    def flush(self) -> str:
        """The rest of the text once generation has ended (with a trailing U+FFFD if the last
        character was left incomplete, as `decode` gives it)."""
        full = self._decode(self.ids)
        if not full.startswith(self.text):  # not seen with byte-level or SentencePiece tokenizers
            log.warning("incremental decoding diverged from the full decode; the tail is dropped")
            return ""
        rest = full[len(self.text):]
        self.text = full
        return rest


class StopMatcher:
    """Finds the first stop string in a stream of text pieces."""

    def __init__(self, stops: list[str]):
        self.stops = [stop for stop in stops if stop]
        self.pending = ""  # text that may be the start of a stop string

    def feed(self, text: str) -> tuple[str, bool]:
        """(text that is safe to send, whether a stop string was reached). After a stop, the
        text up to it is returned and everything from the stop string on is dropped."""
        if not self.stops:
            return text, False
        pending = self.pending + text
        # Text before `pending` held no stop string nor the start of one, so a stop string can
        # only begin inside it.
        found = [at for at in (pending.find(stop) for stop in self.stops) if at >= 0]
        if found:
            self.pending = ""
            return pending[:min(found)], True
        hold = self._partial(pending)
        self.pending = pending[len(pending) - hold:]
        return pending[:len(pending) - hold], False

    def _partial(self, text: str) -> int:
        """Length of the longest end of `text` that a stop string starts with."""
        longest = min(len(text), max(len(stop) for stop in self.stops) - 1)
        for size in range(longest, 0, -1):
            tail = text[-size:]
            if any(stop.startswith(tail) for stop in self.stops):
                return size
        return 0

    def flush(self) -> str:
        rest, self.pending = self.pending, ""
        return rest
