"""Text classification: a sequence-classification head on the base model, trained on
labelled JSONL (`{"text": ..., "label": ...}` a line).

The base model is loaded with `AutoModelForSequenceClassification` (a linear `score` head
over the hidden state of the last real token, new and randomly initialised); with LoRA the
body gets an adapter (peft `task_type=SEQ_CLS`) and the head is trained whole (peft's
`modules_to_save`), so the saved adapter carries both. Each epoch reports accuracy and
macro-F1 on the validation data (scikit-learn), and so does the untrained head before the
first step: the baseline a run has to beat.

One process: the chat runner's multi-GPU launch is not used for this task.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundryctl.training.config import TrainingConfig
from foundryctl.training.data import length_grouped_batches
from foundryctl.training.loop import Canceled, Trainer, pick_device, token_budget

TASK = "text_classification"
RESULTS_COLUMNS = ["step", "epoch", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                   "valid_f1_macro", "learning_rate", "examples_per_second"]
# Written beside the saved model: the label of each output of the head, in order.
LABELS_FILE = "labels.json"


@dataclass
class Labelled:
    input_ids: list[int]
    label: int

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:  # what token_budget and the batch statistics read
        return 1


@dataclass
class Scores:
    loss: float
    accuracy: float
    f1_macro: float
    examples: int


def read_labelled(path: str | Path) -> list[tuple[int, str, str]]:
    """(line, text, label) of each example; the dataset validator has checked the format."""
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.strip():
                example = json.loads(line)
                rows.append((line_no, example["text"], str(example["label"])))
    return rows


def label_set(declared: list[str] | None, training: list[tuple[int, str, str]]) -> list[str]:
    """The declared labels in their order, else the training labels sorted."""
    return list(declared) if declared else sorted({label for _, _, label in training})


def encode(tokenizer: Any, rows: list[tuple[int, str, str]], labels: list[str], max_length: int,
           path: str | Path) -> list[Labelled]:
    index = {label: i for i, label in enumerate(labels)}
    out = []
    for line_no, text, label in rows:
        if label not in index:
            raise ValueError(f"{path}:{line_no}: label {label!r} is not one of {', '.join(labels)}")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_length]
        out.append(Labelled(ids or [tokenizer.eos_token_id], index[label]))
    return out


def collate(examples: list[Labelled], pad_id: int) -> dict[str, Any]:
    """Right-padded ids; the head reads the last position the attention mask keeps."""
    import torch

    width = max(e.length for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        input_ids[row, :example.length] = torch.tensor(example.input_ids)
        attention[row, :example.length] = 1
    return {"input_ids": input_ids, "attention_mask": attention,
            "labels": torch.tensor([e.label for e in examples], dtype=torch.long)}


def logits_of(model: Any, batch: dict[str, Any]) -> Any:
    """Logits at each row's last real token. The model's own pooling finds the last token by
    the pad id, which is the end-of-text token on many models and may occur in the text; the
    attention mask says where each row ends."""
    import torch

    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = output.logits
    if logits.dim() == 3:  # per-position logits (no pooling)
        last = batch["attention_mask"].sum(dim=1) - 1
        logits = logits[torch.arange(logits.shape[0]), last]
    return logits


def load_classifier(config: TrainingConfig, device: str, labels: list[str]) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForSequenceClassification.from_pretrained(
        config.model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, pad_token_id=pad_id, dtype=torch.float32)
    model.config.use_cache = False
    if config.lora:
        from peft import LoraConfig, get_peft_model

        # SEQ_CLS puts the head (`score` on Llama-style models) in modules_to_save: trained
        # whole, saved with the adapter.
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.target_modules), task_type="SEQ_CLS")
        model = get_peft_model(model, lora)
    return model.to(device), tokenizer


def metrics(truth: list[int], predicted: list[int], classes: int) -> tuple[float, float]:
    """(accuracy, macro-F1 over every label, those never predicted counting as 0)."""
    from sklearn.metrics import accuracy_score, f1_score

    if not truth:
        return 0.0, 0.0
    return (float(accuracy_score(truth, predicted)),
            float(f1_score(truth, predicted, labels=list(range(classes)), average="macro", zero_division=0)))


class ClassificationTrainer(Trainer):
    results_columns = RESULTS_COLUMNS

    def __init__(self, config: TrainingConfig, job: Any, log: Any = print):
        super().__init__(config, job, log)
        self.labels: list[str] = []

    def score(self, model: Any, examples: list[Labelled], pad_id: int, device: str) -> Scores:
        import torch

        model.eval()
        truth: list[int] = []
        predicted: list[int] = []
        total_loss = 0.0
        with torch.no_grad():
            for indices in length_grouped_batches(examples, self.config.batch_size, seed=0):
                batch = _to(collate([examples[i] for i in indices], pad_id), device)
                logits = logits_of(model, batch)
                total_loss += float(torch.nn.functional.cross_entropy(logits.float(), batch["labels"],
                                                                      reduction="sum"))
                truth.extend(batch["labels"].tolist())
                predicted.extend(logits.argmax(dim=-1).tolist())
        model.train()
        accuracy, f1 = metrics(truth, predicted, len(self.labels))
        return Scores(total_loss / max(len(truth), 1), accuracy, f1, len(truth))

    def run(self) -> dict[str, Any]:
        import torch
        from transformers import get_scheduler

        config, job = self.config, self.job
        if self.dist.world > 1:
            raise ValueError("text_classification trains in one process; start it without torchrun")
        device = pick_device(config.device)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        training_rows = read_labelled(config.training_file)
        self.labels = labels = label_set(config.labels, training_rows)
        if len(labels) < 2:
            raise ValueError(f"text classification needs at least 2 labels; {config.training_file} has "
                             f"{len(labels)}")
        self.log(f"loading {config.base_model} from {config.model_dir} on {device} with a "
                 f"{len(labels)}-label classification head ({', '.join(labels)})")
        model, tokenizer = load_classifier(config, device, labels)
        pad_id = model.config.pad_token_id if hasattr(model, "config") else tokenizer.eos_token_id
        train = encode(tokenizer, training_rows, labels, config.max_seq_length, config.training_file)
        valid: list[Labelled] = []
        if config.validation_file:
            valid = encode(tokenizer, read_labelled(config.validation_file), labels, config.max_seq_length,
                           config.validation_file)
        if not train:
            raise ValueError(f"{config.training_file} has no training example")
        self.log(f"{len(train)} training examples, {len(valid)} validation")

        steps_per_epoch = math.ceil(math.ceil(len(train) / config.batch_size) / config.gradient_accumulation_steps)
        total_steps = steps_per_epoch * config.epochs
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = get_scheduler(config.lr_scheduler, optimizer,
                                  num_warmup_steps=int(config.warmup_ratio * total_steps),
                                  num_training_steps=total_steps)
        start_epoch, step = 0, 0
        checkpoint = job.latest_checkpoint()
        if checkpoint is not None:
            start_epoch, step = self._resume(checkpoint, model, optimizer, scheduler)
            self.log(f"resumed from {checkpoint.name}: epoch {start_epoch}, step {step}")
        elif valid:
            before = self.score(model, valid, pad_id, device)
            self._record({"type": "eval", "step": 0, "epoch": 0, "valid_loss": before.loss,
                          "valid_accuracy": before.accuracy, "valid_f1_macro": before.f1_macro})
            self.log(f"untrained head: validation accuracy {before.accuracy:.3f}, macro-F1 {before.f1_macro:.3f}")
        self._status(state="Running", total_steps=total_steps, epochs=config.epochs, step=step,
                     epoch=start_epoch, device=device, examples=len(train), processes=1)
        if self.stop_requested:
            raise Canceled()
        started = time.monotonic()
        for epoch in range(start_epoch, config.epochs):
            model.train()
            batches = self._batches(train, epoch)  # type: ignore[arg-type]
            per_step = config.gradient_accumulation_steps
            epoch_loss, epoch_correct, epoch_examples = 0.0, 0, 0
            for first in range(0, len(batches), per_step):
                if self.stop_requested:
                    raise Canceled()
                group = batches[first:first + per_step]
                count = sum(len(indices) for indices in group)
                step_started = time.monotonic()
                step_loss, step_correct = 0.0, 0
                for indices in group:
                    for part in token_budget(indices, train, config.max_tokens_per_pass):  # type: ignore[arg-type]
                        batch = _to(collate([train[i] for i in part], pad_id), device)
                        logits = logits_of(model, batch)
                        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="sum")
                        (loss / count).backward()
                        step_loss += float(loss.detach())
                        step_correct += int((logits.argmax(dim=-1) == batch["labels"]).sum())
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_loss += step_loss
                epoch_correct += step_correct
                epoch_examples += count
                elapsed = time.monotonic() - step_started
                self._record({"type": "step", "step": step,
                              "epoch": epoch + min(1.0, (first + per_step) / len(batches)),
                              "train_loss": step_loss / count, "train_accuracy": step_correct / count,
                              "learning_rate": scheduler.get_last_lr()[0],
                              "examples_per_second": count / max(elapsed, 1e-9),
                              "elapsed": time.monotonic() - started})
                self._status(state="Running", step=step, epoch=epoch + 1, loss=step_loss / count,
                             eta_seconds=(total_steps - step) * (time.monotonic() - started)
                             / max(step - start_epoch * steps_per_epoch, 1))
            summary: dict[str, Any] = {"type": "epoch", "step": step, "epoch": epoch + 1,
                                       "train_loss": epoch_loss / max(epoch_examples, 1),
                                       "train_accuracy": epoch_correct / max(epoch_examples, 1)}
            scores = self.score(model, valid, pad_id, device) if valid else None
            if scores is not None:
                summary.update(valid_loss=scores.loss, valid_accuracy=scores.accuracy,
                               valid_f1_macro=scores.f1_macro)
            self._record(summary)
            self.log(f"epoch {epoch + 1}/{config.epochs}: train loss {summary['train_loss']:.4f}" + (
                f", validation accuracy {scores.accuracy:.3f}, macro-F1 {scores.f1_macro:.3f}" if scores else ""))
            self._checkpoint(epoch + 1, step, model, optimizer, scheduler)
        self._save_final(model, tokenizer)
        (job.model / LABELS_FILE).write_text(json.dumps({"task": TASK, "labels": labels}) + "\n")
        if self.config.lora and self.config.merge_weights and job.merged.exists():
            (job.merged / LABELS_FILE).write_text(json.dumps({"task": TASK, "labels": labels}) + "\n")
        return {"steps": step, "tokens": 0, "examples": len(train)}


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items()} if device != "cpu" else batch
