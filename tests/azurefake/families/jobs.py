"""Fine-tuning jobs, the models they register, run history and the azureml model registry.

- Jobs (Microsoft.MachineLearningServices/workspaces/jobs, the FineTuningJob shapes of the
  2024-10-01-preview examples): PUT stores the job as NotStarted; every GET moves it one
  step along `fake.state["job_progress"][name]` (default Queued, Running, Completed), so a
  test chooses the path a job takes (`set_progress`). Reaching Completed registers the output
  model (a version of `outputs.registered_model.assetName` whose `jobName` is the job);
  reaching Failed records the error run history reports. POST .../cancel answers 202 with a
  Location the poller follows.
- Models (workspaces/models/NAME/versions): list, get and PUT (archive).
- Run history on the workspace's discovery host ({region}.api.azureml.ms): the discovery
  document, run details (the error of a failed run) and PATCH of a run (`hidden` is how
  azure-ai-ml archives a job; MFE shows it as properties.isArchived).
- MLflow on the same host (.../mlflow/v1.0/...workspaces/WS/api/2.0/mlflow): runs/get,
  runs/search by parent run and metrics/get-history, paged. A job that reaches Completed logs
  TRAINING_METRICS on a child run (`NAME_finetune`), so that both places foundryctl reads (the
  job's run, then its child runs) are exercised; which one Azure uses is not proven live.
  `log_metrics` puts metrics on any run.
- The azureml system registry: registry discovery and model container/version reads, for
  resolving `azureml://registries/azureml/models/NAME/labels/latest` to a version.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from azurefake import FakeAzure, Reply, arm_error, not_found
from azurefake.families.workspaces import WS_PATH, workspace_id

JOB_PATH = WS_PATH + r"/jobs/(?P<job>[^/]+)"
MODEL_PATH = WS_PATH + r"/models/(?P<model>[^/]+)"
REGISTRY = "azureml"
REGISTRY_REGION = "eastus"
# Where the registry discovery says azureml's data plane lives.
REGISTRY_HOST = f"https://cert-{REGISTRY_REGION}.experiments.azureml.net"
REGISTRY_PATH = (r"/mferp/managementfrontend/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
                 r"/providers/Microsoft\.MachineLearningServices/registries/(?P<registry>[^/]+)"
                 r"/models/(?P<model>[^/]+)")
REGISTRY_SUBSCRIPTION = "5f5f5f5f-0000-4000-8000-000000000001"
REGISTRY_RESOURCE_GROUP = "registry-builtin-prod-eastus-01"
DEFAULT_PROGRESS = ("Queued", "Running", "Completed")
TERMINAL = ("Completed", "Failed", "Canceled")
SYSTEM_DATA = {"createdAt": "2026-11-25T00:00:00Z", "createdBy": "ml-engineer@contoso.com",
               "createdByType": "User", "lastModifiedAt": "2026-11-25T00:00:00Z"}


def set_progress(fake: FakeAzure, job: str, *statuses: str, error: str | None = None) -> None:
    """The statuses successive GETs of `job` report (the last one stays), and the error run
    history reports when it fails."""
    fake.state.setdefault("job_progress", {})[job] = list(statuses)
    if error is not None:
        fake.state.setdefault("job_errors", {})[job] = error


def seed_registry_model(fake: FakeAzure, name: str, versions: list[str], *,
                        tags: dict[str, str] | None = None) -> None:
    """A model in the azureml registry; the last version is `latest`. `tags` go on every
    version (the registry's Phi models carry `maas-finetuning-deploy-regions`, as the
    azureml-examples MaaS fine-tuning notebook reads it)."""
    fake.state.setdefault("registry_models", {})[name] = list(versions)
    fake.state.setdefault("registry_model_tags", {})[name] = dict(tags or {})


def model_id(fake: FakeAzure, workspace: str, name: str) -> str:
    return f"{workspace_id(fake, workspace)}/models/{name}"


def seed_model_version(fake: FakeAzure, workspace: str, name: str, version: str, *, job_name: str | None,
                       tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Register a model version directly (another job's output, say)."""
    return _register_model(fake, model_id(fake, workspace, name), version, job_name, tags)


