"""FineTuneJob in a FoundryProject on Azure: Azure OpenAI fine-tuning through the Foundry
resource's OpenAI-compatible API, with the official `openai` client.

Where: the account's endpoint (GET of Microsoft.CognitiveServices/accounts/ACCOUNT at
2025-06-01, `properties.endpoint`) + `openai/v1/`; `OpenAI(base_url=..., api_key=TOKEN
PROVIDER)` with azure-identity's bearer token provider for https://cognitiveservices.azure.com/.default
(Learn: "Customize a model with fine-tuning", Python SDK; the caller needs a Foundry data-plane
role on the account, e.g. Azure AI User, to train). Jobs and files belong to the account; the
job's metadata names its project.

What goes over the wire (the contract tests assert it):
- files: GET files?purpose=fine-tune (one uploaded before, named for its content, is reused),
  else POST files (multipart, purpose fine-tune); GET files/ID until `processed` (`error`:
  FileProcessingFailed with Azure's status_details).
- create: GET fine_tuning/jobs (every page) for a job whose metadata says it is this run
  (`foundryctl_run` = NAME-RUN, the same name the job's id carries; a crash after the POST
  finds it here, so no second job starts); else POST fine_tuning/jobs with model (the catalog's
  versioned id), training_file, validation_file, suffix, seed, metadata, method
  ({type: supervised|dpo, <type>: {hyperparameters}}) and `trainingType` (extra_body). A job
  that failed or was cancelled is retried as a new job (attempt N+1 in its metadata).
- read: that list again, the latest attempt; GET fine_tuning/jobs/ID/checkpoints when it
  succeeded (checkpoints and their metrics become outputs).
- wait: GET fine_tuning/jobs/ID every poll_interval, GET .../events for progress lines.
- delete: POST fine_tuning/jobs/ID/cancel while it has not finished (a finished job stays
  in Azure's history; its fine-tuned model is deleted with the account). The uploaded files
  are deleted (DELETE files/ID).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.finetune_job import training_run

if TYPE_CHECKING:
    from openai import OpenAI

ACCOUNT_API_VERSION = "2025-06-01"
SCOPE = "https://cognitiveservices.azure.com/.default"
JOBS = "fineTuningJobs"
# Azure's job statuses in foundryctl's words (the openai client's Literal, plus Azure's
# `paused`, which a Developer-tier job goes through when its spot capacity is taken back).
STATUSES = {"validating_files": "Queued", "queued": "Queued", "pending": "Queued", "running": "Running",
            "succeeded": "Completed", "failed": "Failed", "cancelled": "Canceled", "paused": "Paused"}
RETRIED = ("Failed", "Canceled")
FINISHED = ("Completed", "Failed", "Canceled")
# results.csv columns (Learn, "Analyze your customized model") -> `jobs metrics` fields.
RESULT_COLUMNS = {"train_loss": "train_loss", "train_mean_token_accuracy": "train_mean_token_accuracy",
                  "valid_loss": "valid_loss", "validation_mean_token_accuracy": "valid_mean_token_accuracy",
                  "full_valid_loss": "full_valid_loss",
                  "full_valid_mean_token_accuracy": "full_valid_mean_token_accuracy"}


def is_foundry_job(target: Target) -> bool:
    return bool(target.attributes.get("foundry_project")) or f"/{JOBS}/" in (target.backend_id or "")


class FoundryFineTuning:
    """The Foundry half of the azure FineTuneJob handler (which hands it these targets)."""

    def __init__(self, handler: Any):
        self.handler = handler
        self.backend = handler.backend
        self.config = handler.config
        self._clients: dict[str, OpenAI] = {}
        self._lock = threading.Lock()

    # -- names ---------------------------------------------------------------------------

    def account_id(self, account: str) -> str:
        return f"{self.handler.resource_group_id}/providers/Microsoft.CognitiveServices/accounts/{account}"

    def identify(self, target: Target) -> str:
        a = target.attributes
        return f"{self.account_id(a['foundry_account'])}/projects/{a['foundry_project']}/{JOBS}/{_run_name(target)}"

    def _where(self, target: Target) -> tuple[str, str, str]:
        """(account, project, run name) of the target."""
        found = re.search(r"/accounts/([^/]+)/projects/([^/]+)/" + JOBS + r"/([^/]+)$", target.backend_id or "")
        if found:
            return found[1], found[2], found[3]
        a = target.attributes
        if not a.get("foundry_account"):
            raise BackendError("AccountUnknown", f"{target.address} names FoundryProject.{a.get('foundry_project')}, "
                               "which the manifest does not declare, so its account is not known",
                               hint="declare the FoundryProject (and its FoundryAccount) in the manifest")
        return a["foundry_account"], a["foundry_project"], _run_name(target)

    # -- the client ------------------------------------------------------------------------

    def client(self, account: str) -> OpenAI:
        with self._lock:
            if account not in self._clients:
                self._clients[account] = self._connect(account)
            return self._clients[account]

    def _endpoint(self, account: str) -> str | None:
        """The account's endpoint; None when there is no such account (or it has none)."""
        with self._lock:
            if account in self._clients:
                return str(self._clients[account].base_url)
        return self._endpoint_unlocked(account)

    def _endpoint_unlocked(self, account: str) -> str | None:
        """GET of the account (2025-06-01): its `properties.endpoint`."""
        from foundryctl.backends.azure.errors import read_or_none

        resources = self.handler.clients.resources.resources
        found = read_or_none(lambda: resources.get_by_id(self.account_id(account), api_version=ACCOUNT_API_VERSION),
                             f"reading FoundryAccount {account}")
        endpoint = (found.properties or {}).get("endpoint") if found is not None else None
        return str(endpoint) if endpoint else None

    def _connect(self, account: str) -> OpenAI:
        from azure.identity import get_bearer_token_provider
        from openai import OpenAI

        endpoint = self._endpoint_unlocked(account)
        if not endpoint:
            raise BackendError("AccountNotFound", f"FoundryAccount {account} is not there (or has no endpoint)",
                               hint="apply the FoundryAccount first (a plan orders this for you)")
        return OpenAI(base_url=endpoint.rstrip("/") + "/openai/v1/",
                      api_key=get_bearer_token_provider(self.backend.credential, SCOPE),
                      max_retries=3, timeout=120.0)

    # -- read ------------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        account, project, run = self._where(target)
        if self._endpoint(account) is None:
            return None  # no account (yet): no job in it
        jobs = self._attempts(account, run)
        return self._observe(account, project, run, jobs[-1], target.attributes) if jobs else None

    def model_of(self, account: str, run: str) -> str | None:
        """The fine-tuned model of run `run` (NAME-DIGEST) once it has succeeded; None before.
        The FoundryDeployment handler asks this."""
        jobs = self._attempts(account, run) if self._endpoint(account) else []
        return jobs[-1].fine_tuned_model if jobs and jobs[-1].status == "succeeded" else None

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.read(Target(f"FineTuneJob.{name}", "FineTuneJob", name, {}, backend_id))

    def _attempts(self, account: str, run: str) -> list[Any]:
        """Every job this run started, first to last."""
        client = self.client(account)
        found = _calling(f"listing fine-tuning jobs of {account}", lambda: [
            job for job in client.fine_tuning.jobs.list(limit=100)
            if (job.metadata or {}).get("foundryctl_run") == run])
        return sorted(found, key=lambda job: (int((job.metadata or {}).get("foundryctl_attempt") or 1),
                                              job.created_at))

    def _observe(self, account: str, project: str, run: str, job: Any, last_known: dict[str, Any]) -> Observed:
        status = STATUSES.get(job.status, job.status)
        method = getattr(job, "method", None)
        method_type = getattr(method, "type", None) or "supervised"
        extra = job.model_extra or {}
        attributes = {**last_known, "status": status, "method": method_type,
                      "training_type": extra.get("trainingType") or last_known.get("training_type")}
        checkpoints = self._checkpoints(account, job) if status == "Completed" else []
        outputs = {
            "id": self._backend_id(account, project, run), "job_id": job.id, "status": status,
            "azure_status": job.status, "base_model_id": job.model,
            "error": (job.error.message if job.error is not None and job.error.message else None),
            "model": ({"id": job.fine_tuned_model, "name": job.fine_tuned_model, "version": "1"}
                      if job.fine_tuned_model else None),
            "trained_tokens": job.trained_tokens, "training_type": extra.get("trainingType"),
            "result_files": list(job.result_files or []), "checkpoints": checkpoints,
            "metrics": checkpoints[-1]["metrics"] if checkpoints else None,
            "account": account, "project": project,
        }
        return Observed(outputs["id"], attributes, outputs)

    def _backend_id(self, account: str, project: str, run: str) -> str:
        return f"{self.account_id(account)}/projects/{project}/{JOBS}/{run}"

    def _checkpoints(self, account: str, job: Any) -> list[dict[str, Any]]:
        """The job's checkpoints as foundryctl's checkpoint rows: Azure keeps one per epoch for
        the last epochs, so the newest is the last epoch."""
        client = self.client(account)
        found = _calling(f"listing checkpoints of {job.id}",
                         lambda: list(client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)))
        found.sort(key=lambda c: c.step_number)
        epochs = int(getattr(job.hyperparameters, "n_epochs", None) or len(found) or 1)
        rows = []
        for i, checkpoint in enumerate(found):
            metrics = checkpoint.metrics.model_dump(exclude_none=True) if checkpoint.metrics else {}
            metrics.pop("step", None)
            rows.append({"name": checkpoint.fine_tuned_model_checkpoint, "id": checkpoint.id,
                         "epoch": epochs - (len(found) - 1 - i), "step": checkpoint.step_number,
                         "metrics": metrics})
        return rows

    def metric_rows(self, target: Target) -> list[dict[str, Any]]:
        """The job's results.csv (one row per training step) in `jobs metrics`' fields."""
        account, _, run = self._where(target)
        jobs = self._attempts(account, run)
        if not jobs or not jobs[-1].result_files:
            return []
        client = self.client(account)
        text = _calling("downloading the job's results file",
                        lambda: client.files.content(jobs[-1].result_files[0]).text)
        rows = []
        for raw in csv.DictReader(io.StringIO(text)):
            row: dict[str, Any] = {"type": "step", "step": int(float(raw["step"]))}
            for column, key in RESULT_COLUMNS.items():
                value = (raw.get(column) or "").strip()
                if value:
                    row[key] = float(value)
            rows.append(row)
        return rows

    # -- create / update ---------------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        account, project, run = self._where(target)
        attempts = self._attempts(account, run)
        latest = attempts[-1] if attempts else None
        if latest is not None and STATUSES.get(latest.status, latest.status) not in RETRIED:
            progress(f"adopting fine-tuning job {latest.id} ({latest.status})")
            return self._drive(account, project, run, latest, target.attributes, progress)
        if latest is not None:
            progress(f"job {latest.id} {latest.status}; submitting it again")
        job = self._submit(target, account, project, run, len(attempts) + 1, progress)
        return self._drive(account, project, run, job, target.attributes, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        # Everything a job trains forces a new run; what is left to do is to retry or wait.
        return self.create(target, progress)

    def _submit(self, target: Target, account: str, project: str, run: str, attempt: int,
                progress: Progress) -> Any:
        from foundryctl import catalog

        a = target.attributes
        model = catalog.find_foundry_model(a["base_model"])
        if model is None:
            raise BackendError("ModelNotAvailable", f"{a['base_model']} is not a model Foundry projects fine-tune")
        client = self.client(account)
        training = self._upload(client, run, a["training_file"], a.get("training_version"), progress)
        validation = (self._upload(client, run, a["validation_file"], a.get("validation_version"), progress)
                      if a.get("validation_file") else None)
        hp = a["hyperparameters"]
        method = a.get("method") or "supervised"
        settings: dict[str, Any] = {"n_epochs": hp["epochs"], "batch_size": hp["batch_size"],
                                    "learning_rate_multiplier": hp["learning_rate_multiplier"]}
        if method == "dpo" and hp.get("beta") is not None:
            settings["beta"] = hp["beta"]
        request: dict[str, Any] = {
            "model": model.model_id, "training_file": training, "suffix": _suffix(target.name, run),
            "seed": a.get("seed", 0), "method": {"type": method, method: {"hyperparameters": settings}},
            "metadata": {"foundryctl_run": run, "foundryctl_attempt": str(attempt),
                         "foundryctl_project": project, "foundryctl_address": target.address},
            # Azure's training tier: not a field of the openai client, so it goes in the body as is.
            "extra_body": {"trainingType": a["training_type"]}}
        if validation:
            request["validation_file"] = validation
        job = _calling(f"creating the fine-tuning job of {target.address}",
                       lambda: client.fine_tuning.jobs.create(**request))
        progress(f"submitted fine-tuning job {job.id} ({model.model_id}, {method}, {a['training_type']})")
        return job

    def _upload(self, client: OpenAI, run: str, path: str, sha256: str | None, progress: Progress) -> str:
        """The id of a processed upload of `path` (one made before for the same content is reused)."""
        local = Path(path) if Path(path).is_absolute() else self.backend.root / path
        data = _read(local)
        digest = hashlib.sha256(data).hexdigest()
        if sha256 and digest != sha256:
            raise BackendError("DataChanged", f"{path} changed since the plan was made",
                               hint="plan again (the job's data versions come from the file's content)")
        filename = f"{run}-{digest[:16]}.jsonl"
        existing = _calling("listing uploaded files", lambda: [
            f for f in client.files.list(purpose="fine-tune") if f.filename == filename and f.status != "error"])
        if existing:
            uploaded = existing[0]
        else:
            uploaded = _calling(f"uploading {path}", lambda: client.files.create(
                file=(filename, data, "application/jsonl"), purpose="fine-tune"))
            progress(f"uploaded {path} as {uploaded.id}")
        return self._processed(client, uploaded.id, path)

    def _processed(self, client: OpenAI, file_id: str, path: str) -> str:
        started = time.monotonic()
        while True:
            found = _calling(f"reading upload {file_id}", lambda: client.files.retrieve(file_id))
            if found.status == "processed":
                return file_id
            if found.status == "error":
                raise BackendError("FileProcessingFailed", f"Azure could not process {path} ({file_id}): "
                                   f"{found.status_details or 'no reason given'}",
                                   hint="fix the file (foundryctl validate checks its format) and apply again")
            if time.monotonic() - started > self.config.job_wait_timeout:
                raise BackendError("WaitTimeout", f"upload {file_id} of {path} is still {found.status}",
                                   hint="apply again to keep waiting for it")
            self.backend.pause(self.config.poll_interval)

    def _drive(self, account: str, project: str, run: str, job: Any, attributes: dict[str, Any],
               progress: Progress) -> Observed:
        if self.backend.waiting:
            job = self._wait(account, job, progress)
        return self._observe(account, project, run, job, attributes)

    def _wait(self, account: str, job: Any, progress: Progress) -> Any:
        client = self.client(account)
        started = time.monotonic()
        seen: set[str] = set()
        while self.backend.waiting:
            status = STATUSES.get(job.status, job.status)
            if status == "Failed":
                message = job.error.message if job.error is not None and job.error.message else "Azure gave no reason"
                raise BackendError("TrainingFailed", f"fine-tuning job {job.id} failed: {message}",
                                   hint="apply again to retry it as a new job")
            if status == "Canceled":
                raise BackendError("TrainingCanceled", f"fine-tuning job {job.id} was cancelled",
                                   hint="apply again to submit it as a new job")
            if status == "Completed":
                return job
            waited = time.monotonic() - started
            if waited >= self.config.job_wait_timeout:
                raise BackendError("WaitTimeout", f"fine-tuning job {job.id} is still {job.status} after "
                                   f"{int(waited)} s (job_wait_timeout)",
                                   hint="it trains on in Azure; apply again to keep waiting (the job is found "
                                        "by its metadata, not submitted again)")
            job_id = job.id
            events = _calling(f"reading events of {job_id}",
                              lambda job_id=job_id: list(client.fine_tuning.jobs.list_events(job_id, limit=20)))
            for event in reversed(events):
                if event.id not in seen:
                    seen.add(event.id)
                    progress(event.message)
            self.backend.pause(self.config.poll_interval)
            if not self.backend.waiting:
                break
            job = _calling(f"reading fine-tuning job {job_id}", lambda job_id=job_id: client.fine_tuning.jobs.retrieve(job_id))
        return job

    # -- delete ------------------------------------------------------------------------------

    def delete_notes(self, observed: Observed) -> list[str]:
        return ["a running job is cancelled; Azure keeps finished jobs in the account's history"]

    def delete(self, target: Target, progress: Progress) -> None:
        account, _, run = self._where(target)
        client = self.client(account)
        for job in self._attempts(account, run):
            if STATUSES.get(job.status, job.status) not in FINISHED:
                _calling(f"cancelling fine-tuning job {job.id}", lambda job=job: client.fine_tuning.jobs.cancel(job.id))
                progress(f"cancelled fine-tuning job {job.id}")
        for uploaded in _calling("listing uploaded files", lambda: [
                f for f in client.files.list(purpose="fine-tune") if f.filename.startswith(f"{run}-")]):
            _calling(f"deleting upload {uploaded.id}", lambda uploaded=uploaded: client.files.delete(uploaded.id))


def _run_name(target: Target) -> str:
    return f"{target.name}-{training_run(target.attributes)}"


def _suffix(name: str, run: str) -> str:
    """Azure's suffix: at most 18 characters and no '.' (Learn); the run digest keeps it unique."""
    digest = run.rsplit("-", 1)[-1]
    head = re.sub(r"[^A-Za-z0-9-]", "-", name)[: 18 - len(digest) - 1].strip("-")
    return f"{head}-{digest}" if head else digest


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BackendError("DataNotFound", f"cannot read {path}: {exc.strerror or exc}") from None


def _calling(doing: str, call: Any) -> Any:
    """The call's result; an OpenAI API error as a BackendError with Azure's code and message."""
    import openai

    try:
        return call()
    except openai.APIStatusError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = str(inner.get("code") or exc.status_code)
        message = str(inner.get("message") or exc.message)
        hint = None
        if exc.status_code in (401, 403):
            hint = ("the signed-in principal needs a Foundry data-plane role on the account (Azure AI User "
                    "to fine-tune; see docs/azure-backend.md)")
        raise BackendError(code, f"{doing}: {message}", hint=hint) from None
    except openai.APIConnectionError as exc:
        raise BackendError("ConnectionError", f"{doing}: {exc.message}",
                           hint="check the account's endpoint and network access (public_network_access)") from None
