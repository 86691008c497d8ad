"""Evaluation on the local backend: the target model loaded in this process (its prompts
decoded together in the serving engine's batches), a Deployment called over its endpoint,
each baseline scored the same way, and the runs kept under the backend's directory.

A run's key is the evaluation's identity (target version, data version, metric settings): a
key that has results already is not run again, only its gate judged again; a run that was
interrupted leaves no results and the previous ones standing, so the next apply runs it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.backends.local.handlers.base import LocalHandler
from foundryctl.backends.local.handlers.models import ModelFiles, short_id
from foundryctl.errors import BackendError
from foundryctl.evaluation import lifecycle
from foundryctl.evaluation.store import EvaluationStore
from foundryctl.kinds.checkpoint import LAST
from foundryctl.kinds.dataset import VALIDATION_SUFFIX
from foundryctl.kinds.evaluation import describe_target, run_key

# Running an evaluation is compute work in the project, as a job is.
RUN_ACTION = "Microsoft.MachineLearningServices/workspaces/jobs/write"
EVALUATIONS = "foundryctlEvaluations"  # foundryctl's own record type: Azure has no such resource


class EvaluationHandler(LocalHandler, ModelFiles):
    kind = "Evaluation"

    def _workspace(self, attributes: dict[str, Any]) -> str:
        return arm.workspace_id(self.subscription, self.resource_group, attributes["project"])

    def identify(self, target: Target) -> str:
        return f"{self._workspace(target.attributes)}/{EVALUATIONS}/{target.name}"

    def _store(self, evaluation_id: str) -> EvaluationStore:
        workspace, _, name = evaluation_id.rpartition(f"/{EVALUATIONS}/")
        return EvaluationStore(self.cloud.evaluation_directory(workspace, name))

    def store_of(self, target: Target) -> EvaluationStore:
        return self._store(target.backend_id or self.identify(target))

    # -- read ----------------------------------------------------------------------------

    def read(self, target: Target) -> Observed | None:
        evaluation_id = target.backend_id or self.identify(target)
        if self.cloud.get(arm.workspace_of(evaluation_id) or "") is None:
            return None
        return self._observe(evaluation_id)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return self._observe(backend_id) if f"/{EVALUATIONS}/" in backend_id else None

    def _observe(self, evaluation_id: str) -> Observed | None:
        return lifecycle.observe(self._store(evaluation_id), evaluation_id)

    # -- create / update -----------------------------------------------------------------

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._run(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._run(target, progress)

    def _run(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        workspace = self._workspace(a)
        self.backend.authorize(RUN_ACTION, workspace)
        a = self._resolve_target(workspace, a)
        evaluation_id = target.backend_id or self.identify(replace(target, attributes=a))
        store = self._store(evaluation_id)
        try:
            lifecycle.run(store, target.name, a, lambda: self._score(workspace, a, progress), progress)
        finally:
            self._report(workspace, a, target.name, store)
        observed = self._observe(evaluation_id)
        assert observed is not None
        return observed

    def _report(self, workspace: str, a: dict[str, Any], name: str, store: EvaluationStore) -> None:
        """Put the results into the scored run's training report."""
        import json

        from foundryctl.training.report import EVALUATIONS_DIR, write_report

        job = (a.get("target") or {}).get("job")
        directory = self._job_dir(workspace, {"job": job, "run": a.get("target_version")}) if job else None
        latest = store.latest()
        if directory is None or latest is None or latest.get("run") != run_key(a) or not directory.path.is_dir():
            return
        (directory.path / EVALUATIONS_DIR).mkdir(exist_ok=True)
        (directory.path / EVALUATIONS_DIR / f"{name}.json").write_text(
            json.dumps({k: v for k, v in latest.items() if k != "attributes"}, indent=2, sort_keys=True))
        try:
            write_report(directory)
        except (OSError, ValueError) as exc:  # the report is a convenience: the results are stored
            import logging

            logging.getLogger(__name__).warning("could not update %s: %s", directory.report, exc)

    def delete(self, target: Target, progress: Progress) -> None:
        self.store_of(target).remove()

    # -- scoring -------------------------------------------------------------------------

    def _resolve_target(self, workspace: str, a: dict[str, Any]) -> dict[str, Any]:
        """The attributes with the target's checkpoint picked, when the plan could not (its
        run was still to train)."""
        target = a.get("target") or {}
        if not target.get("checkpoint") or target.get("resolved"):
            return a
        chosen = self.resolve_selector(workspace, {"job": target["job"], "run": a["target_version"]},
                                       target["checkpoint"])
        return {**a, "target": {**target, "resolved": chosen}}

    def _score(self, workspace: str, a: dict[str, Any], progress: Progress):
        from foundryctl.evaluation.examples import read_cases
        from foundryctl.evaluation.metrics import with_judge_endpoints
        from foundryctl.evaluation.predictors import GenerationSettings
        from foundryctl.evaluation.run import RunOutcome, score_and_close, score_serving_baseline

        task = a.get("task") or "chat_completion"
        path = self._data_path(workspace, a)
        cases, skipped = read_cases(path, task, a.get("max_examples"))
        if not cases:
            raise BackendError("EvaluationDataEmpty", f"Dataset {a['data']!r} ({a.get('split')}) has no example "
                               "to evaluate" + (f" ({skipped} line(s) without a user prompt and an assistant "
                                                "answer)" if skipped else ""),
                               hint="an evaluation example is a conversation ending in the assistant's reference "
                                    "answer (or a labelled text for classification)")
        metrics = with_judge_endpoints(_metric_configs(a["metrics"]), lambda name: self._judge(workspace, name))
        generation = a.get("generation") or {}
        settings = GenerationSettings(generation.get("max_tokens", 256), generation.get("temperature", 0.0),
                                      generation.get("seed", 0))
        perplexity = any(m.name == "perplexity" for m in metrics)
        progress(f"scoring {describe_target(a)} on {len(cases)} examples")
        predictor, model = self._target_predictor(workspace, a, task, perplexity, progress)
        outcome = RunOutcome(score_and_close(predictor, cases, metrics, task, settings, progress, "target"))
        baseline = a.get("baseline") or {}
        if baseline.get("serving"):
            score_serving_baseline(outcome, baseline["serving"],
                                   self._endpoint(workspace, baseline["serving"], task, required=False),
                                   cases, metrics, task, settings, progress,
                                   serves_target=a.get("serving_baseline") is None)
        if baseline.get("base"):
            outcome.baselines["base"] = score_and_close(self._base_predictor(workspace, a, task, perplexity), cases,
                                                        metrics, task, settings, progress, "baseline base model")
        return outcome, model, cases, skipped

    def _data_path(self, workspace: str, a: dict[str, Any]) -> str:
        name = a["data"] + (VALIDATION_SUFFIX if a.get("split") == "validation" else "")
        container = self.cloud.get(arm.data_id(workspace, name))
        wanted = container.properties.get("latestVersion") if container is not None else None
        version = next((v for v in self.cloud.data_versions(container.id) if v.name == wanted), None) \
            if container is not None else None
        if version is None:
            raise BackendError("DataNotFound", f"data asset {name!r} has no version in the project",
                               hint=f"declare `kind: Dataset` named {a['data']}")
        return version.properties["localPath"]

    def _target_predictor(self, workspace: str, a: dict[str, Any], task: str, perplexity: bool, progress: Progress):
        from foundryctl.evaluation.predictors import ClassifierPredictor, EnginePredictor

        target = a["target"]
        if target.get("deployment"):
            endpoint = self._endpoint(workspace, target["deployment"], task, required=True)
            assert endpoint is not None
            return endpoint, f"Deployment.{target['deployment']}"
        if target.get("job"):
            checkpoint = target.get("resolved")
            model, model_dir, adapter = self.model_files(
                workspace, {"job": target["job"], "run": a["target_version"]}, checkpoint)
            name = short_id(model.id) + (f"@{checkpoint}" if checkpoint and checkpoint != LAST else "")
        else:
            model_dir, adapter, name = self._base_model_dir(target["base_model"]), None, target["base_model"]
        progress(f"loading {name}")
        if task == "text_classification":
            return ClassifierPredictor.load(model_dir, adapter), name
        return EnginePredictor.load(model_dir, adapter, score_references=perplexity), name

    def _base_predictor(self, workspace: str, a: dict[str, Any], task: str, perplexity: bool):
        from foundryctl.evaluation.predictors import ClassifierPredictor, EnginePredictor

        model, _, adapter = self.model_files(workspace, {"job": a["target"]["job"], "run": a["target_version"]})
        base_dir = self._base_model_dir(model.properties.get("lineage", {}).get("baseModel"))
        if task == "text_classification":
            from foundryctl.serving.classifier_engine import classification_labels

            # The untrained head the job started from: the same labels, the same seeded initialisation.
            return ClassifierPredictor.load(base_dir, None, labels=classification_labels(adapter))
        return EnginePredictor.load(base_dir, None, score_references=perplexity)

    def _judge(self, workspace: str, deployment: str) -> tuple[str, str]:
        """A judge Deployment's endpoint and key (it must be serving)."""
        predictor = self._endpoint(workspace, deployment, "chat_completion", required=True)
        predictor.close()
        return predictor.base_url, predictor.key

    def _endpoint(self, workspace: str, deployment: str, task: str, *, required: bool):
        """A predictor calling Deployment `deployment`'s endpoint, or None (not `required`) when
        it serves nothing."""
        from foundryctl.backends.local.server_process import server_state
        from foundryctl.evaluation.predictors import EndpointPredictor
        from foundryctl.kinds.deployment import RUNNING
        from foundryctl.serving.deploydir import DeploymentDir

        endpoint = self.cloud.get(arm.endpoint_id(workspace, deployment))
        directory = DeploymentDir(self.cloud.endpoint_directory(workspace, deployment)) if endpoint else None
        if endpoint is None or directory is None or server_state(directory) != RUNNING:
            if not required:
                return None
            raise BackendError("DeploymentNotRunning", f"Deployment {deployment!r} is not serving, so its endpoint "
                               "cannot be evaluated", hint="apply the Deployment first (the evaluation waits for it "
                                                           "when both are in the manifest)")
        return EndpointPredictor(f"http://127.0.0.1:{endpoint.properties['port']}/v1", directory.keys()["key1"],
                                 task=task, model=deployment)


def _metric_configs(raw: list[Any]) -> list[Any]:
    from foundryctl.evaluation.metrics import parse_metrics

    return parse_metrics(raw)
