"""The training loop: LoRA (or full) fine-tuning of a causal LM on encoded conversations.

Written for speed on small models and CPUs as much as GPUs:
- batches of similar lengths (little padding), built once per epoch from a seeded order;
- the language-model head runs only at positions that have a label: on chat data most
  positions are prompt, and the head (vocabulary x hidden) is a large share of a small
  model's compute;
- the loss is the mean over all label tokens of an optimizer step, however they are split
  into micro-batches (gradient accumulation weights each token alike);
- bf16 autocast on CUDA, fp32 on the CPU; one forward and one backward per micro-batch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundryctl.training.config import TrainingConfig
from foundryctl.training.data import IGNORE, Encoded, collate, encode_file, length_grouped_batches
from foundryctl.training.jobdir import CHECKPOINT_DONE, JobDir

RESULTS_COLUMNS = ["step", "epoch", "train_loss", "train_mean_token_accuracy", "valid_loss",
                   "valid_mean_token_accuracy", "valid_perplexity", "learning_rate", "tokens_per_second"]


class Canceled(Exception):
    """The job was asked to stop (SIGTERM/SIGINT); the last checkpoint stays."""


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    tokens: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


def pick_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def load_model(config: TrainingConfig, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model_dir)
    # LoRA on CUDA: the frozen base in bf16, the adapter in fp32 under bf16 autocast. A full
    # fine-tune keeps fp32 weights (AdamW on bf16 weights loses small updates).
    dtype = torch.bfloat16 if device == "cuda" and config.lora else torch.float32
    model = AutoModelForCausalLM.from_pretrained(config.model_dir, dtype=dtype)
    model.config.use_cache = False
    if config.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    return model.to(device), tokenizer


def split_model(model: Any) -> tuple[Any, Any]:
    """(the transformer body that returns hidden states, the LM head) of a causal LM, through
    a peft wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model, base.lm_head


def token_loss(body: Any, head: Any, batch: dict[str, Any]) -> tuple[Any, int, int]:
    """Summed cross-entropy over label positions, how many there are, how many were right.

    Hidden states are gathered at the positions whose next token is a label before the head
    runs, so the head's (vocabulary x hidden) matmul is done only where it counts.
    """
    import torch
    import torch.nn.functional as F

    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    picked = hidden[:, :-1][where]
    logits = head(picked).float()
    wanted = targets[where]
    loss = F.cross_entropy(logits, wanted, reduction="sum")
    with torch.no_grad():
        correct = int((logits.argmax(dim=-1) == wanted).sum())
    return loss, int(where.sum()), correct


