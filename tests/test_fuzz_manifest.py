"""Property-based fuzzing of the manifest loader: whatever the bytes of a manifest, loading
ends in a Manifest or a ManifestError whose every error names file and line, within a
bounded time and memory.

The cases mix plausible manifests (every kind, wrong types, references, interpolation)
with hostile YAML: deep nesting, alias bombs, integers of thousands of digits, runs of
`${`, NUL escapes, control characters and invalid UTF-8. Derandomized and bounded, so CI
runs the same few hundred cases in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from conftest import runaway_guard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundryctl.errors import ManifestError
from foundryctl.manifest import load_manifest
from foundryctl.policy import offline_diagnostics

CASES = 300
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS_PER_CASE = 2.0  # CPU time: other work on a shared CI machine does not count
BYTES_PER_CASE = 64 * 1024 * 1024  # peak Python allocations while one case loads

KINDS = ["ProviderRegistration", "Hub", "Project", "RoleAssignment", "Dataset", "FineTuneJob",
         "Deployment", "NoSuchKind"]
FIELDS = ["name", "location", "hub", "project", "path", "tags", "description", "namespace",
          "principal", "principal_type", "role", "scope", "base_model", "training_data",
          "validation_data", "hyperparameters", "epochs", "model", "serving", "content_filter",
          "validation", "split", "seed", "depends_on", "protect", "allow_outside_root", "type",
          "default", "display_name", "output_model", "runner", "descriptin"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    TEXT, st.sampled_from(["${var.x}", "${env.HOME}", "${env.NOPE:-d}", "$${x}", "${", "${}", "${var.",
                           "eastus2", "hub-one", "proj-one", "data.jsonl", "../secret.env", "/etc/passwd",
                           "SmolLM2-135M-Instruct", "1e999", "0x" + "f" * 300, "9" * 5000]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | TEXT, inner, max_size=4), max_leaves=20)
RESOURCE = st.fixed_dictionaries(
    {"kind": st.sampled_from(KINDS), "name": st.sampled_from(["hub-one", "proj-one", "data-one", "x", ""]) | TEXT},
    optional={f: VALUES for f in FIELDS[1:12]})
DOCUMENT = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2, "1", None])},
    optional={"variables": st.dictionaries(st.sampled_from(["x", "epochs", "bad name", "env"]), VALUES, max_size=3),
              "backend": st.fixed_dictionaries({"type": st.sampled_from(["local", "azure", "nope"])},
                                               optional={"path": VALUES}),
              "state": st.fixed_dictionaries({"type": st.sampled_from(["sqlite", "azure_blob"])},
                                             optional={"path": VALUES}),
              "resources": st.lists(RESOURCE | VALUES, max_size=5),
              "policies": VALUES, "prices": VALUES, "extra": VALUES})


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """A manifest-shaped document dumped as YAML."""
    return yaml.safe_dump(draw(DOCUMENT), allow_unicode=draw(st.booleans()), sort_keys=False).encode("utf-8")


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    """Nesting from shallow to far past any limit, as flow or block YAML, under any key."""
    depth = draw(st.sampled_from([10, 63, 64, 65, 100, 500, 3000]))
    key = draw(st.sampled_from(["variables:\n  x", "resources", "extra", "state:\n  path"]))
    if draw(st.booleans()):
        nested = "[" * depth + "]" * depth
    else:
        nested = "{a: " * depth + "1" + "}" * depth
    return f"version: 1\n{key}: {nested}\n".encode()


@st.composite
def alias_bomb(draw: st.DrawFn) -> bytes:
    """Each level lists the previous one `width` times: width**levels values from a few bytes."""
    levels, width = draw(st.integers(1, 10)), draw(st.integers(2, 10))
    place = draw(st.sampled_from(["resources", "variables", "tags", "merge"]))
    lines = [f"  - &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    anchors = "bombs:\n" + "\n".join(lines)
    top = f"*a{levels}"
    if place == "resources":
        body = f"resources: {top}\n"
    elif place == "variables":
        body = f"variables:\n  x: {{default: {top}}}\nresources:\n  - {{kind: Hub, name: hub-one, tags: ${{var.x}}}}\n"
    elif place == "tags":
        body = f"resources:\n  - {{kind: Hub, name: hub-one, location: eastus2, tags: {{a: {top}}}}}\n"
    else:
        body = f"resources:\n  - &r {{kind: Hub, name: hub-one, location: eastus2}}\n  - {{<<: [*r, *r], x: {top}}}\n"
    # The anchors live under an unknown top-level key: reported, but read first.
    return f"version: 1\n{anchors}\n{body}".encode()


@st.composite
def hostile_scalars(draw: st.DrawFn) -> bytes:
    """One hostile value where a real one goes: a huge integer, `${` runs, NUL, control bytes."""
    value = draw(st.sampled_from([
        "9" * draw(st.integers(90, 6000)), "-" + "1" * 5000, "0x" + "f" * 4000, "0b" + "1" * 20000,
        "1:" * 3000 + "1", "1_" * 3000 + "1", "'" + "${" * draw(st.integers(1, 100_000)) + "'",
        "'" + "${var.x}" * 20_000 + "'", '"a\\0b"', '"\\0"', "!!float abc", "!!int xyz", "!!bool maybe",
        "!!binary '@@@'", "!!timestamp nope", "!!python/object:os.system x", "&a [*a]", "*missing",
        '"\\ud800"', "1e999999", ".nan", "~", "!!str", "'" + "x" * 200_000 + "'"]))
    where = draw(st.sampled_from([
        "state:\n  path: {v}", "backend:\n  type: local\n  path: {v}", "variables:\n  epochs: {v}",
        "resources:\n  - kind: Dataset\n    name: d\n    project: p\n    path: {v}",
        "resources:\n  - kind: Hub\n    name: {v}\n    location: eastus2",
        "resources:\n  - kind: FineTuneJob\n    name: j\n    project: p\n    base_model: m\n"
        "    training_data: d\n    hyperparameters: {{epochs: {v}}}",
        "{v}: 1"]))
    return ("version: 1\n" + where.format(v=value) + "\n").encode()


@st.composite
def raw_bytes(draw: st.DrawFn) -> bytes:
    """Bytes around a valid manifest: invalid UTF-8, control characters, BOMs, tabs, truncation."""
    base = bytearray(b"version: 1\nresources:\n  - kind: Hub\n    name: hub-one\n    location: eastus2\n")
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(base)))
        base[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\x07", b"\x1b[31m", b"\t", b"\r",
                                            b"\xef\xbb\xbf", b"\xed\xa0\x80", b": ", b"- ", b"[", b"{", b"&",
                                            b"*", b"!", b"%YAML 1.1\n", b"---\n", b"...\n", b"\n"]))
    cut = draw(st.integers(0, len(base)))
    return bytes(base[:cut] if draw(st.booleans()) else base) + draw(st.binary(max_size=40))


MANIFESTS = st.one_of(structured(), deep(), alias_bomb(), hostile_scalars(), raw_bytes())


def measured(call: Callable[[], Any]) -> tuple[float, int, Any]:
    """(CPU seconds, peak bytes allocated, result) of `call`: timed on its own, then run again
    under tracemalloc (which slows it several times) for the memory."""
    with runaway_guard(10 * SECONDS_PER_CASE):
        started = time.process_time()
        result = call()
        elapsed = time.process_time() - started
        tracemalloc.start()
        try:
            call()
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return elapsed, peak, result


def load_bounded(directory: Path, text: bytes, variables: dict[str, str] | None = None) -> Any:
    """Load `text` as main.yaml (beside a small data file); the Manifest or the ManifestError,
    checking the time and memory bounds. Any other exception fails the test."""
    (directory / "main.yaml").write_bytes(text)
    (directory / "data.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    def load() -> Any:
        try:
            manifest = load_manifest(directory / "main.yaml", variables=variables or {}, env={"HOME": "/home/x"})
            offline_diagnostics(manifest, ())
            return manifest
        except ManifestError as exc:
            return exc

    elapsed, peak, outcome = measured(load)
    assert elapsed < SECONDS_PER_CASE, f"{elapsed:.1f} s for {text[:200]!r}"
    assert peak < BYTES_PER_CASE, f"{peak / 2**20:.0f} MiB for {text[:200]!r}"
    return outcome


def assert_located(outcome: Any) -> None:
    if isinstance(outcome, ManifestError):
        errors = [d for d in outcome.diagnostics if d.is_error]
        assert errors, "a ManifestError without an error"
        for d in errors:
            assert d.position is not None and d.position.file and d.position.line >= 1, f"unlocated: {d}"
            str(d)  # every message can be formatted
            json.dumps(d.to_dict())


@FUZZ
@given(text=MANIFESTS)
def test_any_manifest_loads_or_fails_located(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        assert_located(load_bounded(Path(scratch), text))


VARIABLES = """\
version: 1
variables:
  epochs: 3
  rate: {type: number}
  flag: {type: boolean, default: true}
  tags: {type: map, default: {}}
  names: {type: list, default: []}
  text: {type: string, default: ""}
