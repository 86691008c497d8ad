"""Deployment on the local backend: a serverless endpoint emulated by a server process.

Create resolves the model (a FineTuneJob's output or a registered version), makes the keys,
starts `python -m foundryctl.serving.run` detached on 127.0.0.1 and waits until it answers.
Update changes model, filter and keys through the running server's /admin/reload (the new
model takes traffic only once it has loaded and answered; nothing is dropped), and restarts a
server that died or stopped answering. Delete stops the process and frees the port.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.backends.local.handlers.models import ModelFiles, short_id
from foundryctl.backends.local.server_process import (
    error_message,
    kept_port,
    reload_server,
    sample_answer,
    sample_question,
    server_state,
    start_server,
    stop_server,
    store_filter_key,
)
from foundryctl.errors import BackendError
from foundryctl.kinds.checkpoint import LAST
from foundryctl.kinds.deployment import RUNNING
from foundryctl.serving import loopback
from foundryctl.serving.deploydir import DeploymentDir, ServerConfig

WRITE_ACTION = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write"
DELETE_ACTION = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/delete"


class DeploymentHandler(LocalHandler, ModelFiles):
    kind = "Deployment"

    def _workspace(self, attributes: dict[str, Any]) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, attributes["project"])

    def identify(self, target: Target) -> str:
        return arm.endpoint_id(self._workspace(target.attributes), target.name)

    def _directory(self, endpoint_id: str) -> DeploymentDir:
        workspace = arm.workspace_of(endpoint_id) or ""
        return DeploymentDir(self.cloud.endpoint_directory(workspace, arm.last_segment(endpoint_id)))

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        return self._observe(self.cloud.get(target.backend_id or self.identify(target)))

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self._observe(self.cloud.get(backend_id))

    def _observe(self, endpoint: ArmResource | None) -> Observed | None:
        if endpoint is None or endpoint.type != arm.ENDPOINTS:
            return None
        directory = self._directory(endpoint.id)
        state = server_state(directory)
        props = endpoint.properties
        attributes = {**props.get("foundryctl", {}).get("attributes", {}), "status": state}
        port = props.get("port")
        outputs = {
            "id": endpoint.id, "status": state, "endpoint": f"http://127.0.0.1:{port}/v1" if port else None,
            "port": port, "model_id": props.get("modelId"), "checkpoint": props.get("checkpoint"),
            "content_filter": props.get("contentSafetyStatus"),
            "directory": str(directory.path), "log": str(directory.log),
            "sample": props.get("sample"),
        }
        return Observed(endpoint.id, attributes, outputs)

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        workspace = self._workspace(a)
        self.backend.authorize(WRITE_ACTION, workspace)
        endpoint_id = self.identify(target)
        directory = self._directory_for(workspace, target.name)
        directory.ensure_secrets()
        target = replace(target, attributes=self._resolve_checkpoint(workspace, target))
        model, config = self._server_config(workspace, target, directory)
        store_filter_key(directory, config.content_filter)
        if server_state(directory) in (RUNNING, "Starting", "Unhealthy"):
            stop_server(directory, progress)  # a leftover of an interrupted apply: start clean
        self._record(workspace, target, config, model)
        self._pin(workspace, endpoint_id, target.attributes["model"])
        start_server(directory, config, progress)
        self._sample(endpoint_id, directory, config, model, progress)
        return self._observed(endpoint_id)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        a = target.attributes
        endpoint = self.cloud.get(target.backend_id or self.identify(target))
        if endpoint is None:
            raise BackendError("ResourceNotFound", f"endpoint {target.backend_id} was not found")
        workspace = self._workspace(a)
        self.backend.authorize(WRITE_ACTION, workspace)
        directory = self._directory(endpoint.id)
        directory.ensure_secrets()
        target = replace(target, attributes=self._resolve_checkpoint(workspace, target))
        model, config = self._server_config(workspace, target, directory)
        store_filter_key(directory, config.content_filter)
        current = directory.read_config()
        state = server_state(directory)
        model_changed = current is None or not current.same_model(config) or current.model_id != config.model_id
        previous = endpoint.properties.get("foundryctl", {}).get("attributes")
        self._pin(workspace, endpoint.id, target.attributes["model"])  # before the switch
        if state == RUNNING and current is not None and current.port == config.port:
            if current.to_dict() != config.to_dict():
                progress(f"loading {short_id(config.model_id)} beside the serving model" if model_changed
                         else "reloading settings in place")
                reload_server(directory, config)
        else:
            if state != "Stopped":
                stop_server(directory, progress)
            progress("the endpoint was not running; starting it" if state != RUNNING
                     else f"moving to port {config.port}")
            start_server(directory, config, progress)
        self._record(workspace, target, config, model)
        if (previous or {}).get("model", {}).get("run") != target.attributes["model"].get("run") or \
                target.attributes["model"].get("checkpoint") in (None, LAST):
            self._release(workspace, endpoint.id, previous, target.attributes["model"])
        if model_changed or state != RUNNING:
            self._sample(endpoint.id, directory, config, model, progress)
        return self._observed(endpoint.id)

    def _directory_for(self, workspace: str, name: str) -> DeploymentDir:
        return DeploymentDir(self.cloud.endpoint_directory(workspace, name))

    def _observed(self, endpoint_id: str) -> Observed:
        observed = self._observe(self.cloud.get(endpoint_id))
        assert observed is not None
        return observed

    def _record(self, workspace: str, target: Target, config: ServerConfig, model: ArmResource) -> None:
        """The endpoint in the control plane, and its use of the model (which keeps the model
        from being deleted while it is served)."""
        existing = self.cloud.get(arm.endpoint_id(workspace, target.name))
        sample = existing.properties.get("sample") if existing else None
        endpoint = self.cloud.put_endpoint(workspace, target.name, {
            "modelId": model.id, "checkpoint": config.checkpoint, "port": config.port, "authMode": "Key",
            "contentSafetyStatus": "Enabled" if config.content_filter.get("enabled", True) else "Disabled",
            "deploymentDir": str(self._directory_for(workspace, target.name).path),
            "foundryctl": {"attributes": {k: v for k, v in target.attributes.items() if k != "status"}},
            **({"sample": sample} if sample and sample.get("model") == model.id else {})})
        self.cloud.remove_references(endpoint.id)
        self.cloud.add_reference(endpoint.id, model.id)

    def _server_config(self, workspace: str, target: Target, directory: DeploymentDir
                       ) -> tuple[ArmResource, ServerConfig]:
        a = target.attributes
        checkpoint = a["model"].get("resolved")
        model, model_dir, adapter = self.model_files(workspace, a["model"], checkpoint)
        serving = a.get("serving") or {}
        port = serving.get("port") or kept_port(directory)
        return model, ServerConfig(
            deployment=target.name, model_dir=model_dir, adapter_dir=adapter, model_id=model.id, port=port,
            checkpoint=checkpoint if checkpoint and checkpoint != LAST else None,
            content_filter=a.get("content_filter") or {}, max_batch_size=serving.get("max_batch_size", 16),
            device=serving.get("device", "auto"))

    def _resolve_checkpoint(self, workspace: str, target: Target) -> dict[str, Any]:
        """The target's attributes with `model.resolved` filled in from the job's checkpoints,
        for a selector the plan could not resolve (the run was still to train)."""
        source = target.attributes.get("model") or {}
        if not source.get("checkpoint") or source.get("resolved"):
            return target.attributes
        chosen = self.resolve_selector(workspace, source, source["checkpoint"])
        return {**target.attributes, "model": {**source, "resolved": chosen}}

    def _pin(self, workspace: str, endpoint_id: str, source: dict[str, Any]) -> None:
        """Keep the served checkpoint from rotation, and its selector across a retrain."""
        directory = self._job_dir(workspace, source) if source.get("checkpoint") not in (None, LAST) else None
        if directory is not None:
            directory.pin(endpoint_id, source.get("resolved"), source["checkpoint"])

    def _release(self, workspace: str, endpoint_id: str, previous: dict[str, Any] | None,
                 source: dict[str, Any]) -> None:
        """Drop the pin on the run served before, once the new model serves (a pin on the run
        served now stays only while a checkpoint of it is selected)."""
        old = (previous or {}).get("model") or {}
        if not old.get("job"):
            return
        before = self._job_dir(workspace, old)
        if before is not None:
            before.unpin(endpoint_id)
        if source.get("checkpoint"):
            self._pin(workspace, endpoint_id, source)

    # -- the process -----------------------------------------------------------------------

    def _sample(self, endpoint_id: str, directory: DeploymentDir, config: ServerConfig, model: ArmResource,
                progress: Progress) -> None:
        """Ask the endpoint one question, the way a client would, and keep the answer for the
        apply summary (a failure here is reported, not fatal: the endpoint is up)."""
        from foundryctl.serving.classifier_engine import classification_labels

        question = _sample_question(self.cloud, model)
        if classification_labels(config.adapter_dir, config.model_dir) is not None:
            self._sample_label(endpoint_id, directory, config, model, question, progress)
            return
        answer = sample_answer(config.port, directory.keys()["key1"], question)
        sample = {"prompt": question, "answer": answer, "model": model.id}
        self.cloud.update_properties(endpoint_id, sample=sample)
        progress(f"sample answer: {answer[:120]!r}")

    def _sample_label(self, endpoint_id: str, directory: DeploymentDir, config: ServerConfig,
                      model: ArmResource, text: str, progress: Progress) -> None:
        """A classification model's sample: the label it gives one text of its data."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{config.port}/v1/classify", data=json.dumps({"input": text}).encode(),
            method="POST", headers={"Content-Type": "application/json", "api-key": directory.keys()["key1"]})
        try:
            with loopback.urlopen(request, timeout=120) as response:
                result = json.loads(response.read())["data"][0]
            answer = f"{result['label']} ({result['scores'][result['label']]:.2f})"
        except urllib.error.HTTPError as exc:
            answer = f"(HTTP {exc.code}: {error_message(exc)})"
        except (OSError, ValueError, KeyError, IndexError) as exc:
            answer = f"(no answer: {exc})"
        self.cloud.update_properties(endpoint_id, sample={"prompt": text, "answer": answer, "model": model.id})
        progress(f"sample label: {answer}")

    # -- delete --------------------------------------------------------------------------

    def delete(self, target: Target, progress: Progress) -> None:
        endpoint_id = target.backend_id or self.identify(target)
        endpoint = self.cloud.get(endpoint_id)
        if endpoint is not None:
            self.backend.authorize(DELETE_ACTION, arm.workspace_of(endpoint.id) or "")
        try:
            directory = self._directory(endpoint_id)
        except BackendError:  # the project is gone, and its endpoint directories with it
            return
        # Also when the record is gone: a server left running, and its keys, must not outlive it.
        stop_server(directory, progress)
        if endpoint is not None:
            served = endpoint.properties.get("foundryctl", {}).get("attributes", {}).get("model") or {}
            pinned = self._job_dir(arm.workspace_of(endpoint.id) or "", served) if served.get("job") else None
            if pinned is not None:
                pinned.unpin(endpoint.id)
            self.cloud.delete_endpoint(endpoint.id)
        shutil.rmtree(directory.path, ignore_errors=True)


def _sample_question(cloud: Any, model: ArmResource) -> str:
    """An input from the model's validation (else training) data."""
    lineage = model.properties.get("lineage") or {}
    files = []
    for data_id in (lineage.get("validationData"), lineage.get("trainingData")):
        data = cloud.get(data_id) if data_id else None
        files.append(data.properties.get("localPath") if data else None)
    return sample_question(*files)
