"""The generation engine behind the local OpenAI-compatible endpoint.

One worker thread decodes every request in one batch, a token per step (continuous batching):
a request that arrives while others are decoding is prefilled (with the others that arrived
with it) and its KV cache is merged into the running batch before the next step; a request
that finishes or is canceled leaves the batch at once and its cache rows are dropped. Rows are
right-aligned: shorter sequences are padded on the left with masked positions, and every row
carries its own position ids, so a request computes what it would alone (up to fp rounding
between batch shapes).

Events go back through the `on_event` callback of each request, from the worker thread: some
`Delta`s, then exactly one `Finished` or `Failed`.
"""

from __future__ import annotations

import inspect
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from foundryctl.serving.detokenize import Detokenizer, StopMatcher, decodes_locally

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
MAX_STOPS = 4
# Prompt tokens (padding included) per prefill forward: bounds the activations of long prompts.
PREFILL_TOKENS = 2048
# Prompts of very different lengths are prefilled apart rather than padded to the longest; a
# forward costs about as much as this many padded tokens on a small model.
PREFILL_PADDING = 64


@dataclass
class SamplingParams:
    max_tokens: int | None = None  # None: up to the context window
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)  # up to 4 strings; output never contains them
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> -100..100
    presence_penalty: float = 0.0  # -2..2
    frequency_penalty: float = 0.0  # -2..2
    logprobs: int | None = None  # None: no logprobs; k (0..20): the chosen token's and the top k


@dataclass(frozen=True)
class Delta:
    """A piece of completion text; `tokens` is how many tokens were generated when it was sent
    (the text of the tokens up to there, less what a stop string or a split character holds back)."""

    text: str
    tokens: int = 0


@dataclass(frozen=True)
class Finished:
    finish_reason: str  # "stop" (end-of-sequence or end-of-turn token, or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    error: str


Event = Delta | Finished | Failed


class EngineError(ValueError):
    """A bad request: invalid messages or parameters, a prompt too long, a chat template error."""

    def __init__(self, message: str, param: str = "messages"):
        super().__init__(message)
        self.param = param


class GenerationFailed(RuntimeError):
    """A request ended with `Failed` (raised by the blocking `generate` and `stream`)."""


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] = field(default_factory=list)  # the generated ids, end-of-turn token included


