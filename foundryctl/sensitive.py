"""Sensitive values: what `sensitive: true` variables hold, and how it is kept out of sight.

A value is hidden wherever it appears: a string that contains a sensitive value (a variable
interpolated into a longer string is sensitive too) is replaced as a whole. Output for people
(plan text, Markdown, JSON) shows `(sensitive value)`; what is stored (state, saved plans) shows
`(sensitive value #DIGEST)`, a slow salted hash that lets a later plan tell whether the value
changed without the value ever being written down.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

SHOWN = "(sensitive value)"
_STORED = re.compile(r"^\(sensitive value #([0-9a-f]{16})\)$")
_SALT = b"foundryctl-sensitive-v1"
_ROUNDS = 100_000  # a guess costs this many HMACs: a short secret is not read off its digest
ARGV_REDACTED = "(redacted)"


@lru_cache(maxsize=4096)
def _digest(canonical: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", canonical.encode(), _SALT, _ROUNDS)[:8].hex()


def stored_marker(value: Any) -> str:
    """The stored stand-in for a sensitive value."""
    return f"(sensitive value #{_digest(json.dumps(value, sort_keys=True))})"


def is_marker(value: Any) -> bool:
    return value == SHOWN or (isinstance(value, str) and _STORED.match(value) is not None)


def matches_marker(marker: str, value: Any) -> bool:
    """Whether `value` is what the stored `marker` stands for."""
    found = _STORED.match(marker)
    return found is not None and not is_marker(value) and stored_marker(value) == marker


@dataclass(frozen=True)
class Secrets:
    """The sensitive values of one manifest."""

    strings: frozenset[str] = frozenset()
    numbers: frozenset[int | float] = frozenset()
    names: tuple[str, ...] = ()  # the sensitive variables
    _pattern: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, values: Iterable[Any], names: Sequence[str] = ()) -> Secrets:
        strings: set[str] = set()
        numbers: set[int | float] = set()
        for value in values:
            for leaf in _leaves(value):
                if isinstance(leaf, str) and leaf:
                    strings.add(leaf)
                elif isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
                    numbers.add(leaf)
        ordered = sorted(strings, key=len, reverse=True)  # the longest first, for text
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        return cls(frozenset(strings), frozenset(numbers), tuple(sorted(names)), pattern)

    def __bool__(self) -> bool:
        return bool(self.strings or self.numbers)

    def hides(self, value: Any) -> bool:
        """Whether a single value (a leaf) is or contains a sensitive value."""
        if isinstance(value, str):
            return self._pattern is not None and self._pattern.search(value) is not None \
                and not is_marker(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value in self.numbers
        return False

    def redact(self, value: Any, *, stored: bool = False, found: set[tuple] | None = None,
               path: tuple = ()) -> Any:
        """A copy of `value` with every sensitive leaf replaced; paths replaced go to `found`."""
        if isinstance(value, dict):
            return {k: self.redact(v, stored=stored, found=found, path=path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v, stored=stored, found=found, path=path + (i,)) for i, v in enumerate(value)]
        if self.hides(value):
            if found is not None:
                found.add(path)
            return stored_marker(value) if stored else SHOWN
        return value

    def redact_text(self, text: str) -> str:
        """A message with each sensitive value in it replaced (the rest kept readable)."""
        if self._pattern is None or not isinstance(text, str):
            return text
        return self._pattern.sub(SHOWN, text)


def redact_paths(value: Any, paths: set[tuple], *, stored: bool = False, path: tuple = ()) -> Any:
    """A copy of `value` with what lies at (or under) any of `paths` replaced: the old value
    of an attribute whose new value is sensitive is sensitive too (a rotated secret)."""
    if path in paths:
        return _replace_leaves(value, stored)
    if isinstance(value, dict):
        return {k: redact_paths(v, paths, stored=stored, path=path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_paths(v, paths, stored=stored, path=path + (i,)) for i, v in enumerate(value)]
    return value


def reveal(before: Any, after: Any) -> Any:
    """`before` with each stored marker replaced by the value at the same place in `after`
    when that is the value it stands for (so diffs see no change where there is none)."""
    if isinstance(before, str) and _STORED.match(before):
        return after if matches_marker(before, after) else before
    if isinstance(before, dict) and isinstance(after, dict):
        return {k: reveal(v, after[k]) if k in after else v for k, v in before.items()}
    if isinstance(before, list) and isinstance(after, list):
        return [reveal(v, after[i]) if i < len(after) else v for i, v in enumerate(before)]
    return before


def redact_argv(args: Sequence[str]) -> list[str]:
    """A command line with every `--var NAME=VALUE` value replaced (as stored in history and
    locks): which variables are sensitive is not known before the manifest is read."""
    out: list[str] = []
    follows_var = False
    for arg in args:
        if follows_var:
            name, sep, _ = arg.partition("=")
            out.append(f"{name}={ARGV_REDACTED}" if sep else arg)
            follows_var = False
        elif arg == "--var":
            out.append(arg)
            follows_var = True
        elif arg.startswith("--var="):
            name, sep, _ = arg[len("--var="):].partition("=")
            out.append(f"--var={name}={ARGV_REDACTED}" if sep else arg)
        else:
            out.append(arg)
    return out


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _replace_leaves(value: Any, stored: bool) -> Any:
    if isinstance(value, dict):
        return {k: _replace_leaves(v, stored) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_leaves(v, stored) for v in value]
    if value is None or isinstance(value, bool) or is_marker(value):
        return value
    return stored_marker(value) if stored else SHOWN


NO_SECRETS = Secrets()


class RedactingStore:
    """A state store that writes sensitive values only as their salted hashes (records and
    history); everything else passes through to `store`."""

    def __init__(self, store: Any, secrets: Secrets):
        self._store = store
        self._secrets = secrets

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _record(self, record: Any) -> Any:
        return replace(record, attributes=self._secrets.redact(record.attributes, stored=True),
                       outputs=self._secrets.redact(record.outputs, stored=True))

    def put(self, record: Any) -> int:
        return self._store.put(self._record(record))

    def write(self, puts: Iterable[Any] = (), removes: Iterable[str] = ()) -> int:
        return self._store.write(puts=[self._record(r) for r in puts], removes=removes)

    def append_history(self, event: str, details: dict[str, Any]) -> None:
        redacted = self._secrets.redact(details)
        self._store.append_history(event, _redact_texts(redacted, self._secrets))


def _redact_texts(value: Any, secrets: Secrets) -> Any:
    if isinstance(value, dict):
        return {k: _redact_texts(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_texts(v, secrets) for v in value]
    return secrets.redact_text(value) if isinstance(value, str) else value
