"""Evaluation on Azure: a Deployment's serverless endpoint scored the way a client calls it.

Azure runs no inference on a fine-tuned model that is not deployed, so the target is a
Deployment (validate refuses the others); a serving baseline is another Deployment's endpoint.
The endpoint's URI and key are read from Azure when the run starts (GET the endpoint, POST
listKeys) and the key never leaves this process. The examples are read from the Dataset's file
here, the held-out split chosen exactly as the Dataset chose it. Azure keeps no evaluation
object: the runs are kept in the backend's `evaluations_path` (default
`.foundryctl/evaluations` beside the manifest), one directory per project and evaluation; a
checkout without them (a fresh CI runner) scores again on the next apply.
"""

from __future__ import annotations

from typing import Any

from foundryctl.backends import arm
from foundryctl.backends.azure.handlers.base import AzureHandler
from foundryctl.backends.base import Observed, Progress, Target
from foundryctl.errors import BackendError
from foundryctl.evaluation import lifecycle
from foundryctl.evaluation.store import EvaluationStore
from foundryctl.kinds.evaluation import describe_target

EVALUATIONS = "foundryctlEvaluations"  # foundryctl's own record type: Azure has no such resource


class EvaluationHandler(AzureHandler):
    kind = "Evaluation"

    def identify(self, target: Target) -> str:
        return f"{self.workspace_id(target.attributes['project'])}/{EVALUATIONS}/{target.name}"

    def _store(self, evaluation_id: str) -> EvaluationStore:
        workspace, _, name = evaluation_id.rpartition(f"/{EVALUATIONS}/")
        root = self.backend.root / self.config.evaluations_path
        return EvaluationStore(root / self.subscription / self.resource_group / arm.last_segment(workspace) / name)

    def read(self, target: Target) -> Observed | None:
        evaluation_id = target.backend_id or self.identify(target)
        return lifecycle.observe(self._store(evaluation_id), evaluation_id)

    def import_(self, backend_id: str, name: str) -> Observed | None:
        return lifecycle.observe(self._store(backend_id), backend_id) if f"/{EVALUATIONS}/" in backend_id else None

    def create(self, target: Target, progress: Progress) -> Observed:
        return self._run(target, progress)

    def update(self, target: Target, before: dict[str, Any], progress: Progress) -> Observed:
        return self._run(target, progress)

    def delete(self, target: Target, progress: Progress) -> None:
        self._store(target.backend_id or self.identify(target)).remove()

    def _run(self, target: Target, progress: Progress) -> Observed:
        a = target.attributes
        evaluation_id = target.backend_id or self.identify(target)
        store = self._store(evaluation_id)
        lifecycle.run(store, target.name, a, lambda: self._score(a, progress), progress)
        observed = lifecycle.observe(store, evaluation_id)
        assert observed is not None
        return observed

    def _score(self, a: dict[str, Any], progress: Progress):
        from foundryctl.evaluation.examples import read_cases
        from foundryctl.evaluation.metrics import parse_metrics, with_judge_endpoints
        from foundryctl.evaluation.predictors import GenerationSettings
        from foundryctl.evaluation.run import RunOutcome, score_and_close, score_serving_baseline

        task = a.get("task") or "chat_completion"
        data = a.get("data_file") or {}
        path = self.backend.root / data.get("path", "")
        holdout = tuple(data["holdout"]) if data.get("holdout") else None
        try:
            cases, skipped = read_cases(path, task, a.get("max_examples"), holdout=holdout)  # type: ignore[arg-type]
        except OSError as exc:
            raise BackendError("DataNotFound", f"cannot read {path}: {exc.strerror}") from None
        if not cases:
            raise BackendError("EvaluationDataEmpty", f"Dataset {a['data']!r} ({a.get('split')}) has no example to "
                               "evaluate", hint="an evaluation example is a conversation ending in the assistant's "
                                                "reference answer")
        metrics = with_judge_endpoints(parse_metrics(a["metrics"]), lambda name: self._judge(a["project"], name))
        generation = a.get("generation") or {}
        settings = GenerationSettings(generation.get("max_tokens", 256), generation.get("temperature", 0.0),
                                      generation.get("seed", 0))
        deployment = a["target"]["deployment"]
        progress(f"scoring {describe_target(a)} on {len(cases)} examples")
        predictor = self._endpoint(a["project"], deployment, task, required=True)
        outcome = RunOutcome(score_and_close(predictor, cases, metrics, task, settings, progress, "target"))
        serving = (a.get("baseline") or {}).get("serving")
        if serving:
            score_serving_baseline(outcome, serving, self._endpoint(a["project"], serving, task, required=False),
                                   cases, metrics, task, settings, progress)
        return outcome, f"Deployment.{deployment}", cases, skipped

    def _judge(self, project: str, deployment: str) -> tuple[str, str]:
        """A judge Deployment's endpoint and key (it must be running)."""
        predictor = self._endpoint(project, deployment, "chat_completion", required=True)
        predictor.close()
        return predictor.base_url, predictor.key

    def _endpoint(self, project: str, deployment: str, task: str, *, required: bool):
        from foundryctl.evaluation.predictors import EndpointPredictor

        handler = self.backend.handler("Deployment")
        target = Target(f"Deployment.{deployment}", "Deployment", deployment, {"project": project})
        observed = handler.read(target)
        uri = observed.outputs.get("endpoint") if observed is not None else None
        if observed is None or observed.attributes.get("status") != "Running" or not uri:
            if not required:
                return None
            raise BackendError("DeploymentNotRunning", f"serverless endpoint {deployment!r} is not running, so it "
                               "cannot be evaluated", hint="apply the Deployment first")
        key, _ = handler.keys(target)  # type: ignore[attr-defined]
        return EndpointPredictor(uri, key, task=task)