class RequestHandle:
    """A submitted request, for canceling it (a no-op once it has ended)."""

    def __init__(self, wake: threading.Condition):
        self._wake = wake
        self.canceled = False
        self.token_ids: list[int] = []  # generated so far (the worker appends to it)
        self.logprobs: list[Any] = []  # sampling.TokenLogprob per token, when asked for
        self.submitted_at = time.perf_counter()
        self.admitted_at: float | None = None  # when it left the queue for the batch

    def cancel(self) -> None:
        if not self.canceled:
            self.canceled = True
            with self._wake:
                self._wake.notify()


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    max_new: int  # max_tokens, or what the context window leaves
    on_event: Callable[[Event], None]
    handle: RequestHandle
    sampling: Any  # sampling.RowSampling
    decoder: Detokenizer
    matcher: StopMatcher
    done: bool = False


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise EngineError("messages must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise EngineError(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise EngineError(f"messages[{i}].role must be one of {', '.join(ROLES)}, not {role!r}")
        if not isinstance(message.get("content"), str):
            raise EngineError(f"messages[{i}].content must be a string")


def check_params(params: Any) -> SamplingParams:
    """`params` validated, with `stop` as a list (a single string is accepted as one stop)."""
    if not isinstance(params, SamplingParams):
        raise EngineError("params must be SamplingParams")

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if params.max_tokens is not None and (not isinstance(params.max_tokens, int) or isinstance(params.max_tokens, bool)
                                          or params.max_tokens < 1):
        raise EngineError(f"max_tokens must be an integer of at least 1, not {params.max_tokens!r}", param="max_tokens")
    if not number(params.temperature) or not 0 <= params.temperature <= 2:
        raise EngineError(f"temperature must be between 0 and 2, not {params.temperature!r}", param="temperature")
    if not number(params.top_p) or not 0 < params.top_p <= 1:
        raise EngineError(f"top_p must be greater than 0 and at most 1, not {params.top_p!r}", param="top_p")
    stop = [params.stop] if isinstance(params.stop, str) else params.stop
    if stop is None:
        stop = []
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise EngineError("stop must be a list of non-empty strings", param="stop")
    if len(stop) > MAX_STOPS:
        raise EngineError(f"at most {MAX_STOPS} stop strings, not {len(stop)}", param="stop")
    if params.seed is not None and (not isinstance(params.seed, int) or isinstance(params.seed, bool)
                                    or not -2**63 <= params.seed < 2**63):
        raise EngineError(f"seed must be a 64-bit integer, not {params.seed!r}", param="seed")
    for name in ("presence_penalty", "frequency_penalty"):
        if not number(getattr(params, name)) or not -2 <= getattr(params, name) <= 2:
            raise EngineError(f"{name} must be between -2 and 2, not {getattr(params, name)!r}", param=name)
    if not isinstance(params.logit_bias, dict) or not all(
            isinstance(k, int) and k >= 0 and number(v) and -100 <= v <= 100 for k, v in params.logit_bias.items()):
        raise EngineError("logit_bias must map token ids to numbers between -100 and 100", param="logit_bias")
    if params.logprobs is not None and (not isinstance(params.logprobs, int) or not 0 <= params.logprobs <= 20):
        raise EngineError(f"top_logprobs must be between 0 and 20, not {params.logprobs!r}", param="top_logprobs")
    return replace(params, stop=list(stop), temperature=float(params.temperature), top_p=float(params.top_p))


def prefill_groups(lengths: list[int]) -> list[list[int]]:
    """Indices of prompts to prefill together: by length, a new group where padding to the
    longest would waste more than PREFILL_PADDING tokens (and a quarter of the real ones)."""
    groups: list[list[int]] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups:
            group = groups[-1]
            padding = lengths[i] * (len(group) + 1) - (real + lengths[i])
            if padding <= max(PREFILL_PADDING, (real + lengths[i]) // 4):
                group.append(i)
                real += lengths[i]
                continue
        groups.append([i])
        real = lengths[i]
    return groups


def _left_pad(tensor: Any, width: int, dim: int) -> Any:
    """`tensor` padded with zeros at the start of `dim` (the sequence axis) to `width`."""
    import torch.nn.functional as F

    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    return F.pad(tensor, (0, 0) * (tensor.dim() - 1 - dim % tensor.dim()) + (missing, 0))


class _Batch:
    """The requests being decoded, right-aligned, and their model state."""

    def __init__(self, trim: bool):
        self.trim = trim  # the cache is plain per-layer tensors: columns can be dropped and merged
        self.clear()

    def clear(self) -> None:
        self.rows: list[_Request] = []
        self.cache: Any = None
        self.mask: Any = None  # batch x cache length (+1 during a step), 1 = a real token
        self.positions: Any = None  # each row's position of the token fed next
        self.last: Any = None  # each row's token fed next

    def extend(self, rows: list[_Request], cache: Any, mask: Any, positions: Any, last: Any) -> None:
        """Add prefilled rows, left-padding whichever side has the shorter sequence axis."""
        import torch

        if not self.rows:
            self.rows, self.cache, self.mask, self.positions, self.last = rows, cache, mask, positions, last
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([_left_pad(old.keys, width, -2), _left_pad(new.keys, width, -2)])
            old.values = torch.cat([_left_pad(old.values, width, -2), _left_pad(new.values, width, -2)])
        self.mask = torch.cat([_left_pad(self.mask, width, -1), _left_pad(mask, width, -1)])
        self.positions = torch.cat([self.positions, positions])
        self.last = torch.cat([self.last, last])
        self.rows = self.rows + rows

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows (the others' cache rows are dropped, not computed further)."""
        import torch

        if len(indices) == len(self.rows):
            return
        if not indices:
            self.clear()
            return
        index = torch.tensor(indices, device=self.mask.device)
        self.rows = [self.rows[i] for i in indices]
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.positions = self.positions.index_select(0, index)
        self.last = self.last.index_select(0, index)
        if self.trim:  # columns only departed rows used: attention need not go over them any more
            first = int(self.mask.any(dim=0).to(torch.int8).argmax())
            if first > 0:
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
                self.mask = self.mask[:, first:]


class Engine:
    def __init__(self, model: Any, tokenizer: Any, *, device: str = "cpu", max_batch_size: int = 16,
                 model_name: str = "model", context_length: int | None = None, continuous: bool | None = None):
        """Serve a loaded causal LM (already on `device`, in eval mode). `context_length` caps
        the model's own window; `continuous=False` forces wave batching (see below)."""
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.model_name = model_name
        self.max_batch_size = max_batch_size
        own = model_context_length(model.config, tokenizer)
        self.context_length = min(own, context_length) if context_length else own
        self.stop_ids = end_token_ids(model, tokenizer)
        self.window_decode = decodes_locally(tokenizer)
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        accepted = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in accepted else "past_key_values"
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if a in accepted), None)
        # Joining a running batch needs plain per-layer key/value tensors (not sliding-window
        # or quantized layers); other caches start a new batch when the running one drains.
        self.continuous = self._plain_cache() if continuous is None else continuous and self._plain_cache()
        self._wake = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._batch = _Batch(trim=self.continuous)
        self._active = 0
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name=f"engine-{model_name}", daemon=True)
        self._worker.start()

    @classmethod
    def load(cls, model_dir: str, adapter_dir: str | None = None, *, device: str = "auto",
             max_batch_size: int = 16, model_name: str | None = None) -> Engine:
        """Load a model directory (Hugging Face layout), merging a peft LoRA adapter into its
        weights so serving pays nothing for it. bf16 on CUDA, fp32 on the CPU."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # The adapter is merged in fp32 before any cast to bf16, which would round the sum.
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = model.to(device=device, dtype=dtype).eval()
        name = model_name or Path(adapter_dir or model_dir).name
        return cls(model, tokenizer, device=device, max_batch_size=max_batch_size, model_name=name)

    # -- requests ------------------------------------------------------------------------------

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The prompt's ids: the chat template with the assistant's turn opened."""
        check_messages(messages)
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False)
        except Exception as exc:  # jinja errors, templates that raise, a tokenizer without one
            raise EngineError(f"the chat template cannot render these messages: {exc}") from None
        if hasattr(ids, "keys"):  # a BatchEncoding despite return_dict=False (older versions)
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def submit(self, messages: list[dict], params: SamplingParams,
               on_event: Callable[[Event], None]) -> RequestHandle:
        """Validate (raising EngineError) and queue a request. `on_event` is called from the
        worker thread and must not block; an engine that is closed fails the request at once."""
        import torch

        from foundryctl.serving.sampling import RowSampling

        params = check_params(params)
        vocabulary = self.vocabulary_size
        unknown = [token for token in params.logit_bias if token >= vocabulary]
        if unknown:
            raise EngineError(f"logit_bias: token {unknown[0]} is not in the vocabulary (ids 0 to {vocabulary - 1})",
                              param="logit_bias")
        prompt = self.prompt_tokens(messages)
        if len(prompt) > self.context_length - 1:
            raise EngineError(f"prompt is {len(prompt)} tokens; the model's context is {self.context_length}")
        room = self.context_length - len(prompt)
        generator = None
        if params.temperature > 0:
            generator = torch.Generator(device=self.device)
            if params.seed is None:
                generator.seed()
            else:
                generator.manual_seed(params.seed)
        handle = RequestHandle(self._wake)
        request = _Request(prompt, min(params.max_tokens or room, room), on_event, handle,
                           RowSampling(params.temperature, params.top_p, generator, dict(params.logit_bias),
                                       params.presence_penalty, params.frequency_penalty, params.logprobs),
                           Detokenizer(self.tokenizer, self.window_decode), StopMatcher(params.stop))
        with self._wake:
            stopped = self._stopping
            if not stopped:
                self._queue.append(request)
                self._wake.notify()
        if stopped:
            self._fail(request, "engine stopped")
        return handle

    def generate(self, messages: list[dict], params: SamplingParams) -> Completion:
        """Run one request to its end (through the same batch as every other request)."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        handle = self.submit(messages, params, events.put)
        pieces: list[str] = []
        try:
            while True:
                event = events.get()
                if isinstance(event, Delta):
                    pieces.append(event.text)
                elif isinstance(event, Finished):
                    return Completion("".join(pieces), event.finish_reason, event.prompt_tokens,
                                      event.completion_tokens, list(handle.token_ids))
                else:
                    raise GenerationFailed(event.error)
        finally:
            handle.cancel()  # a no-op once ended; frees the row if the caller was interrupted

    def stream(self, messages: list[dict], params: SamplingParams) -> Iterator[str]:
        """The completion's text pieces as they come (validation errors raise here, at once);
        closing the iterator early cancels the request."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        handle = self.submit(messages, params, events.put)

        def pieces() -> Iterator[str]:
            try:
                while True:
                    event = events.get()
                    if isinstance(event, Delta):
                        yield event.text
                    elif isinstance(event, Finished):
                        return
                    else:
                        raise GenerationFailed(event.error)
            finally:
                handle.cancel()

        return pieces()

    @property
    def vocabulary_size(self) -> int:
        """The number of logits per step (token ids run from 0 to this, less one)."""
        embeddings = self.model.get_output_embeddings()
        weight = getattr(embeddings, "weight", None)
        return int(weight.shape[0]) if weight is not None else int(self.model.config.vocab_size)

    def stats(self) -> dict:
        with self._wake:
            return {"active": self._active, "queued": len(self._queue), "max_batch_size": self.max_batch_size}

    def close(self) -> None:
        """Stop the worker after its current step; unfinished requests get Failed("engine stopped")."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (self._stopping or self._queue or self._batch.rows):
                        self._wake.wait()
                    if self._stopping:
                        break
                    dropped = [r for r in self._queue if r.handle.canceled]
                    for request in dropped:
                        self._queue.remove(request)
                    admitted: list[_Request] = []
                    if self.continuous or not self._batch.rows:
                        while self._queue and len(self._batch.rows) + len(admitted) < self.max_batch_size:
                            admitted.append(self._queue.popleft())
                            admitted[-1].handle.admitted_at = time.perf_counter()
                    self._active = len(self._batch.rows) + len(admitted)
                try:
                    for request in dropped:
                        self._fail(request, "canceled")
                    self._prune()
                    if admitted:
                        self._admit(admitted)
                        self._prune()
                    if self._batch.rows:
                        self._step()
                        self._prune()
                except Exception as exc:  # a bug, not a bad request: fail what is in flight, go on
                    log.exception("engine step failed")
                    self._fail_batch(f"generation failed: {exc}")
                    for request in admitted:
                        self._fail(request, f"generation failed: {exc}")
                self._active = len(self._batch.rows)
        with self._wake:
            left = list(self._queue) + self._batch.rows
            self._queue.clear()
            self._batch.clear()
            self._active = 0
        for request in left:
            self._fail(request, "engine stopped")

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers: layers are made on first use
            return DynamicCache()

    def _plain_cache(self) -> bool:
        try:
            from transformers.cache_utils import DynamicLayer
        except ImportError:
            return False
        layers = getattr(self._new_cache(), "layers", None)
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """Logits at the last position of each row (the head runs nowhere else)."""
        extra = {self._keep_arg: 1} if self._keep_arg else {}
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         **{self._cache_arg: cache}, **extra)
        return out.logits[:, -1, :]

    def _admit(self, requests: list[_Request]) -> None:
        import torch

        from foundryctl.serving.sampling import pick

        for group in prefill_groups([len(r.prompt) for r in requests]):
            rows = [requests[i] for i in group]
            try:
                cache, mask, logits = self._prefill(rows)
                tokens, logprobs = pick(logits, [r.sampling for r in rows])
            except Exception as exc:
                log.exception("prefill failed")
                for row in rows:
                    self._fail(row, f"prefill failed: {exc}")
                continue
            self._advance(rows, tokens, logprobs)
            keep = [i for i, row in enumerate(rows) if not row.done]
            if not keep:
                continue
            index = torch.tensor(keep, device=self.device)
            if len(keep) < len(rows):
                cache.batch_select_indices(index)
            positions = torch.tensor([len(rows[i].prompt) for i in keep], device=self.device)
            last = torch.tensor([tokens[i] for i in keep], device=self.device)
            try:
                self._batch.extend([rows[i] for i in keep], cache, mask.index_select(0, index), positions, last)
            except Exception as exc:  # the running batch may be half-merged: nothing in it can go on
                log.exception("merging into the batch failed")
                self._fail_batch(f"generation failed: {exc}")
                for i in keep:
                    self._fail(rows[i], f"generation failed: {exc}")

    def _prefill(self, rows: list[_Request]) -> tuple[Any, Any, Any]:
        """Run the prompts, left-padded, in chunks of at most PREFILL_TOKENS; returns their
        cache, attention mask and last logits."""
        import torch

        width = max(len(r.prompt) for r in rows)
        ids = torch.tensor([[self.pad_id] * (width - len(r.prompt)) + r.prompt for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = self._new_cache()
        chunk = max(64, PREFILL_TOKENS // len(rows))
        for start in range(0, width, chunk):
            end = min(start + chunk, width)
            logits = self._forward(ids[:, start:end], mask[:, :end], positions[:, start:end], cache)
        return cache, mask, logits

    def _step(self) -> None:
        """One decoding step of the whole batch."""
        import torch

        from foundryctl.serving.sampling import pick

        batch = self._batch
        try:
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
            logits = self._forward(batch.last[:, None], batch.mask, batch.positions[:, None], batch.cache)
            batch.positions = batch.positions + 1
            tokens, logprobs = pick(logits, [r.sampling for r in batch.rows])
        except Exception as exc:  # the cache may be half-updated: every row in it fails
            log.exception("decoding step failed")
            self._fail_batch(f"generation failed: {exc}")
            return
        batch.last = torch.tensor(tokens, device=self.device)
        self._advance(batch.rows, tokens, logprobs)

    def _prune(self) -> None:
        """Drop finished and canceled rows from the batch, then tell the canceled ones."""
        rows = self._batch.rows
        canceled = [r for r in rows if r.handle.canceled and not r.done]
        if canceled or any(r.done for r in rows):
            self._batch.keep([i for i, r in enumerate(rows) if not r.done and not r.handle.canceled])
            self._active = len(self._batch.rows)
        for request in canceled:
            self._fail(request, "canceled")

    def _fail_batch(self, error: str) -> None:
        rows = self._batch.rows
        self._batch.clear()
        for request in rows:
            self._fail(request, error)

    # -- per-request bookkeeping -----------------------------------------------------------------

    def _advance(self, rows: list[_Request], tokens: list[int], logprobs: list[Any]) -> None:
        for row, token, logprob in zip(rows, tokens, logprobs):
            if logprob is not None:
                row.handle.logprobs.append(logprob)
            try:
                self._take(row, token)
            except Exception as exc:  # only this request is affected
                log.exception("a request failed after a step")
                self._fail(row, f"generation failed: {exc}")

    def _take(self, row: _Request, token: int) -> None:
        """Record a row's next token: send its text, end the request when it is due."""
        row.handle.token_ids.append(token)
        if token in self.stop_ids:
            self._finish(row, "stop")
            return
        text, stopped = row.matcher.feed(row.decoder.push(token))
        if text:
            self._emit(row, Delta(text, len(row.handle.token_ids)))
        if stopped:
            self._finish(row, "stop", cut=True)
        elif len(row.handle.token_ids) >= row.max_new:
            self._finish(row, "length")

    def _finish(self, row: _Request, reason: str, cut: bool = False) -> None:
        if not cut:  # text held back for an incomplete character or a possible stop string
            text, stopped = row.matcher.feed(row.decoder.flush())
            if stopped:
                reason = "stop"
            else:
                text += row.matcher.flush()
            if text:
                self._emit(row, Delta(text, len(row.handle.token_ids)))
        row.done = True
        self._emit(row, Finished(reason, len(row.prompt), len(row.handle.token_ids)))

    def _fail(self, row: _Request, error: str) -> None:
        if not row.done:
            row.done = True
            self._emit(row, Failed(error))

    def _emit(self, row: _Request, event: Event) -> None:
        try:
            row.on_event(event)
        except Exception:  # a broken consumer: stop generating for it, keep the worker going
            log.exception("on_event raised; the request is canceled")
            row.handle.canceled = True


def model_context_length(config: Any, tokenizer: Any) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10**7:
        return value
    raise ValueError("the model's config does not say its context length (max_position_embeddings)")


def end_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Ids that end a completion: the tokenizer's and generation config's end-of-sequence
    tokens, and the special token the chat template closes an assistant turn with."""
    ids: set[int] = set()
    candidates = [tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)]
    for value in candidates:
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    marker = "Marker7q"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}],
                                             tokenize=False)
        tail = tokenizer.encode(text[text.rindex(marker) + len(marker):], add_special_tokens=False)
    except Exception:  # no template, or one that wants other roles: the eos tokens must do
        tail = []
    special = set(tokenizer.all_special_ids) | {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
                                                if getattr(t, "special", False)}
    ids.update(next(([i] for i in tail[:3] if i in special), []))
    return frozenset(ids)
