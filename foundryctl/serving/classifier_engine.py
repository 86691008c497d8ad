"""Serving a text-classification model: the base model with its trained head (and LoRA
adapter merged in), answering `POST /v1/classify` with a label and per-label scores.

It stands where the chat engine stands in a runtime (stats, close, a warm-up), so the
endpoint's swap, health and metrics treat it alike; the chat route refuses it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from foundryctl.training.classification import LABELS_FILE, TASK

MAX_INPUTS = 256  # texts per request
MAX_TEXT_TOKENS = 2048  # longer texts are truncated


def classification_labels(*directories: str | None) -> list[str] | None:
    """The label set a model directory (or adapter directory) was trained with, or None for a
    chat model."""
    for directory in directories:
        if directory and (Path(directory) / LABELS_FILE).is_file():
            saved = json.loads((Path(directory) / LABELS_FILE).read_text())
            if saved.get("task") == TASK:
                return list(saved["labels"])
    return None


class ClassifierEngine:
    task = TASK

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], *, device: str = "cpu",
                 model_name: str = "classifier"):
        self.model, self.tokenizer, self.labels = model, tokenizer, labels
        self.device, self.model_name = device, model_name
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._lock = threading.Lock()  # one forward at a time: torch runs it on all cores anyway
        self._active = 0

    @classmethod
    def load(cls, model_dir: str, adapter_dir: str | None = None, *, device: str = "auto",
             model_name: str | None = None, labels: list[str] | None = None) -> ClassifierEngine:
        """`labels` loads a base model with a new head over them (its initialisation seeded, so
        the untrained classifier an evaluation compares with is the same every time)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        labels = labels or classification_labels(adapter_dir, model_dir)
        if labels is None:
            raise ValueError(f"{adapter_dir or model_dir} is not a text-classification model (no {LABELS_FILE})")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir or model_dir)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        torch.manual_seed(0)  # a head the checkpoint lacks is initialised the same way each time
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)}, pad_token_id=pad_id, dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        model = model.to(device).eval()
        return cls(model, tokenizer, labels, device=device,
                   model_name=model_name or Path(adapter_dir or model_dir).name)

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """The most likely label of each text and the softmax score of every label."""
        import torch

        from foundryctl.training.classification import Labelled, collate, logits_of

        encoded = [Labelled(self.tokenizer(t, add_special_tokens=False)["input_ids"][:MAX_TEXT_TOKENS]
                            or [self.pad_id], 0) for t in texts]
        with self._lock:
            self._active = len(texts)
            try:
                batch = {k: v.to(self.device) for k, v in collate(encoded, self.pad_id).items()}
                with torch.no_grad():
                    probabilities = torch.softmax(logits_of(self.model, batch).float(), dim=-1).tolist()
            finally:
                self._active = 0
        return [{"label": self.labels[max(range(len(row)), key=row.__getitem__)],
                 "scores": {label: round(p, 6) for label, p in zip(self.labels, row)}} for row in probabilities]

    def stats(self) -> dict[str, Any]:
        return {"active": self._active, "queued": 0, "task": self.task, "labels": list(self.labels)}

    def close(self) -> None:
        """Nothing runs in the background."""
