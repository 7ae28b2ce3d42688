#!/usr/bin/env python3
"""How many sandboxes this machine holds at once, idle and busy, and what fails first.

    python benchmarks/bench_capacity.py [--max N] [--runtime runsc] [--smoke]

Idle: sandboxes are started one after another (1 MB context each) and kept, until a start
fails or ``--max`` are up; host memory (MemAvailable) and Docker's container count are
read every 10. Busy: every sandbox that is up then runs the same CPU-bound cell (about
0.2 s of CPU alone) at the same moment, each from its own thread; the figure is how many
finish without an error, and the wall time. Prints ONE JSON object on stdout.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_sandbox import LABELS, RUN_ID, RUN_LABEL, machine, say  # noqa: E402 - after the path setup above

from rlm_sandbox.sandbox import DockerSandbox, SandboxLimits  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.image import ensure_image  # noqa: E402 - after the path setup above

perf = time.perf_counter
BUSY_CELL = "total = sum(i * i for i in range(2_000_000))\nprint(total > 0)"
BENCHES = ["idle", "busy"]


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max", type=int, default=200, help="stop once this many are up (default 200)")
    parser.add_argument("--runtime", default=None, help="e.g. runsc for gVisor")
    parser.add_argument("--smoke", action="store_true", help="3 sandboxes, to check the script works")
    args = parser.parse_args(argv)
    cap = 3 if args.smoke else args.max
    began = perf()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    client = docker_client()
    image = ensure_image(client=client)
    limits = SandboxLimits(cell_timeout_s=120)
    context = "x" * 1_000_000
    up: list[DockerSandbox] = []
    samples: list[dict[str, Any]] = []
    first_failure: str | None = None
    memory_at_start = mem_available_mib()
    try:
        while len(up) < cap:
            t0 = perf()
            try:
                up.append(DockerSandbox(context, image=image, limits=limits, runtime=args.runtime,
                                        labels=LABELS, client=client).start())
            except Exception as exc:  # noqa: BLE001 - what fails first is the finding
                first_failure = f"start #{len(up) + 1}: {type(exc).__name__}: {str(exc)[:500]}"
                say(first_failure)
                break
            if len(up) % 10 == 0 or len(up) == cap:
                samples.append({"up": len(up), "start_s": round(perf() - t0, 3),
                                "mem_available_MiB": round(mem_available_mib()), "loadavg_1m": os.getloadavg()[0]})
                say(f"{len(up)} up, last start {samples[-1]['start_s']} s, "
                    f"{samples[-1]['mem_available_MiB']} MiB available")
        idle = {"up": len(up), "cap": cap, "first_failure": first_failure, "samples": samples,
                "memory_per_sandbox_MiB": round((memory_at_start - mem_available_mib()) / max(len(up), 1), 1)}
        say(f"busy: one CPU-bound cell in each of {len(up)} sandboxes at once")
        t0 = perf()
        with ThreadPoolExecutor(max(len(up), 1)) as pool:
            results = list(pool.map(lambda sb: sb.exec(BUSY_CELL), up))
        errors = sorted({f"{r.error.type}: {r.error.message[:200]}" for r in results if r.error is not None})
        busy = {"cells": len(results), "ok": sum(r.ok for r in results), "wall_s": round(perf() - t0, 2),
                "errors": errors}
        alive_after = sum(sb.exec("print(1)").ok for sb in up)
        busy["alive_after"] = alive_after
    finally:
        for sb in up:
            sb.close()
    leaked = client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
    for container in leaked:
        client.api.remove_container(container["Id"], force=True)
    report = {
        "benchmark": "capacity",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_capacity.py", *(argv or sys.argv[1:])]),
        "smoke": args.smoke, "runtime": args.runtime or "runc", "limits": limits.model_dump(),
        "results": {"idle": idle, "busy": busy},
        "machine": machine(client, load_at_start),
        "errors": {},
        "leaked_containers": len(leaked),
        "duration_s": round(perf() - began, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
