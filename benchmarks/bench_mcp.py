"""What ``rlm-sandbox mcp`` adds to a call: the server started by the SDK's stdio client, then
``list_tools`` and a warm ``python_run`` cell, against the same cell on a sandbox in-process.

    .venv/bin/python benchmarks/bench_mcp.py [--n 200] [--smoke]

Prints one JSON object on stdout (p50/p99 in ms, n samples); no assertion on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp import ClientSession, StdioServerParameters  # noqa: E402 - after the path setup above
from mcp.client.stdio import stdio_client  # noqa: E402 - after the path setup above

from rlm_sandbox import SandboxSpec  # noqa: E402 - after the path setup above


def summary(samples: list[float]) -> dict[str, float | int]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered) * 1000, 3), "p99": round(p99 * 1000, 3), "n": len(ordered),
            "unit": "ms"}


async def through_mcp(n: int) -> dict[str, object]:
    env = {"PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": os.environ.get("PATH", "")}
    traces = tempfile.mkdtemp(prefix="bench-mcp-traces-")  # python_run writes none; the option wants a place
    params = StdioServerParameters(command=sys.executable, args=["-m", "rlm_sandbox", "mcp", "--trace-dir", traces],
                                   env=env)
    started = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        async with stdio_client(params, errlog=quiet) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                ready = time.perf_counter() - started
                listing = []
                for _ in range(n):
                    t = time.perf_counter()
                    await session.list_tools()
                    listing.append(time.perf_counter() - t)
                first = time.perf_counter()
                await session.call_tool("python_run", {"code": "pass"})
                first_cell = time.perf_counter() - first
                cells = []
                for _ in range(n):
                    t = time.perf_counter()
                    await session.call_tool("python_run", {"code": "pass"})
                    cells.append(time.perf_counter() - t)
    os.rmdir(traces)
    return {"spawn_to_initialized_s": round(ready, 3), "list_tools": summary(listing),
            "python_run_first_cell_s": round(first_cell, 3), "python_run_warm": summary(cells)}


def in_process(n: int) -> dict[str, object]:
    with SandboxSpec().create(None) as sandbox:
        sandbox.exec("pass")
        cells = []
        for _ in range(n):
            t = time.perf_counter()
            sandbox.exec("pass")
            cells.append(time.perf_counter() - t)
    return {"sandbox_exec_warm": summary(cells)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per figure")
    parser.add_argument("--smoke", action="store_true", help="2 samples: does it still work?")
    args = parser.parse_args()
    n = 2 if args.smoke else args.n
    result: dict[str, object] = {**asyncio.run(through_mcp(n)), **in_process(n)}
    warm, direct = result["python_run_warm"], result["sandbox_exec_warm"]
    result["mcp_overhead_per_call_p50_ms"] = round(warm["p50"] - direct["p50"], 3)  # type: ignore[index]  # both are dicts of figures
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
