#!/usr/bin/env python3
"""Reading kernel state by request against running it as a cell (issue 18, part 1).

    python benchmarks/bench_kernel_state.py [--n 300]

On a LocalSandbox (the same kernel and protocol as Docker, without the container): the
``final_var`` request against ``exec("FINAL_VAR('x')")``, the ``memory_status`` request
against ``exec("print(memory_status())")``, and the executor round trip a root call without
a token or cost limit no longer makes to learn there is nothing to reserve. Prints one JSON
object of medians and p90s in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any, Callable

from rlm_sandbox.sandbox.local import LocalSandbox


def timed(function: Callable[[], Any], n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        function()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 4), "p90_ms": round(samples[int(0.9 * (n - 1))], 4)}


async def executor_hops(n: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        await loop.run_in_executor(None, lambda: None)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 4), "p90_ms": round(samples[int(0.9 * (n - 1))], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="samples per figure")
    n = parser.parse_args().n
    with LocalSandbox() as sandbox:
        sandbox.exec("x = 'an answer ' * 100\nrows = list(range(1000))")
        results = {
            "final_var_request": timed(lambda: sandbox.final_var("x"), n),
            "final_var_cell": timed(lambda: sandbox.exec("FINAL_VAR('x')"), n),
            "memory_status_request": timed(sandbox.memory_status, n),
            "memory_status_cell": timed(lambda: sandbox.exec("print(memory_status())", timeout=10), n),
        }
    results["executor_round_trip"] = asyncio.run(executor_hops(n))
    print(json.dumps({"n": n, **results}, indent=1))


if __name__ == "__main__":
    main()
