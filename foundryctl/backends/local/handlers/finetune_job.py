"""FineTuneJob on the local backend: a real training process on this machine.

Create checks what Azure checks (the principal's role on the project, Microsoft.Network
registered), resolves the data asset versions and the base model (offline), writes the job
directory and starts `python -m foundryctl.training.run` detached. Apply then waits for it
(unless `--no-wait`) and registers the output model with its lineage. A job whose process died
reads as Interrupted, and the next apply resumes it from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.child_env import child_process_options
from foundryctl.backends.local.cloud import ArmResource
from foundryctl.backends.local.handlers.base import LocalHandler, log_tail
from foundryctl.backends.local.handlers.foundry_finetune import (
    LocalFoundryFineTuning,
    is_foundry_job,
)
from foundryctl.errors import BackendError
from foundryctl.kinds.dataset import VALIDATION_SUFFIX
from foundryctl.kinds.finetune_job import training_run
from foundryctl.training.jobdir import (
    CANCELED,
    COMPLETED,
    FAILED,
    INTERRUPTED,
    TERMINAL,
    JobDir,
    pid_alive,
    process_start_time,
)

WRITE_ACTION = "Microsoft.MachineLearningServices/workspaces/jobs/write"
DELETE_ACTION = "Microsoft.MachineLearningServices/workspaces/jobs/delete"
PROGRESS_EVERY = 5.0
DEFAULT_TARGETS = ["q_proj", "v_proj"]
DEFAULT_LEARNING_RATE = 1e-4  # models outside the catalog
MAX_DEFAULT_SEQUENCE = 2048
# The last epoch's metrics a job's outputs carry, by task.
METRIC_OUTPUTS = {
    "chat_completion": ("train_loss", "valid_loss", "valid_perplexity", "valid_mean_token_accuracy"),
    "text_classification": ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "valid_f1_macro"),
}


class FineTuneJobHandler(LocalHandler):
    kind = "FineTuneJob"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.foundry = LocalFoundryFineTuning(self)  # jobs in a FoundryProject

    def _workspace(self, attributes: dict[str, Any]) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, attributes["project"])

    def identify(self, target: Target) -> str:
        if is_foundry_job(target):
            return self.foundry.identify(target)
        # What the job trains is part of its name, so a replacement (created before the old
        # job is destroyed) is a different object.
        return arm.job_id(self._workspace(target.attributes), f"{target.name}-{training_run(target.attributes)}")

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        if is_foundry_job(target):
            return self.foundry.read(target)
        return self._observe(self.cloud.get(target.backend_id or self.identify(target)))

    def import_(self, backend_id: str, name: str) -> Observed | None:
        found = self.cloud.get(backend_id)
        if found is not None and found.type == arm.ACCOUNT_FINETUNING_JOBS:
            return self.foundry._observe(found)
        return self._observe(found)

    def users(self, target: Target, observed: Observed) -> list[str]:
        model = (observed.outputs.get("model") or {}).get("id")
        return [u for u in self.cloud.referenced_by(model) if f"/{arm.ENDPOINTS.split('/')[-1]}/" in u] if model else []

    def _observe(self, job: ArmResource | None) -> Observed | None:
        if job is None or job.type != arm.JOBS:
            return None
        return self.observe_run(job)

    def observe_run(self, job: ArmResource) -> Observed:
        """A job's state from its training run's directory (hub and Foundry jobs alike)."""
        directory = JobDir(self._job_path(job))
        state = directory.state()
        model = job.properties.get("outputModelId")
        if state == COMPLETED and not model:
            state = "Finishing"  # trained; the model is registered by the next apply
        attributes = {**job.properties.get("foundryctl", {}).get("attributes", {}), "status": state}
        status = directory.read_status()
        evaluation = next(iter(reversed(directory.read_metrics("epoch"))), {})
        outputs = {
            "id": job.id, "job_dir": str(directory.path), "status": state,
            "step": status.get("step"), "total_steps": status.get("total_steps"),
            "epoch": status.get("epoch"), "epochs": status.get("epochs"), "error": status.get("error"),
            "model": {"id": model, "name": job.properties.get("outputModel"),
                      "version": job.properties.get("outputModelVersion")} if model else None,
            "adapter": str(directory.model) if directory.model.exists() else None,
            "metrics": {k: evaluation.get(k) for k in METRIC_OUTPUTS[attributes.get("task") or "chat_completion"]}
            if evaluation else None,
            "checkpoints": directory.checkpoint_table(),
            "tokens_per_second": status.get("tokens_per_second"),
            "report": str(directory.report) if directory.report.exists() else None,
        }
        return Observed(job.id, attributes, outputs)

    def _job_path(self, job: ArmResource):
        from pathlib import Path

        return Path(job.properties["jobDir"])

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        if is_foundry_job(target):
            return self.foundry.create(target, progress)
        a = target.attributes
        workspace = self._workspace(a)
        self.backend.authorize(WRITE_ACTION, workspace)
        try:
            self.cloud.require_registered(self.subscription, "Microsoft.Network")
        except BackendError as exc:
            raise BackendError(exc.code, "fine-tuning needs the Microsoft.Network resource provider "
                               f"registered: {exc.message}", hint=exc.hint) from None
        training, validation = self._data_versions(workspace, a)
        ref, model_dir = self._base_model(a["base_model"], progress)
        job_id = self.identify(target)
        name = arm.last_segment(job_id)
        directory = JobDir(self.cloud.job_directory(workspace, name))
        directory.create()
        for previous in _other_runs(directory, target.name):
            directory.inherit_pins(previous)  # before training starts, so rotation already keeps them
        config = training_config(a, ref, model_dir, training.properties["localPath"],
                                 validation.properties["localPath"] if validation is not None else None)
        if not directory.config.exists():
            config.save(directory.config)
        stored = {k: v for k, v in a.items() if k != "status"}
        job = self.cloud.create_job(workspace, name, {
            "jobDir": str(directory.path), "baseModel": a["base_model"], "outputModel": a["output_model"],
            "trainingData": training.id, "validationData": validation.id if validation is not None else None,
            "hyperparameters": a["hyperparameters"], "foundryctl": {"attributes": stored}})
        for used in (training, validation):
            if used is not None:
                self.cloud.add_reference(job.id, used.id)
        if directory.state() not in (COMPLETED, "Running"):
            self._launch(directory, progress)
        return self._drive(job, directory, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        if is_foundry_job(target):
            return self.foundry.update(target, before, progress)
        job = self.cloud.get(target.backend_id or self.identify(target))
        if job is None:
            raise BackendError("ResourceNotFound", f"job {target.backend_id} was not found")
        if target.attributes.get("description") != before.get("description"):
            attributes = {**job.properties["foundryctl"]["attributes"],
                          "description": target.attributes.get("description", "")}
            job = self.cloud.update_properties(job.id, foundryctl={"attributes": attributes})
        directory = JobDir(self._job_path(job))
        if directory.state() in (INTERRUPTED, FAILED, CANCELED):
            self.backend.authorize(WRITE_ACTION, self._workspace(target.attributes))
            checkpoint = directory.latest_checkpoint()
            progress(f"resuming from {checkpoint.name}" if checkpoint else "restarting (no checkpoint yet)")
            self._launch(directory, progress)
        return self._drive(job, directory, progress)

    def _data_versions(self, workspace: str, a: dict[str, Any]) -> tuple[ArmResource, ArmResource | None]:
        training = self._latest_data(arm.data_id(workspace, a["training_data"]))
        if training is None:
            raise BackendError("DataNotFound", f"data asset {a['training_data']!r} has no version in "
                               "the project", hint=f"declare `kind: Dataset` named {a['training_data']}")
        if a.get("validation_data"):
            validation = self._latest_data(arm.data_id(workspace, a["validation_data"]))
            if validation is None:
                raise BackendError("DataNotFound", f"data asset {a['validation_data']!r} has no version")
        else:
            validation = self._latest_data(arm.data_id(workspace, a["training_data"] + VALIDATION_SUFFIX))
        return training, validation

    def _latest_data(self, container_id: str) -> ArmResource | None:
        container = self.cloud.get(container_id)
        if container is None:
            return None
        wanted = container.properties.get("latestVersion")
        return next((v for v in self.cloud.data_versions(container_id) if v.name == wanted), None)

    def base_model(self, written: str, progress: Progress):
        """(BaseModelRef, model directory) of a base model, prepared offline."""
        return self._base_model(written, progress)

    def launch(self, directory: JobDir, progress: Progress) -> None:
        self._launch(directory, progress)

    def wait(self, directory: JobDir, progress: Progress) -> None:
        self._wait(directory, progress)

    def _base_model(self, written: str, progress: Progress):
        from foundryctl.models import parse_base_model
        from foundryctl.models.files import (
            ModelNotAvailable,
            find_model,
            model_cache_dir,
        )

        ref = parse_base_model(written, self.backend.root)
        if ref.source == "catalog" and not (model_cache_dir(ref) / "config.json").exists():
            progress(f"preparing {ref.name} in the model cache (once)")
        try:
            return ref, find_model(ref)
        except ModelNotAvailable as exc:
            raise BackendError("ModelNotAvailable", exc.message, hint=exc.hint) from None

    def _launch(self, directory: JobDir, progress: Progress) -> None:
        from foundryctl.training.config import TrainingConfig, launch_command

        config = TrainingConfig.load(directory.config)
        with directory.open_log() as log:
            process = subprocess.Popen(
                launch_command(directory.path, config.processes),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=directory.path, **child_process_options(), start_new_session=True)  # outlives apply; Ctrl-C stays with apply
        directory.write_status(state="Queued", pid=process.pid, pid_start=process_start_time(process.pid),
                               error=None)
        progress(f"training started (pid {process.pid}"
                 + (f", {config.processes} GPU processes under torchrun" if config.processes > 1 else "")
                 + f", log {directory.log})")

    def _drive(self, job: ArmResource, directory: JobDir, progress: Progress) -> Observed:
        """Wait for the run (unless apply said not to) and register its model."""
        if self.backend.waiting:
            self._wait(directory, progress)
        if directory.state() == COMPLETED and not job.properties.get("outputModelId"):
            job = self._register_model(job, directory)
            progress(f"registered model {job.properties['outputModel']}:{job.properties['outputModelVersion']}")
        observed = self._observe(self.cloud.get(job.id))
        assert observed is not None
        return observed

    def _wait(self, directory: JobDir, progress: Progress) -> None:
        """Until training ends, or apply stops waiting (Ctrl-C): the job then runs on, detached."""
        last = 0.0
        while self.backend.waiting:
            state = directory.state()
            if state == COMPLETED:
                return
            if state in (FAILED, CANCELED, INTERRUPTED):
                status = directory.read_status()
                tail = log_tail(directory.log, 8)
                raise BackendError(
                    "TrainingFailed" if state == FAILED else f"Training{state}",
                    f"training {state.lower()}: {status.get('error') or 'the job process exited'}"
                    + (f"\n{tail}" if tail else ""),
                    hint=f"see {directory.log}; apply again to resume from the last checkpoint")
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                status = directory.read_status()
                progress(_progress_line(status), completed=status.get("step") or 0,
                         total=status.get("total_steps"))
            self.backend.pause(0.5)

    def _register_model(self, job: ArmResource, directory: JobDir) -> ArmResource:
        props = job.properties
        workspace = arm.workspace_of(job.id) or ""
        evaluation = next(iter(reversed(directory.read_metrics("epoch"))), {})
        model = self.cloud.register_model(workspace, props["outputModel"], {
            "modelType": "custom_model", "path": str(directory.model),
            "mergedPath": str(directory.merged) if directory.merged.exists() else None,
            "lineage": {"job": job.id, "baseModel": props["baseModel"], "trainingData": props["trainingData"],
                        "validationData": props.get("validationData")},
            "metrics": evaluation})
        for used in (props.get("trainingData"), props.get("validationData")):
            if used:
                self.cloud.add_reference(model.id, used)
        return self.cloud.update_properties(job.id, outputModelId=model.id, outputModelVersion=model.name)

    # -- delete --------------------------------------------------------------------------

    def delete(self, target: Target, progress: Progress) -> None:
        if is_foundry_job(target):
            return self.foundry.delete(target, progress)
        job = self.cloud.get(target.backend_id or self.identify(target))
        if job is None:
            return
        self.backend.authorize(DELETE_ACTION, arm.workspace_of(job.id) or "")
        directory = JobDir(self._job_path(job))
        _cancel(directory, progress)
        model = job.properties.get("outputModelId")
        if model:
            self.cloud.delete_model_version(model)
        self.cloud.delete_job(job.id)
        import shutil

        shutil.rmtree(directory.path, ignore_errors=True)



def training_config(a: dict[str, Any], ref: Any, model_dir: Any, training_file: str,
                validation_file: str | None) -> Any:
    """The local runner's config for a job's attributes (hub and Foundry jobs alike)."""
    from foundryctl.training.config import TrainingConfig, gpu_count

    hp = a["hyperparameters"]
    classification = a.get("task") == "text_classification"
    entry = ref.entry
    context = ref.context_length or MAX_DEFAULT_SEQUENCE
    return TrainingConfig(
        model_dir=str(model_dir), base_model=a["base_model"],
        training_file=training_file,
        validation_file=validation_file,
        output_model=a["output_model"], epochs=hp["epochs"], batch_size=hp["batch_size"],
        learning_rate=(entry.learning_rate if entry else DEFAULT_LEARNING_RATE) * hp["learning_rate_multiplier"],
        seed=a["seed"], lora=not hp["full_finetune"], lora_r=hp["lora_r"], lora_alpha=hp["lora_alpha"],
        lora_dropout=hp["lora_dropout"],
        target_modules=hp["target_modules"] or (list(entry.lora_target_modules) if entry else DEFAULT_TARGETS),
        max_seq_length=hp["max_seq_length"] or min(context, MAX_DEFAULT_SEQUENCE),
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        max_tokens_per_pass=hp.get("max_tokens_per_pass", 1024), warmup_ratio=hp["warmup_ratio"],
        lr_scheduler=hp["lr_scheduler"], weight_decay=hp["weight_decay"], merge_weights=hp["merge_weights"],
        # A classification run is one process (training/classification.py).
        processes=1 if classification else max(1, gpu_count()),
        task=a.get("task") or "chat_completion", labels=a.get("labels"))


def _other_runs(directory: JobDir, job: str) -> list[JobDir]:
    """The job's other training runs in the project (a run being replaced by this one)."""
    import re

    run = re.compile(rf"^{re.escape(job)}-[0-9a-f]{{8}}$")
    parent = directory.path.parent
    return [JobDir(p) for p in sorted(parent.iterdir()) if p != directory.path and run.match(p.name)] \
        if parent.is_dir() else []


def cancel_run(directory: JobDir, progress: Progress) -> None:
    """Stop a job's training process (hub and Foundry jobs alike)."""
    _cancel(directory, progress)


def _cancel(directory: JobDir, progress: Progress, timeout: float = 60.0) -> None:
    """Stop a running job: SIGTERM (it stops between steps), then SIGKILL after `timeout`."""
    status = directory.read_status()
    pid = status.get("pid")
    if not pid or status.get("state") in TERMINAL or not pid_alive(pid, status.get("pid_start")):
        return
    progress(f"canceling the running job (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid, status.get("pid_start")) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid, status.get("pid_start")):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _progress_line(status: dict[str, Any]) -> str:
    if status.get("state") != "Running" or not status.get("total_steps"):
        return "waiting for the training process to start"
    eta = status.get("eta_seconds")
    parts = [f"epoch {status.get('epoch', 0)}/{status.get('epochs', '?')}",
             f"step {status.get('step', 0)}/{status['total_steps']}"]
    if status.get("loss") is not None:
        parts.append(f"loss {status['loss']:.4f}")
    if status.get("tokens_per_second"):
        parts.append(f"{status['tokens_per_second']:,.0f} tokens/s")
    if eta is not None:
        parts.append(f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
    return ", ".join(parts)