def _register_model(fake: FakeAzure, container_id: str, version: str, job_name: str | None,
                    tags: dict[str, str] | None = None) -> dict[str, Any]:
    name = container_id.rsplit("/", 1)[1]
    workspace = container_id.split("/models/")[0].rsplit("/", 1)[1]
    container = fake.get(container_id) or {
        "id": container_id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/models",
        "properties": {"description": None, "tags": {}, "properties": {}, "isArchived": False},
        "systemData": SYSTEM_DATA}
    container["properties"]["latestVersion"] = version
    container["properties"]["nextVersion"] = str(int(version) + 1) if version.isdigit() else None
    fake.put(container_id, container)
    resource = {
        "id": f"{container_id}/versions/{version}", "name": version,
        "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
        "properties": {"description": None, "tags": dict(tags or {}), "properties": {},
                       "isAnonymous": False, "isArchived": False, "flavors": {"mlflow": {"data": {}}},
                       "modelType": "mlflow_model", "jobName": job_name,
                       "modelUri": f"azureml://locations/eastus2/workspaces/{workspace}/models/{name}/versions/{version}",
                       "stage": "Development"},
        "systemData": SYSTEM_DATA}
    return fake.put(resource["id"], resource)


# -- jobs ----------------------------------------------------------------------------------

