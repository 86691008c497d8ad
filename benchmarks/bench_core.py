"""Core engine benchmark: plan and apply of large control-plane manifests, end to end.

Generates manifests of 1,000 and 10,000 resources (hubs, projects in them, and role
assignments on the projects), then runs the real CLI in a fresh process for each step and
reads that process's wall time and peak RSS (os.wait4). Output goes to a file, as in CI.

    python benchmarks/bench_core.py                 # 1,000 and 10,000
    python benchmarks/bench_core.py --sizes 1000    # just one size

Targets (2-core machine): 10k no-change plan <= 2 s; 10k/1k plan time <= 12x;
apply of 1,000 new resources <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECTS_PER_HUB = 4


def write_manifest(directory: Path, size: int) -> Path:
    """About `size` resources: 1 provider registration, then units of hub + 4 projects + 4 assignments."""
    lines = ["version: 1", "backend:", "  type: local", "  registration_delay: 0",
             "variables:", "  location: eastus2", "resources:",
             "  - kind: ProviderRegistration", "    name: network", "    namespace: Microsoft.Network"]
    count, unit = 1, 0
    while count < size:
        hub = f"hub-{unit:05d}"
        lines += ["  - kind: Hub", f"    name: {hub}", "    location: ${var.location}",
                  f"    tags: {{team: team-{unit % 7}, unit: '{unit}'}}"]
        count += 1
        for p in range(PROJECTS_PER_HUB):
            if count >= size:
                break
            project = f"prj-{unit:05d}-{p}"
            lines += ["  - kind: Project", f"    name: {project}", f"    hub: {hub}",
                      f"    description: project {p} of unit {unit}"]
            count += 1
            if count >= size:
                break
            lines += ["  - kind: RoleAssignment", f"    name: dev-{unit:05d}-{p}",
                      f"    principal: user-{unit % 50}@contoso.com", "    role: Azure AI Developer",
                      f"    scope: {{project: {project}}}"]
            count += 1
        unit += 1
    path = directory / "manifest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB, exit status of one CLI run in a fresh process."""
    with open(cwd / "output.log", "ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "foundryctl", *args], cwd=cwd,
                                   stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def bench(size: int, workdir: Path) -> dict[str, tuple[float, float]]:
    directory = workdir / f"n{size}"
    directory.mkdir(parents=True)
    manifest = write_manifest(directory, size)
    results = {}
    steps = [("validate", ["validate", "-f", manifest.name], 0),
             ("apply, all new", ["apply", "-f", manifest.name, "--auto-approve"], 0),
             ("plan, no changes", ["plan", "-f", manifest.name, "--detailed-exitcode"], 0)]
    for label, args, expected in steps:
        wall, rss, code = run(args, directory)
        if code != expected:
            log = (directory / "output.log").read_text()[-3000:]
            raise SystemExit(f"{label} for {size} resources exited {code}, expected {expected}:\n{log}")
        results[label] = (wall, rss)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="foundryctl-bench-"))
    try:
        table = {size: bench(size, workdir) for size in options.sizes}
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    labels = list(next(iter(table.values())))
    print(f"\n{'resources':>10}  " + "  ".join(f"{label:>26}" for label in labels))
    for size, results in table.items():
        cells = [f"{wall:7.2f} s {rss:7.0f} MiB RSS" for wall, rss in results.values()]
        print(f"{size:>10,}  " + "  ".join(f"{c:>26}" for c in cells))
    sizes = sorted(table)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for label in labels:
            ratio = table[large][label][0] / table[small][label][0]
            print(f"{label}: {large:,}/{small:,} time ratio {ratio:.1f}x (resources {large / small:.0f}x)")
    checks = []
    if 10000 in table:
        checks.append(("10k no-change plan <= 2 s", table[10000]["plan, no changes"][0] <= 2.0))
    if 1000 in table:
        checks.append(("apply of 1k new <= 10 s", table[1000]["apply, all new"][0] <= 10.0))
    if 1000 in table and 10000 in table:
        ratio = table[10000]["plan, no changes"][0] / table[1000]["plan, no changes"][0]
        checks.append(("plan 10k/1k <= 12x", ratio <= 12))
    for name, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}")


if __name__ == "__main__":
    main()
