"""Token counting for dataset statistics: the base model's real tokenizer, or an
approximation that says it is one.

Counting is the slow part of a dataset report, so the exact counter does not encode
message by message. For byte-level BPE tokenizers (GPT-2's pre-tokenizer regex, no
normalizer: SmolLM2, GPT-2, StarCoder...) a text's token count is the sum of the counts of
its pre-tokenization pieces, because BPE never merges across pieces. Text is split with the
same regex in Python (the `re` module for ASCII, the `regex` package otherwise) and each
distinct piece is tokenized once by the tokenizer's own BPE model and remembered; text with
special tokens and other tokenizer families go to the Rust tokenizer in batches. Either way
the count is the tokenizer's own; tests compare the paths with plain encoding.

Memory does not grow with a text's length: a text longer than COUNT_PIECE_CHARS is counted
in pieces cut where no pre-tokenizer piece spans the cut (after a newline or before a space
between non-space characters), and the pieces' counts add up. Encoding 40 MB in one call
would hold gigabytes of offsets and alignments.
"""

from __future__ import annotations

import functools
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundryctl.models import BaseModelRef

# Approximate counting follows the OpenAI cookbook: 3 tokens of framing per message and 3
# to prime the reply, and about four characters of English per token.
APPROX_TOKENS_PER_MESSAGE = 3
APPROX_TOKENS_PER_CONVERSATION = 3

# GPT-2's pre-tokenizer regex restricted to ASCII, where \p{L} is [A-Za-z], \p{N} is [0-9]
# and \s is Oniguruma's ASCII whitespace (which, unlike Python's, excludes \x1c-\x1f).
_WS = r"\t\n\x0b\x0c\r "
_GPT2_ASCII = re.compile(
    rf"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^{_WS}A-Za-z0-9]+|[{_WS}]+(?![^{_WS}])|[{_WS}]+")
_PIECE_CACHE_LIMIT = 500_000  # distinct pre-tokenizer pieces remembered (about 60 MB at most)
COUNT_PIECE_CHARS = 64 * 1024
_BATCH_CHARS = 8 * COUNT_PIECE_CHARS  # characters per call of the Rust tokenizer


def count_pieces(text: str, size: int = COUNT_PIECE_CHARS) -> list[str]:
    """`text` in consecutive pieces of at most about `size` characters, each cut after a
    newline or before a space that has non-space characters on both sides (where byte-level
    BPE pre-tokenizers, GPT-2's, Llama 3's and Qwen's regexes, end a piece either way). A
    stretch of `size` characters with no such place (a base64 blob) is cut at `size`."""
    pieces: list[str] = []
    start, n = 0, len(text)
    while n - start > size:
        low, high = start + size // 2, start + size
        cut = _cut_after_newline(text, low, high) or _cut_before_space(text, low, high) or high
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _cut_after_newline(text: str, low: int, high: int) -> int | None:
    at = text.rfind("\n", low, high)
    while at > low:
        if not text[at - 1].isspace() and not text[at + 1].isspace():
            return at + 1
        at = text.rfind("\n", low, at)
    return None


def _cut_before_space(text: str, low: int, high: int) -> int | None:
    at = text.rfind(" ", low, high)
    while at > low:
        if not text[at - 1].isspace() and not text[at + 1].isspace():
            return at
        at = text.rfind(" ", low, at)
    return None


def _byte_level_map() -> list[str]:
    """GPT-2's bytes_to_unicode: the character each byte becomes before BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping, extra = [], 0
    for byte in range(256):
        if byte in printable:
            mapping.append(chr(byte))
        else:
            mapping.append(chr(256 + extra))
            extra += 1
    return mapping


_BYTE_LEVEL = _byte_level_map()
_BYTE_LEVEL_ASCII = str.maketrans({b: _BYTE_LEVEL[b] for b in range(128)})
# The same regex for any text needs \p{L} and \p{N}, which only the `regex` package has (a
# dependency of transformers); without it non-ASCII text goes to the Rust tokenizer.
_GPT2_UNICODE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def _unicode_pattern() -> Any:
    try:
        import regex
    except ImportError:
        return None
    return regex.compile(_GPT2_UNICODE)


class TokenCounter(ABC):
    exact: bool
    description: str

    @abstractmethod
    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text on its own (no special tokens added)."""

    @abstractmethod
    def overhead(self, roles: tuple[str, ...]) -> int:
        """Tokens the chat template adds around a conversation with these roles."""

    def template_error(self, roles: tuple[str, ...]) -> str | None:
        """Why the chat template refuses a conversation of this shape, if it does."""
        return None

    def conversation(self, roles: tuple[str, ...], contents: Sequence[str], counts: Sequence[int]) -> int:
        """Tokens of a whole conversation, given its contents' counts."""
        return sum(counts) + self.overhead(roles)


