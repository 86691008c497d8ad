"""Preference (DPO) JSONL: the format Azure's direct preference optimization trains on.

Learn, "Direct preference optimization (preview)": each line has three top-level fields,
`input` (`messages`, optionally `tools` and `parallel_tool_calls`), `preferred_output` and
`non_preferred_output`; each output holds at least one assistant message and only assistant or
tool messages. Azure fails the job's file validation otherwise, after the upload; this check
says so at the line, before anything is uploaded.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

TOP_LEVEL = ("input", "preferred_output", "non_preferred_output")
INPUT_FIELDS = ("messages", "tools", "parallel_tool_calls")
INPUT_ROLES = ("system", "user", "assistant", "tool", "developer")
OUTPUT_ROLES = ("assistant", "tool")
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class PreferenceProblem:
    line: int  # 1-based; 0 for the file as a whole
    message: str


@dataclass
class PreferenceReport:
    path: str
    sha256: str = ""
    examples: int = 0  # lines without problems
    # ~4 characters a token (the approximate counter's rule): what the cost estimate bills.
    approx_tokens: int = 0
    problems: list[PreferenceProblem] = field(default_factory=list)
    problem_count: int = 0

    def add(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(PreferenceProblem(line, message))


def check_preference_file(path: str | Path) -> PreferenceReport:
    """Read a preference JSONL file; raises OSError when it cannot be read."""
    data = Path(path).read_bytes()
    report = PreferenceReport(str(path), sha256=hashlib.sha256(data).hexdigest())
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        problems = _line_problems(raw)
        for message in problems:
            report.add(number, message)
        if not problems:
            report.examples += 1
            report.approx_tokens += math.ceil(len(raw) / 4)
    if report.examples == 0 and report.problem_count == 0:
        report.add(0, "the file has no examples")
    return report


def _line_problems(raw: bytes) -> list[str]:
    try:
        example = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return [f"not a JSON line: {exc}"]
    if not isinstance(example, dict):
        return ["a preference example is a JSON object with input, preferred_output and non_preferred_output"]
    out = [f"missing {name!r}" for name in TOP_LEVEL if name not in example]
    out += [f"unexpected field {name!r} (a preference example has only {', '.join(TOP_LEVEL)})"
            for name in example if name not in TOP_LEVEL]
    given = example.get("input")
    if "input" in example:
        if not isinstance(given, dict):
            out.append("'input' must be an object with 'messages'")
        else:
            out += [f"unexpected field {name!r} in 'input'" for name in given if name not in INPUT_FIELDS]
            messages = given.get("messages")
            if not isinstance(messages, list) or not messages:
                out.append("'input.messages' must be a non-empty list of messages")
            else:
                out += _message_problems("input.messages", messages, INPUT_ROLES)
    for name in TOP_LEVEL[1:]:
        if name not in example:
            continue
        output = example[name]
        if not isinstance(output, list) or not output:
            out.append(f"{name!r} must be a non-empty list of messages")
            continue
        out += _message_problems(name, output, OUTPUT_ROLES)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in output):
            out.append(f"{name!r} needs at least one assistant message")
    return out


def _message_problems(where: str, messages: list, roles: tuple[str, ...]) -> list[str]:
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            out.append(f"{where}[{i}] is not a message object")
            continue
        role = message.get("role")
        if role not in roles:
            out.append(f"{where}[{i}] has role {role!r}; allowed: {', '.join(roles)}")
        if role != "tool" and not message.get("tool_calls") and not isinstance(message.get("content"), (str, list)):
            out.append(f"{where}[{i}] has no content")
    return out
