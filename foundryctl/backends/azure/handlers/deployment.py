"""Deployment on Azure: a serverless endpoint (Microsoft.MachineLearningServices/workspaces/
serverlessEndpoints) serving a model registered in the project.

What goes over the wire (ARM, https://management.azure.com):

- create: GET the project (azure-ai-ml, 2024-10-01-preview) for its location and workspace GUID,
  which name the model: azureml://locations/LOC/workspaces/GUID/models/NAME/versions/V. PUT
  .../serverlessEndpoints/NAME (azure-ai-ml, 2024-01-01-preview), polled through its
  Azure-AsyncOperation, then the final GET. Then the raw GET (azure-mgmt-resource `get_by_id`,
  ARM_API_VERSION) and, only when Azure's content safety is not the one wanted, the raw PUT
  (`begin_create_or_update_by_id`) of the endpoint with `properties.contentSafety`: azure-ai-ml
  has no field for it.
- read / import: the raw GET alone (model, auth mode, content safety, provisioning state and the
  inference URI in one request); 404 is absent.
- update: a model change is a PUT of the new modelId on the same endpoint: the REST spec
  (stable/2024-10-01 mfe.json) declares modelSettings writable on PUT, with no create-only
  mutability (only PATCH is limited to tags, sku and identity). That PUT omits contentSafety,
  which Azure then sets to its default, so content safety is checked and set again after it. A
  content filter change alone is the raw PUT only. description, serving and the filter's
  threshold, categories and classifier have no Azure field (recorded, never sent). An endpoint
  whose provisioning Failed is deleted and created again (it is down meanwhile).
- delete: DELETE (azure-ai-ml), polled through its Location; gone already is done.
- keys: POST .../listKeys; regenerate_key: POST .../regenerateKeys {keyType} (2024-01-01-preview).

Keys never enter attributes, outputs, progress messages or errors: only `keys()` returns them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foundryctl.backends import arm
from foundryctl.backends.azure.errors import (
    backend_error,
    calling,
    is_not_found,
    read_or_none,
    sdk_errors,
)
from foundryctl.backends.azure.handlers.base import (
    AzureHandler,
    parse_child_id,
    unmodelled,
)
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.kinds.deployment import RUNNING, ContentFilter, Serving

if TYPE_CHECKING:
    from foundryctl.backends.azure.backend import AzureBackend

# The api-version of the raw (generic resource) requests: the first stable one whose schema has
# both modelSettings and contentSafety (a raw PUT replaces the endpoint: it must carry the model).
ARM_API_VERSION = "2024-10-01"
ENDPOINTS = "serverlessEndpoints"
MODEL_ID = re.compile(r"^azureml://locations/(?P<location>[^/]+)/workspaces/(?P<workspace>[^/]+)"
                      r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.IGNORECASE)
DEFAULT_CONTENT_SAFETY = "Enabled"  # Azure's when a PUT says nothing
BUSY = ("Creating", "Updating", "Deleting")
KEY_TYPES = {"key1": "primary", "primary": "primary", "key2": "secondary", "secondary": "secondary"}



@dataclass(frozen=True)
class _Project:
    location: str
    workspace_guid: str


class DeploymentHandler(AzureHandler):
    kind = "Deployment"

    def identify(self, target: Target) -> str:
        return f"{self.workspace_id(target.attributes['project'])}/{ENDPOINTS}/{target.name}"

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        resource = self._get(target.backend_id or self.identify(target))
        return None if resource is None else self._observe(resource, target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        _endpoint_of(backend_id)
        resource = self._get(backend_id)
        return None if resource is None else self._observe(resource, {})

    def _get(self, endpoint_id: str) -> dict[str, Any] | None:
        resource = read_or_none(
            lambda: self.clients.resources.resources.get_by_id(endpoint_id, api_version=ARM_API_VERSION),
            f"reading serverless endpoint {arm.last_segment(endpoint_id)}")
        return None if resource is None else resource.as_dict()

    def _observe(self, resource: dict[str, Any], last_known: dict[str, Any], *,
                 deployed: str | None = None) -> Observed:
        """Azure's truth for what it models; the last applied value for the rest. `deployed`:
        the model id this apply just put there (no need to ask the FineTuneJob again)."""
        props = resource.get("properties") or {}
        served = (props.get("modelSettings") or {}).get("modelId")
        state = props.get("provisioningState") or "Unknown"
        safety = _content_safety(props)
        project, _ = _endpoint_of(resource["id"])
        known_filter = last_known.get("content_filter") or {}
        observed = {
            "project": project,
            "model": self._model_attribute(project, served, last_known.get("model"), deployed),
            "content_filter": {**ContentFilter().model_dump(mode="json"), **known_filter,
                               "enabled": safety.lower() == "enabled"},
            "auth_mode": str(props.get("authMode") or "Key").lower(),
            "status": RUNNING if state == "Succeeded" else state,
        }
        defaults = {"serving": Serving().model_dump(mode="json"), "description": ""}
        attributes = unmodelled({**defaults, **last_known}, observed)
        outputs = {"id": resource["id"], "endpoint": (props.get("inferenceEndpoint") or {}).get("uri"),
                   "model_id": served, "provisioning_state": state, "content_safety": safety}
        return Observed(resource["id"], attributes, outputs)

    def _model_attribute(self, project: str, served: str | None, known: dict[str, Any] | None,
                         deployed: str | None) -> dict[str, Any]:
        """The manifest's `model` as Azure serves it: a job's model stays `{job, run}` while the
        endpoint serves that run's model; anything else reads as the model it serves."""
        parsed = MODEL_ID.match(served or "")
        if known and known.get("job"):
            if deployed is not None and served == deployed:
                return dict(known)
            model = self._job_model(project, known["job"], known.get("run"))
            if model is not None and parsed is not None and _same_model(parsed, model):
                return dict(known)
        if parsed is None:
            return {"id": served}  # not a model of a workspace: never what a manifest asks for
        version: int | str = int(parsed["version"]) if parsed["version"].isdigit() else parsed["version"]
        return {"job": None, "name": parsed["name"], "version": version}

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        project = self._project(a["project"])
        model_id = self._desired_model_id(a["project"], a["model"], project)
        self._refuse_if_served_elsewhere(target, "creating")
        progress(f"creating serverless endpoint {target.name} serving {_short(model_id)}")
        self._put_endpoint(a["project"], target.name, model_id, project.location)
        resource = self._settle_content_safety(self.identify(target), a, progress)
        return self._observe(resource, a, deployed=model_id)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        a = target.attributes
        endpoint_id = target.backend_id or self.identify(target)
        resource = self._get(endpoint_id)
        if resource is None:  # deleted since the plan: level-triggered, make it again
            return self.create(target, progress)
        state = (resource.get("properties") or {}).get("provisioningState")
        if state in ("Failed", "Canceled"):
            progress(f"the endpoint's provisioning {state.lower()} on Azure: deleting and recreating it; "
                     "the endpoint is down meanwhile")
            self.delete(target, progress)
            return self.create(target, progress)
        if state in BUSY:  # another apply, or the portal, is changing it: a PUT now is refused (409)
            raise BackendError("EndpointBusy", f"serverless endpoint {target.name} is {state.lower()} on Azure",
                               hint="apply again once it has finished")
        project = self._project(a["project"])
        model_id = self._desired_model_id(a["project"], a["model"], project)
        served = ((resource.get("properties") or {}).get("modelSettings") or {}).get("modelId")
        if served != model_id:
            self._refuse_if_served_elsewhere(target, "switching the model of")
            progress(f"switching {target.name} from {_short(served or '?')} to {_short(model_id)} in place")
            self._put_endpoint(a["project"], target.name, model_id, resource.get("location") or project.location,
                               doing="switching the model of")
            resource = self._settle_content_safety(endpoint_id, a, progress)  # that PUT reset it to Azure's default
        else:
            resource = self._settle_content_safety(endpoint_id, a, progress, current=resource)
        return self._observe(resource, a, deployed=model_id)

    conflict_rule = ("Azure permits one serverless deployment per custom model "
                     "(learn.microsoft.com/azure/ai-foundry/how-to/fine-tune-serverless)")

    def conflicts(self, target: Target) -> list[str]:
        """Other endpoints of the project serving the model this one would serve (a job's model
        only once it is trained: before that there is nothing to compare)."""
        a = target.attributes
        source = a.get("model") or {}
        if source.get("job"):
            model = self._job_model(a["project"], source["job"], source.get("run"))
            if model is None:
                return []
            name, version = str(model["name"]), str(model["version"])
        elif source.get("name") and source.get("version") is not None:
            name, version = str(source["name"]), str(source["version"])
        else:
            return []
        return [e for e in endpoints_serving(self.backend, a["project"], name, version)
                if arm.last_segment(e).lower() != target.name.lower()]

    def _refuse_if_served_elsewhere(self, target: Target, doing: str) -> None:
        """The plan checks `conflicts` too, but a job's model is known only once it is trained,
        and another endpoint may have taken the model since: check again right before the PUT
        (a refused PUT can leave a Failed endpoint behind)."""
        others = self.conflicts(target)
        if others:
            raise BackendError(
                "ModelAlreadyDeployed", f"{doing} serverless endpoint {target.name}: its model is already served by "
                f"{', '.join(arm.last_segment(o) for o in others)}; {self.conflict_rule}",
                hint="delete that endpoint or point it at another model, then apply again")

    def _put_endpoint(self, project: str, name: str, model_id: str, location: str, *,
                      doing: str = "creating") -> None:
        """PUT the endpoint through azure-ai-ml and wait for its provisioning."""
        from azure.ai.ml.entities import ServerlessEndpoint

        endpoint = ServerlessEndpoint(name=name, model_id=model_id, auth_mode="key")
        endpoint.location = location  # else the SDK reads the project once more for it
        operations = self.clients.ml(project).serverless_endpoints
        calling(f"{doing} serverless endpoint {name}", lambda: operations.begin_create_or_update(
            endpoint, polling_interval=self.config.poll_interval).result())

    def _settle_content_safety(self, endpoint_id: str, attributes: dict[str, Any], progress: Progress, *,
                               current: dict[str, Any] | None = None) -> dict[str, Any]:
        """Azure's content safety (and auth mode) as desired: the raw PUT only when they differ."""
        resource = current if current is not None else self._get(endpoint_id)
        if resource is None:
            raise BackendError("ResourceNotFound", f"serverless endpoint {arm.last_segment(endpoint_id)} vanished "
                               "while it was being applied", hint="run apply again")
        enabled = (attributes.get("content_filter") or {}).get("enabled", True)
        wanted = "Enabled" if enabled else "Disabled"
        props = resource.get("properties") or {}
        if _content_safety(props).lower() == wanted.lower() and str(props.get("authMode") or "Key") == "Key":
            return resource
        progress(f"content filter {'on' if enabled else 'OFF'}: Azure AI Content Safety {wanted.lower()}")
        return self._raw_put(resource, wanted)

    def _raw_put(self, resource: dict[str, Any], content_safety: str) -> dict[str, Any]:
        """PUT the whole endpoint as a generic resource (a PUT replaces: the writable properties
        all go along) with the content safety azure-ai-ml cannot send."""
        from azure.mgmt.resource.resources.models import GenericResource, Sku

        props = resource.get("properties") or {}
        body = GenericResource(
            location=resource["location"], tags=resource.get("tags") or {},
            sku=Sku(name=(resource.get("sku") or {}).get("name") or "Consumption"),
            properties={"modelSettings": {"modelId": (props.get("modelSettings") or {}).get("modelId")},
                        "authMode": "Key", "contentSafety": {"contentSafetyStatus": content_safety}})
        resources = self.clients.resources.resources
        result = calling(
            f"setting content safety of serverless endpoint {resource.get('name')}",
            lambda: resources.begin_create_or_update_by_id(
                resource["id"], body, api_version=ARM_API_VERSION, polling_interval=self.config.poll_interval,
            ).result())
        return result.as_dict()

    def _project(self, name: str) -> _Project:
        """The project's location and workspace GUID (read each time: a replaced project has a new GUID)."""
        workspace = read_or_none(lambda: self.clients.ml().workspaces.get(name), f"reading project {name}")
        if workspace is None:
            raise BackendError("ProjectNotFound", f"project {name} does not exist in resource group "
                               f"{self.resource_group}", hint="apply the Project first")
        guid = getattr(workspace, "_workspace_id", None)
        if not guid or not workspace.location:
            raise BackendError("ProjectIncomplete", f"Azure did not report the workspace id and location of "
                               f"project {name}", hint="check the project in the Azure portal")
        return _Project(str(workspace.location), str(guid))

    def _desired_model_id(self, project_name: str, source: dict[str, Any], project: _Project) -> str:
        if source.get("job"):
            model = self._job_model(project_name, source["job"], source.get("run"))
            if model is None:
                raise BackendError(
                    "ModelNotReady", f"FineTuneJob {source['job']!r} has no trained model to deploy yet",
                    hint=f"follow it with `foundryctl jobs logs {source['job']} --follow` and apply again once "
                         "it is Completed (apply without --no-wait waits for it)")
            name, version = model["name"], model["version"]
        else:
            name, version = source["name"], source["version"]
        return (f"azureml://locations/{project.location}/workspaces/{project.workspace_guid}"
                f"/models/{name}/versions/{version}")

    def _job_model(self, project: str, job: str, run: str | None) -> dict[str, Any] | None:
        return self.backend.handler("FineTuneJob").model_of(project, job, run)  # type: ignore[attr-defined]

    # -- delete --------------------------------------------------------------------------

    def delete(self, target: Target, progress: Progress) -> None:
        project, name = _endpoint_of(target.backend_id or self.identify(target))
        progress(f"deleting serverless endpoint {name}")
        operations = self.clients.ml(project).serverless_endpoints
        try:
            operations.begin_delete(name, polling_interval=self.config.poll_interval).result()
        except sdk_errors() as exc:
            if is_not_found(exc):  # the endpoint, or its whole project, is gone already
                return
            raise backend_error(exc, f"deleting serverless endpoint {name}") from None

    # -- keys (for the CLI; never stored) --------------------------------------------------

    def keys(self, target: Target) -> tuple[str, str]:
        """The endpoint's (primary, secondary) keys."""
        project, name = _endpoint_of(target.backend_id or self.identify(target))
        keys = calling(f"reading the keys of serverless endpoint {name}",
                       self.clients.ml(project).serverless_endpoints.get_keys, name)
        return str(keys.primary_key), str(keys.secondary_key)

    def regenerate_key(self, target: Target, which: str) -> None:
        """Replace one key (`key1`/`primary` or `key2`/`secondary`); the other keeps working."""
        key_type = KEY_TYPES.get(which.lower())
        if key_type is None:
            raise BackendError("InvalidKeyName", f"no key named {which!r}", hint="use key1 or key2")
        project, name = _endpoint_of(target.backend_id or self.identify(target))
        # azure-ai-ml 1.35.2's ServerlessEndpointOperations.begin_regenerate_keys cannot work: it
        # calls its generated operation with `endpoint_name=`, which takes `name` (TypeError), after
        # reading the keys to send the current one back. Its generated operation is called here
        # directly, with the body of the spec's regenerateKeys example: the key type alone.
        generated = getattr(self.clients.ml(project).serverless_endpoints, "_service_client", None)
        if generated is None or not hasattr(generated, "begin_regenerate_keys"):
            raise BackendError("Unsupported", "this azure-ai-ml cannot regenerate serverless endpoint keys",
                               hint="regenerate the key in the Azure AI Foundry portal")
        calling(f"regenerating the {key_type} key of serverless endpoint {name}",
                lambda: generated.begin_regenerate_keys(
                    self.resource_group, project, name, {"keyType": key_type.capitalize()},
                    polling_interval=self.config.poll_interval).result())

