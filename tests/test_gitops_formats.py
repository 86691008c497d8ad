"""GitOps surface: `validate --format github|sarif|json`, `foundryctl schema`, the generated
manifest reference, and the integration files (docs/gitops.md, .pre-commit-hooks.yaml).

Manifests are written into a scratch repository and checked by the real CLI in a subprocess;
expected lines and columns are computed from the text written, never hard-coded. SARIF is
checked against the OASIS SARIF 2.1.0 JSON Schema vendored in tests/data/schemas/ (see its
README for where it comes from).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import DATA, REPO, run_cli

from foundryctl import __version__
from foundryctl.errors import Diagnostic, Position
from foundryctl.kinds import KINDS
from foundryctl.manifest import load_manifest
from foundryctl.manifest.json_schema import manifest_json_schema
from foundryctl.manifest.reference import REGENERATE, manifest_reference
from foundryctl.manifest.schema import TOP_LEVEL_KEYS
from foundryctl.report.github import annotation, escape_data, escape_property
from foundryctl.report.sarif import SRCROOT

SARIF_SCHEMA = DATA / "schemas" / "sarif-2.1.0.json"
GITOPS_DOC = REPO / "docs" / "gitops.md"

# A manifest with errors (a bad region, a misspelt key) and a dataset whose file draws warnings.
MANIFEST = """\
version: 1
backend: {type: local, registration_delay: 0.1}
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network

  - kind: Hub
    name: ft-hub
    location: atlantis-east

  - kind: Project
    name: support
    hub: ft-hub
    descriptin: a typo

  - kind: Dataset
    name: chat
    project: support
    path: ../data/chat.jsonl
    allow_outside_root: true  # the data sits beside manifests/, not under it
"""
# A valid manifest whose only problems are the dataset's warnings.
VALID = """\
version: 1
backend: {type: local, registration_delay: 0.1}
resources:
  - kind: ProviderRegistration
    name: network
    namespace: Microsoft.Network

  - kind: Hub
    name: ft-hub
    location: eastus2

  - kind: Project
    name: support
    hub: ft-hub

  - kind: Dataset
    name: chat
    project: support
    path: ../data/chat.jsonl
    allow_outside_root: true  # the data sits beside manifests/, not under it
