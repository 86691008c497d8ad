"""'Did you mean ...?' suggestions for unknown names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate nearest to `word`, comparing case-insensitively, or None."""
    if len(word) > 200:  # no name is that long; difflib would index every character of it
        return None
    options = list(candidates)
    by_lower = {c.lower(): c for c in options}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean X?)' or '' when nothing is close."""
    match = closest(word, candidates)
    return f"; did you mean {match!r}?" if match and match != word else ""