def _put_job(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        ws_path = call.path.split("/jobs/")[0]
        if fake.get(ws_path) is None:
            return not_found(ws_path)
        name = match.group("job")
        existing = fake.get(call.path)
        body = call.body or {}
        props = copy.deepcopy(body.get("properties", {}))
        if existing is not None:
            if props.get("jobType") != existing["properties"]["jobType"] or _inputs(props) != _inputs(existing["properties"]):
                # Jobs are immutable once submitted.
                return arm_error(400, "UserError", f"A job with name '{name}' already exists; only its "
                                 "display name, description, tags and archive state can be changed.")
            existing["properties"].update({k: props[k] for k in ("description", "tags", "displayName", "isArchived")
                                           if k in props})
            return 200, {}, fake.put(call.path, existing)
        ws = match.group("ws")
        props.update({
            "status": "NotStarted", "isArchived": bool(props.get("isArchived", False)),
            "identity": props.get("identity") or {"identityType": "AMLToken"},
            "services": {"Studio": {"jobServiceType": "Studio", "endpoint":
                                    f"https://ml.azure.com/runs/{name}?wsid={ws_path}&tid=72f988bf-86f1-41af-91ab-2d7cd011db47"}},
        })
        resource = {"id": call.path, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                    "properties": props, "systemData": SYSTEM_DATA}
        fake.state.setdefault("job_workspaces", {})[name] = ws
        return 201, {}, fake.put(call.path, resource)
    return handler


def _inputs(props: dict[str, Any]) -> Any:
    details = props.get("fineTuningDetails") or {}
    return {k: (details.get(k) or {}).get("uri") for k in ("model", "trainingData", "validationData")}


def _workspace_gone(fake: FakeAzure, path: str) -> Reply | None:
    """A deleted project takes its jobs and models along."""
    workspace = re.match(r"^" + WS_PATH, path, re.IGNORECASE)
    if workspace is not None and fake.get(workspace.group(0)) is None:
        return not_found(workspace.group(0))
    return None


def _get_job(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        gone = _workspace_gone(fake, call.path)
        if gone is not None:
            return gone
        job = fake.get(call.path)
        if job is None:
            return not_found(call.path)
        _advance(fake, job)
        return 200, {}, job
    return handler


# What a finished job's trainer logged: (metric, [(step, value)]).
TRAINING_METRICS = {"loss": [(10, 1.9), (20, 1.4), (30, 1.1)], "learning_rate": [(10, 2e-4), (20, 1e-4), (30, 0.0)],
                    "eval_loss": [(30, 1.25)]}


def log_metrics(fake: FakeAzure, run: str, metrics: dict[str, list[tuple[int, float]]],
                parent: str | None = None) -> None:
    """MLflow metrics on run `run` (a child of `parent` when given)."""
    runs = fake.state.setdefault("mlflow_runs", {})
    runs[run] = {"parent": parent, "metrics": {k: list(v) for k, v in metrics.items()}}


def _advance(fake: FakeAzure, job: dict[str, Any]) -> None:
    props = job["properties"]
    if props["status"] in TERMINAL:
        return
    steps = fake.state.setdefault("job_progress", {}).setdefault(job["name"], list(DEFAULT_PROGRESS))
    if steps:
        props["status"] = steps.pop(0) if len(steps) > 1 else steps[0]
    if props["status"] == "Completed":
        output = (props.get("outputs") or {}).get("registered_model") or {}
        name = output.get("assetName")
        if name:
            container_id = job["id"].split("/jobs/")[0] + f"/models/{name}"
            existing = fake.children(container_id, "versions")
            version = str(max([int(v["name"]) for v in existing if v["name"].isdigit()] or [0]) + 1)
            _register_model(fake, container_id, version, job["name"])
        log_metrics(fake, f"{job['name']}_finetune", TRAINING_METRICS, parent=job["name"])


def _cancel_job(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        job_path = call.path.rsplit("/cancel", 1)[0]
        job = fake.get(job_path)
        if job is None:
            return not_found(job_path)
        if job["properties"]["status"] not in TERMINAL:
            job["properties"]["status"] = "Canceled"
            fake.state.setdefault("job_progress", {})[job["name"]] = ["Canceled"]
        location = f"https://management.azure.com{job_path}/operationResults/cancel-{job['name']}?api-version={call.api_version}"
        return 202, {"Location": location, "Retry-After": "0"}, None
    return handler


def _cancel_result(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        return 200, {}, None
    return handler


# -- models ---------------------------------------------------------------------------------

def _get(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        gone = _workspace_gone(fake, call.path)
        if gone is not None:
            return gone
        resource = fake.get(call.path)
        return (200, {}, resource) if resource is not None else not_found(call.path)
    return handler


def _list_model_versions(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        gone = _workspace_gone(fake, call.path)
        if gone is not None:
            return gone
        container_id = call.path.rsplit("/versions", 1)[0]
        versions = fake.children(container_id, "versions")
        view = (call.query.get("listViewType") or "ActiveOnly").lower()
        if view == "activeonly":
            versions = [v for v in versions if not v["properties"].get("isArchived")]
        elif view == "archivedonly":
            versions = [v for v in versions if v["properties"].get("isArchived")]
        return 200, {}, {"value": versions}
    return handler


def _put_model_version(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        existing = fake.get(call.path)
        if existing is None:
            return arm_error(400, "UserError", "foundryctl's fake only updates model versions jobs registered")
        props = (call.body or {}).get("properties", {})
        for key in ("description", "tags", "isArchived", "stage"):
            if key in props:
                existing["properties"][key] = props[key]
        return 200, {}, fake.put(call.path, existing)
    return handler


# -- run history (the workspace's data plane) -----------------------------------------------

def _discovery(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        region = call.url.split("//", 1)[1].split(".", 1)[0]
        api = f"https://{region}.api.azureml.ms"
        return 200, {}, {"api": api, "catalog": api, "experimentation": api, "gallery": api, "history": api,
                         "hyperdrive": api, "labeling": api, "modelmanagement": api, "pipelines": api,
                         "studiotrafficmanager": "https://ml.azure.com"}
    return handler


def _job_of_run(fake: FakeAzure, match: Any) -> dict[str, Any] | None:
    path = (f"/subscriptions/{match.group('sub')}/resourceGroups/{match.group('rg')}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{match.group('ws')}/jobs/{match.group('run')}")
    return fake.get(path)


def _run_details(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        job = _job_of_run(fake, match)
        if job is None:
            return 404, {}, {"error": {"code": "UserError", "message": f"Run {match.group('run')} was not found",
                                       "innerError": {"code": "NotFoundError"}}}
        details: dict[str, Any] = {"runId": job["name"], "status": job["properties"]["status"],
                                   "target": "serverless", "properties": {}, "inputDatasets": [],
                                   "outputDatasets": [], "logFiles": {}}
        message = fake.state.get("job_errors", {}).get(job["name"])
        if job["properties"]["status"] == "Failed" and message:
            details["error"] = {"error": {"code": "UserError", "message": message, "messageFormat": message,
                                          "messageParameters": {}, "details": [],
                                          "innerError": {"code": "BadArgument"}},
                                "time": "2026-11-25T00:10:00Z", "componentName": "FineTuning"}
        return 200, {}, details
    return handler


def _patch_run(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        job = _job_of_run(fake, match)
        if job is None:
            return 404, {}, {"error": {"code": "UserError", "message": "Run not found"}}
        body = call.body or {}
        if body.get("hidden") is not None:
            job["properties"]["isArchived"] = bool(body["hidden"])
        for source, target in (("description", "description"), ("displayName", "displayName")):
            if body.get(source) is not None:
                job["properties"][target] = body[source]
        if body.get("tags") is not None:
            job["properties"]["tags"] = dict(body["tags"])
        fake.put(job["id"], job)
        return 200, {}, {"runId": job["name"], "status": job["properties"]["status"],
                         "hidden": job["properties"]["isArchived"], "tags": job["properties"].get("tags", {})}
    return handler


# -- MLflow (the workspace's tracking server) -------------------------------------------------

def _mlflow_run(fake: FakeAzure, run_id: str) -> dict[str, Any]:
    entry = fake.state.get("mlflow_runs", {}).get(run_id) or {"parent": None, "metrics": {}}
    tags = [{"key": "mlflow.parentRunId", "value": entry["parent"]}] if entry["parent"] else []
    latest = [{"key": k, "value": v[-1][1], "timestamp": 1764547200000 + v[-1][0], "step": v[-1][0]}
              for k, v in entry["metrics"].items() if v]
    return {"info": {"run_id": run_id, "run_uuid": run_id, "experiment_id": "7", "status": "FINISHED"},
            "data": {"metrics": latest, "params": [], "tags": tags}}


def _mlflow_get_run(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        run_id = call.query.get("run_id", "")
        known = run_id in fake.state.get("mlflow_runs", {}) or _job_of_run_id(fake, match, run_id) is not None
        if not known:
            return 404, {}, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run '{run_id}' not found"}
        return 200, {}, {"run": _mlflow_run(fake, run_id)}
    return handler


def _job_of_run_id(fake: FakeAzure, match: Any, run_id: str) -> dict[str, Any] | None:
    return fake.get(f"/subscriptions/{match.group('sub')}/resourceGroups/{match.group('rg')}/providers/"
                    f"Microsoft.MachineLearningServices/workspaces/{match.group('ws')}/jobs/{run_id}")


def _mlflow_search(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        found = re.fullmatch(r"tags\.mlflow\.parentRunId\s*=\s*'([^']+)'", (call.body or {}).get("filter", "").strip())
        if found is None:
            return 400, {}, {"error_code": "INVALID_PARAMETER_VALUE", "message": "unsupported filter"}
        children = [r for r, e in fake.state.get("mlflow_runs", {}).items() if e["parent"] == found.group(1)]
        return 200, {}, {"runs": [_mlflow_run(fake, r) for r in children]}
    return handler


def _mlflow_history(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        entry = fake.state.get("mlflow_runs", {}).get(call.query.get("run_id", ""))
        if entry is None:
            return 404, {}, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}
        points = entry["metrics"].get(call.query.get("metric_key", ""), [])
        size = int(call.query.get("max_results", "25000"))
        start = int(call.query.get("page_token") or 0)
        page = points[start:start + size]
        body: dict[str, Any] = {"metrics": [{"key": call.query["metric_key"], "value": v,
                                             "timestamp": 1764547200000 + s, "step": s} for s, v in page]}
        if start + size < len(points):
            body["next_page_token"] = str(start + size)
        return 200, {}, body
    return handler


# -- the azureml registry ------------------------------------------------------------------

def _registry_discovery(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        name = match.group("registry")
        if name != REGISTRY:
            return 404, {}, {"error": {"code": "NotFound", "message": f"Registry {name} not found"}}
        return 200, {}, {"registryName": name, "primaryRegion": REGISTRY_REGION, "regions": [REGISTRY_REGION],
                         "subscriptionId": REGISTRY_SUBSCRIPTION, "resourceGroup": REGISTRY_RESOURCE_GROUP,
                         "workspaceName": None,
                         "primaryRegionResourceProviderUri": f"{REGISTRY_HOST}/"}
    return handler


def _registry_model(fake: FakeAzure):
    def handler(call: Any, match: Any) -> Reply:
        name = match.group("model")
        versions = fake.state.get("registry_models", {}).get(name)
        if not versions:
            return 404, {}, {"error": {"code": "UserError", "message": f"Model container {name} not found"}}
        base = f"azureml://registries/{REGISTRY}/models/{name}"
        version = match.group("version") if "version" in match.groupdict() else None
        if version is None:
            return 200, {}, {"id": base, "name": name, "type": "models",
                             "properties": {"latestVersion": versions[-1], "nextVersion": None,
                                            "description": None, "tags": {}, "isArchived": False},
                             "systemData": SYSTEM_DATA}
        if version not in versions:
            return 404, {}, {"error": {"code": "UserError", "message": f"Model {name}:{version} not found"}}
        return 200, {}, _registry_version_body(fake, base, version)
    return handler


def _registry_model_versions(fake: FakeAzure):
    """Versions newest first (what `label="latest"` asks for: $orderBy=createdtime desc, $top=1)."""
    def handler(call: Any, match: Any) -> Reply:
        name = match.group("model")
        versions = list(reversed(fake.state.get("registry_models", {}).get(name, [])))
        top = int(call.query.get("$top") or len(versions) or 1)
        base = f"azureml://registries/{REGISTRY}/models/{name}"
        return 200, {}, {"value": [_registry_version_body(fake, base, v) for v in versions[:top]]}
    return handler


def _registry_version_body(fake: FakeAzure, base: str, version: str) -> dict[str, Any]:
    tags = fake.state.get("registry_model_tags", {}).get(base.rsplit("/", 1)[1]) or {}
    return {"id": f"{base}/versions/{version}", "name": version, "type": "versions",
            "properties": {"modelType": "mlflow_model", "modelUri": f"{base}/versions/{version}",
                           "description": None, "tags": dict(tags), "properties": {},
                           "isAnonymous": False, "isArchived": False, "flavors": {}},
            "systemData": SYSTEM_DATA}


def _catalog_registry_models() -> dict[str, list[str]]:
    """The registry models foundryctl's catalog names (azureml://registries/azureml/models/NAME/...)."""
    from foundryctl import catalog

    names = [m.azure_model_id.split("/models/", 1)[1].split("/", 1)[0] for m in catalog.base_models().values()
             if m.azure_model_id and m.azure_model_id.startswith(f"azureml://registries/{REGISTRY}/")]
    return {name: ["1", "2", "3"] for name in names}


def install(fake: FakeAzure) -> None:
    fake.state.setdefault("registry_models", _catalog_registry_models())
    fake.route("PUT", JOB_PATH, _put_job(fake))
    fake.route("GET", JOB_PATH, _get_job(fake))
    fake.route("POST", JOB_PATH + r"/cancel", _cancel_job(fake))
    fake.route("GET", JOB_PATH + r"/operationResults/(?P<op>[^/]+)", _cancel_result(fake))
    fake.route("GET", MODEL_PATH, _get(fake))
    fake.route("GET", MODEL_PATH + r"/versions", _list_model_versions(fake))
    fake.route("GET", MODEL_PATH + r"/versions/(?P<version>[^/]+)", _get(fake))
    fake.route("PUT", MODEL_PATH + r"/versions/(?P<version>[^/]+)", _put_model_version(fake))
    api_host = r"^https://[a-z0-9]+\.api\.azureml\.ms"
    history = (r"/history/v1\.0/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
               r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)")
    fake.route("GET", r"/discovery", _discovery(fake), host=api_host)
    fake.route("GET", history + r"/runs/(?P<run>[^/]+)/details", _run_details(fake), host=api_host)
    fake.route("PATCH", history + r"/experiments/(?P<exp>[^/]+)/runs/(?P<run>[^/]+)", _patch_run(fake),
               host=api_host)
    mlflow = (r"/mlflow/v1\.0/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
              r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/api/2\.0/mlflow")
    fake.route("GET", mlflow + r"/runs/get", _mlflow_get_run(fake), host=api_host)
    fake.route("POST", mlflow + r"/runs/search", _mlflow_search(fake), host=api_host)
    fake.route("GET", mlflow + r"/metrics/get-history", _mlflow_history(fake), host=api_host)
    fake.route("GET", r"/registrymanagement/v1\.0/registries/(?P<registry>[^/]+)/discovery",
               _registry_discovery(fake), host=api_host)
    fake.route("GET", REGISTRY_PATH, _registry_model(fake), host=REGISTRY_HOST)
    fake.route("GET", REGISTRY_PATH + r"/versions", _registry_model_versions(fake), host=REGISTRY_HOST)
    fake.route("GET", REGISTRY_PATH + r"/versions/(?P<version>[^/]+)", _registry_model(fake), host=REGISTRY_HOST)