"""
NO_SYSTEM_LINE = 3  # the data file's example without a system message


def locate(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) where `needle` first starts in `text`."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def write_data(path: Path, count: int = 12) -> Path:
    """`count` chat examples; the one on line NO_SYSTEM_LINE has no system message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(1, count + 1):
        messages = [{"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."}]
        if i != NO_SYSTEM_LINE:
            messages.insert(0, {"role": "system", "content": "You are a support agent."})
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A scratch repository: manifests/main.yaml (with errors) and data/chat.jsonl."""
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "main.yaml").write_text(MANIFEST, encoding="utf-8")
    write_data(root / "data" / "chat.jsonl")
    return root


def workspace(root: Path) -> dict[str, str]:
    """The environment of a workflow step checked out at `root` (and so also when these tests
    themselves run on GitHub Actions, whose own $GITHUB_WORKSPACE is elsewhere)."""
    return {"GITHUB_WORKSPACE": str(root)}


def expected_problems() -> list[tuple[str, str, str, int, int]]:
    """(level, code, file, line, column) of every problem MANIFEST has, in report order."""
    region = locate(MANIFEST, "atlantis-east")
    typo = locate(MANIFEST, "descriptin")
    path = locate(MANIFEST, "../data/chat.jsonl")
    return [
        ("error", "invalid-value", "manifests/main.yaml", *region),
        ("error", "unknown-key", "manifests/main.yaml", *typo),
        ("warning", "few_examples", "manifests/main.yaml", *path),
        ("warning", "example_missing_system_message", "data/chat.jsonl", NO_SYSTEM_LINE, 1),
    ]


# -- github --------------------------------------------------------------------------------

_ANNOTATION = re.compile(r"^::(error|warning) (?P<props>[^:]*)::(?P<message>.*)$")


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    match = _ANNOTATION.match(line)
    assert match, f"not a workflow command: {line!r}"
    props = dict(item.split("=", 1) for item in match.group("props").split(","))
    return match.group(1), props, match.group("message")


def test_github_annotations_carry_file_line_and_column(repo: Path) -> None:
    result = run_cli("validate", "-f", "manifests/main.yaml", "--format", "github", cwd=repo,
                     env=workspace(repo))
    assert result.code == 1, result
    lines = result.stdout.strip().splitlines()
    annotations = [parse_annotation(line) for line in lines[:-1]]
    got = sorted((level, props["title"], props["file"], int(props["line"]), int(props["col"]))
                 for level, props, _ in annotations)
    assert got == sorted(expected_problems())
    messages = {props["title"]: message for _, props, message in annotations}
    assert messages["invalid-value"].startswith("Hub.ft-hub: location: unknown Azure region 'atlantis-east'")
    assert "did you mean 'description'" in messages["unknown-key"]
    assert lines[-1] == "foundryctl validate: invalid: 2 error(s), 2 warning(s)"


def test_github_paths_are_relative_to_the_workspace(repo: Path) -> None:
    """Run from a subdirectory, as a workflow step with working-directory does: the annotation
    still names the file from the repository root, where GitHub looks for it."""
    result = run_cli("validate", "-f", "main.yaml", "--format", "github", cwd=repo / "manifests",
                     env={"GITHUB_WORKSPACE": str(repo)})
    assert result.code == 1, result
    files = {parse_annotation(line)[1]["file"] for line in result.stdout.splitlines()[:-1]}
    assert files == {"manifests/main.yaml", "data/chat.jsonl"}


def test_github_valid_manifest_prints_warnings_and_exits_0(repo: Path) -> None:
    (repo / "manifests" / "main.yaml").write_text(VALID, encoding="utf-8")
    result = run_cli("validate", "-f", "manifests/main.yaml", "--format", "github", cwd=repo,
                     env=workspace(repo))
    assert result.code == 0, result
    lines = result.stdout.strip().splitlines()
    assert [parse_annotation(line)[0] for line in lines[:-1]] == ["warning", "warning"]
    assert lines[-1] == "foundryctl validate: the manifest is valid (4 resources), 2 warning(s)"


def test_github_escaping_follows_the_runner() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a,b:c%") == "a%2Cb%3Ac%25"
    diagnostic = Diagnostic.error("50% of 3, done: yes\nsecond line", Position("x.yaml", 4, 2),
                                  "Hub.h", code="invalid-value", hint="try: this, or that")
    line = annotation(diagnostic, root=Path.cwd())
    assert line == ("::error file=x.yaml,line=4,col=2,title=invalid-value::"
                    "Hub.h: 50%25 of 3, done: yes%0Asecond line%0Ahint: try: this, or that")


def test_github_escapes_properties_of_odd_file_names(tmp_path: Path) -> None:
    diagnostic = Diagnostic.warning("careful", Position(str(tmp_path / "a,b:c.yaml"), 1, 1), code="x")
    assert annotation(diagnostic, root=tmp_path) == "::warning file=a%2Cb%3Ac.yaml,line=1,col=1,title=x::careful"


def test_github_problem_outside_the_workspace_keeps_its_path_in_the_text(tmp_path: Path) -> None:
    outside = Diagnostic.error("broken", Position("/elsewhere/m.yaml", 3, 5), code="io")
    assert annotation(outside, root=tmp_path) == "::error title=io::/elsewhere/m.yaml:3:5: broken"


# -- sarif ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def assert_valid_sarif(log: dict[str, Any], validator: jsonschema.Draft4Validator) -> None:
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_sarif_is_schema_valid_with_rules_results_and_regions(repo: Path, sarif_validator) -> None:
    result = run_cli("validate", "-f", "manifests/main.yaml", "--format", "sarif", cwd=repo,
                     env=workspace(repo))
    assert result.code == 1, result
    log = json.loads(result.stdout)
    assert_valid_sarif(log, sarif_validator)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("foundryctl", __version__)
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["helpUri"].startswith("https://") and "/docs/" in rule["helpUri"]
    got = []
    for res in run["results"]:
        assert driver["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        (location,) = res["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uriBaseId"] == SRCROOT
        region = physical["region"]
        got.append((res["level"], res["ruleId"], physical["artifactLocation"]["uri"],
                    region["startLine"], region["startColumn"]))
    assert sorted(got) == sorted(expected_problems())
    assert set(rule_ids) == {code for _, code, *_ in expected_problems()}
    assert run["originalUriBaseIds"][SRCROOT]["uri"] == repo.resolve().as_uri() + "/"
    # Hints travel in the message text.
    texts = {res["ruleId"]: res["message"]["text"] for res in run["results"]}
    assert texts["invalid-value"].startswith("Hub.ft-hub: location: unknown Azure region")


def test_sarif_of_a_valid_manifest_and_of_a_problem_without_position(repo: Path, sarif_validator) -> None:
    (repo / "manifests" / "main.yaml").write_text(VALID.replace("eastus2", "${var.region}"), encoding="utf-8")
    # --var for an undeclared variable: a diagnostic with no file position.
    result = run_cli("validate", "-f", "manifests/main.yaml", "--format", "sarif", "--var", "regoin=x",
                     cwd=repo, env=workspace(repo))
    assert result.code == 1, result
    log = json.loads(result.stdout)
    assert_valid_sarif(log, sarif_validator)
    by_rule = {res["ruleId"]: res for res in log["runs"][0]["results"]}
    undeclared = by_rule["undeclared-variable"]["locations"][0]["physicalLocation"]
    # Code scanning drops results without a location: it is pinned to the manifest's first line.
    assert undeclared["artifactLocation"]["uri"] == "manifests/main.yaml"
    assert undeclared["region"] == {"startLine": 1, "startColumn": 1}

    (repo / "manifests" / "main.yaml").write_text(VALID, encoding="utf-8")
    result = run_cli("validate", "-f", "manifests", "--format", "sarif", cwd=repo,
                     env=workspace(repo))
    assert result.code == 0, result
    log = json.loads(result.stdout)
    assert_valid_sarif(log, sarif_validator)
    assert {res["level"] for res in log["runs"][0]["results"]} == {"warning"}


def test_sarif_schema_rejects_a_broken_log(sarif_validator) -> None:
    """The vendored schema really checks: a result without a message is refused."""
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}},
                                         "results": [{"ruleId": "a", "level": "fatal"}]}]}
    assert list(sarif_validator.iter_errors(log))


# -- json and text stay as they were ---------------------------------------------------------


def test_json_format_shape(repo: Path) -> None:
    result = run_cli("validate", "-f", "manifests/main.yaml", "--format", "json", cwd=repo)
    assert result.code == 1, result
    report = json.loads(result.stdout)
    assert set(report) == {"valid", "resource_count", "error_count", "warning_count", "diagnostics"}
    assert (report["valid"], report["resource_count"], report["error_count"], report["warning_count"]) == (
        False, None, 2, 2)
    # JSON keeps paths as diagnostics name them (here 'manifests/../data/chat.jsonl').
    got = sorted((d["severity"], d["code"], os.path.normpath(d["file"]), d["line"], d["column"])
                 for d in report["diagnostics"])
    assert got == sorted(expected_problems())


def test_text_format_unchanged(repo: Path) -> None:
    result = run_cli("validate", "-f", "manifests/main.yaml", cwd=repo)
    assert result.code == 1, result
    line, column = locate(MANIFEST, "atlantis-east")
    assert f"manifests/main.yaml:{line}:{column}: error: Hub.ft-hub: location: unknown Azure region" in result.stderr
    assert "2 error(s), 2 warning(s)" in result.stderr


# -- the manifest's JSON Schema --------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest_validator() -> jsonschema.Draft202012Validator:
    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[str]:
    """Every error, innermost first, as 'path: message' (oneOf branches included)."""
    out = []
    for error in validator.iter_errors(data):
        for inner in [error, *_context(error)]:
            out.append(f"{'/'.join(map(str, inner.absolute_path))}: {inner.message}")
    return out


def _context(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    return [e for c in error.context for e in [c, *_context(c)]]


def test_schema_command_prints_the_schema(tmp_path: Path) -> None:
    result = run_cli("schema", cwd=tmp_path)
    assert result.code == 0, result
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(manifest_json_schema()))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert list(schema["properties"]) == list(TOP_LEVEL_KEYS)  # a new top-level block is not refused
    resource = schema["$defs"]["Resource"]
    assert resource["discriminator"]["propertyName"] == "kind"
    assert set(resource["discriminator"]["mapping"]) == set(KINDS)
    assert len(resource["oneOf"]) == len(KINDS)
    assert set(resource["properties"]["kind"]["enum"]) == set(KINDS)
    for kind in KINDS.values():  # every kind's fields, with their descriptions
        spec = schema["$defs"][kind.spec.__name__]
        assert set(spec["properties"]) == set(kind.spec.model_fields)
        assert spec["description"] == kind.summary
    hyper = schema["$defs"]["Hyperparameters"]["properties"]["epochs"]
    assert hyper["description"] and hyper["default"] == 3

    result = run_cli("schema", "--output", "out/schema.json", cwd=tmp_path)
    assert result.code == 0, result
    assert json.loads((tmp_path / "out" / "schema.json").read_text()) == schema


def round_trip_manifests() -> list[Path]:
    """The project's manifests and the valid examples copied into tests/data/gitops/."""
    examples = sorted((REPO / "manifests").glob("*.yaml"))
    examples += [p for p in sorted((DATA / "gitops").glob("*.yaml")) if ".sketch." not in p.name]
    return examples


