"""A few greedy generations on validation prompts, before and after training, for the report:
loss curves say the model fits; these show what it now answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_NEW_TOKENS = 40


def sample_prompts(path: str | Path, count: int) -> list[dict[str, Any]]:
    """The first `count` conversations of a file as prompt (up to the last assistant turn)
    and reference (that turn)."""
    from foundryctl.training.data import read_conversations

    out: list[dict[str, Any]] = []
    if count <= 0:
        return out
    for messages in read_conversations(path):
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            continue
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages[:last]]
        out.append({"prompt": prompt, "reference": messages[last]["content"]})
        if len(out) == count:
            break
    return out


def generate(model: Any, tokenizer: Any, prompts: list[dict[str, Any]], device: str) -> list[str]:
    """Greedy answers to `prompts`, decoded together (left-padded)."""
    import torch

    if not prompts:
        return []
    texts = [tokenizer.apply_chat_template(p["prompt"], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, use_cache=True,
                                    pad_token_id=tokenizer.pad_token_id, repetition_penalty=1.2)
    finally:
        model.train(was_training)
    new = output[:, batch["input_ids"].shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


def record(path: Path, when: str, prompts: list[dict[str, Any]], answers: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        for prompt, answer in zip(prompts, answers):
            out.write(json.dumps({"when": when, "prompt": prompt["prompt"][-1]["content"],
                                  "reference": prompt["reference"], "answer": answer}) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
