"""Where a served or evaluated model's files are: a FineTuneJob's registered model (its
adapter, merged weights or one of its checkpoints) or a registered model version, and the
base model it was trained from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.errors import BackendError
from foundryctl.kinds.checkpoint import LAST, SelectorError, checkpoint_infos, parse_selector, resolve
from foundryctl.training.jobdir import JobDir


class ModelFiles:
    """Mixed into local handlers that load models (they have `cloud` and `backend`)."""

    cloud: Any
    backend: Any

    def model_files(self, workspace: str, source: dict[str, Any], checkpoint: str | None = None
                    ) -> tuple[ArmResource, str, str | None]:
        """The registered model of `source` ({job, run} or {name, version}), the model
        directory to load and the adapter to merge into it (None: full weights)."""
        model = self._model(workspace, source)
        props = model.properties
        merged = props.get("mergedPath")
        if checkpoint and checkpoint != LAST:
            model_dir = self._base_model_dir(props.get("lineage", {}).get("baseModel"))
            adapter = self._checkpoint_adapter(workspace, source, checkpoint)
        elif merged and os.path.isdir(merged):
            model_dir, adapter = merged, None
        else:
            model_dir, adapter = self._base_model_dir(props.get("lineage", {}).get("baseModel")), props.get("path")
            if not adapter or not os.path.isdir(adapter):
                raise BackendError("ModelFilesMissing", f"the files of model {short_id(model.id)} are gone ({adapter})",
                                   hint="retrain it: apply replaces the FineTuneJob when its job directory is lost")
        return model, model_dir, adapter

    def resolve_selector(self, workspace: str, source: dict[str, Any], selector: str) -> str:
        """The checkpoint `selector` picks among the trained run's checkpoints (the plan could not
        resolve it: the run was still to train)."""
        self._model(workspace, source)  # the job has trained and registered its model
        directory = self._job_dir(workspace, source)
        assert directory is not None
        try:
            return resolve(parse_selector(selector), source["job"], checkpoint_infos(directory.checkpoint_table()))
        except SelectorError as exc:
            raise BackendError("CheckpointNotFound", str(exc),
                               hint="pick one of the existing checkpoints, or `last` for the final model") from None

    def _job(self, workspace: str, source: dict[str, Any]) -> ArmResource | None:
        return self.cloud.get(arm.job_id(workspace, f"{source['job']}-{source.get('run')}"))

    def _job_dir(self, workspace: str, source: dict[str, Any]) -> JobDir | None:
        job = self._job(workspace, source) if source.get("job") else None
        return JobDir(Path(job.properties["jobDir"])) if job is not None else None

    def _checkpoint_adapter(self, workspace: str, source: dict[str, Any], checkpoint: str) -> str:
        directory = self._job_dir(workspace, source)
        existing = [row["name"] for row in directory.checkpoint_table()] if directory is not None else []
        if directory is None or checkpoint not in existing:
            raise BackendError("CheckpointNotFound", f"FineTuneJob {source['job']!r} has no checkpoint "
                               f"{checkpoint} (its checkpoints: {', '.join(existing) or 'none'})",
                               hint="plan again: the plan resolves the selector against the checkpoints that exist")
        adapter = directory.checkpoints / checkpoint / "adapter"
        if not adapter.is_dir():
            raise BackendError("CheckpointNotServable", f"checkpoint {checkpoint} of FineTuneJob "
                               f"{source['job']!r} holds full weights without a tokenizer; only LoRA "
                               "checkpoints can be deployed", hint="deploy the final model (leave out `checkpoint`)")
        return str(adapter)

    def _model(self, workspace: str, source: dict[str, Any]) -> ArmResource:
        if source.get("job"):
            job = self._job(workspace, source)
            if job is None:
                raise BackendError("ModelNotFound", f"FineTuneJob {source['job']!r} has no run {source.get('run')} "
                                   "in the project", hint="apply the FineTuneJob first")
            model_id = job.properties.get("outputModelId")
            if not model_id:
                raise BackendError(
                    "ModelNotReady", f"FineTuneJob {source['job']!r} has not finished training, so it has no "
                    "model to deploy yet", hint=f"follow it with `foundryctl jobs logs {source['job']} --follow` "
                    "and apply again once it is Completed (apply without --no-wait waits for it)")
        else:
            model_id = f"{arm.model_id(workspace, source['name'])}/versions/{source['version']}"
        model = self.cloud.get(model_id)
        if model is None:
            raise BackendError("ModelNotFound", f"model {short_id(model_id)} is not registered in the project",
                               hint="deploy a FineTuneJob's model with `model: {job: NAME}`")
        return model

    def _base_model_dir(self, written: str | None) -> str:
        from foundryctl.models import parse_base_model
        from foundryctl.models.files import ModelNotAvailable, find_model

        if not written:
            raise BackendError("ModelFilesMissing", "the model records no base model to load its adapter onto")
        try:
            return str(find_model(parse_base_model(written, self.backend.root)))
        except ModelNotAvailable as exc:
            raise BackendError("ModelNotAvailable", exc.message, hint=exc.hint) from None



def short_id(resource_id: str) -> str:
    """…/models/NAME/versions/V -> NAME:V."""
    parts = resource_id.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "versions":
        return f"{parts[-3]}:{parts[-1]}"
    return resource_id