@pytest.mark.parametrize("path", round_trip_manifests(), ids=lambda p: p.name)
def test_schema_accepts_every_valid_manifest(path: Path, manifest_validator) -> None:
    load_manifest(path)  # foundryctl validate accepts it: only valid manifests belong here
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert schema_errors(manifest_validator, data) == []


def test_schema_rejects_the_sketch_where_validate_does(manifest_validator) -> None:
    """The early sketch (tests/data/gitops/README.md) fails foundryctl validate at its Deployment;
    the schema fails it at the same two places."""
    data = yaml.safe_load((DATA / "gitops" / "xbox-support.sketch.yaml").read_text(encoding="utf-8"))
    errors = schema_errors(manifest_validator, data)
    assert any(e.startswith("resources/6/model:") for e in errors), errors
    assert any(e.startswith("resources/6/content_filter:") and "severity_threshold" in e for e in errors), errors
    assert all(e.startswith("resources/6") for e in errors), errors


BASE = """\
version: 1
variables: {epochs: 3, flag: true, level: high, tags: {default: {team: ml}}, env: dev}
resources:
  - kind: Project
    name: p1
    hub: h1
"""


@pytest.mark.parametrize("resource, problem", [
    ("kind: FineTuneJob\nname: j\nproject: p1\nbase_model: m\ntraining_data: d\nhyperparameters: {epochs: three}",
     "hyperparameters/epochs"),
    ("kind: FineTuneJob\nname: j\nproject: p1\nbase_model: m\ntraining_data: d\nhyperparameters: {epochs: 0}",
     "hyperparameters/epochs"),
    ("kind: Deployment\nname: dep\nproject: p1\nmodel: {job: j}\ncontent_filter: {threshold: extreme}",
     "content_filter/threshold"),
    ("kind: Hub\nname: h2\nlocation: eastus2\nlocaton: x", "locaton"),
    ("kind: Hubb\nname: h2\nlocation: eastus2", "kind"),
    ("kind: Hub\nlocation: eastus2", "name"),
    ("kind: ${var.kind}\nname: h2\nlocation: eastus2", "kind"),
])
def test_schema_rejects_wrong_manifests(resource: str, problem: str, manifest_validator) -> None:
    data = yaml.safe_load(BASE)
    data["resources"].append(yaml.safe_load(resource))
    errors = schema_errors(manifest_validator, data)
    assert errors, f"the schema accepted {resource!r}"
    wanted = problem.split("/")[-1]
    assert any(wanted in e for e in errors), errors


