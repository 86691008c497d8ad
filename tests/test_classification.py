"""Text classification: the labelled-JSONL checks of the dataset validator, the task checks of
validate (format mismatch, labels on a chat dataset, Azure's refusal), and end to end through
the real CLI on the local backend: a `task: text_classification` job trains a classification
head on SmolLM2-135M-Instruct, its macro-F1 on held-out tickets beats the untrained head's, and
its Deployment answers `POST /v1/classify` (and refuses chat).

The data (tests/data/classification/xbox_tickets.jsonl) is 90 short Xbox support tickets,
30 each of billing, hardware and network; two epochs of batch 8 train in about a minute of
CPU once the model is loaded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, Project, require

from foundryctl.datasets import ValidationOptions, validate_dataset
from foundryctl.errors import ManifestError
from foundryctl.manifest import load_manifest
from foundryctl.training.jobdir import pid_alive

TICKETS = DATA / "classification" / "xbox_tickets.jsonl"
CLASSIFY = ValidationOptions(task="text_classification", count_tokens=False)
BASE_MODEL = "SmolLM2-135M-Instruct"


def write_lines(path: Path, *rows: object) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def problems(report) -> list[tuple[int, str]]:
    return [(p.line, p.category) for p in report.problems]


def labelled(count: int, labels: tuple[str, ...] = ("billing", "hardware", "network")) -> list[dict]:
    return [{"text": f"ticket number {i} about {labels[i % len(labels)]}", "label": labels[i % len(labels)]}
            for i in range(count)]


# -- the validator --------------------------------------------------------------------------------

def test_the_ticket_set_is_valid_and_balanced() -> None:
    report = validate_dataset(TICKETS, CLASSIFY)
    assert report.valid and report.counts == {}, report.problems
    assert report.examples == 90
    assert report.label_counts == {"billing": 30, "hardware": 30, "network": 30}
    assert report.to_dict()["labels"] == {"billing": 30, "hardware": 30, "network": 30}


def test_empty_texts_and_missing_labels_are_errors_at_their_lines(tmp_path: Path) -> None:
    rows = labelled(60)
    rows[2] = {"text": "   ", "label": "network"}
    rows[4] = {"label": "billing"}
    rows[6] = {"text": "where is my refund"}
    rows[8] = {"text": "no sound", "label": ["hardware"]}
    report = validate_dataset(write_lines(tmp_path / "t.jsonl", *rows), CLASSIFY)
    assert not report.valid
    assert problems(report) == [(3, "missing_text"), (5, "missing_text"), (7, "missing_label"),
                                (9, "missing_label")]
    messages = [p.message for p in report.problems]
    assert messages == ["`text` is blank", "`text` is missing", "`label` is missing",
                        "`label` is an array, not a string or integer"]
    assert report.examples == 56


def test_a_label_outside_the_declared_set_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    rows = labelled(12)
    rows[5] = {"text": "the wifi drops", "label": "netwrok"}
    path = write_lines(tmp_path / "t.jsonl", *rows)
    declared = ValidationOptions(task="text_classification", count_tokens=False,
                                 labels=("billing", "hardware", "network", "account"))
    report = validate_dataset(path, declared)
    assert (6, "unknown_label") in problems(report)
    unknown = next(p for p in report.problems if p.category == "unknown_label")
    assert "did you mean 'network'?" in unknown.message
    # A declared label no example has is worth a warning, not an error.
    assert (0, "label_without_examples") in problems(report)
    # Without a declaration any label is accepted: the set is inferred.
    assert validate_dataset(path, CLASSIFY).label_counts["netwrok"] == 1


def test_duplicates_and_conflicting_labels_are_reported(tmp_path: Path) -> None:
    rows = labelled(12)
    rows.append(rows[0])
    rows.append({"text": rows[1]["text"], "label": "billing"})
    report = validate_dataset(write_lines(tmp_path / "t.jsonl", *rows), CLASSIFY)
    assert (13, "duplicate_example") in problems(report)
    assert (14, "conflicting_label") in problems(report)
    conflict = next(p for p in report.problems if p.category == "conflicting_label")
    assert conflict.message == (f"the same text is labelled {rows[1]['label']!r} on line 2 and 'billing' here")
    assert report.valid  # warnings only


def test_label_balance_and_a_single_label(tmp_path: Path) -> None:
    skewed = [{"text": f"bill {i}", "label": "billing"} for i in range(60)] + [
        {"text": f"fan {i}", "label": "hardware"} for i in range(6)]
    report = validate_dataset(write_lines(tmp_path / "skew.jsonl", *skewed), CLASSIFY)
    assert problems(report) == [(0, "label_imbalance")]
    assert "'hardware' has 6 example(s), 'billing' has 60" in report.problems[0].message
    balanced = skewed[:60] + [{"text": f"fan {i}", "label": "hardware"} for i in range(12)]
    assert validate_dataset(write_lines(tmp_path / "even.jsonl", *balanced), CLASSIFY).problems == []
    single = validate_dataset(write_lines(tmp_path / "one.jsonl", *skewed[:60]), CLASSIFY)
    assert (0, "too_few_labels") in problems(single) and not single.valid


def test_a_chat_file_read_as_classification_names_the_keys(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    report = validate_dataset(write_lines(tmp_path / "chat.jsonl", *[chat] * 12), CLASSIFY)
    first = [p for p in report.problems if p.line == 1]
    assert [p.category for p in first] == ["example_unrecognized_key", "missing_text", "missing_label"]
    assert "only `text` and `label` are used" in first[0].message


def test_data_validate_takes_the_task(project: Project) -> None:
    rows = labelled(12)
    rows[3] = {"text": "", "label": "billing"}
    write_lines(project.root / "t.jsonl", *rows)
    result = project.cli_plain("data", "validate", "--task", "text_classification", "t.jsonl")
    assert result.code == 1, result
    assert "t.jsonl:4: error: `text` is empty [missing_text]" in result.stdout, result
    assert "Labels: billing 3 (27%), hardware 4 (36%), network 4 (36%)" in result.stdout, result


# -- validate: the task checks --------------------------------------------------------------------

LOCAL = """\
version: 1
backend: {{type: local}}
resources:
  - {{kind: Hub, name: ft-hub, location: eastus2}}
  - {{kind: Project, name: prj, hub: ft-hub}}
  - kind: Dataset
    name: tickets
    project: prj
    path: tickets.jsonl
{dataset_extra}  - kind: FineTuneJob
    name: router
    project: prj
    base_model: {model}
    task: text_classification
    training_data: tickets
