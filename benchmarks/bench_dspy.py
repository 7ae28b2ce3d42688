#!/usr/bin/env python3
"""DSPy interpreters side by side: one ``execute()`` round trip in SandboxInterpreter (our
hardened container) against DSPy's own interpreters, in one run.

    python benchmarks/bench_dspy.py [--quick | --smoke] [--only NAME ...]

Backends: ``sandbox`` (SandboxInterpreter, Docker, runc), ``local`` (DSPy's LocalInterpreter: a
plain subprocess, no isolation) and ``deno`` (DSPy's default PythonInterpreter, Deno + Pyodide),
which is reported with the reason when it cannot start here (its runner imports a module
from deno.land at start-up; only package registries are reachable from this machine).

Prints ONE JSON object on stdout (progress on stderr). Figures are wall-clock
``time.perf_counter()`` spans of the caller, as p50/p99 in ms with the sample count. Needs the
``dspy`` extra and a Docker daemon. ``--smoke`` runs each benchmark once (its figures mean
nothing; tests/test_dspy_benchmark.py runs it so the script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dspy.primitives.local_interpreter import LocalInterpreter  # noqa: E402 - after the path setup above
from dspy.primitives.python_interpreter import PythonInterpreter  # noqa: E402 - after the path setup above

from rlm_sandbox.integrations.dspy import SandboxInterpreter  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.image import ensure_image  # noqa: E402 - after the path setup above

perf = time.perf_counter
RUN_LABEL = "org.rlm-sandbox.benchmark"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUN_ID = uuid.uuid4().hex[:12]
BENCHES = ["start", "round_trip", "print", "tool_call", "variables"]
#: samples per benchmark (full, quick, smoke)
SAMPLES = {"start": (5, 3, 1), "round_trip": (500, 100, 2), "print": (500, 100, 2), "tool_call": (300, 60, 2),
           "variables": (30, 10, 1)}
CONTEXT_CHARS = {"full": 10_000_000, "quick": 10_000_000, "smoke": 100_000}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(q: float) -> float:
        k = (len(ordered) - 1) * q
        low = int(k)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (k - low)

    return {"p50": round(pct(0.5) * 1000, 3), "p99": round(pct(0.99) * 1000, 3),
            "mean": round(statistics.fmean(ordered) * 1000, 3), "n": len(ordered), "unit": "ms"}


def echo(value: Any) -> Any:
    return value


def backends() -> dict[str, Callable[..., Any]]:
    return {
        "sandbox": lambda **kw: SandboxInterpreter(labels={RUN_LABEL: RUN_ID}, **kw),
        "local": lambda **kw: LocalInterpreter(**kw),
        "deno": lambda **kw: PythonInterpreter(**kw),
    }


def timed(interpreter: Any, code: str, n: int, warmup: int, variables: dict[str, Any] | None = None) -> list[float]:
    for _ in range(warmup):
        interpreter.execute(code, variables)
    samples = []
    for _ in range(n):
        began = perf()
        interpreter.execute(code, variables)
        samples.append(perf() - began)
    return samples


def bench(name: str, make: Callable[..., Any], n: int, context_chars: int) -> dict[str, Any]:
    warmup = 0 if n <= 2 else max(5, n // 10)
    if name == "start":  # constructed, started and the first cell answered
        samples = []
        for _ in range(n):
            began = perf()
            interpreter = make()
            try:
                interpreter.start()
                interpreter.execute("print(1)")
                samples.append(perf() - began)
            finally:
                interpreter.shutdown()
        return summary(samples)
    tools = {"echo": echo} if name == "tool_call" else None
    interpreter = make(tools=tools) if tools else make()
    try:
        interpreter.start()
        if name == "round_trip":
            return summary(timed(interpreter, "x = 1", n, warmup))
        if name == "print":
            return summary(timed(interpreter, "print(1)", n, warmup))
        if name == "tool_call":
            return summary(timed(interpreter, "echo(1)", n, warmup))
        # DSPy binds its inputs before every cell: a big context and a short question.
        variables = {"context": "x" * context_chars, "question": "how long?"}
        return {**summary(timed(interpreter, "n = len(context)", n, warmup, variables)),
                "context_chars": context_chars}
    finally:
        interpreter.shutdown()


def leaked_containers() -> list[str]:
    client = docker_client()
    return [c["Id"][:12] for c in client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer samples")
    size.add_argument("--smoke", action="store_true", help="each benchmark once: does the script still work?")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these benchmarks")
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    column = {"full": 0, "quick": 1, "smoke": 2}[mode]
    ensure_image()  # built once if missing, not timed
    results: dict[str, Any] = {}
    failed = False
    for name in args.only or BENCHES:
        results[name] = {}
        for backend, make in backends().items():
            log(f"bench_dspy: {name} / {backend}")
            try:
                results[name][backend] = bench(name, make, SAMPLES[name][column], CONTEXT_CHARS[mode])
            except Exception as exc:  # noqa: BLE001 - a backend that cannot run here is reported
                text = " ".join(ANSI.sub("", str(exc)).split())
                results[name][backend] = {"error": f"{type(exc).__name__}: {text[:400]}"}
                failed = failed or backend != "deno"  # Deno needs deno.land, which may be out of reach
    leaked = leaked_containers()
    print(json.dumps({"benchmark": "dspy", "mode": mode, "python": platform.python_version(),
                      "machine": platform.machine(), "results": results, "leaked_containers": leaked}, indent=2))
    return 1 if failed or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
