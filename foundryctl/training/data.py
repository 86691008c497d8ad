"""Conversations to training examples: the model's chat template, labels on assistant tokens
only (a `weight: 0` message is context, not a target), and length-grouped batches.

Assistant spans are found by rendering growing prefixes of the conversation: the tokens of
`render(messages[:i], add_generation_prompt=True)` end where message i's content starts, and
those of `render(messages[:i+1])` end after it (its end-of-turn token is trained too, so the
model learns to stop).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels[1:] if label != IGNORE)


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0  # nothing left to learn after truncation


def read_conversations(path: str | Path) -> Iterable[list[dict[str, Any]]]:
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)["messages"]


def encode_conversation(tokenizer: Any, messages: list[dict[str, Any]], max_length: int) -> tuple[Encoded, bool]:
    """Token ids and labels of one conversation, truncated to `max_length` (and whether it was)."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    full = ids(tokenizer.apply_chat_template(plain, tokenize=False))
    labels = [IGNORE] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(ids(tokenizer.apply_chat_template(plain[:i], tokenize=False, add_generation_prompt=True)))
        end = len(ids(tokenizer.apply_chat_template(plain[:i + 1], tokenize=False)))
        labels[start:end] = full[start:end]
    truncated = len(full) > max_length
    return Encoded(full[:max_length], labels[:max_length]), truncated


def encode_file(tokenizer: Any, path: str | Path, max_length: int) -> tuple[list[Encoded], EncodeStats]:
    stats = EncodeStats()
    out: list[Encoded] = []
    for messages in read_conversations(path):
        encoded, truncated = encode_conversation(tokenizer, messages, max_length)
        stats.examples += 1
        stats.truncated += truncated
        if encoded.trained_tokens == 0:
            stats.dropped += 1
            continue
        out.append(encoded)
    return out, stats


def length_grouped_batches(examples: list[Encoded], batch_size: int, seed: int,
                           group: int = 50) -> list[list[int]]:
    """Batches of similar lengths in a seeded random order, so little compute goes to padding.

    As in transformers' LengthGroupedSampler: shuffle, cut into groups of `group` batches,
    sort each group by length, cut into batches, shuffle the batches.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    span = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: -examples[i].length)
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def collate(examples: list[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors; padding is masked out of attention and labels."""
    import torch

    width = max(e.length for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = example.length
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
