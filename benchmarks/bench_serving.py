"""Serving benchmark: the deployment's HTTP server against the same generation in-process.

Both sides serve SmolLM2-135M-Instruct with the same engine settings and answer the same
requests (greedy, so the same tokens): first the engine called directly in this process, then
the real server process (`python -m foundryctl.serving.run`, as apply starts it) over HTTP
with keep-alive connections, at 1, 4 and 16 concurrent clients. Reported per level: latency
p50/p95, completion tokens/s, errors; and the server's overhead at one client and its
throughput scaling from 1 to 16 clients.

    python benchmarks/bench_serving.py [--requests-per-client 4] [--max-tokens 48] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LEVELS = (1, 4, 16)


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        ordered = sorted(self.latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else None
        return {"clients": self.clients, "requests": len(self.latencies), "errors": self.errors,
                "p50_s": statistics.median(ordered) if ordered else None, "p95_s": p95,
                "tokens_per_s": self.tokens / self.seconds if self.seconds else 0.0}


def questions() -> list[str]:
    found = []
    with open(REPO / "manifests" / "data" / "xbox_support.jsonl", encoding="utf-8") as data:
        for line in data:
            for message in json.loads(line)["messages"]:
                if message["role"] == "user":
                    found.append(message["content"])
                    break
    return found


def run_level(clients: int, per_client: int, call) -> Level:
    """`clients` threads, each sending `per_client` requests back to back."""
    level = Level(clients)
    lock = threading.Lock()
    prompts = questions()
    barrier = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        barrier.wait()
        for i in range(per_client):
            prompt = prompts[(index * per_client + i) % len(prompts)]
            started = time.perf_counter()
            try:
                tokens = call(prompt)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                with lock:
                    level.errors += 1
                print(f"  error: {exc!r}", file=sys.stderr)
                continue
            elapsed = time.perf_counter() - started
            with lock:
                level.latencies.append(elapsed)
                level.tokens += tokens

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - started
    return level


def start_server(model_dir: Path, root: Path, max_batch_size: int) -> tuple[subprocess.Popen, int, str]:
    from foundryctl.backends.local.server_process import free_port, healthy
    from foundryctl.serving.deploydir import DeploymentDir, ServerConfig

    directory = DeploymentDir(root / "deployment")
    directory.ensure_secrets()
    port = free_port()
    directory.write_config(ServerConfig(deployment="bench", model_dir=str(model_dir), adapter_dir=None,
                                        model_id="SmolLM2-135M-Instruct", port=port, device="cpu",
                                        content_filter={"enabled": True}, max_batch_size=max_batch_size))
    log = open(directory.log, "ab")
    process = subprocess.Popen([sys.executable, "-m", "foundryctl.serving.run", str(directory.path)],
                               stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 300
    while not healthy(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start; see {directory.log}")
        time.sleep(0.2)
    return process, port, directory.keys()["key1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import http.client

    from foundryctl.models import parse_base_model
    from foundryctl.models.files import find_model
    from foundryctl.serving.engine import Engine, SamplingParams

    model_dir = find_model(parse_base_model("SmolLM2-135M-Instruct"))
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0)
    results: dict[str, list[dict]] = {"in_process": [], "server": []}

    engine = Engine.load(str(model_dir), device="cpu", max_batch_size=args.max_batch_size, model_name="bench")
    engine.generate([{"role": "user", "content": "Hello"}], params)  # warm up

    def in_process(prompt: str) -> int:
        return engine.generate([{"role": "user", "content": prompt}], params).completion_tokens

    for clients in LEVELS:
        results["in_process"].append(run_level(clients, args.requests_per_client, in_process).summary())
    engine.close()

    with tempfile.TemporaryDirectory() as scratch:
        process, port, key = start_server(model_dir, Path(scratch), args.max_batch_size)
        local = threading.local()

        def over_http(prompt: str) -> int:
            """One request on this thread's keep-alive connection, as an HTTP client library does."""
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            body = json.dumps({"messages": [{"role": "user", "content": prompt}],
                               "max_tokens": args.max_tokens, "temperature": 0})
            local.connection.request("POST", "/v1/chat/completions", body=body,
                                     headers={"api-key": key, "Content-Type": "application/json"})
            response = local.connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
            return json.loads(payload)["usage"]["completion_tokens"]

        try:
            over_http("Hello")  # warm up the connection path
            for clients in LEVELS:
                results["server"].append(run_level(clients, args.requests_per_client, over_http).summary())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                metrics = response.read().decode()
        finally:
            process.terminate()
            process.wait(timeout=60)

    one_in, one_server = results["in_process"][0], results["server"][0]
    sixteen = results["server"][-1]
    report = {
        "model": "SmolLM2-135M-Instruct", "max_tokens": args.max_tokens, "cpu_count": os.cpu_count(),
        "requests_per_client": args.requests_per_client, **results,
        "server_overhead_at_1_client": one_server["p50_s"] / one_in["p50_s"] - 1,
        "server_throughput_16_vs_1": sixteen["tokens_per_s"] / one_server["tokens_per_s"],
        "errors_at_16": sixteen["errors"],
        "metrics_requests_counted": "foundryctl_requests_total" in metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"SmolLM2-135M-Instruct, greedy, max_tokens {args.max_tokens}, "
          f"{args.requests_per_client} requests per client, {os.cpu_count()} CPUs\n")
    print(f"{'side':<11} {'clients':>7} {'p50 s':>8} {'p95 s':>8} {'tokens/s':>9} {'errors':>6}")
    for side in ("in_process", "server"):
        for row in results[side]:
            print(f"{side:<11} {row['clients']:>7} {row['p50_s']:>8.3f} {row['p95_s']:>8.3f} "
                  f"{row['tokens_per_s']:>9.1f} {row['errors']:>6}")
    print(f"\nserver overhead at 1 client (p50): {report['server_overhead_at_1_client']:+.1%} (target <= +10%)")
    print(f"server throughput, 16 vs 1 client: {report['server_throughput_16_vs_1']:.2f}x (target >= 2x)")
    print(f"errors at 16 clients: {report['errors_at_16']} (target 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
