"""The OpenAI-compatible fine-tuning API of Foundry resources ({endpoint}/openai/v1/files and
/openai/v1/fine_tuning/jobs), on a real loopback HTTP server: the openai client speaks httpx,
which `responses` cannot intercept. Once a test starts it (`serve`), the cognitive family gives
each account the endpoint {server}/{custom subdomain}/, so the backend finds it by reading the
account, as on Azure.

Shapes: the openai client's types (FileObject, FineTuningJob, FineTuningJobEvent,
FineTuningJobCheckpoint, cursor pages {object: list, data, has_more}); Azure's additions and
rules (Learn, "Customize a model with fine-tuning" and its Python SDK include; the model table
include fine-tune-models.md; "Direct preference optimization"):
- `trainingType` in the body (Standard, GlobalStandard, Developer; the client sends it through
  extra_body); Standard only in the model's Standard training regions, GlobalStandard and
  Developer only for models with Global training, from accounts in the Global regions;
- `method.type` supervised or dpo, dpo only for gpt-4o, gpt-4.1 and gpt-4.1-mini; o4-mini
  trains by reinforcement only;
- errors are {"error": {"code", "message"}} with 400 (invalidPayload, as Azure answers a
  model it does not fine-tune), 401 without a bearer token or api-key, 404 for an unknown id;
- uploads are `pending` until read back once, then `processed` (or `error` for a line that is
  not JSON, with status_details); a job goes validating_files -> queued -> running ->
  succeeded, one step per GET, and then has a fine_tuned_model, a results.csv result file and
  three checkpoints (the last epochs); cancel makes a job that has not finished `cancelled`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azurefake import FakeAzure

# Azure's fine-tuning table: Standard regions, Global training, methods.
MODELS: dict[str, dict[str, Any]] = {
    "gpt-4o-2024-08-06": {"standard": {"eastus2", "northcentralus", "swedencentral"}, "global": True,
                          "methods": {"supervised", "dpo"}},
    "gpt-4.1-2025-04-14": {"standard": {"northcentralus", "swedencentral"}, "global": True,
                           "methods": {"supervised", "dpo"}},
    "gpt-4.1-mini-2025-04-14": {"standard": {"northcentralus", "swedencentral"}, "global": True,
                                "methods": {"supervised", "dpo"}},
    "gpt-4.1-nano-2025-04-14": {"standard": {"northcentralus", "swedencentral"}, "global": True,
                                "methods": {"supervised"}},
    "o4-mini-2025-04-16": {"standard": {"eastus2", "swedencentral"}, "global": False,
                           "methods": {"reinforcement"}},
}
GLOBAL_REGIONS = {"australiaeast", "brazilsouth", "canadacentral", "canadaeast", "eastus", "eastus2",
                  "francecentral", "germanywestcentral", "italynorth", "japaneast", "koreacentral",
                  "northcentralus", "norwayeast", "polandcentral", "southeastasia", "southafricanorth",
                  "southcentralus", "southindia", "spaincentral", "swedencentral", "switzerlandwest",
                  "switzerlandnorth", "uksouth", "westeurope", "westus", "westus3"}
PROGRESSION = ("validating_files", "queued", "running", "succeeded")
_ids = itertools.count(1)


def _error(status: int, code: str, message: str) -> tuple[int, Any]:
    return status, {"error": {"code": code, "message": message}}


class OpenAIFineTuning:
    """The server and its state: uploaded files and fine-tuning jobs per account."""

    def __init__(self, fake: FakeAzure):
        self.fake = fake
        self.files: dict[str, dict[str, Any]] = {}  # id -> FileObject + "_account", "_content"
        self.jobs: dict[str, dict[str, Any]] = {}  # id -> FineTuningJob + "_account"
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # (method, path, json body)
        self.authorizations: set[str] = set()  # the Authorization headers requests carried
        self.lock = threading.Lock()
        self.hold: set[str] = set()  # job ids that stay where they are (a long run)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the account a request is for ------------------------------------------------

    def account_location(self, subdomain: str) -> str | None:
        for body in self.fake.resources.values():
            props = body.get("properties") or {}
            if (body.get("type") == "Microsoft.CognitiveServices/accounts"
                    and str(props.get("customSubDomainName") or "").lower() == subdomain.lower()):
                return str(body.get("location") or "").replace(" ", "").lower()
        return None

    # -- the API -----------------------------------------------------------------------

    def handle(self, method: str, account: str, path: str, query: dict[str, list[str]],
               body: Any, upload: dict[str, Any] | None) -> tuple[int, Any]:
        if method == "POST" and path == "files":
            return self._upload(account, upload or {})
        if method == "GET" and path == "files":
            purpose = (query.get("purpose") or [None])[0]
            found = [self._public(f) for f in self.files.values()
                     if f["_account"] == account and (purpose is None or f["purpose"] == purpose)]
            return 200, {"object": "list", "data": found, "has_more": False}
        parts = path.split("/")
        if parts[0] == "files" and len(parts) >= 2:
            found = self.files.get(parts[1])
            if found is None or found["_account"] != account:
                return _error(404, "fileNotFound", f"File with id '{parts[1]}' not found.")
            if len(parts) == 3 and parts[2] == "content" and method == "GET":
                return 200, found["_content"]
            if method == "GET":
                if found["status"] == "pending":  # processed once it has been looked at
                    self._process(found)
                return 200, self._public(found)
            if method == "DELETE":
                del self.files[parts[1]]
                return 200, {"id": parts[1], "object": "file", "deleted": True}
        if path == "fine_tuning/jobs":
            if method == "POST":
                return self._create_job(account, body or {})
            return self._list_jobs(account, query)
        if parts[:2] == ["fine_tuning", "jobs"] and len(parts) >= 3:
            job = self.jobs.get(parts[2])
            if job is None or job["_account"] != account:
                return _error(404, "jobNotFound", f"The specified fine-tuning job '{parts[2]}' was not found.")
            rest = parts[3:]
            if not rest and method == "GET":
                self._advance(job)
                return 200, self._public(job)
            if rest == ["cancel"] and method == "POST":
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return _error(400, "jobNotCancellable", f"Job {job['id']} has already finished.")
                job["status"] = "cancelled"
                job["finished_at"] = int(time.time())
                return 200, self._public(job)
            if rest == ["events"]:
                return 200, {"object": "list", "data": job["_events"][::-1], "has_more": False}
            if rest == ["checkpoints"]:
                return 200, {"object": "list", "data": job["_checkpoints"][::-1], "has_more": False}
        return _error(404, "NotFound", f"{method} /openai/v1/{path} is not an operation of this API")

    def _upload(self, account: str, form: dict[str, Any]) -> tuple[int, Any]:
        if form.get("purpose") != "fine-tune":
            return _error(400, "invalidPayload", "purpose must be fine-tune for fine-tuning data")
        content: bytes = form.get("file") or b""
        file_id = f"file-{uuid.uuid4().hex}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                               "created_at": int(time.time()), "filename": form.get("filename") or "upload.jsonl",
                               "purpose": "fine-tune", "status": "pending", "status_details": None,
                               "_account": account, "_content": content}
        return 200, self._public(self.files[file_id])

    @staticmethod
    def _process(found: dict[str, Any]) -> None:
        for number, line in enumerate(found["_content"].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                found.update(status="error", status_details=f"Line {number} is not valid JSON.")
                return
        found["status"] = "processed"

    def _create_job(self, account: str, body: dict[str, Any]) -> tuple[int, Any]:
        location = self.account_location(account)
        model = str(body.get("model") or "")
        spec = MODELS.get(model)
        if spec is None:
            return _error(400, "invalidPayload", "The specified base model does not support fine-tuning.")
        tier = body.get("trainingType") or "Standard"
        if tier not in ("Standard", "GlobalStandard", "Developer"):
            return _error(400, "invalidPayload", f"trainingType '{tier}' is not valid.")
        if tier == "Standard" and location not in spec["standard"]:
            return _error(400, "invalidPayload", f"Standard TrainingType is not supported for {model} in {location}.")
        if tier != "Standard" and (not spec["global"] or location not in GLOBAL_REGIONS):
            return _error(400, "invalidPayload", f"{tier} TrainingType is not supported for {model} in {location}.")
        method = (body.get("method") or {}).get("type") or "supervised"
        if method not in spec["methods"]:
            return _error(400, "invalidPayload", f"Fine-tuning method '{method}' is not supported for {model}.")
        for field in ("training_file", "validation_file"):
            file_id = body.get(field)
            if field == "training_file" or file_id:
                found = self.files.get(str(file_id))
                if found is None or found["_account"] != account:
                    return _error(400, "invalidPayload", f"{field} '{file_id}' was not found.")
                if found["status"] != "processed":
                    return _error(400, "invalidPayload", f"{field} '{file_id}' is not processed yet.")
        suffix = body.get("suffix")
        if suffix is not None and (len(suffix) > 18 or "." in suffix):
            return _error(400, "invalidPayload", "suffix has at most 18 characters and no '.'")
        job_id = f"ftjob-{uuid.uuid4().hex}"
        hp = ((body.get("method") or {}).get(method) or {}).get("hyperparameters") or body.get("hyperparameters") or {}
        job = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()) + next(_ids),
               "model": model, "training_file": body["training_file"],
               "validation_file": body.get("validation_file"), "status": "validating_files",
               "fine_tuned_model": None, "finished_at": None, "error": None, "result_files": [],
               "trained_tokens": None, "seed": body.get("seed", 0), "suffix": suffix,
               "hyperparameters": {"n_epochs": hp.get("n_epochs", 3), "batch_size": hp.get("batch_size", 1),
                                   "learning_rate_multiplier": hp.get("learning_rate_multiplier", 1.0)},
               "method": body.get("method") or {"type": "supervised"}, "metadata": body.get("metadata"),
               "organization_id": "org-azure", "trainingType": tier, "estimated_finish": None,
               "integrations": [], "_account": account,
               "_events": [self._event("Job enqueued", "info")], "_checkpoints": []}
        self.jobs[job_id] = job
        return 201, self._public(job)

    def _list_jobs(self, account: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        mine = sorted((j for j in self.jobs.values() if j["_account"] == account),
                      key=lambda j: j["created_at"], reverse=True)
        after = (query.get("after") or [None])[0]
        if after:
            ids = [j["id"] for j in mine]
            mine = mine[ids.index(after) + 1:] if after in ids else []
        limit = int((query.get("limit") or ["20"])[0])
        return 200, {"object": "list", "data": [self._public(j) for j in mine[:limit]],
                     "has_more": len(mine) > limit}

    def _advance(self, job: dict[str, Any]) -> None:
        if job["id"] in self.hold or job["status"] not in PROGRESSION[:-1]:
            return
        job["status"] = PROGRESSION[PROGRESSION.index(job["status"]) + 1]
        job["_events"].append(self._event(f"Job {job['status']}", "info"))
        if job["status"] == "succeeded":
            self._finish(job)

    def _finish(self, job: dict[str, Any]) -> None:
        epochs = int(job["hyperparameters"]["n_epochs"])
        steps_per_epoch = 4
        rows = [("step,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,"
                 "full_valid_loss,full_valid_mean_token_accuracy")]
        for step in range(1, epochs * steps_per_epoch + 1):
            loss = 2.0 / step
            end_of_epoch = step % steps_per_epoch == 0
            rows.append(f"{step},{loss:.4f},{0.5 + step / 100:.4f},{loss * 1.1:.4f},{0.45 + step / 100:.4f},"
                        + (f"{loss * 1.05:.4f},{0.46 + step / 100:.4f}" if end_of_epoch else ","))
        results = f"file-{uuid.uuid4().hex}"
        content = ("\n".join(rows) + "\n").encode()
        self.files[results] = {"id": results, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": "results.csv", "purpose": "fine-tune-results", "status": "processed",
                               "status_details": None, "_account": job["_account"], "_content": content}
        model = f"{job['model']}.ft-{job['id'].removeprefix('ftjob-')}"
        job.update(fine_tuned_model=model, result_files=[results], finished_at=int(time.time()),
                   trained_tokens=1000 * epochs)
        for epoch in range(max(1, epochs - 2), epochs + 1):
            step = epoch * steps_per_epoch
            job["_checkpoints"].append({
                "id": f"ftchkpt-{uuid.uuid4().hex}", "object": "fine_tuning.job.checkpoint",
                "created_at": int(time.time()), "fine_tuning_job_id": job["id"], "step_number": step,
                "fine_tuned_model_checkpoint": model if epoch == epochs else f"{model}:ckpt-step-{step}",
                "metrics": {"step": float(step), "train_loss": 2.0 / step, "valid_loss": 2.2 / step,
                            "full_valid_loss": 2.1 / step, "train_mean_token_accuracy": 0.5 + step / 100,
                            "full_valid_mean_token_accuracy": 0.46 + step / 100}})

    @staticmethod
    def _event(message: str, level: str) -> dict[str, Any]:
        return {"id": f"ftevent-{uuid.uuid4().hex}", "object": "fine_tuning.job.event",
                "created_at": int(time.time()), "level": level, "message": message, "type": "message"}

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    # -- HTTP ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                return

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                segments = url.path.strip("/").split("/")
                # /{subdomain}/openai/v1/{path}
                if len(segments) < 4 or segments[1:3] != ["openai", "v1"]:
                    return self._reply(*_error(404, "NotFound", "not an OpenAI v1 path"))
                auth = self.headers.get("Authorization", "")
                if not (auth.startswith("Bearer ") and len(auth) > 7) and not self.headers.get("api-key"):
                    return self._reply(*_error(401, "PermissionDenied", "Access denied due to missing "
                                               "subscription key or bearer token."))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body, upload = None, None
                kind = self.headers.get("Content-Type", "")
                if kind.startswith("multipart/form-data"):
                    upload = _multipart(raw, kind)
                elif raw:
                    body = json.loads(raw)
                path = "/".join(segments[3:])
                with api.lock:
                    api.authorizations.add(auth)
                    api.requests.append((method, path, body))
                    status, answer = api.handle(method, segments[0], path, parse_qs(url.query), body, upload)
                self._reply(status, answer)

            def _reply(self, status: int, answer: Any) -> None:
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(answer, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        return Handler


def _multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """purpose, file (bytes) and filename of a files upload."""
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.default).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""  # type: ignore[union-attr]
        if name == "file":
            out["file"] = payload
            out["filename"] = part.get_filename()
        elif name:
            out[name] = payload.decode()
    return out


def serve(fake: FakeAzure) -> OpenAIFineTuning:
    """Start the server for this fake (once) and point accounts' endpoints at it; tests that
    fine-tune in a Foundry project call it (the `foundry_openai` fixture), the rest keep
    Azure's endpoint names."""
    api = fake.state.get("openai.finetuning")
    if api is None:
        api = OpenAIFineTuning(fake)
        fake.state["openai.finetuning"] = api
        fake.cleanups.append(api.close)
    return api


def install(fake: FakeAzure) -> None:
    fake.state["openai.serve"] = lambda: serve(fake)
