"""FoundryDeployment on the local backend: the deployment is recorded under its Foundry account
with Azure's checks (the account exists, the model is a fine-tuned model of the account, the
content-filter policy is one of the account's, the sku is a fine-tuned model's deployment
type), and then served as a hub Deployment is: the job's trained model in a server process on
127.0.0.1, with its own keys, behind the content filter its RAI policy describes.

Azure serves every deployment of an account at the account's endpoint with the account's
keys; the local backend gives each deployment an endpoint and keys of its own (`foundryctl
deployments keys NAME`). A new run of the job is loaded beside the serving model and swapped
in once it answers, as with a hub Deployment.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.backends.local.handlers.models import ModelFiles
from foundryctl.backends.local.server_process import (
    kept_port,
    reload_server,
    sample_answer,
    sample_question,
    server_state,
    start_server,
    stop_server,
)
from foundryctl.errors import BackendError
from foundryctl.kinds.deployment import RUNNING
from foundryctl.kinds.rai_policy import HARM_CATEGORIES
from foundryctl.serving.deploydir import DeploymentDir, ServerConfig
from foundryctl.training.jobdir import JobDir

# A RAI policy's harm categories as the local content filter names them.
FILTER_CATEGORIES = dict(zip(HARM_CATEGORIES, ("hate", "sexual", "self_harm", "violence"), strict=True))


def filter_settings(policy: ArmResource | None) -> dict[str, Any]:
    """The local server's content_filter for a deployment under `policy` (None: Azure's
    default policy, medium and above filtered on prompts and completions). A filter that is
    disabled or only annotates (blocking false) blocks nothing here."""
    if policy is None:
        return {"enabled": True, "threshold": "medium"}
    sources: dict[str, dict[str, str]] = {"prompt": {}, "completion": {}}
    for item in policy.properties.get("contentFilters") or []:
        category = FILTER_CATEGORIES.get(item.get("name"))
        source = str(item.get("source", "")).lower()
        if category is None or source not in sources:
            continue  # Jailbreak and protected material: the offline classifier has no such category
        blocks = item.get("enabled", False) and item.get("blocking", False) and item.get("severityThreshold")
        sources[source][category] = str(item["severityThreshold"]).lower() if blocks else "off"
    return {"enabled": True, "threshold": "medium", "sources": {k: v for k, v in sources.items() if v}}


def unemulated_filters(policy: ArmResource | None) -> list[str]:
    """The policy's enabled filters the local content filter cannot apply."""
    if policy is None:
        return []
    return sorted({item["name"] for item in policy.properties.get("contentFilters") or []
                   if item.get("name") not in FILTER_CATEGORIES and item.get("enabled")})


def refilter_deployments(cloud: Any, policy: ArmResource, progress: Progress) -> None:
    """Hand the servers of the account's deployments that name `policy` its new filters: on
    Azure a changed policy applies to its deployments at once."""
    for deployment in cloud.list(arm.ACCOUNT_DEPLOYMENTS, policy.parent_id):
        if deployment.properties.get("raiPolicyName") != policy.name or not deployment.properties.get("port"):
            continue
        directory = DeploymentDir(cloud.account_deployment_directory(deployment.id))
        current = directory.read_config()
        settings = filter_settings(policy)
        if current is None or current.content_filter == settings or server_state(directory) != RUNNING:
            continue  # a stopped server takes the policy when apply starts it again
        progress(f"deployment {deployment.name}: content filter reloaded")
        reload_server(directory, replace(current, content_filter=settings))