"""
AZURE = """\
backend:
  type: azure
  subscription_id: 00000000-1111-2222-3333-444444444444
  resource_group: rg-foundry
  location: eastus2
"""


def classification_manifest(root: Path, *, dataset_extra: str = "    task: text_classification\n",
                            backend: str | None = None, model: str = BASE_MODEL) -> Path:
    shutil.copy(TICKETS, root / "tickets.jsonl")
    text = LOCAL.format(dataset_extra=dataset_extra, model=model)
    if backend is not None:
        text = text.replace("backend: {type: local}\n", backend)
    path = root / "foundry.yaml"
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def diagnostics(path: Path) -> list:
    try:
        return list(load_manifest(path).warnings)
    except ManifestError as exc:
        return list(exc.diagnostics)


def test_a_classification_job_on_a_chat_dataset_is_an_error(project: Project) -> None:
    path = classification_manifest(project.root, dataset_extra="")
    result = project.cli("validate")
    assert result.code == 1, result
    line = line_of(path, "training_data: tickets")
    assert re.search(rf"foundry\.yaml:{line}:\d+: error: FineTuneJob\.router: training_data 'tickets' is a "
                     r"chat_completion dataset, and this job's task is text_classification", result.stderr), result


def test_labels_on_a_chat_dataset_are_an_error(tmp_path: Path) -> None:
    path = classification_manifest(tmp_path, dataset_extra="    labels: [billing, hardware]\n")
    found = [(d.code, d.address, d.position.line) for d in diagnostics(path) if d.code == "labels-without-classification"]
    assert found == [("labels-without-classification", "Dataset.tickets", line_of(path, "labels:"))]


def test_a_valid_classification_manifest_validates(project: Project) -> None:
    classification_manifest(project.root, dataset_extra="    task: text_classification\n"
                                                         "    labels: [network, hardware, billing]\n")
    result = project.cli("validate")
    assert result.code == 0, result
    # The plan's estimate counts the labelled texts (not zero, as a chat reading would).
    planned = project.cli("plan")
    assert planned.code == 0, planned
    tokens = re.search(r"FineTuneJob\.router will be created \(new training run: ~?([\d,]+) tokens", planned.stdout)
    assert tokens and int(tokens.group(1).replace(",", "")) > 300, planned


def test_azure_refuses_text_classification_at_the_task_line(project: Project) -> None:
    path = classification_manifest(project.root, backend=AZURE, model="Phi-3-mini-128k-instruct")
    result = project.cli("validate")
    assert result.code == 1, result
    job_task = [n for n, text in enumerate(path.read_text().splitlines(), 1)
                if text == "    task: text_classification"][-1]  # the job's, after the dataset's
    assert re.search(rf"foundry\.yaml:{job_task}:\d+: error: FineTuneJob\.router: task: text_classification is "
                     r"not offered by Azure's serverless fine-tuning, which trains chat_completion only",
                     result.stderr), result


# -- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2(model_cache: Path) -> Path:
    from foundryctl.models import parse_base_model
    from foundryctl.models.files import ModelNotAvailable, find_model

    try:
        return find_model(parse_base_model(BASE_MODEL))
    except (ModelNotAvailable, ImportError) as exc:
        require(f"{BASE_MODEL} is not available: {exc}")
        raise


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, smollm2: Path) -> Iterator[tuple[Project, dict]]:
    """A project whose `apply` trained a three-label ticket router (two epochs): the job's outputs."""
    project = Project(tmp_path_factory.mktemp("classify"))
    project.quickstart()
    project.edit("  type: local\n", "  type: local\n  principal: ${var.principal}\n")
    shutil.copy(TICKETS, project.root / "tickets.jsonl")
    with open(project.manifest, "a") as manifest:
        manifest.write("""
  - kind: Dataset
    name: tickets
    project: xbox-support
    path: tickets.jsonl
    task: text_classification
    labels: [billing, hardware, network]
    validation: {split: 0.25, seed: 7}

  - kind: FineTuneJob
    name: ticket-router
    project: xbox-support
    base_model: SmolLM2-135M-Instruct
    task: text_classification
    training_data: tickets
    hyperparameters:
      epochs: 2
      batch_size: 8
      learning_rate_multiplier: 2
      max_seq_length: 32

  - kind: Evaluation
    name: routing
    project: xbox-support
    target: {job: ticket-router}
    data: tickets                       # its held-out quarter
    metrics: [accuracy, f1_macro]
    baseline: {base: true}              # the untrained head on the same body
    gate: [f1_macro >= baseline.base + 0.05]

  - kind: Deployment
    name: ticket-router
    project: xbox-support
    model: {job: ticket-router}
    promote_when: [Evaluation.routing]
""")
    applied = project.cli("apply", "--auto-approve", timeout=900)
    assert applied.code == 0, applied
    assert re.search(r"sample label: (billing|hardware|network) \(0\.\d\d\)", applied.output), applied
    store = project.state()
    try:
        outputs = store.get("FineTuneJob.ticket-router").outputs
    finally:
        store.close()
    yield project, outputs
    project.cli("destroy", "--auto-approve", timeout=300)
    for status_file in project.cloud_path.glob("endpoints/*/*/status.json"):  # a server destroy missed
        status = json.loads(status_file.read_text())
        if status.get("pid") and pid_alive(status["pid"], status.get("pid_start")):
            os.killpg(status["pid"], signal.SIGKILL)


