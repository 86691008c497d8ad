"""Contract tests of the azure backend's Dataset and FineTuneJob handlers: every request the
real azure-ai-ml / azure-mgmt-resource / azure-storage-blob code sends, answered by FakeAzure
(tests/azurefake/families/data.py and jobs.py)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from azurefake import arm_error
from azurefake.families.data import CONTAINER, blobs, seed_data_version, storage_account
from azurefake.families.jobs import (
    REGISTRY_HOST,
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    log_metrics,
    seed_model_version,
    seed_registry_model,
    set_progress,
)
from azurefake.families.workspaces import seed_workspace
from azurefake.fixtures import RESOURCE_GROUP, SUBSCRIPTION, write_manifest
from conftest import DATA

from foundryctl.backends.base import Progress, Target
from foundryctl.errors import BackendError

WS = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
      "Microsoft.MachineLearningServices/workspaces/xbox-support")
DATA_API = "2023-04-01-preview"
JOBS_API = "2024-10-01-preview"
MODELS_API = "2023-08-01-preview"
DATASTORE_API = "2024-10-01-preview"
BLOB_HOST = f"https://{storage_account('xbox-support')}.blob.core.windows.net"
REGISTRY_MODEL = (f"/mferp/managementfrontend/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/"
                  f"{REGISTRY_RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/registries/azureml/"
                  "models/Phi-4-mini-instruct")
SEED = DATA / "datasets" / "xbox_support_seed.jsonl"

RESOURCES = """
- kind: Hub
  name: ft-hub
  location: eastus2
- kind: Project
  name: xbox-support
  hub: ft-hub
- kind: Dataset
  name: support
  project: xbox-support
  path: data/train.jsonl
  validation: {validation}
  description: Xbox support conversations
- kind: FineTuneJob
  name: xbox-ft
  project: xbox-support
  base_model: {base_model}
  training_data: support
  hyperparameters: {{epochs: 2, batch_size: 8, learning_rate_multiplier: 1.5}}
  description: first run