class Trainer:
    def __init__(self, config: TrainingConfig, job: JobDir, log: Callable[[str], None] = print):
        self.config, self.job, self.log = config, job, log
        self.stop_requested = False

    def request_stop(self, *_: Any) -> None:
        self.stop_requested = True

    # -- pieces ----------------------------------------------------------------------------

    def _batches(self, examples: list[Encoded], epoch: int) -> list[list[int]]:
        return length_grouped_batches(examples, self.config.batch_size, seed=self.config.seed * 1009 + epoch)

    def evaluate(self, model: Any, examples: list[Encoded], pad_id: int, device: str) -> Evaluation:
        import torch

        body, head = split_model(model)
        model.eval()  # no dropout while measuring
        total_loss, total_tokens, total_correct = 0.0, 0, 0
        with torch.no_grad(), self._autocast(device):
            for indices in length_grouped_batches(examples, self.config.batch_size, seed=0):
                batch = _to(collate([examples[i] for i in indices], pad_id), device)
                loss, tokens, correct = token_loss(body, head, batch)
                total_loss += float(loss)
                total_tokens += tokens
                total_correct += correct
        model.train()
        tokens = max(total_tokens, 1)
        return Evaluation(total_loss / tokens, total_correct / tokens, total_tokens)

    @staticmethod
    def _autocast(device: str) -> Any:
        import contextlib

        import torch

        if device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        import torch
        from transformers import get_scheduler

        config, job = self.config, self.job
        device = pick_device(config.device)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.log(f"loading {config.base_model} from {config.model_dir} on {device}")
        model, tokenizer = load_model(config, device)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        train, train_stats = encode_file(tokenizer, config.training_file, config.max_seq_length)
        valid: list[Encoded] = []
        if config.validation_file:
            valid, _ = encode_file(tokenizer, config.validation_file, config.max_seq_length)
        if not train:
            raise ValueError("no training example has an assistant token left to learn from "
                             f"(max_seq_length {config.max_seq_length})")
        self.log(f"{len(train)} training examples ({train_stats.truncated} truncated, "
                 f"{train_stats.dropped} without trainable tokens dropped), {len(valid)} validation")

        steps_per_epoch = math.ceil(math.ceil(len(train) / config.batch_size) / config.gradient_accumulation_steps)
        total_steps = steps_per_epoch * config.epochs
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay,
                                      fused=device == "cuda")
        scheduler = get_scheduler(config.lr_scheduler, optimizer,
                                  num_warmup_steps=int(config.warmup_ratio * total_steps),
                                  num_training_steps=total_steps)
        body, head = split_model(model)

        start_epoch, step = 0, 0
        checkpoint = job.latest_checkpoint()
        if checkpoint is not None:
            start_epoch, step = self._resume(checkpoint, model, optimizer, scheduler)
            self.log(f"resumed from {checkpoint.name}: epoch {start_epoch}, step {step}")
        elif valid:
            before = self.evaluate(model, valid, pad_id, device)
            self._record({"type": "eval", "step": 0, "epoch": 0, "valid_loss": before.loss,
                          "valid_perplexity": before.perplexity, "valid_mean_token_accuracy": before.accuracy})
            self.log(f"before training: validation loss {before.loss:.4f}, perplexity {before.perplexity:.2f}")

        job.write_status(state="Running", total_steps=total_steps, epochs=config.epochs, step=step,
                         epoch=start_epoch, device=device, examples=len(train))
        started = time.monotonic()
        trained_tokens = 0
        for epoch in range(start_epoch, config.epochs):
            model.train()
            batches = self._batches(train, epoch)
            epoch_loss, epoch_tokens, epoch_correct = 0.0, 0, 0
            for first in range(0, len(batches), config.gradient_accumulation_steps):
                if self.stop_requested:
                    raise Canceled()
                group = batches[first:first + config.gradient_accumulation_steps]
                micro = [_to(collate([train[i] for i in indices], pad_id), device) for indices in group]
                label_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro)
                step_started = time.monotonic()
                step_loss, step_correct, step_tokens = 0.0, 0, 0
                for batch in micro:
                    with self._autocast(device):
                        loss, tokens, correct = token_loss(body, head, batch)
                    (loss / label_tokens).backward()
                    step_loss += float(loss)
                    step_correct += correct
                    step_tokens += int(batch["attention_mask"].sum())
                norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                elapsed = time.monotonic() - step_started
                trained_tokens += step_tokens
                epoch_loss += step_loss
                epoch_tokens += label_tokens
                epoch_correct += step_correct
                rate = trained_tokens / max(time.monotonic() - started, 1e-9)
                remaining = (total_steps - step) * (time.monotonic() - started) / max(
                    step - start_epoch * steps_per_epoch, 1)
                self._record({"type": "step", "step": step, "epoch": epoch + (first + len(group)) / len(batches),
                              "train_loss": step_loss / label_tokens,
                              "train_mean_token_accuracy": step_correct / label_tokens,
                              "learning_rate": scheduler.get_last_lr()[0], "grad_norm": float(norm),
                              "tokens": step_tokens, "tokens_per_second": step_tokens / max(elapsed, 1e-9),
                              "elapsed": time.monotonic() - started})
                job.write_status(state="Running", step=step, epoch=epoch + 1, loss=step_loss / label_tokens,
                                 tokens_per_second=rate, eta_seconds=remaining)
            evaluation = self.evaluate(model, valid, pad_id, device) if valid else None
            summary = {"type": "epoch", "step": step, "epoch": epoch + 1,
                       "train_loss": epoch_loss / max(epoch_tokens, 1),
                       "train_mean_token_accuracy": epoch_correct / max(epoch_tokens, 1)}
            if evaluation is not None:
                summary.update(valid_loss=evaluation.loss, valid_perplexity=evaluation.perplexity,
                               valid_mean_token_accuracy=evaluation.accuracy)
            self._record(summary)
            self.log(f"epoch {epoch + 1}/{config.epochs}: train loss {summary['train_loss']:.4f}" + (
                f", validation loss {evaluation.loss:.4f} (perplexity {evaluation.perplexity:.2f}, "
                f"token accuracy {evaluation.accuracy:.3f})" if evaluation else ""))
            self._checkpoint(epoch + 1, step, model, optimizer, scheduler)
        self._save_final(model, tokenizer)
        return {"steps": step, "tokens": trained_tokens}

    # -- metrics, checkpoints, outputs ----------------------------------------------------

    def _record(self, row: dict[str, Any]) -> None:
        with open(self.job.metrics, "a") as out:
            out.write(json.dumps(row) + "\n")
        if row["type"] in ("step", "epoch", "eval"):
            new = not self.job.results.exists()
            with open(self.job.results, "a", newline="") as out:
                writer = csv.DictWriter(out, RESULTS_COLUMNS, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow({k: _round(row.get(k)) for k in RESULTS_COLUMNS})

    def _checkpoint(self, epoch: int, step: int, model: Any, optimizer: Any, scheduler: Any) -> None:
        import torch

        final = self.job.checkpoints / f"epoch-{epoch}"
        staging = self.job.checkpoints / f".epoch-{epoch}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging / "adapter" if self.config.lora else staging / "model")
        torch.save({"epoch": epoch, "step": step, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate()}, staging / "trainer_state.pt")
        (staging / CHECKPOINT_DONE).write_text(json.dumps({"epoch": epoch, "step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        self.job.prune_checkpoints(self.config.keep_checkpoints)
        self.log(f"checkpoint {final.name} saved")

    def _resume(self, checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, int]:
        import torch

        if self.config.lora:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            state = load_file(str(checkpoint / "adapter" / "adapter_model.safetensors"))
            set_peft_model_state_dict(model, state)
        else:
            from safetensors.torch import load_file

            for file in sorted((checkpoint / "model").glob("*.safetensors")):
                model.load_state_dict(load_file(str(file)), strict=False)
        saved = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        return saved["epoch"], saved["step"]

    def _save_final(self, model: Any, tokenizer: Any) -> None:
        target = self.job.model
        staging = self.job.path / ".model.partial"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        if self.config.lora and self.config.merge_weights:
            merged = model.merge_and_unload()
            staging = self.job.path / ".merged.partial"
            shutil.rmtree(staging, ignore_errors=True)
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            shutil.rmtree(self.job.merged, ignore_errors=True)
            os.replace(staging, self.job.merged)


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()} if device != "cpu" else batch


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def install_signal_handlers(trainer: Trainer) -> None:
    signal.signal(signal.SIGTERM, trainer.request_stop)
    signal.signal(signal.SIGINT, trainer.request_stop)
