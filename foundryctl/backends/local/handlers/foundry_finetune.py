"""FineTuneJob in a FoundryProject on the local backend: Azure OpenAI fine-tuning emulated.

Create checks what Azure checks when the job is created (the principal's data-plane role on
the project, the model, the method and the training tier in the account's region, as the
catalog's foundry_finetuning.yaml records them) and then trains the catalog's
`local_substitute` for the model (SmolLM2-135M-Instruct) with the hub jobs' runner: the same
job directory, process, waiting, resuming, metrics and checkpoints. `method: dpo` trains the
substitute supervised on each example's preferred output (the local runner has no preference
loss; validate says so). The result is named as Azure names a fine-tuned model,
MODEL_ID.ft-DIGEST.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from foundryctl import catalog
from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.errors import BackendError
from foundryctl.kinds.finetune_job import training_run
from foundryctl.training.jobdir import CANCELED, COMPLETED, FAILED, INTERRUPTED, JobDir

# Azure's data action for fine-tuning (the Cognitive Services OpenAI roles grant
# Microsoft.CognitiveServices/accounts/OpenAI/*; Azure AI User grants Microsoft.CognitiveServices/*).
WRITE_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/write"
DELETE_ACTION = "Microsoft.CognitiveServices/accounts/OpenAI/fine-tunes/delete"


def is_foundry_job(target: Target) -> bool:
    return bool(target.attributes.get("foundry_project")) or "/fineTuningJobs/" in (target.backend_id or "")


class LocalFoundryFineTuning:
    """The Foundry half of the local FineTuneJob handler (which lends it its runner)."""

    def __init__(self, handler: Any):
        self.handler = handler
        self.backend = handler.backend
        self.cloud = handler.cloud

    def project_id(self, a: dict[str, Any]) -> str:
        account = arm.cognitive_account_id(self.handler.subscription, self.handler.resource_group,
                                           a.get("foundry_account") or "")
        return arm.account_project_id(account, a["foundry_project"])

    def identify(self, target: Target) -> str:
        return f"{self.project_id(target.attributes)}/fineTuningJobs/{target.name}-{training_run(target.attributes)}"

    def model_of(self, account: str, project: str, run: str) -> str | None:
        """The fine-tuned model of run `run` once it has trained (the FoundryDeployment handler asks)."""
        job = self.cloud.get(f"{self.project_id({'foundry_account': account, 'foundry_project': project})}"
                             f"/fineTuningJobs/{run}")
        return job.properties.get("fineTunedModel") if job is not None else None

    # -- read ------------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        return self._observe(self.cloud.get(target.backend_id or self.identify(target)))

    def _observe(self, job: ArmResource | None) -> Observed | None:
        if job is None or job.type != arm.ACCOUNT_FINETUNING_JOBS:
            return None
        observed = self.handler.observe_run(job)
        model = job.properties.get("fineTunedModel")
        if model and observed.outputs["status"] == "Finishing":  # the hub runs' "trained, not registered"
            observed.outputs["status"] = observed.attributes["status"] = "Completed"
        observed.outputs["model"] = {"id": model, "name": model, "version": "1"} if model else None
        observed.outputs["training_type"] = job.properties.get("trainingType")
        observed.outputs["local_substitute"] = job.properties.get("localSubstitute")
        return observed

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        from foundryctl.backends.local.handlers.finetune_job import training_config

        a = target.attributes
        project_id = self.project_id(a)
        project = self.cloud.get(project_id)
        if project is None:
            raise BackendError("ResourceNotFound", f"Foundry project {a['foundry_project']} was not found",
                               hint="apply the FoundryProject first (a plan orders this for you)")
        self.backend.authorize(WRITE_ACTION, project_id, data_action=True)
        model = self._azure_rules(a, project.location)
        name = f"{target.name}-{training_run(a)}"
        directory = JobDir(self.cloud.account_job_directory(project_id, name))
        directory.create()
        training = self._training_file(directory, a, "training_file", a.get("training_version"))
        validation = (self._training_file(directory, a, "validation_file", a.get("validation_version"))
                      if a.get("validation_file") else None)
        ref, model_dir = self.handler.base_model(model.local_substitute, progress)
        config = training_config(a, ref, model_dir, training, validation)
        if not directory.config.exists():
            config.save(directory.config)
        stored = {k: v for k, v in a.items() if k != "status"}
        job = self.cloud.create_account_job(project_id, name, {
            "jobDir": str(directory.path), "baseModel": model.model_id, "localSubstitute": model.local_substitute,
            "trainingType": a["training_type"], "method": a.get("method") or "supervised",
            "outputModel": a["output_model"], "foundryctl": {"attributes": stored}})
        if directory.state() not in (COMPLETED, "Running"):
            progress(f"training {model.local_substitute} in place of {model.model_id} ({a['training_type']})")
            self.handler.launch(directory, progress)
        return self._drive(job, directory, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        job = self.cloud.get(target.backend_id or self.identify(target))
        if job is None:
            return self.create(target, progress)
        directory = JobDir(Path(job.properties["jobDir"]))
        if directory.state() in (INTERRUPTED, FAILED, CANCELED):
            self.backend.authorize(WRITE_ACTION, job.parent_id or "", data_action=True)
            self.handler.launch(directory, progress)
        return self._drive(job, directory, progress)

    def _azure_rules(self, a: dict[str, Any], location: str | None) -> catalog.FoundryModel:
        """What Azure refuses when the job is created, in Azure's words (400 invalidPayload)."""
        model = catalog.find_foundry_model(a["base_model"])
        if model is None:
            raise BackendError("invalidPayload", "The specified base model does not support fine-tuning.")
        method = a.get("method") or "supervised"
        if method not in model.methods:
            raise BackendError("invalidPayload", f"Fine-tuning method '{method}' is not supported for {model.model_id}.")
        tier = a["training_type"]
        region = (location or "").replace(" ", "").lower()
        if region not in model.tier_regions(tier):
            raise BackendError("invalidPayload", f"{tier} TrainingType is not supported for {model.model_id} "
                               f"in {region}.", hint=f"see {catalog.foundry_source()} (foundry_finetuning.yaml)")
        return model

    def _training_file(self, directory: JobDir, a: dict[str, Any], field: str, sha256: str | None) -> str:
        """The file the runner trains on: the manifest's (a preference file converted to
        conversations of its preferred outputs)."""
        import hashlib

        written = a[field]
        path = Path(written) if Path(written).is_absolute() else self.backend.root / written
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BackendError("DataNotFound", f"cannot read {written}: {exc.strerror or exc}") from None
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise BackendError("DataChanged", f"{written} changed since the plan was made", hint="plan again")
        if (a.get("method") or "supervised") != "dpo":
            return str(path)
        converted = directory.path / f"{field.split('_')[0]}-preferred.jsonl"
        lines = []
        for raw in data.splitlines():
            if raw.strip():
                example = json.loads(raw)
                lines.append(json.dumps({"messages": list(example["input"]["messages"])
                                         + list(example["preferred_output"])}))
        converted.write_text("\n".join(lines) + "\n")
        return str(converted)

    def _drive(self, job: ArmResource, directory: JobDir, progress: Progress) -> Observed:
        if self.backend.waiting:
            self.handler.wait(directory, progress)
        if directory.state() == COMPLETED and not job.properties.get("fineTunedModel"):
            # Azure's name for the result: the base model id, ".ft-", a digest of the job.
            import hashlib

            digest = hashlib.sha256(job.id.encode()).hexdigest()[:32]
            job = self.cloud.update_properties(job.id, fineTunedModel=f"{job.properties['baseModel']}.ft-{digest}")
            progress(f"fine-tuned model {job.properties['fineTunedModel']}")
        observed = self._observe(self.cloud.get(job.id))
        assert observed is not None
        return observed

    # -- delete ----------------------------------------------------------------------------

    def delete(self, target: Target, progress: Progress) -> None:
        import shutil

        from foundryctl.backends.local.handlers.finetune_job import cancel_run

        job = self.cloud.get(target.backend_id or self.identify(target))
        if job is None:
            return
        self.backend.authorize(DELETE_ACTION, job.parent_id or "", data_action=True)
        directory = JobDir(Path(job.properties["jobDir"]))
        cancel_run(directory, progress)
        self.cloud.delete_account_job(job.id)
        shutil.rmtree(directory.path, ignore_errors=True)