"""


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(["epochs", "rate", "flag", "tags", "names", "text"]),
       value=st.text(max_size=30) | st.sampled_from(["abc", "inf", "nan", "1e3", "9" * 5000, "[" * 200,
                                                     "{a: *b}", "&a [*a]", "1_000", "-0", "yes"]))
def test_any_var_value_is_accepted_or_refused_by_name(name: str, value: str) -> None:
    """--var NAME=VALUE of any text: the value is coerced, or an error names the variable."""
    with tempfile.TemporaryDirectory() as scratch:
        outcome = load_bounded(Path(scratch), VARIABLES.encode(), {name: value, "rate": "0.5"}
                               if name != "rate" else {name: value})
        assert_located(outcome)
        if isinstance(outcome, ManifestError):
            assert any(f"--var {name}=" in d.message and repr(name) in d.message for d in outcome.diagnostics)


def run_validate_json(directory: Path, text: bytes) -> dict:
    (directory / "main.yaml").write_bytes(text)
    result = subprocess.run([sys.executable, "-m", "foundryctl", "validate", "-f", "main.yaml", "--format", "json"],
                            cwd=directory, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert "This is a bug" not in result.stderr, result.stderr
    report = json.loads(result.stdout)  # valid JSON, whatever the manifest
    assert result.returncode == (0 if report["valid"] else 1)
    return report


def test_validate_json_stays_json_for_hostile_manifests(tmp_path: Path) -> None:
    """The CLI path: a huge integer, deep nesting and an alias bomb each print a JSON report
    with a located error."""
    cases = {
        "int": b"version: 1\nvariables:\n  x: " + b"9" * 5000 + b"\n",
        "deep": b"version: 1\nvariables:\n  x: " + b"[" * 500 + b"]" * 500 + b"\n",
        "bomb": b"version: 1\nb:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                + b"".join(f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 9)),
    }
    for name, text in cases.items():
        report = run_validate_json(tmp_path, text)
        assert not report["valid"], name
        assert all(d.get("file") == "main.yaml" and d.get("line", 0) >= 1 for d in report["diagnostics"]), report