def test_schema_rejects_unknown_top_level_keys(manifest_validator) -> None:
    data = yaml.safe_load(BASE + "resource: []\n")
    assert any("resource" in e for e in schema_errors(manifest_validator, data))


def test_schema_accepts_interpolated_values(manifest_validator) -> None:
    data = yaml.safe_load(BASE + """\
  - kind: FineTuneJob
    name: j
    project: p1
    base_model: SmolLM2-135M-Instruct
    training_data: d
    output_model: ${var.env}-model
    hyperparameters: {epochs: "${var.epochs}", full_finetune: "${var.flag}"}
  - kind: Deployment
    name: dep
    project: p1
    model: {job: j}
    protect: ${var.flag}
    content_filter: {enabled: "${var.flag}", threshold: "${var.level}"}
  - kind: Hub
    name: h1
    location: ${var.location}
    tags: ${var.tags}
  - kind: RoleAssignment
    name: ra
    principal: ${env.USER}
    role: Reader
    scope: resource_group
""")
    assert len(data["resources"]) == 5
    assert schema_errors(manifest_validator, data) == []


# -- the generated reference ----------------------------------------------------------------


def test_manifest_reference_is_up_to_date() -> None:
    committed = (REPO / "docs" / "manifest-reference.md").read_text(encoding="utf-8")
    assert committed == manifest_reference(), (
        f"docs/manifest-reference.md is stale; regenerate it with: {REGENERATE}")