def test_a_classification_job_beats_its_untrained_head(trained: tuple[Project, dict]) -> None:
    """apply trains the head (LoRA on the body, the score head whole) for two epochs; the
    held-out macro-F1 after training, read from metrics.jsonl, beats the untrained head's
    (measured by the same run before its first step), and results.csv and the report carry
    accuracy and macro-F1."""
    _, outputs = trained
    assert outputs["status"] == "Completed", outputs
    job_dir = Path(outputs["job_dir"])
    rows = [json.loads(line) for line in (job_dir / "metrics.jsonl").read_text().splitlines()]
    untrained = next(r for r in rows if r["type"] == "eval" and r["step"] == 0)
    trained = [r for r in rows if r["type"] == "epoch"][-1]
    assert trained["valid_f1_macro"] > untrained["valid_f1_macro"] + 0.1, (untrained, trained)
    assert trained["valid_accuracy"] > untrained["valid_accuracy"], (untrained, trained)
    assert outputs["metrics"]["valid_f1_macro"] == trained["valid_f1_macro"]
    with open(job_dir / "results.csv", newline="") as results:
        table = list(csv.DictReader(results))
    assert {"valid_accuracy", "valid_f1_macro", "train_accuracy"} <= set(table[0])
    assert float(table[-1]["valid_f1_macro"]) == pytest.approx(trained["valid_f1_macro"], abs=1e-6)
    assert json.loads((job_dir / "model" / "labels.json").read_text()) == {
        "task": "text_classification", "labels": ["billing", "hardware", "network"]}
    report = (job_dir / "report.html").read_text()
    assert "macro-F1" in report and f"{trained['valid_f1_macro']:.4f}" in report


