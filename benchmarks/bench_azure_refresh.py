"""Refresh against Azure at scale: the azure backend's parallel reads against one at a time.

Azure cannot be reached from here, so the SDKs' real requests are answered by the contract
tests' fake (tests/azurefake) with a fixed latency per request, as ARM would answer them, and
a share of reads throttled with 429 Retry-After. Both sides run the same manifest (role
assignments and hubs: the authorization client and azure-ai-ml's MLClient) in one process, one
after the other: `max_parallel_reads: 1` against the default 16.

    python benchmarks/bench_azure_refresh.py                  # 300 resources, 80 ms per read
    python benchmarks/bench_azure_refresh.py --resources 600 --latency 0.05 --throttled 0.02
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def manifest(path: Path, roles: int, hubs: int, parallel: int) -> Path:
    from azurefake.fixtures import PRINCIPAL, RESOURCE_GROUP, SUBSCRIPTION

    lines = ["version: 1", "backend:", "  type: azure", f"  subscription_id: {SUBSCRIPTION}",
             f"  resource_group: {RESOURCE_GROUP}", "  location: eastus2", f"  max_parallel_reads: {parallel}",
             "resources:"]
    lines += [f"  - {{kind: Hub, name: hub-{i:04d}, location: eastus2}}" for i in range(hubs)]
    lines += [f"  - {{kind: RoleAssignment, name: reader-{i}, principal: {PRINCIPAL[:-4]}{i:04d}, "
              "role: Reader, scope: resource_group}" for i in range(roles)]
    path.write_text("\n".join(lines) + "\n")
    return path


def refresh(path: Path, latency: float, throttled: float) -> tuple[float, int, int]:
    """Seconds for a plan's refresh, requests answered, 429s sent."""
    import responses
    from azurefake import FakeAzure, arm_error, families
    from azurefake.fixtures import LOCATION, RESOURCE_GROUP, SUBSCRIPTION

    from foundryctl import Stack

    rng = random.Random(7)
    throttles = [0]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeAzure(mock, SUBSCRIPTION, RESOURCE_GROUP, LOCATION)
        for module in pkgutil.iter_modules(families.__path__):
            importlib.import_module(f"azurefake.families.{module.name}").install(fake)
        for registered in mock.registered():
            answer = registered.callback

            def slow(request, answer=answer):
                time.sleep(latency)
                if request.method == "GET" and rng.random() < throttled:
                    throttles[0] += 1
                    status, headers, body = arm_error(429, "TooManyRequests", "throttled", {"Retry-After": "1"})
                    return status, {**headers, "Content-Type": "application/json"}, json.dumps(body)
                return answer(request)

            registered.callback = slow
        with Stack.load(path) as stack:
            started = time.monotonic()
            plan = stack.plan()
            elapsed = time.monotonic() - started
        assert plan.summary[0] == sum(1 for line in path.read_text().splitlines() if "kind:" in line)
        return elapsed, len(fake.calls), throttles[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=300, help="role assignments (plus 1 hub per 10)")
    parser.add_argument("--latency", type=float, default=0.08, help="seconds per answered request")
    parser.add_argument("--throttled", type=float, default=0.02, help="share of reads answered 429")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="foundryctl-bench-azure-"))
    az = scratch / "bin" / "az"
    az.parent.mkdir()
    from azurefake.fixtures import FAKE_AZ

    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    for name in [n for n in os.environ if n.startswith(("AZURE_", "MSI_", "IDENTITY_"))]:
        del os.environ[name]
    os.environ.update(HOME=str(scratch), PATH=f"{az.parent}:{os.environ['PATH']}")

    hubs = max(1, args.resources // 10)
    rows = []
    for parallel in (1, 16):
        path = manifest(scratch / f"p{parallel}.yaml", args.resources, hubs, parallel)
        elapsed, requests, throttles = refresh(path, args.latency, args.throttled)
        rows.append((parallel, elapsed, requests, throttles))
    total = args.resources + hubs
    print(f"refresh of {total} resources ({args.resources} role assignments, {hubs} hubs), "
          f"{args.latency * 1000:.0f} ms per request, {args.throttled:.0%} of reads throttled (Retry-After: 1)")
    print(f"{'max_parallel_reads':>18}  {'refresh':>9}  {'requests':>8}  {'429s':>5}")
    for parallel, elapsed, requests, throttles in rows:
        print(f"{parallel:>18}  {elapsed:>8.2f}s  {requests:>8}  {throttles:>5}")
    print(f"parallel refresh: {rows[0][1] / rows[1][1]:.1f}x faster than one read at a time")


if __name__ == "__main__":
    main()