def test_manifest_reference_covers_every_kind_and_field() -> None:
    text = manifest_reference()
    for kind in KINDS.values():
        section = text.split(f"\n### {kind.name}\n", 1)[1].split("\n### ", 1)[0]
        for field in kind.spec.model_fields:
            assert f"| `{field}` |" in section, f"{kind.name}.{field} missing from the reference"
    assert "| `epochs` | integer, ≥ 1, ≤ 10 | no | `3` |" in text
    assert "one of `low`, `medium`, `high`" in text
    assert (REPO / "docs" / "manifest-reference.md").name in (REPO / "docs" / "manifest.md").read_text()


def test_schema_markdown_command_prints_the_reference(tmp_path: Path) -> None:
    result = run_cli("schema", "--markdown", cwd=tmp_path)
    assert result.code == 0, result
    assert result.stdout == manifest_reference()


# -- docs/gitops.md and .pre-commit-hooks.yaml ----------------------------------------------


def doc_files() -> dict[str, str]:
    """The files docs/gitops.md spells out: `<!-- file: PATH -->` then a fenced block."""
    text = GITOPS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.DOTALL)
    return dict(blocks)


def workflow_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def test_docs_workflow_parses_and_runs_the_right_commands() -> None:
    workflow = yaml.safe_load(doc_files()[".github/workflows/foundryctl.yaml"])
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    runs = {name: [s.get("run", "") for s in workflow_steps(job)] for name, job in jobs.items()}
    uses = {name: [s.get("uses", "") for s in workflow_steps(job)] for name, job in jobs.items()}
    for name in jobs:
        assert any(u.startswith("actions/setup-python@") for u in uses[name])
        assert "pip install foundryctl" in runs[name]

    pr_jobs = [name for name, job in jobs.items() if "pull_request" in job.get("if", "")]
    pr_runs = [r for name in pr_jobs for r in runs[name]]
    pr_uses = [u for name in pr_jobs for u in uses[name]]
    assert any(r.startswith("foundryctl validate") and "--format github" in r for r in pr_runs)
    assert any(r.startswith("foundryctl validate") and "--format sarif" in r for r in pr_runs)
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in pr_uses)
    assert any(r.startswith("foundryctl plan") and "--format markdown > plan.md" in r for r in pr_runs)
    comment = next(s for name in pr_jobs for s in workflow_steps(jobs[name])
                   if s.get("uses", "").startswith("marocchino/sticky-pull-request-comment@"))
    assert comment["with"]["path"] == "plan.md"

    (apply_job,) = [job for job in jobs.values() if "push" in job.get("if", "")]
    steps = workflow_steps(apply_job)
    plan_index = next(i for i, s in enumerate(steps) if "--detailed-exitcode" in s.get("run", ""))
    apply_index = next(i for i, s in enumerate(steps) if "foundryctl apply" in s.get("run", ""))
    assert plan_index < apply_index
    assert "--auto-approve" in steps[apply_index]["run"]
    assert steps[plan_index]["id"] in steps[apply_index]["if"] and "'2'" in steps[apply_index]["if"]


def workflow_for(env: str) -> dict[str, Any]:
    """The docs' workflow with the matrix variable filled in."""
    text = doc_files()[".github/workflows/foundryctl.yaml"]
    return yaml.safe_load(text.replace("${{ matrix.env }}", env))


def pull_request_commands(env: str) -> list[list[str]]:
    """The foundryctl commands of the pull-request jobs (without their redirections)."""
    commands = []
    for job in workflow_for(env)["jobs"].values():
        if "pull_request" not in job.get("if", ""):
            continue
        for step in job["steps"]:
            run = step.get("run", "")
            if run.startswith("foundryctl "):
                commands.append(shlex.split(run.split(">")[0].split("||")[0]))
    return commands


def write_doc_layout(root: Path) -> dict[str, str]:
    files = doc_files()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return files


