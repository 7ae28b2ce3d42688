#!/usr/bin/env python3
"""`rlm-sandbox serve`: what the server adds to a run, how soon a stream starts, and a served
request against `rlm-sandbox run`.

    python benchmarks/bench_serve.py [--smoke] [--runs N]

The upstream is an `OpenAICompatibleServer` on 127.0.0.1 answering ``FINAL(ok)`` at once,
reached through litellm's real HTTP path; every run uses a real Docker sandbox taken from a
warm pool of 2 (the server's ``--pool 2``; ``SandboxPool(size=2)`` in process). One request
at a time. Figures (wall-clock ``time.perf_counter()`` in this process, medians):

- ``overhead``: a non-streamed served request (openai client, kept-alive connection) against
  ``RLM.run`` in this process with the same settings, interleaved run by run. The runs
  themselves vary by hundreds of milliseconds on a busy machine, so besides the difference of
  the medians the script reports each side's time outside the run (wall time minus the run's
  own ``duration_s``): their difference is the server's overhead per request.
- ``first_chunk``: a streamed request, from sending it to its first ``data:`` line (the
  role chunk), and to its last (``[DONE]``).
- ``cli_vs_served``: ``rlm-sandbox run`` spawned per question (it pays the import of litellm
  each time) against one served request.

Prints one JSON object on stdout; progress on stderr. ``--smoke`` is 2 runs of each: it checks
the script works; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402 - after the path setup above

from rlm_sandbox.testing import OpenAICompatibleServer  # noqa: E402 - after the path setup above
from serve_process import ServeProcess  # noqa: E402 - after the path setup above

BENCHES = ["overhead", "first_chunk", "cli_vs_served"]
perf = time.perf_counter
MESSAGES = [{"role": "system", "content": "some context"}, {"role": "user", "content": "answer ok"}]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    return {"n": len(samples), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000, 2),
            "min_ms": round(ordered[0] * 1000, 2)}


def overhead(served: ServeProcess, upstream: OpenAICompatibleServer, runs: int) -> dict[str, Any]:
    import openai

    from rlm_sandbox import RLM, SandboxPool

    client = openai.OpenAI(base_url=served.url, api_key="x", max_retries=0, timeout=120)
    rlm = RLM(model="openai/test-model", api_base=upstream.url, api_key="sk-bench-0000000000")
    pool = SandboxPool(size=2, spec=rlm.settings.sandbox_spec())
    rlm.sandbox_factory = pool.sandbox_factory
    try:
        rlm.run("answer ok", "some context")  # warm: litellm, the tokenizers, the connection
        client.chat.completions.create(model="rlm", messages=MESSAGES)
        inproc, http, inproc_outside, http_outside = [], [], [], []
        for _ in range(runs):
            began = perf()
            result = rlm.run("answer ok", "some context")
            inproc.append(perf() - began)
            inproc_outside.append(inproc[-1] - result.duration_s)
            assert result.answer == "ok"
            began = perf()
            reply = client.chat.completions.create(model="rlm", messages=MESSAGES)
            http.append(perf() - began)
            http_outside.append(http[-1] - reply.model_extra["rlm"]["duration_s"])
            assert reply.choices[0].message.content == "ok"
    finally:
        pool.close()
    a, b = summary(inproc), summary(http)
    outside_a, outside_b = summary(inproc_outside), summary(http_outside)
    return {"in_process": a, "served": b, "overhead_p50_ms": round(b["p50_ms"] - a["p50_ms"], 2),
            "outside_run_in_process": outside_a, "outside_run_served": outside_b,
            "overhead_outside_run_p50_ms": round(outside_b["p50_ms"] - outside_a["p50_ms"], 2)}


def first_chunk(served: ServeProcess, runs: int) -> dict[str, Any]:
    first, done = [], []
    body = {"model": "rlm", "stream": True, "messages": MESSAGES}
    with httpx.Client(timeout=120) as http:
        for _ in range(runs):
            began = perf()
            with http.stream("POST", f"{served.url}/chat/completions", json=body) as reply:
                seen = False
                for line in reply.iter_lines():
                    if line.startswith("data:") and not seen:
                        first.append(perf() - began)
                        seen = True
                    if line == "data: [DONE]":
                        done.append(perf() - began)
    return {"first_chunk": summary(first), "done": summary(done)}


def cli_vs_served(served: ServeProcess, upstream: OpenAICompatibleServer, runs: int) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=served.url, api_key="x", max_retries=0, timeout=120)
    cli = Path(sys.executable).with_name("rlm-sandbox")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RLM_SANDBOX_") and k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    spawned, http = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            began = perf()
            done = subprocess.run([str(cli), "run", "-q", "answer ok", "--quiet", "--set", "model=openai/test-model",
                                   "--set", f"api_base={upstream.url}", "--set", "api_key=sk-bench-0000000000"],
                                  input="some context", capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
            spawned.append(perf() - began)
            assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
            began = perf()
            client.chat.completions.create(model="rlm", messages=MESSAGES)
            http.append(perf() - began)
    return {"cli_run": summary(spawned), "served_request": summary(http)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 runs of each: checks the script works")
    parser.add_argument("--runs", type=int, default=None, help="samples per figure (default 30; CLI runs: 5)")
    parser.add_argument("--only", choices=BENCHES, action="append", help="run only these (repeatable)")
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.smoke else 30)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with OpenAICompatibleServer(lambda messages: "FINAL(ok)") as upstream, \
            tempfile.TemporaryDirectory() as tmp:
        served = ServeProcess(upstream.url, "--pool", "2", "--max-concurrent", "2", tmp=Path(tmp))
        try:
            for name, bench in (("overhead", lambda: overhead(served, upstream, runs)),
                                ("first_chunk", lambda: first_chunk(served, runs)),
                                ("cli_vs_served", lambda: cli_vs_served(served, upstream, min(runs, 5)))):
                if args.only and name not in args.only:
                    continue
                say(f"bench_serve: {name}")
                try:
                    results[name] = bench()
                except Exception as exc:  # noqa: BLE001 - reported in the JSON, the others still run
                    errors[name] = f"{type(exc).__name__}: {exc}"
        finally:
            served.close()
    print(json.dumps({"smoke": args.smoke, "runs": runs, "results": results, "errors": errors}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