def endpoints_serving(backend: AzureBackend, project: str, model_name: str, model_version: str) -> list[str]:
    """Ids of the serverless endpoints in `project` that serve that model version (a model with
    an endpoint cannot be deleted: the endpoint goes first)."""
    operations = backend.clients.ml(project).serverless_endpoints
    endpoints = read_or_none(lambda: list(operations.list()), f"listing serverless endpoints of project {project}")
    serving = []
    for endpoint in endpoints or []:
        parsed = MODEL_ID.match(endpoint.model_id or "")
        if parsed is not None and parsed["name"] == model_name and parsed["version"] == str(model_version):
            serving.append(str(endpoint.id))
    return serving


def _content_safety(props: dict[str, Any]) -> str:
    return str((props.get("contentSafety") or {}).get("contentSafetyStatus") or DEFAULT_CONTENT_SAFETY)


def _same_model(parsed: re.Match, model: dict[str, Any]) -> bool:
    return parsed["name"] == str(model.get("name")) and parsed["version"] == str(model.get("version"))


def _endpoint_of(endpoint_id: str) -> tuple[str, str]:
    """(project, endpoint name) of a serverless endpoint id."""
    return parse_child_id(endpoint_id, "serverlessEndpoints", "a serverless endpoint")


def _short(model_id: str) -> str:
    """azureml://…/models/NAME/versions/V -> NAME:V."""
    parsed = MODEL_ID.match(model_id)
    return f"{parsed['name']}:{parsed['version']}" if parsed else model_id