"""


# -- helpers -------------------------------------------------------------------------------

def write_examples(path: Path, count: int = 24) -> Path:
    """`count` chat examples made from the seed document's three (Azure wants at least 10)."""
    seed = [json.loads(line) for line in SEED.read_text().splitlines() if line.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            example = json.loads(json.dumps(seed[i % len(seed)]))
            for message in example["messages"]:
                if message["role"] == "user":
                    message["content"] += f" (case {i})"
            out.write(json.dumps(example) + "\n")
    return path


def desired(root: Path, validation: str = "{split: 0.25, seed: 7}", base_model: str = "Phi-4-mini-instruct",
            check_files: bool = True) -> dict[str, dict[str, Any]]:
    """The desired attributes of the manifest's Dataset and FineTuneJob, as plan computes them."""
    from foundryctl.manifest import load_manifest

    path = write_manifest(root, RESOURCES.format(validation=validation, base_model=base_model))
    manifest = load_manifest(path, check_files=check_files)
    return {"dataset": dict(manifest.resources["Dataset.support"].attributes),
            "job": dict(manifest.resources["FineTuneJob.xbox-ft"].attributes)}


def dataset_target(attributes: dict[str, Any], backend_id: str | None = None) -> Target:
    return Target("Dataset.support", "Dataset", "support", attributes, backend_id)


def job_target(attributes: dict[str, Any], backend_id: str | None = None) -> Target:
    return Target("FineTuneJob.xbox-ft", "FineTuneJob", "xbox-ft", attributes, backend_id)


def sent(fake: Any, since: int = 0) -> list[tuple[str, str, str | None]]:
    return [(c.method, c.path, c.api_version) for c in fake.calls[since:]]


def key_of(sha256: str, split: str | None = None) -> str:
    """The asset version the handler derives (24 hex digits of the content hash)."""
    source = sha256 if split is None else hashlib.sha256(f"{sha256}:{split}".encode()).hexdigest()
    return source[:24]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # azure-ai-ml records the git repository of the working directory in a job's properties;
    # the tests run outside any repository.
    monkeypatch.chdir(tmp_path)
    write_examples(tmp_path / "data" / "train.jsonl")
    return tmp_path


@pytest.fixture
def project(fake_azure: Any) -> Any:
    seed_workspace(fake_azure, "xbox-support")
    seed_registry_model(fake_azure, "Phi-4-mini-instruct", ["1", "2", "3"])
    return fake_azure


def apply_dataset(backend: Any, attributes: dict[str, Any]) -> Any:
    return backend.handler("Dataset").create(dataset_target(attributes), Progress())


# -- Dataset -------------------------------------------------------------------------------

def test_dataset_with_a_split_uploads_both_halves_and_registers_them(project, azure_backend, root):
    from foundryctl.datasets import ValidationOptions, validate_dataset, write_split

    fake = project
    attributes = desired(root)["dataset"]
    messages: list[str] = []
    observed = azure_backend.handler("Dataset").create(dataset_target(attributes), Progress(messages.append))

    key = key_of(attributes["version"], "split:0.25:7")
    training_version = f"{WS}/data/support/versions/{key}"
    validation_version = f"{WS}/data/support-validation/versions/{key}"
    blob = rf"/{CONTAINER}/LocalUpload/[0-9a-f]{{64}}/"

    def upload(file: str) -> list[tuple[str, str, str | None]]:
        return [("GET", f"{WS}/datastores/workspaceblobstore", DATASTORE_API),
                ("POST", f"{WS}/datastores/workspaceblobstore/listSecrets", DATASTORE_API),
                ("HEAD", blob + file, None), ("PUT", blob + file, None), ("PUT", blob + file, None)]

    expected = ([("GET", validation_version, DATA_API)] + upload("validation.jsonl")
                + [("PUT", validation_version, DATA_API), ("GET", training_version, DATA_API)]
                + upload("training.jsonl") + [("PUT", training_version, DATA_API)])
    got = sent(fake)
    assert len(got) == len(expected), got
    for (method, path, api), (want_method, want_path, want_api) in zip(got, expected):
        assert (method, api) == (want_method, want_api)
        assert re.fullmatch(want_path, path), (path, want_path)

    # What was uploaded is the split, byte for byte, and each version points at its blob.
    report = validate_dataset(root / "data" / "train.jsonl", ValidationOptions(count_tokens=False, split=(0.25, 7)))
    train, held_out = write_split(root / "data" / "train.jsonl", report, root / "t.jsonl", root / "v.jsonl")
    secrets = fake.requests("POST", r"/listSecrets$")[0]
    assert secrets.body == {"expirableSecret": True, "expireAfterHours": 1}
    for part, version_id, file in ((held_out, validation_version, "validation.jsonl"),
                                   (train, training_version, "training.jsonl")):
        head, put_blob, put_metadata = [c for c in fake.calls if c.url.startswith(BLOB_HOST) and c.path.endswith(file)]
        assert head.method == "HEAD" and put_blob.query == {} and put_metadata.query == {"comp": "metadata"}
        assert put_blob.raw == part.path.read_bytes()
        assert put_blob.headers["x-ms-blob-type"] == "BlockBlob"
        assert {k.lower(): v for k, v in put_metadata.headers.items() if k.lower().startswith("x-ms-meta-")} == {
            "x-ms-meta-upload_status": "completed", "x-ms-meta-name": version_id.split("/")[-3],
            "x-ms-meta-version": key}
        body = fake.requests("PUT", re.escape(version_id) + "$")[0].body["properties"]
        assert body["dataType"] == "uri_file"
        assert body["dataUri"] == "azureml://datastores/workspaceblobstore/paths" + put_blob.path.split(CONTAINER, 1)[1]
        assert body["isArchived"] is False
        tags = body["tags"]
        assert tags["foundryctl.sha256"] == part.sha256
        assert (tags["foundryctl.size"], tags["foundryctl.examples"]) == (str(part.size), str(part.examples))
    training_tags = fake.requests("PUT", re.escape(training_version) + "$")[0].body["properties"]["tags"]
    assert json.loads(training_tags["foundryctl.attributes"]) == attributes
    assert training_tags["foundryctl.validation"] == f"support-validation:{key}"
    assert training_tags["foundryctl.role"] == "training"
    assert fake.requests("PUT", re.escape(training_version) + "$")[0].body["properties"]["description"] == \
        "Xbox support conversations"
    assert "foundryctl.attributes" not in fake.requests("PUT", re.escape(validation_version) + "$")[0].body[
        "properties"]["tags"]

    # Observed = desired (the next plan is empty); outputs like the local backend's.
    assert observed.attributes == attributes
    assert observed.id == f"{WS}/data/support"
    assert observed.outputs["asset"] == f"support:{key}"
    assert observed.outputs["training"] == {
        "id": training_version, "version": key, "sha256": train.sha256, "size": train.size,
        "examples": train.examples,
        "uri": fake.requests("PUT", re.escape(training_version) + "$")[0].body["properties"]["dataUri"]}
    assert observed.outputs["validation"]["examples"] == held_out.examples == attributes["validation_examples"]
    assert observed.outputs["token_counts"]["total"] > 0
    assert messages == [f"uploaded support-validation ({held_out.size:,} bytes, {held_out.examples} examples)",
                        f"uploaded support ({train.size:,} bytes, {train.examples} examples)"]
    # The account key never shows.
    assert "fake-storage-account-key" not in json.dumps(observed.outputs)


def test_unchanged_dataset_reads_as_applied_and_is_not_uploaded_again(project, azure_backend, root):
    fake = project
    attributes = desired(root)["dataset"]
    first = apply_dataset(azure_backend, attributes)
    stored = dict(blobs(fake))
    handler = azure_backend.handler("Dataset")

    start = len(fake.calls)
    observed = handler.read(dataset_target(attributes, first.id))
    key = key_of(attributes["version"], "split:0.25:7")
    assert sent(fake, start) == [("GET", f"{WS}/data/support/versions/{key}", DATA_API),
                                 ("GET", f"{WS}/data/support-validation/versions/{key}", DATA_API)]
    assert observed is not None and observed.attributes == attributes  # the plan is empty
    assert observed.outputs == first.outputs

    # A second apply (a create that adopts, after state was lost) uploads nothing.
    start = len(fake.calls)
    messages: list[str] = []
    again = handler.create(dataset_target(attributes), Progress(messages.append))
    assert sent(fake, start) == [("GET", f"{WS}/data/support-validation/versions/{key}", DATA_API),
                                 ("GET", f"{WS}/data/support/versions/{key}", DATA_API)]
    assert not [c for c in fake.calls[start:] if c.url.startswith(BLOB_HOST)]
    assert blobs(fake) == stored
    assert again.attributes == attributes
    assert messages == ["support-validation: content already in the data store, nothing uploaded",
                        "support: content already in the data store, nothing uploaded"]


def test_description_change_updates_the_version_in_place(project, azure_backend, root):
    fake = project
    attributes = desired(root)["dataset"]
    first = apply_dataset(azure_backend, attributes)
    changed = {**attributes, "description": "Xbox and Game Pass conversations"}
    start = len(fake.calls)
    observed = azure_backend.handler("Dataset").update(dataset_target(changed, first.id), attributes, Progress())
    key = key_of(attributes["version"], "split:0.25:7")
    version = f"{WS}/data/support/versions/{key}"
    assert sent(fake, start) == [("GET", f"{WS}/data/support-validation/versions/{key}", DATA_API),
                                 ("GET", version, DATA_API), ("PUT", version, DATA_API)]
    body = fake.calls[-1].body["properties"]
    assert body["description"] == "Xbox and Game Pass conversations"
    assert body["dataUri"] == first.outputs["training"]["uri"]  # the stored blob, no upload
    assert json.loads(body["tags"]["foundryctl.attributes"]) == changed
    assert observed.attributes == changed
    assert azure_backend.handler("Dataset").read(dataset_target(changed, first.id)).attributes == changed


def test_new_content_is_a_new_version_and_the_old_one_is_archived(project, azure_backend, root):
    fake = project
    before = desired(root, validation="null")["dataset"]
    first = apply_dataset(azure_backend, before)
    write_examples(root / "data" / "train.jsonl", count=30)
    after = desired(root, validation="null")["dataset"]
    assert after["version"] != before["version"]
    start = len(fake.calls)
    observed = azure_backend.handler("Dataset").update(dataset_target(after, first.id), before, Progress())
    old, new = f"{WS}/data/support/versions/{key_of(before['version'])}", f"{WS}/data/support/versions/{key_of(after['version'])}"
    methods = sent(fake, start)
    assert methods[0] == ("GET", new, DATA_API) and methods[-3] == ("PUT", new, DATA_API)
    assert methods[-2:] == [("GET", old, DATA_API), ("PUT", old, DATA_API)]
    assert fake.calls[-1].body["properties"]["isArchived"] is True
    assert len([c for c in fake.calls[start:] if c.method == "PUT" and c.url.startswith(BLOB_HOST)]) == 2
    assert observed.attributes == after and observed.outputs["validation"] is None


def test_absent_dataset_reads_as_none(project, azure_backend, root):
    fake = project
    attributes = desired(root)["dataset"]
    handler = azure_backend.handler("Dataset")
    assert handler.read(dataset_target(attributes)) is None
    key = key_of(attributes["version"], "split:0.25:7")
    assert sent(fake) == [("GET", f"{WS}/data/support/versions/{key}", DATA_API)]
    # A version someone registered by hand (no foundryctl tags) is not this dataset.
    seed_data_version(fake, "xbox-support", "support", key, tags={"owner": "someone"})
    assert handler.read(dataset_target(attributes)) is None
    # Nor is an archived one (how a delete leaves it).
    seed_data_version(fake, "xbox-support", "support", key, is_archived=True,
                      tags={"foundryctl.attributes": json.dumps(attributes)})
    assert handler.read(dataset_target(attributes)) is None


def test_changed_file_is_refused_before_anything_is_sent(project, azure_backend, root):
    fake = project
    attributes = desired(root)["dataset"]
    write_examples(root / "data" / "train.jsonl", count=25)  # edited after the plan
    with pytest.raises(BackendError) as error:
        apply_dataset(azure_backend, attributes)
    assert error.value.code == "ContentMismatch"
    assert "changed since the plan" in error.value.message
    assert fake.calls == []


def test_invalid_file_is_refused(project, azure_backend, root):
    write_examples(root / "data" / "train.jsonl", count=3)  # Azure wants at least 10
    attributes = desired(root, validation="null", check_files=False)["dataset"]
    with pytest.raises(BackendError) as error:
        apply_dataset(azure_backend, attributes)
    assert error.value.code == "InvalidData"
    assert project.calls == []


def test_validation_file_is_its_own_asset_keyed_by_its_content(project, azure_backend, root):
    fake = project
    write_examples(root / "data" / "valid.jsonl", count=12)
    attributes = desired(root, validation="{path: data/valid.jsonl}")["dataset"]
    observed = apply_dataset(azure_backend, attributes)
    validation_key = key_of(attributes["validation_version"])
    puts = [c.path for c in fake.calls if c.method == "PUT" and c.api_version == DATA_API]
    assert puts == [f"{WS}/data/support-validation/versions/{validation_key}",
                    f"{WS}/data/support/versions/{key_of(attributes['version'])}"]
    assert observed.outputs["validation"]["version"] == validation_key
    assert azure_backend.handler("Dataset").read(dataset_target(attributes, observed.id)).attributes == attributes


def test_delete_archives_both_versions_and_a_gone_project_is_nothing_to_do(project, azure_backend, root):
    fake = project
    attributes = desired(root)["dataset"]
    first = apply_dataset(azure_backend, attributes)
    handler = azure_backend.handler("Dataset")
    start = len(fake.calls)
    messages: list[str] = []
    handler.delete(dataset_target(attributes, first.id), Progress(messages.append))
    key = key_of(attributes["version"], "split:0.25:7")
    validation, training = f"{WS}/data/support-validation/versions/{key}", f"{WS}/data/support/versions/{key}"
    assert sent(fake, start) == [("GET", validation, DATA_API), ("PUT", validation, DATA_API),
                                 ("GET", training, DATA_API), ("PUT", training, DATA_API)]
    assert all(c.body["properties"]["isArchived"] is True for c in fake.calls[start:] if c.method == "PUT")
    assert messages == [f"archived data asset support-validation:{key}", f"archived data asset support:{key}"]
    assert handler.read(dataset_target(attributes, first.id)) is None

    # Applying it again brings the archived versions back without uploading anything.
    start = len(fake.calls)
    again = handler.create(dataset_target(attributes), Progress())
    assert [c.method for c in fake.calls[start:]] == ["GET", "PUT", "GET", "PUT"]
    assert all(c.body["properties"]["isArchived"] is False for c in fake.calls[start:] if c.method == "PUT")
    assert again.attributes == attributes

    fake.delete(WS)  # the project went first
    start = len(fake.calls)
    handler.delete(dataset_target(attributes, first.id), Progress())
    assert sent(fake, start) == [("GET", validation, DATA_API), ("GET", training, DATA_API)]


# -- FineTuneJob ---------------------------------------------------------------------------

def job_name(attributes: dict[str, Any]) -> str:
    from foundryctl.kinds.finetune_job import training_run

    return f"xbox-ft-{training_run(attributes)}"


def test_job_is_submitted_polled_to_completion_and_its_model_recorded(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    attributes, name = wanted["job"], job_name(wanted["job"])
    set_progress(fake, name, "Queued", "Running", "Completed")
    # Another run registered a version of the same model first: lineage picks ours.
    seed_model_version(fake, "xbox-support", "xbox-ft", "1", job_name="xbox-ft-00000000")
    key = key_of(wanted["dataset"]["version"], "split:0.25:7")
    job = f"{WS}/jobs/{name}"

    start = len(fake.calls)
    messages: list[str] = []
    observed = azure_backend.handler("FineTuneJob").create(job_target(attributes), Progress(messages.append))

    assert sent(fake, start) == [
        ("GET", job, JOBS_API),  # no attempt of this run yet
        ("GET", "/registrymanagement/v1.0/registries/azureml/discovery", "v1.0"),
        ("GET", REGISTRY_MODEL + "/versions", "2021-10-01-dataplanepreview"),
        ("GET", REGISTRY_MODEL + "/versions/3", "2021-10-01-dataplanepreview"),
        ("GET", f"{WS}/data/support/versions/{key}", DATA_API),
        ("PUT", job, JOBS_API),
        ("GET", job, JOBS_API), ("GET", job, JOBS_API), ("GET", job, JOBS_API),
        ("GET", f"{WS}/models/xbox-ft/versions", MODELS_API),
    ]
    assert fake.calls[start + 2].url.startswith(REGISTRY_HOST)
    assert fake.calls[start + 2].query["$orderBy"] == "createdtime desc" and fake.calls[start + 2].query["$top"] == "1"
    put = fake.calls[start + 5].body["properties"]
    assert put["jobType"] == "FineTuning"
    assert put["experimentName"] == "xbox-ft" and put["displayName"] == "xbox-ft"
    assert put["description"] == "first run"
    details = put["fineTuningDetails"]
    assert details["taskType"] == "chatCompletion" and details["modelProvider"] == "Custom"
    assert details["model"] == {"jobInputType": "mlflow_model",
                                "uri": "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/3"}
    # azure-ai-ml turns azureml:NAME:VERSION into the data version's ARM id.
    assert details["trainingData"] == {"jobInputType": "uri_file", "uri": f"{WS}/data/support/versions/{key}"}
    assert details["validationData"] == {"jobInputType": "uri_file",
                                         "uri": f"{WS}/data/support-validation/versions/{key}"}
    # Azure's names, as strings; the learning rate is the catalog's base rate x the multiplier.
    assert details["hyperParameters"] == {"per_device_train_batch_size": "8", "learning_rate": "0.0003",
                                          "num_train_epochs": "2"}
    assert put["outputs"] == {"registered_model": {"jobOutputType": "mlflow_model", "assetName": "xbox-ft"}}
    stored = {k: v for k, v in attributes.items() if k != "status"}
    assert json.loads(put["tags"]["foundryctl.attributes"]) == stored
    assert put["tags"]["foundryctl.run"] == name.rsplit("-", 1)[1]
    assert put["properties"] == {}  # no git properties outside a repository

    assert observed.id == job
    assert observed.attributes == attributes  # Completed: the next plan is empty
    assert observed.outputs["status"] == "Completed"
    assert observed.outputs["model"] == {"id": f"{WS}/models/xbox-ft/versions/2", "name": "xbox-ft", "version": "2"}
    assert observed.outputs["studio_url"].startswith(f"https://ml.azure.com/runs/{name}")
    assert observed.outputs["error"] is None and observed.outputs["metrics"] is None
    assert messages == [f"submitted fine-tuning job {name} (Phi-4-mini-instruct on support:{key})",
                        "queued 0 min", "running 0 min"]

    # The deployment handler asks for the model of a run.
    assert azure_backend.handler("FineTuneJob").model_of("xbox-support", "xbox-ft", name.rsplit("-", 1)[1]) == \
        observed.outputs["model"]


def test_metrics_come_from_the_workspaces_mlflow_history_paged_and_by_step(project, azure_backend, root,
                                                                          monkeypatch: pytest.MonkeyPatch):
    from foundryctl.backends.azure import mlflow_metrics

    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    attributes, name = wanted["job"], job_name(wanted["job"])
    handler = azure_backend.handler("FineTuneJob")
    handler.create(job_target(attributes), Progress())
    monkeypatch.setattr(mlflow_metrics, "PAGE", 2)  # three points of `loss`: two pages
    # Metrics on the job's own run are read there (its child runs are not searched).
    log_metrics(fake, name, {"loss": [(1, 2.0), (2, 1.5), (3, 1.0)], "eval_loss": [(3, 1.2)],
                             "train_runtime": [(3, 42.0)]})
    start = len(fake.calls)

    rows = handler.metric_rows(job_target(attributes))

    assert rows == [{"type": "step", "step": 1, "train_loss": 2.0}, {"type": "step", "step": 2, "train_loss": 1.5},
                    {"type": "step", "step": 3, "train_loss": 1.0, "valid_loss": 1.2, "train_runtime": 42.0}]
    mlflow = [c for c in fake.calls[start:] if "/mlflow/" in c.path]
    assert all(c.url.startswith("https://eastus2.api.azureml.ms/mlflow/v1.0/subscriptions/") for c in mlflow)
    assert all(c.headers["Authorization"].startswith("Bearer ") for c in mlflow)
    assert [c.path.rsplit("/mlflow/", 1)[1] for c in mlflow] == [
        "runs/get", "metrics/get-history", "metrics/get-history", "metrics/get-history", "metrics/get-history"]

    fake.inject("GET", r"/mlflow/.*/runs/get", (403, {}, {"error_code": "PERMISSION_DENIED", "message": "no"}))
    with pytest.raises(BackendError) as refused:
        handler.metric_rows(job_target(attributes))
    assert refused.value.code == "MetricsUnavailable" and "403" in refused.value.message
    assert "Azure AI Developer" in (refused.value.hint or "")


def test_failed_job_raises_training_failed_with_azures_message(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    set_progress(fake, name, "Queued", "Failed", error="Training data has fewer than 10 examples per class")
    handler = azure_backend.handler("FineTuneJob")
    start = len(fake.calls)
    with pytest.raises(BackendError) as error:
        handler.create(job_target(wanted["job"]), Progress())
    assert error.value.code == "TrainingFailed"
    assert "Training data has fewer than 10 examples per class" in error.value.message
    assert f"https://ml.azure.com/runs/{name}" in (error.value.hint or "")
    assert sent(fake, start)[-3:] == [
        ("GET", WS, "2024-10-01-preview"),  # the workspace's discovery URL
        ("GET", "/discovery", None),
        ("GET", f"/history/v1.0{WS}/runs/{name}/details", "v1.0"),
    ]
    assert fake.calls[-2].url == "https://eastus2.api.azureml.ms/discovery"

    # Read shows it Failed (plan: apply retries it), and an update submits attempt 2.
    observed = handler.read(job_target(wanted["job"], f"{WS}/jobs/{name}"))
    assert observed.attributes["status"] == "Failed"
    assert observed.outputs["error"] == "Training data has fewer than 10 examples per class"
    set_progress(fake, f"{name}-2", "Running", "Completed")
    start = len(fake.calls)
    retried = handler.update(job_target(wanted["job"], observed.id), observed.attributes, Progress())
    assert retried.id == f"{WS}/jobs/{name}-2"
    assert retried.attributes == wanted["job"]
    assert ("PUT", f"{WS}/jobs/{name}-2", JOBS_API) in sent(fake, start)
    # Reads now follow the failed attempt to the next one.
    start = len(fake.calls)
    assert handler.read(job_target(wanted["job"], f"{WS}/jobs/{name}")).id == f"{WS}/jobs/{name}-2"
    assert sent(fake, start)[:2] == [("GET", f"{WS}/jobs/{name}", JOBS_API), ("GET", f"{WS}/jobs/{name}-2", JOBS_API)]


def test_canceled_job_raises_training_canceled(project, azure_backend, root):
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    set_progress(project, job_name(wanted["job"]), "Running", "Canceled")
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    assert error.value.code == "TrainingCanceled"


def test_absent_job_reads_as_none(project, azure_backend, root):
    attributes = desired(root)["job"]
    assert azure_backend.handler("FineTuneJob").read(job_target(attributes)) is None
    assert sent(project) == [("GET", f"{WS}/jobs/{job_name(attributes)}", JOBS_API)]


def test_throttled_job_reads_are_retried_after_retry_after(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    handler = azure_backend.handler("FineTuneJob")
    observed = handler.create(job_target(wanted["job"]), Progress())
    name = job_name(wanted["job"])
    fake.inject("GET", rf"/jobs/{name}$", arm_error(429, "TooManyRequests", "Rate limit exceeded",
                                                   {"Retry-After": "0"}), times=2)
    start = len(fake.calls)
    again = handler.read(job_target(wanted["job"], observed.id))
    assert again is not None and again.attributes == wanted["job"]
    assert sent(fake, start)[:3] == [("GET", f"{WS}/jobs/{name}", JOBS_API)] * 3


def test_delete_cancels_a_running_job_and_archives_it(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    job = f"{WS}/jobs/{name}"
    set_progress(fake, name, "Running")
    azure_backend.wait_for_jobs = False  # apply --no-wait
    handler = azure_backend.handler("FineTuneJob")
    observed = handler.create(job_target(wanted["job"]), Progress())
    assert observed.attributes["status"] == "Running"

    start = len(fake.calls)
    messages: list[str] = []
    handler.delete(job_target(wanted["job"], observed.id), Progress(messages.append))
    assert sent(fake, start) == [
        ("GET", job, JOBS_API), ("GET", f"{job}-2", JOBS_API),  # the attempts
        ("POST", f"{job}/cancel", "2023-04-01-preview"),
        ("GET", f"{job}/operationResults/cancel-{name}", "2023-04-01-preview"),
        # jobs.archive: the job (both api-versions), then run history's hidden flag
        ("GET", job, "2024-01-01-preview"), ("GET", job, JOBS_API),
        ("GET", WS, "2024-10-01-preview"), ("GET", "/discovery", None),
        ("PATCH", f"/history/v1.0{WS}/experiments/xbox-ft/runs/{name}", "v1.0"),
    ]
    assert fake.calls[-1].body == {"hidden": True}
    assert messages == [f"canceling job {name}", f"archived job {name}"]
    assert fake.get(job)["properties"]["isArchived"] is True
    assert handler.read(job_target(wanted["job"], observed.id)) is None

    # Applying it again is a new attempt: Azure never frees a job name.
    azure_backend.wait_for_jobs = True
    set_progress(fake, f"{name}-2", "Completed")
    again = handler.create(job_target(wanted["job"]), Progress())
    assert again.id == f"{job}-2" and again.attributes == wanted["job"]


def test_delete_archives_the_registered_model_version(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    set_progress(fake, name, "Completed")
    handler = azure_backend.handler("FineTuneJob")
    observed = handler.create(job_target(wanted["job"]), Progress())
    model = f"{WS}/models/xbox-ft/versions/1"
    assert observed.outputs["model"]["id"] == model

    start = len(fake.calls)
    handler.delete(job_target(wanted["job"], observed.id), Progress())
    calls = sent(fake, start)
    assert calls[:6] == [("GET", f"{WS}/jobs/{name}", JOBS_API), ("GET", f"{WS}/jobs/{name}-2", JOBS_API),
                         ("GET", f"{WS}/models/xbox-ft/versions", MODELS_API),
                         ("GET", model, MODELS_API), ("PUT", model, MODELS_API),
                         ("GET", f"{WS}/jobs/{name}", "2024-01-01-preview")]
    assert not [c for c in calls if c[0] == "POST"]  # nothing to cancel
    assert fake.calls[start + 4].body["properties"]["isArchived"] is True
    assert fake.get(model)["properties"]["isArchived"] is True
    assert calls[-1][0] == "PATCH"
    assert handler.model_of("xbox-support", "xbox-ft", name.rsplit("-", 1)[1]) is None


def test_description_change_is_made_in_place(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    set_progress(fake, name, "Completed")
    handler = azure_backend.handler("FineTuneJob")
    observed = handler.create(job_target(wanted["job"]), Progress())
    changed = {**wanted["job"], "description": "the first run, kept"}
    start = len(fake.calls)
    updated = handler.update(job_target(changed, observed.id), observed.attributes, Progress())
    patch = [c for c in fake.calls[start:] if c.method == "PATCH"]
    assert [c.path for c in patch] == [f"/history/v1.0{WS}/experiments/xbox-ft/runs/{name}"]
    assert patch[0].body["description"] == "the first run, kept"
    assert json.loads(patch[0].body["tags"]["foundryctl.attributes"])["description"] == "the first run, kept"
    assert not [c for c in fake.calls[start:] if c.method == "PUT"]  # no new job
    assert updated.attributes == changed


def test_model_azure_cannot_fine_tune_is_refused_before_submitting(project, azure_backend, root):
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    # validate refuses it too; the handler does not count on that.
    attributes = {**wanted["job"], "base_model": "SmolLM2-135M-Instruct"}
    start = len(project.calls)
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(attributes), Progress())
    assert error.value.code == "ModelNotAvailable"
    assert "SmolLM2-135M-Instruct" in error.value.message
    assert not [c for c in project.calls[start:] if c.method == "PUT"]


def test_missing_training_data_is_refused(project, azure_backend, root):
    wanted = desired(root)
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    assert error.value.code == "DataNotFound"
    assert not [c for c in project.calls if c.method == "PUT"]


def test_job_without_validation_data_is_submitted_without_it(project, azure_backend, root):
    fake = project
    wanted = desired(root, validation="null")
    apply_dataset(azure_backend, wanted["dataset"])
    set_progress(fake, job_name(wanted["job"]), "Completed")
    observed = azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    put = fake.requests("PUT", r"/jobs/")[0].body["properties"]["fineTuningDetails"]
    assert "validationData" not in put
    assert put["trainingData"]["uri"] == f"{WS}/data/support/versions/{key_of(wanted['dataset']['version'])}"
    assert observed.attributes == wanted["job"]


def test_azure_error_on_submit_is_reported_with_its_code(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    fake.inject("PUT", rf"/jobs/{name}$", arm_error(
        400, "QuotaExceeded", "Serverless fine-tuning quota for Phi-4-mini-instruct in eastus2 is exhausted."))
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    assert error.value.code == "QuotaExceeded"
    assert error.value.message == (f"submitting fine-tuning job {name}: Serverless fine-tuning quota for "
                                   "Phi-4-mini-instruct in eastus2 is exhausted.")


def test_a_version_holding_other_content_is_not_overwritten(project, azure_backend, root):
    fake = project
    attributes = desired(root, validation="null")["dataset"]
    key = key_of(attributes["version"])
    seed_data_version(fake, "xbox-support", "support", key, tags={"foundryctl.sha256": "0" * 64})
    with pytest.raises(BackendError) as error:
        apply_dataset(azure_backend, attributes)
    assert error.value.code == "Conflict"
    assert not [c for c in fake.calls if c.method == "PUT"]


def test_import_reads_the_latest_version(project, azure_backend, root):
    fake = project
    attributes = desired(root, validation="null")["dataset"]
    first = apply_dataset(azure_backend, attributes)
    start = len(fake.calls)
    imported = azure_backend.handler("Dataset").import_(first.id, "support")
    key = key_of(attributes["version"])
    assert sent(fake, start) == [("GET", f"{WS}/data/support", DATA_API),
                                 ("GET", f"{WS}/data/support/versions/{key}", DATA_API)]
    assert imported.attributes == attributes


def test_plans_say_what_a_delete_does_on_azure(azure_backend):
    from foundryctl.backends.base import Observed

    dataset = azure_backend.handler("Dataset").delete_notes(Observed("id", {}, {}))
    assert dataset == [("Azure archives data versions instead of deleting them (jobs and models that used "
                        "them can still read them)")]
    job = azure_backend.handler("FineTuneJob").delete_notes(
        Observed("id", {}, {"model": {"id": "m", "name": "xbox-ft", "version": "2"}}))
    assert job[-1] == "its model xbox-ft:2 is archived"


def test_validation_data_from_a_dataset_with_its_own_split_is_found_by_its_latest_version(
        project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])  # `support`, with a split of its own
    attributes = {**wanted["job"], "training_data": "support", "validation_data": "support",
                  "validation_version": wanted["dataset"]["version"]}
    set_progress(fake, job_name(attributes), "Completed")
    key = key_of(wanted["dataset"]["version"], "split:0.25:7")
    observed = azure_backend.handler("FineTuneJob").create(job_target(attributes), Progress())
    # The job cannot compute the key of a split it does not know: the latest version that
    # was registered for the content it names is used.
    assert [p for _, p, _ in sent(fake) if "/data/" in p][-3:] == [
        f"{WS}/data/support/versions/{key_of(wanted['dataset']['version'])}", f"{WS}/data/support",
        f"{WS}/data/support/versions/{key}"]
    details = fake.requests("PUT", r"/jobs/")[0].body["properties"]["fineTuningDetails"]
    assert details["validationData"]["uri"] == f"{WS}/data/support/versions/{key}"
    assert observed.attributes == attributes


@pytest.mark.parametrize("azure_status, status", [
    ("NotStarted", "Queued"), ("Queued", "Queued"), ("Preparing", "Queued"), ("Provisioning", "Queued"),
    ("Starting", "Queued"), ("Running", "Running"), ("Finalizing", "Running"), ("Completed", "Completed"),
    ("Failed", "Failed"), ("Canceled", "Canceled"), ("CancelRequested", "Canceled"),
    ("NotResponding", "NotResponding"), ("Paused", "Paused"), ("Unknown", "Unknown"),
])
def test_azure_job_statuses_read_in_foundryctls_words(project, azure_backend, root, azure_status, status):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    set_progress(fake, name, "Queued")
    azure_backend.wait_for_jobs = False
    handler = azure_backend.handler("FineTuneJob")
    observed = handler.create(job_target(wanted["job"]), Progress())
    set_progress(fake, name, azure_status)
    fake.get(observed.id)["properties"]["status"] = azure_status
    again = handler.read(job_target(wanted["job"], observed.id))
    assert (again.attributes["status"], again.outputs["azure_status"]) == (status, azure_status)


@pytest.mark.parametrize("stalled, said", [
    ("Paused", "the job is paused on Azure; waiting for it to be resumed"),
    ("NotResponding", "Azure reports the job as not responding; waiting for it to recover"),
    ("Unknown", "Azure reports the job's status as Unknown; waiting for a known status"),
])
def test_apply_waits_through_a_stalled_status_and_says_why(project, azure_backend, root, stalled, said):
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    set_progress(project, job_name(wanted["job"]), "Running", stalled, stalled, "Running", "Completed")
    messages: list[str] = []
    observed = azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress(messages.append))
    assert observed.outputs["status"] == "Completed" and observed.outputs["model"] is not None
    assert len([m for m in messages if m.startswith(said) and m.endswith(" 0 min")]) == 2
    assert messages[-1] == "running 0 min"


def test_the_wait_timeout_stops_apply_and_the_next_apply_adopts_the_job(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    name = job_name(wanted["job"])
    set_progress(fake, name, "Queued", "NotResponding")
    handler = azure_backend.handler("FineTuneJob")
    handler.config = azure_backend.config.model_copy(update={"job_wait_timeout": 0.05})
    with pytest.raises(BackendError) as error:
        handler.create(job_target(wanted["job"]), Progress())
    assert error.value.code == "WaitTimeout"
    assert f"fine-tuning job {name} is still NotResponding after" in error.value.message
    assert "apply again to keep waiting" in (error.value.hint or "")
    # Azure keeps the job; the next apply (nothing was recorded: a create again) adopts it
    # instead of submitting a second one, and converges once it completes.
    assert fake.get(f"{WS}/jobs/{name}")["properties"]["status"] == "NotResponding"
    set_progress(fake, name, "Running", "Completed")
    start = len(fake.calls)
    messages: list[str] = []
    observed = handler.create(job_target(wanted["job"]), Progress(messages.append))
    assert not [c for c in fake.calls[start:] if c.method == "PUT"]
    assert messages[0] == f"adopting job {name} (running)"  # the fake moves it on at each read
    assert observed.id == f"{WS}/jobs/{name}" and observed.attributes == wanted["job"]


def test_the_wait_timeout_is_a_backend_setting_with_a_default(root):
    from foundryctl.manifest import load_manifest

    assert load_manifest(write_manifest(root, "[]")).backend.job_wait_timeout == 172800
    assert load_manifest(write_manifest(root, "[]", job_wait_timeout=3600)).backend.job_wait_timeout == 3600
    from foundryctl.errors import ManifestError

    with pytest.raises(ManifestError) as error:
        load_manifest(write_manifest(root, "[]", job_wait_timeout=0))
    assert "job_wait_timeout" in str(error.value.diagnostics[0])


@pytest.mark.parametrize("status, note", [
    ("Paused", "training is paused on Azure; apply waits for it to be resumed"),
    ("NotResponding", "Azure reports the job as not responding; apply waits for it to recover"),
    ("Unknown", "Azure reports the job's status as Unknown; apply waits for a known one"),
])
def test_plans_say_what_a_stalled_job_waits_for(root, status, note):
    from foundryctl.kinds import KINDS

    after = desired(root)["job"]
    notes = KINDS["FineTuneJob"].describe_changes({**after, "status": status}, after)
    assert len(notes) == 1 and notes[0].startswith(note) and "job_wait_timeout" in notes[0]
    assert KINDS["FineTuneJob"].pending({"status": status}, {}) == f"training {status.lower()}"


def test_the_registry_models_region_tag_is_checked_before_submitting(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    # The registry says otherwise than the catalog (which lists eastus2): the registry wins.
    seed_registry_model(fake, "Phi-4-mini-instruct", ["1", "2", "3"],
                        tags={"maas-finetuning-deploy-regions": "['westus3', 'swedencentral']"})
    start = len(fake.calls)
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    assert error.value.code == "ModelRegionUnavailable"
    assert "only in swedencentral, westus3, and project xbox-support is in eastus2" in error.value.message
    assert "maas-finetuning-deploy-regions" in (error.value.hint or "")
    assert not [c for c in fake.calls[start:] if c.method == "PUT"]


def test_a_region_tag_naming_the_projects_region_lets_the_job_through(project, azure_backend, root):
    fake = project
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    seed_registry_model(fake, "Phi-4-mini-instruct", ["1", "2", "3"],
                        tags={"maas-finetuning-deploy-regions": "eastus2,westus3"})
    set_progress(fake, job_name(wanted["job"]), "Completed")
    start = len(fake.calls)
    observed = azure_backend.handler("FineTuneJob").create(job_target(wanted["job"]), Progress())
    assert observed.outputs["status"] == "Completed"
    assert ("GET", WS, "2024-10-01-preview") in sent(fake, start)  # the project's region, read for the tag


@pytest.mark.parametrize("value, regions", [
    (["eastus2", "West US 3"], {"eastus2", "westus3"}),
    ('["eastus2", "westus3"]', {"eastus2", "westus3"}),
    ("['eastus2', 'westus3']", {"eastus2", "westus3"}),
    ("eastus2, westus3", {"eastus2", "westus3"}),
    ("", set()), (None, set()), (7, set()),
])
def test_region_tags_are_read_in_the_shapes_they_come_in(value, regions):
    from foundryctl.backends.azure.handlers.finetune_job import _tag_regions

    assert _tag_regions(value) == regions


def test_a_retired_model_is_refused_before_submitting(project, azure_backend, root):
    wanted = desired(root)
    apply_dataset(azure_backend, wanted["dataset"])
    attributes = {**wanted["job"], "base_model": "Phi-3-mini-128k-instruct"}  # validate refuses it too
    start = len(project.calls)
    with pytest.raises(BackendError) as error:
        azure_backend.handler("FineTuneJob").create(job_target(attributes), Progress())
    assert error.value.code == "ModelRetired" and "2025-08-30" in error.value.message
    assert "Phi-4-mini-instruct" in (error.value.hint or "")
    assert not [c for c in project.calls[start:] if c.method == "PUT"]


# -- identity-only storage (shared-key access disabled) -----------------------------------

BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
RG_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"


def grant_blob_contributor(fake: Any, scope: str = RG_ID) -> None:
    from azurefake.families.authorization import seed_assignment
    from azurefake.fixtures import SIGNED_IN

    seed_assignment(fake, scope, "3c1f0e2d-4b5a-4c6d-9e8f-7a6b5c4d3e2f", principal=SIGNED_IN,
                    role_guid=BLOB_CONTRIBUTOR)


def test_identity_based_datastore_uploads_with_the_callers_token_and_no_key(project, azure_backend, root):
    from azurefake.families.data import identity_only_storage
    from azurefake.fixtures import TOKEN

    identity_only_storage(project)
    grant_blob_contributor(project)
    attributes = desired(root)["dataset"]

    observed = apply_dataset(azure_backend, attributes)

    assert project.requests("POST", r"/listSecrets$") == []  # no key asked for
    uploads = [c for c in project.calls if c.url.startswith(BLOB_HOST) and c.method == "PUT"]
    assert uploads and all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in uploads)
    assert len([k for k in blobs(project) if k[0] == storage_account("xbox-support")]) == 2  # both halves
    assert observed.attributes["version"] == attributes["version"]


def test_identity_based_upload_without_the_data_role_names_the_role(project, azure_backend, root):
    from azurefake.families.data import identity_only_storage

    identity_only_storage(project)  # Azure AI Developer alone: no blob data actions

    with pytest.raises(BackendError) as caught:
        apply_dataset(azure_backend, desired(root)["dataset"])

    assert "Storage Blob Data Contributor" in (caught.value.hint or "")
    assert blobs(project) == {}
    assert project.requests("PUT", r"/data/[^/]+/versions/") == []  # nothing registered


def test_plan_notes_a_missing_blob_data_role_of_an_identity_based_datastore(project, azure_backend, root):
    from azurefake.families.data import identity_only_storage
    from azurefake.fixtures import SIGNED_IN

    identity_only_storage(project)
    target = dataset_target(desired(root)["dataset"])

    [note] = azure_backend.handler("Dataset").create_notes(target)

    assert "identity-based" in note and "Storage Blob Data Contributor" in note
    assert f"{SIGNED_IN} does not hold there" in note
    [listing] = project.requests("GET", r"/providers/Microsoft\.Authorization/roleAssignments$")
    assert listing.path.startswith(f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/{storage_account('xbox-support')}/")
    assert listing.query["$filter"] == f"principalId eq '{SIGNED_IN}'"
    assert project.writes() == []


def test_plan_is_quiet_when_the_datastore_uses_the_key_or_the_role_is_held(project, tmp_path, root):
    from azurefake.families.data import identity_only_storage

    from foundryctl.backends.azure.backend import AzureBackend
    from foundryctl.backends.azure.config import AzureBackendConfig

    def notes() -> list[str]:
        config = AzureBackendConfig(type="azure", subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                                    location="eastus2", poll_interval=0.01)
        backend = AzureBackend(config, tmp_path)  # a fresh one per plan, as the CLI makes
        try:
            return backend.handler("Dataset").create_notes(dataset_target(desired(root)["dataset"]))
        finally:
            backend.close()

    assert notes() == []  # an account-key datastore: the key does the upload
    assert project.requests("GET", r"/roleAssignments$") == []

    identity_only_storage(project)
    grant_blob_contributor(project)
    assert notes() == []
    assert len(project.requests("GET", r"/roleAssignments$")) == 1


def test_plan_of_a_project_it_creates_has_no_storage_note(fake_azure, azure_backend, root):
    target = dataset_target(desired(root)["dataset"])  # xbox-support does not exist yet
    assert azure_backend.handler("Dataset").create_notes(target) == []
    assert fake_azure.writes() == []


def test_plan_says_when_the_storage_role_cannot_be_checked(project, azure_backend, root):
    from azurefake.families.data import identity_only_storage

    identity_only_storage(project)
    project.inject("GET", r"/roleAssignments$", arm_error(
        403, "AuthorizationFailed", "The client does not have authorization to perform action "
        "'Microsoft.Authorization/roleAssignments/read'."))

    [note] = azure_backend.handler("Dataset").create_notes(dataset_target(desired(root)["dataset"]))

    assert "cannot be read, so this is not checked" in note
