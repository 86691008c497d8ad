"""Evaluation examples read from a Dataset's JSONL: chat prompts with their reference answers,
or labelled texts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class Case:
    """One example to score: the prompt (messages up to the last assistant turn) and what the
    answer should be (that turn's content), or a text and its gold label."""

    index: int
    prompt: list[dict]
    reference: str | None = None
    text: str | None = None
    label: str | None = None


def read_cases(path: str | Path, task: str, max_examples: int | None = None, *,
               holdout: tuple[float, int] | None = None) -> tuple[list[Case], int]:
    """The cases of `path` in file order, and how many lines could not be used (a conversation
    without an assistant answer to compare with, a line that is not an example). `holdout`
    ((split, seed) of a Dataset's `validation: {split, seed}`) keeps only the held-out lines,
    chosen as the Dataset chose them."""
    cases: list[Case] = []
    skipped = 0
    with open(path, "rb") as handle:
        lines = _held_out(path, handle, *holdout) if holdout is not None else handle
        for line in lines:
            if max_examples is not None and len(cases) >= max_examples:
                break
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                skipped += 1
                continue
            case = _classification(row, len(cases)) if task == "text_classification" else _chat(row, len(cases))
            if case is None:
                skipped += 1
            else:
                cases.append(case)
    return cases, skipped


def _chat(row: object, index: int) -> Case | None:
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list):
        return None
    last = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=None)
    if last is None or last == 0 or not isinstance(messages[last].get("content"), str):
        return None
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:last]
              if isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in
              ("system", "user", "assistant")]
    if not prompt or prompt[-1]["role"] != "user":
        return None
    return Case(index, prompt, reference=messages[last]["content"])


def _classification(row: object, index: int) -> Case | None:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
        return None
    label = row.get("label")
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        label = str(label)
    if not isinstance(label, str):
        return None
    return Case(index, [{"role": "user", "content": row["text"]}], text=row["text"], label=label)


def _held_out(path: str | Path, lines: Iterable[bytes], split: float, seed: int) -> Iterator[bytes]:
    from foundryctl.datasets import ValidationOptions
    from foundryctl.datasets.cache import report_for
    from foundryctl.datasets.validator import example_digest, split_key

    report = report_for(Path(path), ValidationOptions(split=(split, seed)))
    if report.split is None:
        return
    for line in lines:
        if line.strip() and split_key(example_digest(line.lstrip(b"\xef\xbb\xbf")), seed) <= report.split.threshold:
            yield line