def test_the_evaluation_gate_of_a_classifier_is_judged_like_a_chat_models(trained: tuple[Project, dict]) -> None:
    """The Evaluation scored the trained router on the held-out tickets through the same classifier
    the endpoint serves, against the untrained head, and its gate let the deployment through."""
    project, outputs = trained
    shown = project.cli("evals", "show", "routing", "--json")
    assert shown.code == 0, shown
    result = json.loads(shown.stdout)
    assert result["gate"]["passed"] is True, result
    assert result["values"]["f1_macro"] >= result["baselines"]["base"]["f1_macro"] + 0.05
    assert 0 <= result["values"]["accuracy"] <= 1 and result["task"] == "text_classification"
    report = (Path(outputs["job_dir"]) / "report.html").read_text()
    assert "Evaluation.routing: passed" in report


@pytest.fixture(scope="module")
def classify_server(trained: tuple[Project, dict]) -> tuple[str, str]:
    """(base URL, key) of the Deployment apply started for the trained router."""
    project, _ = trained
    store = project.state()
    try:
        endpoint = store.get("Deployment.ticket-router").outputs["endpoint"]
    finally:
        store.close()
    keys = project.cli("deployments", "keys", "ticket-router", "--format", "json")
    assert keys.code == 0, keys
    return endpoint.removesuffix("/v1"), json.loads(keys.stdout)["key1"]


def post(server, path: str, body: object) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    base, key = server
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_deployed_classifier_answers_the_classify_route(classify_server) -> None:
    """One text or a list: a label of the declared set and a score per label summing to 1;
    most held-out-style tickets land on their label."""
    status, single = post(classify_server, "/v1/classify", {"input": "I was charged twice for my subscription"})
    assert status == 200, single
    [answer] = single["data"]
    assert set(answer["scores"]) == {"billing", "hardware", "network"}
    assert answer["label"] == max(answer["scores"], key=answer["scores"].__getitem__)
    assert sum(answer["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    tickets = {"My credit card was billed for a game I did not buy": "billing",
               "The disc drive will not read any game": "hardware",
               "Multiplayer keeps disconnecting every few minutes": "network",
               "The console makes a loud fan noise": "hardware",
               "Cannot reach the Microsoft Store servers": "network",
               "I want my money back for this DLC": "billing"}
    status, many = post(classify_server, "/v1/classify", {"input": list(tickets)})
    assert status == 200, many
    assert [d["index"] for d in many["data"]] == list(range(len(tickets)))
    right = sum(d["label"] == label for d, label in zip(many["data"], tickets.values()))
    assert right >= 4, many
    # Padding in a batch changes nothing: each text scores as it does alone.
    status, alone = post(classify_server, "/v1/classify", {"input": list(tickets)[3]})
    assert status == 200 and alone["data"][0]["label"] == many["data"][3]["label"]
    for label, score in alone["data"][0]["scores"].items():
        assert score == pytest.approx(many["data"][3]["scores"][label], abs=1e-3)


@pytest.mark.parametrize(("body", "message"), [
    ({"input": []}, "`input` must be a non-empty string or a non-empty list of strings"),
    ({"input": ["fine", 3]}, "`input` must be a non-empty string or a non-empty list of strings"),
    ({"input": ["fine", "  "]}, "`input[1]` is empty"),
    ({"text": "hello"}, "unrecognized request argument(s): text"),
    (["hello"], "the body must be a JSON object with `input`: a string or a list of strings"),
])
def test_bad_classify_input_gets_the_json_error_shape(classify_server, body: object, message: str) -> None:
    status, error = post(classify_server, "/v1/classify", body)
    assert status == 400
    assert error["error"]["message"] == message and error["error"]["type"] == "invalid_request_error"


def test_the_chat_route_of_a_classifier_says_where_to_go(classify_server) -> None:
    status, error = post(classify_server, "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 400
    assert error["error"]["code"] == "unsupported_task"
    assert "serves a text-classification model" in error["error"]["message"]
    assert "/v1/classify" in error["error"]["message"]