class ApproximateCounter(TokenCounter):
    exact = False

    def __init__(self, reason: str = "no tokenizer was requested"):
        self.description = f"approximate (~4 characters per token; {reason})"

    def count(self, texts: Sequence[str]) -> list[int]:
        return [math.ceil(len(t) / 4) if t.isascii() else math.ceil(len(t.encode("utf-8")) / 2)
                for t in texts]

    def overhead(self, roles: tuple[str, ...]) -> int:
        return APPROX_TOKENS_PER_MESSAGE * len(roles) + APPROX_TOKENS_PER_CONVERSATION


class TokenizerCounter(TokenCounter):
    """Counts with a Hugging Face `tokenizers` tokenizer and the model's chat template."""

    exact = True

    def __init__(self, tokenizer: Any, name: str, chat_template: str | None = None,
                 special_tokens: dict[str, str] | None = None):
        self.tokenizer = tokenizer
        self.description = f"exact ({name} tokenizer)"
        self._template = _compile_template(chat_template) if chat_template else None
        self._special_tokens = special_tokens or {}
        self._shapes: dict[tuple[str, ...], tuple[int, str | None]] = {}
        added = [t.content for t in tokenizer.get_added_tokens_decoder().values()]
        self._added = re.compile("|".join(map(re.escape, added))) if added else None
        self._pieces: dict[str, int] = {}
        self._fast = _is_gpt2_byte_level(tokenizer)
        self._unicode = _unicode_pattern() if self._fast else None

    @classmethod
    def from_directory(cls, directory: Path, name: str) -> TokenizerCounter:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        template, special = _read_template(directory)
        return cls(tokenizer, name, template, special)

    def count(self, texts: Sequence[str]) -> list[int]:
        if any(len(t) > COUNT_PIECE_CHARS for t in texts):
            return [sum(self._count(count_pieces(t))) if len(t) > COUNT_PIECE_CHARS else n
                    for t, n in zip(texts, self._count([t if len(t) <= COUNT_PIECE_CHARS else "" for t in texts]))]
        return self._count(texts)

    def _encoded_length(self, text: str) -> int:
        """Tokens of `text` encoded whole (special tokens in it included), piece by piece."""
        pieces, total, step = count_pieces(text), 0, _BATCH_CHARS // COUNT_PIECE_CHARS
        for at in range(0, len(pieces), step):  # a few at a time: encodings are large
            batch = self.tokenizer.encode_batch(pieces[at:at + step], add_special_tokens=False)
            total += sum(len(e.ids) for e in batch)
        return total

    def _count(self, texts: Sequence[str]) -> list[int]:
        counts: list[int] = [0] * len(texts)
        slow: list[int] = []
        for i, text in enumerate(texts):
            if not self._fast or (self._added and self._added.search(text)):
                slow.append(i)
            elif text.isascii():
                counts[i] = self._count_ascii(text)
            elif self._unicode is not None:
                counts[i] = self._count_unicode(text)
            else:
                slow.append(i)
        batch: list[int] = []
        size = 0
        for position, i in enumerate(slow):  # in batches of bounded size: encodings are large
            batch.append(i)
            size += len(texts[i])
            if size >= _BATCH_CHARS or position == len(slow) - 1:
                encoded = self.tokenizer.encode_batch([texts[j] for j in batch], add_special_tokens=False)
                for j, encoding in zip(batch, encoded):
                    counts[j] = len(encoding.ids)
                batch, size = [], 0
        return counts

    def _count_ascii(self, text: str) -> int:
        pieces = _GPT2_ASCII.findall(text)
        known = list(map(self._pieces.get, pieces))
        if None not in known:
            return sum(known)  # type: ignore[arg-type]
        if len(self._pieces) > _PIECE_CACHE_LIMIT:
            self._pieces.clear()  # a bound on memory; counts stay exact
        tokenize, cache = self.tokenizer.model.tokenize, self._pieces
        total = 0
        for piece, n in zip(pieces, known):
            if n is None:
                n = cache[piece] = len(tokenize(piece.translate(_BYTE_LEVEL_ASCII)))
            total += n
        return total

    def _count_unicode(self, text: str) -> int:
        pieces = self._unicode.findall(text)
        known = list(map(self._pieces.get, pieces))
        if None not in known:
            return sum(known)  # type: ignore[arg-type]
        if len(self._pieces) > _PIECE_CACHE_LIMIT:
            self._pieces.clear()
        tokenize, cache, table = self.tokenizer.model.tokenize, self._pieces, _BYTE_LEVEL
        total = 0
        for piece, n in zip(pieces, known):
            if n is None:
                n = cache[piece] = len(tokenize("".join(table[b] for b in piece.encode("utf-8"))))
            total += n
        return total

    def overhead(self, roles: tuple[str, ...]) -> int:
        return self._shape(roles)[0]

    def template_error(self, roles: tuple[str, ...]) -> str | None:
        return self._shape(roles)[1]

    def conversation(self, roles: tuple[str, ...], contents: Sequence[str], counts: Sequence[int]) -> int:
        # Content that starts or ends with whitespace can merge with the template's text
        # around it into one pre-tokenizer piece; such (rare) conversations are rendered
        # and encoded whole so the count stays exact.
        if self._template is not None and self._shape(roles)[1] is None and any(
                c[:1].isspace() or c[-1:].isspace() for c in contents):
            messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
            rendered = self._template.render(messages=messages, add_generation_prompt=False,
                                             **self._special_tokens)
            return self._encoded_length(rendered)
        return super().conversation(roles, contents, counts)

    def _shape(self, roles: tuple[str, ...]) -> tuple[int, str | None]:
        """Template tokens for a role sequence: render once with placeholder contents and
        count what is between them (boundaries in these templates are special tokens or
        newlines, so the count adds up)."""
        found = self._shapes.get(roles)
        if found is not None:
            return found
        if self._template is None:
            result: tuple[int, str | None] = (
                APPROX_TOKENS_PER_MESSAGE * len(roles) + APPROX_TOKENS_PER_CONVERSATION, None)
        else:
            messages = [{"role": r, "content": f"\ue000{i}\ue001"} for i, r in enumerate(roles)]
            try:
                rendered = self._template.render(messages=messages, add_generation_prompt=False,
                                                 **self._special_tokens)
            except Exception as exc:  # the template's own raise_exception, or a broken template
                result = (APPROX_TOKENS_PER_MESSAGE * len(roles) + APPROX_TOKENS_PER_CONVERSATION,
                          str(exc) or type(exc).__name__)
            else:
                frame = [p for p in re.split(r"\ue000\d+\ue001", rendered) if p]
                result = (sum(len(e.ids) for e in self.tokenizer.encode_batch(
                    frame, add_special_tokens=False)), None)
        self._shapes[roles] = result
        return result


