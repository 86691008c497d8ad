"""The streaming validator for chat-completion JSONL (and, with `task="text_classification"`,
labelled `{"text": ..., "label": ...}` JSONL).

One pass over the file in large blocks: the sha256 of the bytes (the dataset's version),
every problem with its line number and category, and per-example statistics. Memory does
not grow with example size: per example it keeps a hash (for duplicates), a split key
(when splitting) and its counts (for exact percentiles), about 100 bytes in all.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

import orjson

from foundryctl.datasets.report import DatasetReport, Distribution, Problem, SplitSummary
from foundryctl.datasets.tokens import ApproximateCounter, TokenCounter
from foundryctl.suggest import closest

MAX_FILE_BYTES = 512 * 1024 * 1024  # Azure OpenAI / AI Foundry fine-tuning upload limit
MIN_TRAINING_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 50
BLOCK_BYTES = 4 * 1024 * 1024
# Longer lines are reported, not held in memory (one example of 64 MiB is far past any context).
MAX_LINE_BYTES = 64 * 1024 * 1024

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = frozenset(("role", "content", "name", "weight"))
_ROLE_SET = frozenset(ROLES)
TEXT_CLASSIFICATION = "text_classification"
LABELLED_KEYS = ("text", "label")
# A label with under this share of the most common label's examples is worth a warning.
IMBALANCE_RATIO = 0.2
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ValidationOptions:
    counter: TokenCounter | None = None  # None: approximate counts
    base_model: str | None = None
    context_length: int | None = None
    epochs: int = 1
    split: tuple[float, int] | None = None  # (validation fraction, seed)
    max_problems: int = 1000
    count_tokens: bool = True  # False: format checks only, no token statistics
    role: str = "training"  # a validation file needs only one example
    task: str = "chat_completion"  # or text_classification
    labels: tuple[str, ...] | None = None  # text_classification: the declared label set


def example_digest(line: bytes) -> bytes:
    """8 bytes identifying an example: its line, without surrounding whitespace."""
    return hashlib.blake2b(line.strip(), digest_size=8).digest()


def split_key(digest: bytes, seed: int) -> int:
    """Where an example falls in the seeded order that decides the split."""
    return int.from_bytes(hashlib.blake2b(digest, digest_size=8,
                                          key=seed.to_bytes(8, "little", signed=True)).digest(), "big")


class _Collector:
    def __init__(self, report: DatasetReport, limit: int):
        self.report, self.limit = report, limit
        self.counts = report.counts
        self.problems = report.problems

    def add(self, line: int, category: str, message: str) -> None:
        self.counts[category] = self.counts.get(category, 0) + 1
        if len(self.problems) < self.limit:
            self.problems.append(Problem(line, category, message))


def validate_dataset(path: str | os.PathLike, options: ValidationOptions = ValidationOptions()) -> DatasetReport:
    """Validate one JSONL file. Never raises for bad content; I/O errors raise OSError."""
    path = Path(path)
    report = DatasetReport(path=str(path), role=options.role, epochs=options.epochs,
                           base_model=options.base_model, context_length=options.context_length,
                           task=options.task)
    counter = options.counter or ApproximateCounter()
    report.token_counting, report.tokens_exact = counter.description, counter.exact
    if not options.count_tokens:
        report.token_counting, report.tokens_exact = "skipped", False
    problems = _Collector(report, options.max_problems)
    scan = _Scan(problems, counter, options)

    sha = hashlib.sha256()
    carry = b""
    line_no = 0
    skipping = False  # inside a line too long to hold; it is reported, then passed over
    with open(path, "rb") as stream:
        while True:
            block = stream.read(BLOCK_BYTES)
            if not block:
                break
            sha.update(block)
            report.size += len(block)
            lines = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = lines.pop()
            if skipping:
                if not lines:
                    carry = b""
                    continue
                del lines[0]  # the end of the long line
                line_no += 1
                skipping = False
            scan.lines(lines, line_no + 1)
            line_no += len(lines)
            if len(carry) > MAX_LINE_BYTES:
                problems.add(line_no + 1, "data_type", f"the line is longer than "
                             f"{MAX_LINE_BYTES // 2**20} MiB; is this a JSONL file?")
                carry, skipping = b"", True
    if skipping:
        line_no += 1
    elif carry:
        scan.lines([carry], line_no + 1, last_without_newline=True)
        line_no += 1
    scan.finish()

    report.sha256 = sha.hexdigest()
    report.lines = line_no
    report.examples = len(scan.message_counts)
    report.duplicates = problems.counts.get("duplicate_example", 0)
    report.messages_per_example = Distribution.of(scan.message_counts)
    report.total_tokens = Distribution.of(scan.tokens)
    report.assistant_tokens = Distribution.of(scan.assistant_tokens)
    report.over_context = problems.counts.get("over_context_length", 0)

    if options.split is not None:
        report.split = _split(scan.keys, *options.split)
    context = options.context_length
    billed = 0
    for i, tokens in enumerate(scan.tokens):  # empty when tokens are not counted
        if report.split is not None and scan.keys[i] <= report.split.threshold:
            continue  # validation examples are not trained on
        billed += min(tokens, context) if context else tokens
    report.billed_tokens_per_epoch = billed
    _file_checks(report, problems)
    if options.task == TEXT_CLASSIFICATION:
        report.label_counts = dict(scan.label_counts)
        _label_checks(report, problems, options.labels)
    return report


def _label_checks(report: DatasetReport, problems: _Collector, declared: tuple[str, ...] | None) -> None:
    """The label set of a classification file: enough labels, none declared but unused, balance."""
    counts = report.label_counts
    if report.role == "validation":
        return  # held-out data may well miss a rare label
    if len(counts) < 2 and report.examples:
        problems.add(0, "too_few_labels", f"{len(counts)} distinct label(s) ({', '.join(sorted(counts))}); "
                     "a classifier needs at least 2")
    for label in declared or ():
        if label not in counts:
            problems.add(0, "label_without_examples", f"the declared label {label!r} has no example")
    if len(counts) >= 2:
        rarest, commonest = min(counts, key=counts.__getitem__), max(counts, key=counts.__getitem__)
        if counts[rarest] < IMBALANCE_RATIO * counts[commonest]:
            problems.add(0, "label_imbalance", f"label {rarest!r} has {counts[rarest]} example(s), "
                         f"{commonest!r} has {counts[commonest]}: the classifier will favour the common "
                         "labels; add examples of the rare ones")


def _split(keys: array, fraction: float, seed: int) -> SplitSummary:
    """floor(fraction x n) examples (at least one) with the smallest seeded keys go to
    validation. Identical examples share a key, so they land on the same side (no
    train/validation leakage); when ties would leave nothing to train on, the tied
    examples stay in training instead."""
    n = len(keys)
    if n < 2:
        return SplitSummary(fraction, seed, n, 0, -1)
    wanted = min(n - 1, max(1, math.floor(fraction * n)))
    ordered = sorted(keys)
    threshold = ordered[wanted - 1]
    if threshold == ordered[-1]:  # every example from here on is one repeated example
        below = [k for k in ordered if k < threshold]
        threshold = below[-1] if below else -1
    validation = bisect.bisect_right(ordered, threshold)
    return SplitSummary(fraction, seed, n - validation, validation, threshold)


def _file_checks(report: DatasetReport, problems: _Collector) -> None:
    if report.size > MAX_FILE_BYTES:
        problems.add(0, "file_too_large", f"the file is {report.size / 2**20:,.1f} MiB; Azure accepts "
                     f"at most {MAX_FILE_BYTES // 2**20} MiB per training file")
    if report.role == "validation":
        if report.examples == 0 and report.error_count == 0:
            problems.add(0, "too_few_examples", "the validation file has no examples")
        return
    training = report.training_examples
    of_what = (f" after holding out {report.split.validation_examples} for validation"
               if report.split and report.split.validation_examples else "")
    valid = " valid" if report.error_count else ""
    if report.split is not None and report.split.validation_examples == 0 and training >= 2:
        problems.add(0, "too_few_examples", "the split holds out no examples: every example is the "
                     "same; add distinct examples or give `validation: {path: ...}`")
    if training < MIN_TRAINING_EXAMPLES:
        problems.add(0, "too_few_examples", f"{training}{valid} training example{'s' if training != 1 else ''}"
                     f"{of_what}; Azure requires at least {MIN_TRAINING_EXAMPLES}")
    elif training < RECOMMENDED_EXAMPLES and not report.error_count:
        problems.add(0, "few_examples", f"{training} training examples{of_what}; at least "
                     f"{RECOMMENDED_EXAMPLES} are recommended (50-100 well-crafted examples usually "
                     "show clear improvement)")


class _Scan:
    """Per-line checks and per-example statistics, fed a block of lines at a time."""

    def __init__(self, problems: _Collector, counter: TokenCounter, options: ValidationOptions):
        self.add = problems.add
        self.counter = counter
        self.context = options.context_length
        self.model = options.base_model or "the base model"
        self.seed = options.split[1] if options.split else None
        self.count_tokens = options.count_tokens
        self.tokens = array("I")
        self.assistant_tokens = array("I")
        self.message_counts = array("I")
        self.keys = array("Q")
        self.seen: dict[int, int] = {}
        self.template_errors: set[tuple[str, ...]] = set()
        self.classification = options.task == TEXT_CLASSIFICATION
        self.declared = frozenset(options.labels) if options.labels else None
        self.label_counts: dict[str, int] = {}
        self.text_labels: dict[int, tuple[int, str]] = {}  # hash of a text: (first line, its label)

    def lines(self, lines: list[bytes], first: int, last_without_newline: bool = False) -> None:
        add = self.add
        pending: list[tuple[int, tuple[str, ...], list[str], list[bool]]] = []
        for offset, raw in enumerate(lines):
            line_no = first + offset
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[3:]
            usable = True
            try:
                example = orjson.loads(raw)
            except orjson.JSONDecodeError:
                example, usable = _parse_slowly(raw, line_no, add, last_without_newline)
                if example is None:
                    continue
            if type(example) is not dict:
                add(line_no, "data_type", f"expected a JSON object, found {_json_type(example)}")
                continue
            if self.classification:
                self._labelled_line(example, raw, line_no, usable)
                continue
            checked = self._example(example, line_no)  # its problems too, even if it is not usable
            if checked is None or not usable:
                continue
            roles, contents, trained = checked
            # Python's 64-bit hash is enough to spot duplicates within one run and far cheaper
            # than a cryptographic digest; the split needs a stable key, so it uses one.
            first_seen = self.seen.setdefault(hash(raw.strip()), line_no)
            if first_seen != line_no:
                add(line_no, "duplicate_example", f"the example repeats line {first_seen} exactly")
            if self.seed is not None:
                self.keys.append(split_key(example_digest(raw), self.seed))
            pending.append((line_no, roles, contents, trained))
        if pending:
            if self.count_tokens:
                self._count(pending)
            else:
                self.message_counts.extend(len(roles) for _, roles, _, _ in pending)

    def _labelled_line(self, example: dict, raw: bytes, line_no: int, usable: bool) -> None:
        """Check one labelled example and count it (text_classification)."""
        add = self.add
        for key in example:
            if key not in LABELLED_KEYS:
                add(line_no, "example_unrecognized_key",
                    f"unrecognized top-level key {_show(key)} (only `text` and `label` are used)")
        text, label = example.get("text"), example.get("label")
        ok = True
        if type(text) is not str or not text.strip():
            add(line_no, "missing_text", "`text` is " + (
                "missing" if "text" not in example else "empty" if text == "" else
                "blank" if type(text) is str else f"{_json_type(text)}, not a string"))
            ok = False
        if type(label) is int:
            label = str(label)
        if type(label) is not str or not label.strip():
            add(line_no, "missing_label", "`label` is " + (
                "missing" if "label" not in example else "empty" if label == "" else
                f"{_json_type(label)}, not a string or integer" if type(label) is not str else "blank"))
            ok = False
        elif self.declared is not None and label not in self.declared:
            hint = closest(label, self.declared, cutoff=0.6)
            add(line_no, "unknown_label", f"label {_show(label)} is not one of the declared labels "
                f"({', '.join(sorted(self.declared))})" + (f"; did you mean {hint!r}?" if hint else ""))
            ok = False
        if not ok or not usable:
            return
        first_seen = self.seen.setdefault(hash(raw.strip()), line_no)
        if first_seen != line_no:
            add(line_no, "duplicate_example", f"the example repeats line {first_seen} exactly")
        else:
            earlier = self.text_labels.setdefault(hash(text.strip()), (line_no, label))
            if earlier[1] != label:
                add(line_no, "conflicting_label", f"the same text is labelled {earlier[1]!r} on line "
                    f"{earlier[0]} and {label!r} here")
        if self.seed is not None:
            self.keys.append(split_key(example_digest(raw), self.seed))
        self.label_counts[label] = self.label_counts.get(label, 0) + 1
        self.message_counts.append(1)
        if self.count_tokens:
            tokens = self.counter.count([text])[0]
            self.tokens.append(tokens)
            if self.context and tokens > self.context:
                approx = "" if self.counter.exact else "about "
                add(line_no, "over_context_length", f"{approx}{tokens:,} tokens, over the "
                    f"{self.context:,}-token context of {self.model}; the text will be truncated")

    def _example(self, example: dict, line_no: int) -> tuple[tuple[str, ...], list[str], list[bool]] | None:
        """Check one example; its (roles, contents, assistant-and-trained flags), or None on errors."""
        if len(example) != 1 or "messages" not in example:
            for key in example:
                if key != "messages":
                    self.add(line_no, "example_unrecognized_key",
                             f"unrecognized top-level key {_show(key)} (only `messages` is used)")
        messages = example.get("messages")
        if type(messages) is not list or not messages:
            what = ("missing" if "messages" not in example else
                    "empty" if messages == [] else f"{_json_type(messages)}, not a list")
            self.add(line_no, "missing_messages_list", f"`messages` is {what}")
            return None
        # The common case (every message well formed) in as few operations as possible;
        # anything unusual goes through the detailed checks that explain it.
        roles: list[str] = []
        contents: list[str] = []
        trained: list[bool] = []
        for message in messages:
            if type(message) is not dict:
                return self._explain(messages, line_no)
            role = message.get("role")
            content = message.get("content")
            if (type(role) is not str or role not in _ROLE_SET or type(content) is not str
                    or not content or content.isspace()):
                return self._explain(messages, line_no)
            if len(message) == 2:
                trained.append(role == "assistant")
            else:
                if not MESSAGE_KEYS.issuperset(message) or not _valid_optional(message, role):
                    return self._explain(messages, line_no)
                trained.append(role == "assistant" and message.get("weight", 1) == 1)
            roles.append(role)
            contents.append(content)
        if "assistant" not in roles:
            self.add(line_no, "example_missing_assistant_message", "no assistant message to learn from")
            return None
        if "system" not in roles:
            self.add(line_no, "example_missing_system_message", "no system message")
        if "user" not in roles:
            self.add(line_no, "example_missing_user_message", "no user message")
        if not any(trained):
            self.add(line_no, "example_all_weights_zero", "every assistant message has weight 0")
        return tuple(roles), contents, trained

    def _explain(self, messages: list, line_no: int) -> None:
        """Report every problem of an example that failed the quick checks."""
        add = self.add
        has_assistant = False
        for i, message in enumerate(messages, 1):
            if type(message) is not dict:
                add(line_no, "data_type", f"message {i} is {_json_type(message)}, not an object")
                continue
            for key in message:
                if key not in MESSAGE_KEYS:
                    hint = closest(str(key), MESSAGE_KEYS, cutoff=0.7)
                    add(line_no, "message_unrecognized_key", f"message {i} has unrecognized key "
                        f"{_show(key)}" + (f"; did you mean {hint!r}?" if hint else
                                      " (allowed: role, content, name, weight)"))
            role = message.get("role")
            content = message.get("content")
            missing = [k for k in ("role", "content") if k not in message]
            if missing:
                add(line_no, "message_missing_key",
                    f"message {i} has no {' and no '.join(repr(k) for k in missing)}")
            if "role" in message and (type(role) is not str or role not in _ROLE_SET):
                hint = closest(role, ROLES, cutoff=0.6) if type(role) is str else None
                add(line_no, "unrecognized_role", f"message {i} has role {_show(role)}" + (
                    f"; did you mean {hint!r}?" if hint else "; expected system, user or assistant"))
            has_assistant = has_assistant or role == "assistant"
            shown_role = f" ({role})" if type(role) is str and role in _ROLE_SET else ""
            if "content" in message and (type(content) is not str or not content or content.isspace()):
                add(line_no, "missing_content", f"message {i}{shown_role} has " + (
                    "empty content" if content == "" else "blank content" if type(content) is str
                    else f"{_json_type(content)} content, not a string"))
            name = message.get("name")
            if "name" in message and (type(name) is not str or not name):
                add(line_no, "data_type", f"message {i} has a `name` that is not a non-empty string")
            if "weight" in message:
                weight = message["weight"]
                if type(weight) is not int or weight not in (0, 1):
                    add(line_no, "invalid_weight", f"message {i} has weight {_show(weight)}; it must be 0 or 1")
                elif role != "assistant":
                    add(line_no, "invalid_weight",
                        f"message {i}{shown_role} has a weight; only assistant messages take one")
        if not has_assistant:
            add(line_no, "example_missing_assistant_message", "no assistant message to learn from")
        return None

    def _count(self, pending: list[tuple[int, tuple[str, ...], list[str], list[bool]]]) -> None:
        counts = self.counter.count([c for _, _, contents, _ in pending for c in contents])
        at = 0
        context, approx = self.context, "" if self.counter.exact else "about "
        for line_no, roles, contents, trained in pending:
            mine = counts[at:at + len(contents)]
            at += len(contents)
            total = self.counter.conversation(roles, contents, mine)
            assistant = sum(n for n, role in zip(mine, roles) if role == "assistant")
            self.tokens.append(total)
            self.assistant_tokens.append(assistant)
            self.message_counts.append(len(roles))
            if context and total > context:
                self.add(line_no, "over_context_length",
                         f"{approx}{total:,} tokens, over the {context:,}-token context of {self.model}; "
                         f"{total - context:,} tokens will be truncated")
            if roles not in self.template_errors:
                error = self.counter.template_error(roles)
                if error:
                    self.template_errors.add(roles)
                    self.add(line_no, "chat_template_error",
                             f"the chat template of {self.model} refuses roles {'/'.join(roles)}: {error}"
                             " (reported once per conversation shape)")

    def finish(self) -> None:
        self.seen.clear()
        self.text_labels.clear()


def _parse_slowly(raw: bytes, line_no: int, add, last_without_newline: bool) -> tuple[object | None, bool]:
    """Explain why a line failed the fast parser: the parsed value (None when the line is not
    JSON) and whether it can be used as an example (False when it holds a defect)."""
    import json

    stripped = raw.strip()
    if not stripped:
        add(line_no, "data_type", "blank line; every line must be one JSON object")
        return None, False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        add(line_no, "data_type", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
            " (save the file as UTF-8)")
        return None, False
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # nesting deeper than orjson's limit and Python's stack
        add(line_no, "data_type", "arrays or objects nested too deeply to check (over 1,000 levels)")
        return None, False
    except ValueError as exc:
        message = getattr(exc, "msg", str(exc))
        column = getattr(exc, "colno", None)
        add(line_no, "data_type", f"not valid JSON: {message}" + (f" at column {column}" if column else "")
            + ("; this last line has no newline: was the file truncated?" if last_without_newline else ""))
        return None, False
    # orjson refused the line for something Python's parser accepts: lone surrogates (text
    # that cannot be encoded, so the tokenizer and upload would fail on it), integers beyond
    # 64 bits, numbers beyond a double. Every one is reported, not only the first orjson met.
    defects = _defects(value)
    for where, defect in defects:
        add(line_no, "data_type", f"{defect} at {where}")
    return value, not defects


_MAX_DEFECTS_PER_LINE = 5


def _defects(value: object) -> list[tuple[str, str]]:
    """(where, what) for lone surrogates in strings and keys and for out-of-range numbers,
    at most a few per line, walked without recursion."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[object, str]] = [(value, "the top level")]
    while stack and len(found) < _MAX_DEFECTS_PER_LINE:
        item, where = stack.pop()
        if type(item) is dict:
            for key, child in reversed(list(item.items())):
                if _has_surrogate(key):
                    found.append((where, f"unpaired UTF-16 surrogate escape in the key {_show(key)}"))
                shown = key if key.isidentifier() else repr(key)  # printable, whatever the key holds
                stack.append((child, f"{where}.{shown}" if where != "the top level" else shown))
        elif type(item) is list:
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
        elif type(item) is str:
            if _has_surrogate(item):
                found.append((_short(where), f"unpaired UTF-16 surrogate escape in the string {_show(item)}"))
        elif type(item) is int and not -2**63 <= item < 2**64:
            found.append((_short(where), f"integer beyond 64 bits ({len(str(abs(item))):,} digits)"))
        elif type(item) is float and not math.isfinite(item):
            found.append((_short(where), "number too large for a double"))
    return found


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _valid_optional(message: dict, role: str) -> bool:
    """`name` and `weight`, when present, are well formed."""
    name = message.get("name", "x")
    weight = message.get("weight")
    return (type(name) is str and bool(name)) and (
        weight is None and "weight" not in message
        or (type(weight) is int and weight in (0, 1) and role == "assistant"))


def _show(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested array or object
        import reprlib

        text = reprlib.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