def test_docs_layout_passes_the_pull_request_jobs(tmp_path: Path, manifest_validator) -> None:
    files = write_doc_layout(tmp_path)
    main = files["manifests/main.yaml"]
    assert main.splitlines()[0] == "# yaml-language-server: $schema=../foundryctl.schema.json"
    assert schema_errors(manifest_validator, yaml.safe_load(main)) == []
    for env in ("dev", "prod"):
        commands = pull_request_commands(env)
        formats = sorted(c[c.index("--format") + 1] for c in commands)
        assert formats == ["github", "markdown", "sarif"]
        for command in commands:
            result = run_cli(*command[1:], cwd=tmp_path)
            assert result.code == 0, result
            if "markdown" in command:
                assert "Hub.ft-hub-" + env in result.stdout


def test_docs_apply_job_applies_only_when_the_plan_has_changes(tmp_path: Path) -> None:
    """The push job's shell steps, run as the runner would (bash, $GITHUB_OUTPUT), twice:
    the first run applies, the second finds nothing to do and skips apply."""
    write_doc_layout(tmp_path)
    (apply_job,) = [job for job in workflow_for("dev")["jobs"].values() if "push" in job.get("if", "")]
    steps = [s for s in apply_job["steps"] if s.get("run", "").lstrip().startswith(("set +e", "foundryctl"))]
    plan_step, apply_step = steps
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "NO_COLOR": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("FOUNDRYCTL_") or k == "FOUNDRYCTL_CACHE_DIR"}
    for expected in ("2", "0"):
        output = tmp_path / f"github-output-{expected}"
        output.touch()
        planned = subprocess.run(["bash", "-e", "-c", plan_step["run"]], cwd=tmp_path, text=True,
                                 capture_output=True, env={**env, "GITHUB_OUTPUT": str(output)},
                                 timeout=120, check=False)
        assert planned.returncode == 0, planned.stdout + planned.stderr
        assert output.read_text().strip() == f"exitcode={expected}"
        if expected == "2":  # the step's `if:` lets apply run
            applied = subprocess.run(["bash", "-e", "-c", apply_step["run"]], cwd=tmp_path, text=True,
                                     capture_output=True, env=env, timeout=300, check=False)
            assert applied.returncode == 0, applied.stdout + applied.stderr
            assert "Apply complete!" in applied.stdout
    assert (tmp_path / "manifests" / ".foundryctl" / "dev" / "state.db").is_file()
    assert not (tmp_path / "manifests" / ".foundryctl" / "prod").exists()


def test_docs_layout_keeps_one_state_per_environment(tmp_path: Path) -> None:
    write_doc_layout(tmp_path)
    paths = {}
    for env in ("dev", "prod"):
        manifest = load_manifest(tmp_path / "manifests", var_files=[tmp_path / "envs" / f"{env}.yaml"])
        paths[env] = manifest.resolve_path(manifest.state.path)
        assert paths[env] == tmp_path / "manifests" / ".foundryctl" / env / "state.db"
        assert f"Hub.ft-hub-{env}" in manifest.resources
    assert paths["dev"] != paths["prod"]


def test_pre_commit_hook_definition() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "foundryctl-validate"]
    assert {"id", "name", "entry", "language"} <= set(hook)  # what pre-commit requires
    assert hook["entry"] == "foundryctl validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    assert files.search("manifests/main.yaml") and files.search("envs/dev.yml")
    assert not files.search("data/chat.jsonl") and not files.search("README.md")
    try:  # pre-commit's own validation, where it is installed
        from pre_commit.clientlib import load_manifest as load_hooks
    except ImportError:
        pass
    else:
        load_hooks(str(REPO / ".pre-commit-hooks.yaml"))
    config = yaml.safe_load(doc_files()[".pre-commit-config.yaml"])
    ids = [h["id"] for repo in config["repos"] for h in repo["hooks"]]
    assert ids == ["foundryctl-validate"]


def test_help_stays_light() -> None:
    """`foundryctl --help` imports none of the report or schema machinery."""
    code = ("import sys\nfrom foundryctl.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint('MODULES', ','.join(sorted(m for m in sys.modules if m.startswith(("
            "'foundryctl.report', 'foundryctl.manifest', 'jsonschema', 'pydantic')))))\n")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             check=False)
    assert process.returncode == 0, process.stderr
    assert "schema" in process.stdout
    assert process.stdout.splitlines()[-1] == "MODULES "