def _is_gpt2_byte_level(tokenizer: Any) -> bool:
    """True when the fast ASCII path counts exactly what this tokenizer encodes."""
    try:
        config = json.loads(tokenizer.to_str())
    except Exception:
        return False
    pre, model = config.get("pre_tokenizer") or {}, config.get("model") or {}
    return (config.get("normalizer") is None
            and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
            and not pre.get("add_prefix_space", False)
            and model.get("type") == "BPE" and not model.get("dropout")
            and not model.get("continuing_subword_prefix") and not model.get("end_of_word_suffix"))


def _read_template(directory: Path) -> tuple[str | None, dict[str, str]]:
    """The chat template and special tokens saved beside tokenizer.json (either layout)."""
    template: str | None = None
    special: dict[str, str] = {}
    config_file = directory / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        raw = config.get("chat_template")
        if isinstance(raw, list):  # named templates: take the default one
            raw = next((t.get("template") for t in raw if t.get("name") == "default"), None)
        template = raw if isinstance(raw, str) else None
        for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
            value = config.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                special[key] = value
    jinja_file = directory / "chat_template.jinja"
    if template is None and jinja_file.is_file():
        template = jinja_file.read_text(encoding="utf-8")
    return template, special


def _compile_template(source: str) -> Any:
    """Compiled the way transformers compiles chat templates (sandboxed, trimmed blocks)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def load_counter(ref: BaseModelRef | None) -> TokenCounter:
    """The exact counter for `ref` when its tokenizer is on this machine, else approximate
    (one per model per process: validate and plan ask for it several times)."""
    if ref is None:
        return ApproximateCounter()
    return _load_counter(ref)


@functools.lru_cache(maxsize=8)
def _load_counter(ref: BaseModelRef) -> TokenCounter:
    from foundryctl.models.files import find_tokenizer

    try:
        files, reason = find_tokenizer(ref)
    except Exception as exc:  # a broken cache or conversion must not stop validation
        files, reason = None, f"loading the tokenizer of {ref.name} failed: {exc}"
    if files is None:
        return ApproximateCounter(reason)
    try:
        return TokenizerCounter.from_directory(files.directory, ref.name)
    except ImportError:
        return ApproximateCounter("the `tokenizers` package is not installed (foundryctl[local])")
    except Exception as exc:
        return ApproximateCounter(f"the tokenizer in {files.directory} could not be read: {exc}")
