"""FineTuneJob with `runner: azure`: Azure AI Foundry's serverless fine-tuning of a catalog
model (a FineTuning job of model provider Custom, task ChatCompletion), submitted through
azure-ai-ml's `create_finetuning_job` and `MLClient.jobs`.

Names. A job is named `{resource name}-{training_run(attributes)}`, like the local runner's,
so a replacement (new data or hyperparameters) is a different job. Azure never frees a job
name, so a run that failed or was canceled is retried as a new attempt: `{base}-2`,
`{base}-3`, ... Reads and writes find the latest attempt by GETting the next name while the
one found failed, was canceled or was archived (deleted), until a 404.

Hyperparameters go to Azure under its names for custom models, as strings:
`per_device_train_batch_size` = batch_size, `learning_rate` = the catalog's base learning
rate x learning_rate_multiplier, `num_train_epochs` = epochs. The base model is the catalog's
registry asset id; a `.../labels/latest` id is resolved to a version first (as the azureml-
examples MaaS fine-tuning notebook does with `registry_ml_client.models.get(name,
label="latest")`), so the job records the exact base version it trained.

HTTP (ARM endpoint unless said; P = .../workspaces/PROJECT):
- read: GET P/jobs/NAME (api-version 2024-10-01-preview, through the generic resources
  client: azure-ai-ml's `jobs.get` GETs twice, 2024-01-01-preview then 2024-10-01-preview,
  and its Job entity drops `isArchived`, which is how a deleted job shows). A Completed job's
  model: GET P/models/OUTPUT/versions (azure-ai-ml `models.list`, 2023-08-01-preview), the
  version whose jobName is the job (the job resource names the model, not its version). A
  Failed job's message comes from run history: GET P (workspace, for its discovery URL),
  GET https://REGION.api.azureml.ms/discovery, GET .../history/v1.0/P/runs/NAME/details.
- create: the registry model (registry discovery on https://eastus.api.azureml.ms, then the
  registry's model versions, newest first; when its maas-finetuning-deploy-regions tag names
  regions, GET P for the project's region, refused unless listed), GET of the training data version
  (2023-04-01-preview; its content key is computed from the job's training_version, see
  handlers/dataset.py; its tags name the held-out validation asset; a key the job cannot
  compute falls back to the asset's latestVersion when that was registered for the content),
  then PUT P/jobs/NAME (2024-10-01-preview, jobType FineTuning); then, unless apply --no-wait,
  GET P/jobs/NAME every poll_interval until Completed, Failed (TrainingFailed) or Canceled
  (TrainingCanceled), or job_wait_timeout (WaitTimeout; the job trains on and the next apply
  adopts it). NotResponding, Paused and Unknown are waited through, each said in progress.
- update: a description change is `jobs.update` (run history PATCH .../experiments/E/runs/NAME);
  a Failed or Canceled job is submitted again as the next attempt.
- delete (every attempt): POST P/jobs/NAME/cancel (2023-04-01-preview) and its Location while
  it runs; `models.archive` of its model version (GET + PUT isArchived=true; azure-ai-ml has
  no model delete, and archiving keeps what a deployment serves readable); `jobs.archive`
  (two job GETs and the run history PATCH {"hidden": true}).
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from foundryctl.backends import arm
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    is_not_found,
    read_or_none,
    sdk_errors,
    unless_absent,
)
from foundryctl.backends.azure.handlers.base import (
    AzureHandler,
    json_tag,
    parse_child_id,
    read_json_tag,
)
from foundryctl.backends.azure.handlers.dataset import (
    ATTRIBUTES_TAG,
    DATA_API_VERSION,
    TAG,
    asset_version,
)
from foundryctl.backends.azure.handlers.foundry_finetune import JOBS as FOUNDRY_JOBS
from foundryctl.backends.azure.handlers.foundry_finetune import (
    FoundryFineTuning,
    is_foundry_job,
)
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.finetune_job import training_run

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

# The api-version azure-ai-ml 1.35 submits FineTuning jobs with.
JOBS_API_VERSION = "2024-10-01-preview"
TASK = "ChatCompletion"
# The registry model's tag naming the regions of its serverless fine-tuning and deployment
# (the azureml-examples MaaS fine-tuning notebook checks the project's region against it).
REGIONS_TAG = "maas-finetuning-deploy-regions"
OUTPUT = "registered_model"
# Azure's job statuses in foundryctl's words.
STATUSES = {
    "NotStarted": "Queued", "Queued": "Queued", "Preparing": "Queued", "Provisioning": "Queued",
    "Starting": "Queued", "Running": "Running", "Finalizing": "Running", "Completed": "Completed",
    "Failed": "Failed", "Canceled": "Canceled", "CancelRequested": "Canceled",
    # Not finished, not progressing: apply keeps waiting (up to job_wait_timeout) and says why.
    "NotResponding": "NotResponding", "Paused": "Paused", "Unknown": "Unknown",
}
# What a stalled job is waiting for, in the user's words.
STALLED = {
    "NotResponding": "Azure reports the job as not responding; waiting for it to recover",
    "Paused": "the job is paused on Azure; waiting for it to be resumed (in the Azure AI Foundry portal)",
    "Unknown": "Azure reports the job's status as Unknown; waiting for a known status",
}
RETRIED = ("Failed", "Canceled")  # a new attempt replaces these
FINISHED = ("Completed", "Failed", "Canceled")
_REGISTRY_LABEL = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)/labels/(?P<label>[^/]+)$")


class FineTuneJobHandler(AzureHandler):
    kind = "FineTuneJob"

    def __init__(self, backend: Any):
        super().__init__(backend)
        self._registries: dict[str, MLClient] = {}
        self._registries_lock = threading.Lock()
        self.foundry = FoundryFineTuning(self)  # jobs in a FoundryProject (Azure OpenAI fine-tuning)

    def identify(self, target: Target) -> str:
        if is_foundry_job(target):
            return self.foundry.identify(target)
        return self._job_id(target.attributes["project"], _base_name(target.name, target.attributes))

    def metric_rows(self, target: Target) -> list[dict[str, Any]]:
        """The job's training metrics, one row per logged step (`foundryctl jobs metrics`): a
        Foundry job's results file, a hub job's MLflow history (mlflow_metrics.py)."""
        if is_foundry_job(target):
            return self.foundry.metric_rows(target)
        from foundryctl.backends.azure.mlflow_metrics import MlflowMetrics

        project, name = self._where(target)
        job = self._latest_attempt(project, name)
        if job is None:
            raise BackendError("JobNotFound", f"job {name} does not exist in project {project}",
                               hint="apply the FineTuneJob first")
        workspace = read_or_none(lambda: self.clients.ml().workspaces.get(project), f"reading project {project}")
        tracking_uri = getattr(workspace, "mlflow_tracking_uri", None)
        if not tracking_uri:
            raise BackendError("MetricsUnavailable", f"project {project} reports no MLflow tracking server",
                               hint="its metrics are in the job's page in Azure AI Foundry")
        scope = self.config.arm_endpoint.rstrip("/") + "/.default"
        return MlflowMetrics(tracking_uri, lambda: self.clients.credential.get_token(scope).token).rows(job["name"])

    def _job_id(self, project: str, name: str) -> str:
        return arm.job_id(self.workspace_id(project), name)

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        if is_foundry_job(target):
            return self.foundry.read(target)
        project, name = self._where(target)
        job = self._latest_attempt(project, name)
        return self._observe(project, job) if job is not None else None

    def import_(self, backend_id: str, name: str) -> Observed | None:
        if f"/{FOUNDRY_JOBS}/" in backend_id:
            return self.foundry.import_(backend_id, name)
        project, job_name = parse_child_id(backend_id, "jobs", "a job")
        job = self._latest_attempt(project, job_name)
        return self._observe(project, job) if job is not None else None

    def model_of(self, project: str, job: str, run: str | None) -> dict[str, Any] | None:
        """{"id", "name", "version"} of the model the latest attempt of run `run` of FineTuneJob
        `job` registered (None: none yet). The deployment handler asks this."""
        if not run:
            return None
        found = self._latest_attempt(project, f"{job}-{run}")
        if found is None or _status(found) != "Completed":
            return None
        return self._registered_model(project, found)

    def _where(self, target: Target) -> tuple[str, str]:
        if target.backend_id:
            return parse_child_id(target.backend_id, "jobs", "a job")
        return target.attributes["project"], _base_name(target.name, target.attributes)

    def _observe(self, project: str, job: dict[str, Any]) -> Observed:
        props = job["properties"]
        status = _status(job)
        tags = props.get("tags") or {}
        stored = _stored_attributes(tags.get(ATTRIBUTES_TAG))
        attributes = {**stored, "description": props.get("description") or "", "status": status}
        model = self._registered_model(project, job) if status == "Completed" else None
        outputs = {
            "id": job["id"], "job_name": job["name"], "status": status, "azure_status": props.get("status"),
            "error": self._failure(project, job["name"]) if status == "Failed" else None,
            "model": model,
            # Azure keeps a fine-tune's metrics in the run's MLflow history, not on the job.
            "metrics": None,
            "studio_url": ((props.get("services") or {}).get("Studio") or {}).get("endpoint"),
        }
        return Observed(job["id"], attributes, outputs)

    def _get(self, project: str, name: str) -> dict[str, Any] | None:
        resources = self.clients.resources.resources
        found = read_or_none(lambda: resources.get_by_id(self._job_id(project, name), api_version=JOBS_API_VERSION),
                             f"reading job {name}")
        if found is None:
            return None
        return {"id": found.id, "name": found.name, "properties": found.properties or {}}

    def _latest_attempt(self, project: str, name: str, *, archived: bool = False) -> dict[str, Any] | None:
        """The job `name` or its latest retry; None when there is none (or, unless `archived`,
        when the latest was archived: deleted)."""
        job = self._get(project, name)
        while job is not None and (job["properties"].get("isArchived") or _status(job) in RETRIED):
            following = self._get(project, _next_attempt(job["name"]))
            if following is None:
                break
            job = following
        if job is not None and job["properties"].get("isArchived") and not archived:
            return None
        return job

    def _attempts(self, project: str, name: str) -> list[dict[str, Any]]:
        """Every attempt there is, first to last."""
        out = []
        job = self._get(project, name)
        while job is not None:
            out.append(job)
            job = self._get(project, _next_attempt(job["name"]))
        return out

    def _registered_model(self, project: str, job: dict[str, Any]) -> dict[str, Any] | None:
        output = ((job["properties"].get("outputs") or {}).get(OUTPUT) or {})
        name = output.get("assetName")
        if not name:
            return None
        version = output.get("assetVersion")
        if not version:
            # The job names its output model; the version is the one whose lineage is this job.
            models = self.clients.ml(project).models
            try:
                made = [m for m in models.list(name=name) if m.job_name == job["name"]]
            except sdk_errors() as exc:
                if is_not_found(exc):
                    return None
                raise backend_error(exc, f"listing versions of model {name}") from None
            if not made:
                return None
            version = max((str(m.version) for m in made), key=lambda v: (len(v), v))
        return {"id": f"{self.workspace_id(project)}/models/{name}/versions/{version}", "name": name,
                "version": str(version)}

    def _failure(self, project: str, name: str) -> str | None:
        """Azure's message for a failed run (run history keeps it, not the job resource)."""
        try:
            details = self.clients.ml(project).jobs._runs_operations.get_run_details(name)
        except (AttributeError, *sdk_errors()):  # a private SDK path: a best effort
            return None
        error = getattr(details, "error", None)
        error = error.as_dict() if hasattr(error, "as_dict") else error
        inner = (error.get("error") or error) if isinstance(error, dict) else {}
        message = inner.get("message") if isinstance(inner, dict) else None
        return str(message) if message else None

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        if is_foundry_job(target):
            return self.foundry.create(target, progress)
        a = target.attributes
        project, base = a["project"], _base_name(target.name, a)
        latest = self._latest_attempt(project, base, archived=True)
        if latest is not None and not latest["properties"].get("isArchived") and _status(latest) not in RETRIED:
            progress(f"adopting job {latest['name']} ({_status(latest).lower()})")
            return self._drive(project, latest, progress)
        name = base if latest is None else _next_attempt(latest["name"])
        return self._drive(project, self._submit(target, name, progress), progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        if is_foundry_job(target):
            return self.foundry.update(target, before, progress)
        a = target.attributes
        project, name = self._where(target)
        job = self._latest_attempt(project, name)
        if job is None:
            return self.create(target, progress)
        if _status(job) in RETRIED:
            progress(f"job {job['name']} {_status(job).lower()}; submitting it again")
            job = self._submit(target, _next_attempt(job["name"]), progress)
        elif (job["properties"].get("description") or "") != a.get("description", ""):
            calling(f"updating job {job['name']}", self.clients.ml(project).jobs.update, job["name"],
                    description=a.get("description", ""), tags={ATTRIBUTES_TAG: _attributes_tag(a)})
            job = self._get(project, job["name"]) or job
        return self._drive(project, job, progress)

    def _submit(self, target: Target, name: str, progress: Progress) -> dict[str, Any]:
        a = target.attributes
        project = a["project"]
        model, tags = self._base_model(a["base_model"])
        self._check_region(project, a["base_model"], tags)
        training, validation = self._data(project, a)
        hp = a["hyperparameters"]
        entry = _catalog_entry(a["base_model"])
        job = _finetuning_job(
            name=name, model=model, training=training, validation=validation, output=a["output_model"],
            hyperparameters={"per_device_train_batch_size": str(hp["batch_size"]),
                             "learning_rate": f"{entry.learning_rate * hp['learning_rate_multiplier']:.6g}",
                             "num_train_epochs": str(hp["epochs"])},
            display_name=target.name, description=a.get("description", ""), experiment_name=target.name,
            tags={ATTRIBUTES_TAG: _attributes_tag(a), TAG + "run": training_run(a)})
        calling(f"submitting fine-tuning job {name}", self.clients.ml(project).jobs.create_or_update, job)
        progress(f"submitted fine-tuning job {name} ({a['base_model']} on {training.split(':', 1)[1]})")
        submitted = self._get(project, name)
        if submitted is None:
            raise BackendError("ResourceNotFound", f"job {name} is not there right after its submission",
                               hint="apply again")
        return submitted

    def _base_model(self, base_model: str) -> tuple[str, dict[str, Any]]:
        """The registry asset id of a version of the base model, and that version's tags ({}
        when the catalog names a version outright: nothing is read)."""
        asset = _catalog_entry(base_model).azure_model_id
        assert asset is not None
        match = _REGISTRY_LABEL.match(asset)
        if match is None:
            return asset, {}
        registry = self._registry(match["registry"])
        found = calling(f"resolving {asset}", registry.models.get, match["name"], label=match["label"])
        return str(found.id), dict(getattr(found, "tags", None) or {})

    def _check_region(self, project: str, base_model: str, tags: dict[str, Any]) -> None:
        """The registry's word on where the model is fine-tuned and its result deployed (its
        REGIONS_TAG), over the catalog's offline copy that validate checked: refused before
        the job is submitted when the project is elsewhere. No tag: the catalog stands."""
        regions = _tag_regions(tags.get(REGIONS_TAG))
        if not regions:
            return
        workspace = read_or_none(lambda: self.clients.ml().workspaces.get(project), f"reading project {project}")
        location = str(getattr(workspace, "location", "") or "").replace(" ", "").lower()
        if location and location not in regions:
            raise BackendError(
                "ModelRegionUnavailable", f"Azure's model registry offers serverless fine-tuning of {base_model} "
                f"only in {', '.join(sorted(regions))}, and project {project} is in {location}",
                hint="move the hub to one of those regions (the registry model's "
                     f"{REGIONS_TAG} tag; foundryctl's catalog may be older)")

    def _registry(self, name: str) -> MLClient:
        from azure.ai.ml import MLClient

        from foundryctl.backends.azure.clients import RETRY, USER_AGENT

        with self._registries_lock:
            if name not in self._registries:
                self._registries[name] = calling(f"connecting to registry {name}", MLClient, self.backend.credential,
                                                 registry_name=name, enable_telemetry=False, show_progress=False,
                                                 user_agent=USER_AGENT, **RETRY)
            return self._registries[name]

    def _data(self, project: str, a: dict[str, Any]) -> tuple[str, str | None]:
        """azureml:NAME:VERSION of the training and validation data this run names."""
        validation_version = a.get("validation_version") or None
        split = validation_version if (not a.get("validation_data") and validation_version
                                       and validation_version.startswith("split:")) else None
        training = self._data_version(project, a["training_data"], a.get("training_version"), split)
        if a.get("validation_data"):
            validation = self._data_version(project, a["validation_data"], validation_version, None)
            return _ref(training), _ref(validation)
        held_out = training["tags"].get(TAG + "validation")
        return _ref(training), f"azureml:{held_out}" if held_out else None

    def _data_version(self, project: str, name: str, sha256: str | None, split: str | None) -> dict[str, Any]:
        """The version of data asset NAME that a Dataset registered for content `sha256`: the
        content key the job can compute, else (a validation_data Dataset that holds out a
        split of its own, whose key the job cannot know) the asset's latest version when it
        was registered for that content."""
        if not sha256:
            raise BackendError("DataNotFound", f"data asset {name!r} has no known version",
                               hint=f"declare `kind: Dataset` named {name} (with a readable file)")
        version = asset_version(sha256, split)
        found = self._data_resource(project, f"{name}/versions/{version}")
        if found is None:
            latest = (self._data_resource(project, name) or {}).get("latestVersion")
            candidate = self._data_resource(project, f"{name}/versions/{latest}") if latest else None
            stored = _stored_attributes((candidate or {}).get("tags", {}).get(ATTRIBUTES_TAG))
            if candidate is not None and stored.get("version") == sha256:
                found, version = candidate, str(latest)
        if found is None:
            raise BackendError("DataNotFound", f"data asset {name}:{version} is not in project {project}",
                               hint=f"apply Dataset.{name} first (a plan orders this for you)")
        return {"name": name, "version": version, "tags": found.get("tags") or {}}

    def _data_resource(self, project: str, path: str) -> dict[str, Any] | None:
        """The properties of .../data/PATH (a container or a version); None: absent or archived."""
        resources = self.clients.resources.resources
        data_id = f"{self.workspace_id(project)}/data/{path}"
        found = read_or_none(lambda: resources.get_by_id(data_id, api_version=DATA_API_VERSION),
                             f"reading data asset {path.replace('/versions/', ':')}")
        properties = (found.properties or {}) if found is not None else {}
        return None if found is None or properties.get("isArchived") else properties

    def _drive(self, project: str, job: dict[str, Any], progress: Progress) -> Observed:
        """Wait for the job (unless apply said not to) and report how it ended."""
        if self.backend.waiting:
            job = self._wait(project, job, progress)
        return self._observe(project, job)

    def _wait(self, project: str, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        started = time.monotonic()
        timeout = self.config.job_wait_timeout
        while self.backend.waiting:  # until it ends, or apply stops waiting (Ctrl-C): it runs on
            status = _status(job)
            waited = time.monotonic() - started
            if status == "Failed":
                message = self._failure(project, job["name"]) or "Azure gave no reason"
                studio = ((job["properties"].get("services") or {}).get("Studio") or {}).get("endpoint")
                raise BackendError("TrainingFailed", f"fine-tuning job {job['name']} failed: {message}",
                                   hint=(f"see {studio}; " if studio else "") + "apply again to retry it as a new attempt")
            if status == "Canceled":
                raise BackendError("TrainingCanceled", f"fine-tuning job {job['name']} was canceled",
                                   hint="apply again to submit it as a new attempt")
            if status == "Completed":
                return job
            if waited >= timeout:
                # Nothing is recorded for the job, and Azure keeps it: the next apply reads it by
                # its name and adopts it instead of submitting another.
                raise BackendError(
                    "WaitTimeout", f"fine-tuning job {job['name']} is still {_azure_status(job)} after "
                    f"{_duration(waited)} (job_wait_timeout {_duration(timeout)})",
                    hint="it trains on in Azure; apply again to keep waiting for it, raise the backend's "
                         "job_wait_timeout, or apply --no-wait and follow it with `foundryctl jobs logs`")
            stalled = STALLED.get(status)
            progress(f"{stalled or status.lower()} {int(waited) // 60} min")
            self.backend.pause(self.config.poll_interval)
            if not self.backend.waiting:
                break
            again = self._get(project, job["name"])
            if again is None:
                raise BackendError("ResourceNotFound", f"job {job['name']} disappeared while it ran")
            job = again
        return job

    # -- delete --------------------------------------------------------------------------

    def users(self, target: Target, observed: Observed) -> list[str]:
        """Serverless endpoints serving this job's model, the manifest's or not: Azure refuses
        to remove a model an endpoint serves, so the plan refuses first."""
        from foundryctl.backends.azure.handlers.deployment import endpoints_serving

        if is_foundry_job(target):
            return []  # a Foundry deployment names the model; Azure refuses nothing at a job's cancel
        model = observed.outputs.get("model")
        if not model:
            return []
        project, _ = parse_child_id(observed.id, "jobs", "a job")
        return endpoints_serving(self.backend, project, str(model["name"]), str(model["version"]))

    def delete_notes(self, observed: Observed) -> list[str]:
        if f"/{FOUNDRY_JOBS}/" in observed.id:
            return self.foundry.delete_notes(observed)
        notes = ["the job is archived (Azure keeps job names: applying it again submits a new attempt)"]
        if observed.outputs.get("model"):
            model = observed.outputs["model"]
            notes.append(f"its model {model['name']}:{model['version']} is archived")
        return notes

    def delete(self, target: Target, progress: Progress) -> None:
        if is_foundry_job(target):
            return self.foundry.delete(target, progress)
        project, name = self._where(target)
        ml = self.clients.ml(project)
        for job in self._attempts(project, _first_attempt(name)):  # state may hold a retry's id
            if job["properties"].get("isArchived"):
                continue
            if _status(job) not in FINISHED:
                progress(f"canceling job {job['name']}")
                unless_absent(lambda job=job: ml.jobs.begin_cancel(
                    job["name"], polling_interval=self.config.poll_interval).result(), f"canceling job {job['name']}")
            model = self._registered_model(project, job) if _status(job) == "Completed" else None
            if model is not None:
                unless_absent(lambda model=model: ml.models.archive(model["name"], version=model["version"]),
                              f"archiving model {model['name']}:{model['version']}")
                progress(f"archived model {model['name']}:{model['version']}")
            unless_absent(lambda job=job: ml.jobs.archive(job["name"]), f"archiving job {job['name']}")
            progress(f"archived job {job['name']}")


def _finetuning_job(*, name: str, model: str, training: str, validation: str | None, output: str,
                    hyperparameters: dict[str, str], display_name: str, description: str,
                    experiment_name: str, tags: dict[str, str]) -> Any:
    from azure.ai.ml.finetuning import create_finetuning_job

    common: dict[str, Any] = {
        "model": model, "task": TASK, "training_data": training, "hyperparameters": hyperparameters,
        "output_model_name_prefix": output, "name": name, "display_name": display_name,
        "description": description, "experiment_name": experiment_name, "tags": tags}
    if validation is not None:
        return create_finetuning_job(validation_data=validation, **common)
    # create_finetuning_job (azure-ai-ml 1.35) fails without validation data (it reads an
    # unassigned variable), so the job is made the way it makes it, minus validation.
    from azure.ai.ml import Input, Output
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities._job.finetuning.custom_model_finetuning_job import (
        CustomModelFineTuningJob,
    )

    return CustomModelFineTuningJob(
        task=TASK, model=Input(type=AssetTypes.MLFLOW_MODEL, path=model),
        training_data=Input(type=AssetTypes.URI_FILE, path=training), validation_data=None,
        hyperparameters=hyperparameters, outputs={OUTPUT: Output(type="mlflow_model", name=output)},
        name=name, display_name=display_name, description=description, experiment_name=experiment_name,
        tags=tags)


def _catalog_entry(base_model: str) -> Any:
    from foundryctl import catalog

    entry = catalog.find_base_model(base_model)
    if entry is None or not entry.azure_model_id:
        raise BackendError("ModelNotAvailable", f"{base_model} cannot be fine-tuned on Azure: foundryctl's "
                           "catalog has no Azure model catalog id for it",
                           hint="use a catalog model Azure fine-tunes (foundryctl schema lists them) "
                                "or `runner: local`")
    if entry.retired_by(catalog.today()):
        raise BackendError("ModelRetired", f"{entry.name} was retired on Azure on {entry.retired.isoformat()}",
                           hint=f"use {entry.replacement or 'a model Azure still serves'} as base_model")
    return entry


def _status(job: dict[str, Any]) -> str:
    raw = str(job["properties"].get("status") or "NotStarted")
    return STATUSES.get(raw, raw)


def _tag_regions(value: Any) -> frozenset[str]:
    """A registry tag's regions, written as a list, a JSON list or a comma-separated string."""
    import json

    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else re.split(r"[,;\s]+", text)
        except ValueError:
            value = re.split(r"[,;\s]+", text.strip("[]"))
    if not isinstance(value, (list, tuple)):
        return frozenset()
    return frozenset(str(v).strip().strip("'\"").replace(" ", "").lower() for v in value if str(v).strip())


def _azure_status(job: dict[str, Any]) -> str:
    return str(job["properties"].get("status") or "NotStarted")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _base_name(name: str, attributes: dict[str, Any]) -> str:
    return f"{name}-{training_run(attributes)}"


def _first_attempt(name: str) -> str:
    """base-3 -> base (the name of a job's first attempt)."""
    match = re.match(r"^(?P<base>.+-[0-9a-f]{8})-\d+$", name)
    return match["base"] if match else name


def _next_attempt(name: str) -> str:
    """base -> base-2 -> base-3 (a base name ends with the 8-hex-digit run digest)."""
    match = re.match(r"^(?P<base>.+-[0-9a-f]{8})(?:-(?P<n>\d+))?$", name)
    if match is None:
        return f"{name}-2"
    return f"{match['base']}-{int(match['n'] or 1) + 1}"


def _stored_attributes(tag: str | None) -> dict[str, Any]:
    """The attributes foundryctl tagged the job with ({} when missing or edited out of shape:
    the plan then shows what differs)."""
    stored = read_json_tag(tag)
    return stored if isinstance(stored, dict) else {}


def _attributes_tag(attributes: dict[str, Any]) -> str:
    stored = {k: v for k, v in attributes.items() if k != "status"}
    return json_tag(stored)


def _ref(version: dict[str, Any]) -> str:
    return f"azureml:{version['name']}:{version['version']}"

