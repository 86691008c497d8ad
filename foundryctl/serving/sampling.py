"""Choosing each row's next token from a batch of logits, with its own settings.

Greedy rows (temperature 0) take the argmax, done for the whole batch at once. Sampled rows are
scaled and softmaxed together; only rows with top_p < 1 pay for the sort that nucleus sampling
needs. Each sampled row draws from its own torch.Generator, so a seeded request gives the same
text whichever other requests share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RowSampling:
    temperature: float
    top_p: float
    generator: torch.Generator | None  # None for greedy rows


def nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tokens outside each row's top_p mass (the most likely token always stays)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p[:, None], 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def choose_tokens(logits: torch.Tensor, rows: list[RowSampling]) -> list[int]:
    """The next token of each row of `logits` (batch x vocabulary)."""
    chosen = logits.argmax(dim=-1).tolist()
    sampled = [i for i, row in enumerate(rows) if row.temperature > 0]
    if not sampled:
        return chosen
    index = torch.tensor(sampled, device=logits.device)
    temperature = torch.tensor([rows[i].temperature for i in sampled], device=logits.device)
    probs = torch.softmax(logits.index_select(0, index).float() / temperature[:, None], dim=-1)
    narrowed = [j for j, i in enumerate(sampled) if rows[i].top_p < 1.0]
    if narrowed:
        which = torch.tensor(narrowed, device=logits.device)
        top_p = torch.tensor([rows[sampled[j]].top_p for j in narrowed], device=logits.device)
        probs[which] = nucleus(probs.index_select(0, which), top_p)
    for j, i in enumerate(sampled):
        chosen[i] = int(torch.multinomial(probs[j], 1, generator=rows[i].generator))
    return chosen