class FoundryDeploymentHandler(LocalHandler, ModelFiles):
    kind = "FoundryDeployment"

    def identify(self, target: Target) -> str:
        account = arm.cognitive_account_id(self.subscription, self.resource_group, target.attributes["account"] or "")
        return f"{account}/deployments/{target.name}"

    def _directory(self, deployment_id: str) -> DeploymentDir:
        return DeploymentDir(self.cloud.account_deployment_directory(deployment_id))

    def observe(self, resource: ArmResource | None, last_known: dict[str, Any]) -> Observed | None:
        if resource is None or resource.type != arm.ACCOUNT_DEPLOYMENTS:
            return None
        props = resource.properties
        directory = self._directory(resource.id)
        port = props.get("port")
        state = server_state(directory) if port else "Stopped"
        attributes = {**last_known, "account": arm.last_segment(resource.parent_id or ""), "sku": dict(props["sku"]),
                      "rai_policy": props.get("raiPolicyName"), "status": state}
        outputs = {"id": resource.id, "model": props["model"]["name"], "model_id": props["model"]["name"],
                   "model_version": props["model"]["version"], "provisioning_state": resource.provisioning_state,
                   "served": state == RUNNING, "status": state,
                   "endpoint": f"http://127.0.0.1:{port}/v1" if port else None, "port": port,
                   "directory": str(directory.path), "log": str(directory.log), "sample": props.get("sample")}
        return Observed(resource.id, attributes, outputs)

    def read(self, target: Target) -> Observed | None:
        return self.observe(self.cloud.get(target.backend_id or self.identify(target)), target.attributes)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self.observe(self.cloud.get(backend_id), {})

    # -- create / update -------------------------------------------------------------------

    def _apply(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        job = self._job_run(a)
        model = job.properties.get("fineTunedModel") if job is not None else None
        if job is None or model is None:
            raise BackendError("ModelNotReady", f"FineTuneJob.{a['job']} has no fine-tuned model yet",
                               hint="apply the job first and let it finish (a plan orders this for you)")
        account = arm.cognitive_account_id(self.subscription, self.resource_group, a["account"])
        deployment_id = f"{account}/deployments/{target.name}"
        previous = self.cloud.get(deployment_id)
        kept = {key: previous.properties[key] for key in ("port", "sample")
                if previous is not None and key in previous.properties}
        resource = self.cloud.put_account_deployment(account, target.name, {
            "sku": dict(a["sku"]), "model": {"format": "OpenAI", "name": model, "version": "1"},
            "raiPolicyName": a.get("rai_policy"), **kept})
        policy = self.cloud.get(f"{account}/raiPolicies/{a['rai_policy']}") if a.get("rai_policy") else None
        skipped = unemulated_filters(policy)
        if skipped:
            progress(f"RAI policy {a['rai_policy']}: {', '.join(skipped)} not applied locally (Azure's own models)")
        directory = self._directory(deployment_id)
        config = self._server_config(target.name, job, model, directory, filter_settings(policy))
        self._serve(directory, config, progress)
        self.cloud.update_properties(deployment_id, port=config.port)
        sample = (previous.properties.get("sample") if previous is not None else None) or {}
        if sample.get("model") != model or not kept.get("port"):
            question = _first_question(job)
            answer = sample_answer(config.port, directory.keys()["key1"], question)
            self.cloud.update_properties(deployment_id, sample={"prompt": question, "answer": answer, "model": model})
            progress(f"sample answer: {answer[:120]!r}")
        observed = self.observe(self.cloud.get(resource.id), a)
        assert observed is not None
        return observed

    def _job_run(self, a: dict[str, Any]) -> ArmResource | None:
        if not a.get("run"):
            return None
        foundry = self.backend.handler("FineTuneJob").foundry
        project = foundry.project_id({"foundry_account": a["account"], "foundry_project": a["foundry_project"]})
        return self.cloud.get(f"{project}/fineTuningJobs/{a['run']}")

    def _server_config(self, name: str, job: ArmResource, model: str, directory: DeploymentDir,
                       content_filter: dict[str, Any]) -> ServerConfig:
        files = JobDir(Path(job.properties["jobDir"]))
        if files.merged.is_dir():
            model_dir, adapter = str(files.merged), None
        elif files.model.is_dir():
            model_dir, adapter = self._base_model_dir(job.properties.get("localSubstitute")), str(files.model)
        else:
            raise BackendError("ModelFilesMissing", f"the files of {model} are gone ({files.model})",
                               hint="retrain it: apply replaces the FineTuneJob when its job directory is lost")
        return ServerConfig(deployment=name, model_dir=model_dir, adapter_dir=adapter, model_id=model,
                            port=kept_port(directory),
                            content_filter=content_filter)

    def _serve(self, directory: DeploymentDir, config: ServerConfig, progress: Progress) -> None:
        """Start the server, or hand the running one its new model or filter in place."""
        directory.ensure_secrets()
        current = directory.read_config()
        state = server_state(directory)
        if state == RUNNING and current is not None and current.port == config.port:
            if current.to_dict() != config.to_dict():
                progress(f"loading {config.model_id} beside the serving model" if not current.same_model(config)
                         else "reloading the content filter in place")
                reload_server(directory, config)
            return
        if state != "Stopped":
            stop_server(directory, progress)  # a leftover of an interrupted apply, or a hung server
        start_server(directory, config, progress)

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._apply(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._apply(target, progress)

    # -- delete ----------------------------------------------------------------------------

    def delete(self, target: Target, progress: Progress) -> None:
        deployment_id = target.backend_id or self.identify(target)
        directory = self._directory(deployment_id)
        stop_server(directory, progress)  # also when the record is gone: no server outlives it
        self.cloud.delete_account_deployment(deployment_id)
        shutil.rmtree(directory.path, ignore_errors=True)


def _first_question(job: ArmResource) -> str:
    """An input from the job's validation (else training) data."""
    try:
        config = json.loads(JobDir(Path(job.properties["jobDir"])).config.read_text())
    except (OSError, ValueError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    return sample_question(config.get("validation_file"), config.get("training_file"))
