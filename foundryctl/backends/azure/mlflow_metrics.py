"""A hub fine-tune's training metrics, read from its workspace's MLflow tracking server.

Azure keeps what a fine-tuning job's trainer logs in MLflow, not on the job resource. The
workspace names its tracking server (`mlflow_tracking_uri`, azureml://REGION.api.azureml.ms/
mlflow/v1.0/subscriptions/...); the MLflow REST API under it answers with the Entra token
foundryctl already holds for ARM. The job's own run is read first (runs/get); when it has no
metrics, its child runs (runs/search by mlflow.parentRunId), then each metric's history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from foundryctl.errors import BackendError

# MLflow keys (the Hugging Face trainer's names) -> `jobs metrics` fields; others keep their key.
FIELDS = {"loss": "train_loss", "train_loss": "train_loss", "eval_loss": "valid_loss",
          "eval_perplexity": "valid_perplexity", "eval_mean_token_accuracy": "valid_mean_token_accuracy",
          "learning_rate": "learning_rate", "epoch": "epoch"}
PAGE = 1000
TIMEOUT = 30.0


class MlflowMetrics:
    def __init__(self, tracking_uri: str, token: Callable[[], str]):
        self.base = "https://" + tracking_uri.split("://", 1)[-1].rstrip("/") + "/api/2.0/mlflow"
        self._token = token

    def rows(self, run_id: str) -> list[dict[str, Any]]:
        """One row per logged step ({"type": "step", "step": N, field: value}), by step."""
        run = self._call("GET", "/runs/get", params={"run_id": run_id})["run"]
        runs = [run] if _metric_keys(run) else self._children(run, run_id)
        by_step: dict[int, dict[str, Any]] = {}
        for each in runs:
            each_id = each["info"].get("run_id") or each["info"].get("run_uuid")
            for key in _metric_keys(each):
                for point in self._history(each_id, key):
                    step = int(point.get("step") or 0)
                    row = by_step.setdefault(step, {"type": "step", "step": step})
                    row[FIELDS.get(key, key)] = point.get("value")
        return [by_step[s] for s in sorted(by_step)]

    def _children(self, run: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
        body = {"experiment_ids": [run["info"].get("experiment_id")], "max_results": PAGE,
                "filter": f"tags.mlflow.parentRunId = '{run_id}'"}
        return [r for r in self._call("POST", "/runs/search", json=body).get("runs") or [] if _metric_keys(r)]

    def _history(self, run_id: str, key: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            params = {"run_id": run_id, "metric_key": key, "max_results": str(PAGE)}
            if token:
                params["page_token"] = token
            page = self._call("GET", "/metrics/get-history", params=params)
            yield from page.get("metrics") or []
            token = page.get("next_page_token")
            if not token:
                return

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        import requests

        try:
            response = requests.request(method, self.base + path, timeout=TIMEOUT,
                                        headers={"Authorization": f"Bearer {self._token()}"}, **kwargs)
        except requests.RequestException as exc:
            raise BackendError("MetricsUnavailable", f"reading the job's metrics from the workspace's MLflow "
                               f"tracking server: {exc}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text
            raise BackendError("MetricsUnavailable", f"the workspace's MLflow tracking server answered "
                               f"{response.status_code} to {path}: {str(message)[:300]}",
                               hint="reading metrics needs a data role on the project (Azure AI Developer)"
                               if response.status_code in (401, 403) else None)
        return response.json()


def _metric_keys(run: dict[str, Any]) -> list[str]:
    return sorted({m["key"] for m in (run.get("data") or {}).get("metrics") or [] if m.get("key")})
