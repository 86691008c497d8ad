"""Choosing each row's next token from a batch of logits, with its own settings.

Rows with a `logit_bias` or a presence/frequency penalty get their logits adjusted first (only
those rows pay for it), as OpenAI defines them: bias added to the token's logit; presence
penalty subtracted once from every token already generated, frequency penalty times its count.
Greedy rows (temperature 0) then take the argmax, done for the whole batch at once. Sampled rows
are scaled and softmaxed together; only rows with top_p < 1 pay for the sort that nucleus
sampling needs. Each sampled row draws from its own torch.Generator, so a seeded request gives
the same text whichever other requests share its batch. Rows that asked for logprobs get the
log-softmax of their adjusted logits (before temperature and top_p): the chosen token's and the
`top_logprobs` most likely.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

# A token's log-probability and the most likely alternatives: (token id, logprob) pairs, sorted.
TokenLogprob = tuple[float, list[tuple[int, float]]]


@dataclass
class RowSampling:
    temperature: float
    top_p: float
    generator: torch.Generator | None  # None for greedy rows
    logit_bias: dict[int, float] = field(default_factory=dict)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: none; k: the chosen token's and the top k
    seen: Counter = field(default_factory=Counter)  # generated token ids and their counts

    @property
    def adjusts(self) -> bool:
        return bool(self.logit_bias) or (bool(self.seen) and bool(self.presence_penalty or self.frequency_penalty))


def nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tokens outside each row's top_p mass (the most likely token always stays)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p[:, None], 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def adjust(logits: torch.Tensor, rows: list[RowSampling]) -> torch.Tensor:
    """`logits` with each row's bias and penalties applied (the same tensor when none has any)."""
    which = [i for i, row in enumerate(rows) if row.adjusts]
    if not which:
        return logits
    logits = logits.float().clone()
    for i in which:
        row = rows[i]
        change: Counter = Counter()
        for token, count in row.seen.items():
            change[token] -= row.presence_penalty + row.frequency_penalty * count
        for token, bias in row.logit_bias.items():
            change[token] += bias
        ids = torch.tensor(list(change), device=logits.device)
        logits[i].index_add_(0, ids, torch.tensor(list(change.values()), device=logits.device))
    return logits


def choose_tokens(logits: torch.Tensor, rows: list[RowSampling]) -> list[int]:
    """The next token of each row of `logits` (batch x vocabulary), already adjusted."""
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


def pick(logits: torch.Tensor, rows: list[RowSampling]) -> tuple[list[int], list[TokenLogprob | None]]:
    """Each row's next token and, where asked, its logprobs; records the tokens for the penalties."""
    logits = adjust(logits, rows)
    tokens = choose_tokens(logits, rows)
    logprobs: list[TokenLogprob | None] = [None] * len(rows)
    wanted = [i for i, row in enumerate(rows) if row.logprobs is not None]
    if wanted:
        index = torch.tensor(wanted, device=logits.device)
        table = torch.log_softmax(logits.index_select(0, index).float(), dim=-1)
        k = max(rows[i].logprobs or 0 for i in wanted)
        top_values, top_ids = table.topk(k, dim=-1) if k else (None, None)
        for j, i in enumerate(wanted):
            top: list[tuple[int, float]] = []
            if top_ids is not None and rows[i].logprobs:
                top = list(zip(top_ids[j, :rows[i].logprobs].tolist(), top_values[j, :rows[i].logprobs].tolist()))
            logprobs[i] = (float(table[j, tokens[i]]), top)
    for row, token in zip(rows, tokens):
        if row.presence_penalty or row.frequency_penalty:
            row.seen[token] += 1
    return tokens, logprobs
