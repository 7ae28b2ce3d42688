#!/usr/bin/env python3
"""CLI start-up: how long `rlm-sandbox run` takes to send its first model request.

    python benchmarks/bench_cli.py [--quick | --smoke] [--runs N] [--checkout PATH ...]

Each sample spawns ``python -m rlm_sandbox run -q ... -f FILE -m openai/test-model --json``
as a user would (a real DockerSandbox, litellm's real HTTP path) against an
`OpenAICompatibleServer` on 127.0.0.1 that answers ``FINAL(ok)`` at once. Figures, all
wall-clock ``time.perf_counter()`` in this process:

- ``first_request_s``: from spawning the process to the server receiving the first
  ``POST /v1/chat/completions`` (interpreter start, imports, settings, litellm's import,
  the request itself).
- ``total_s``: spawn to exit. ``run_duration_s``: the result's own ``duration_s`` (what the
  run is charged; it excludes the import of litellm since issue 7).
- For scale, interleaved with the runs: ``python -c pass``; ``python -m rlm_sandbox --help``
  (the CLI without litellm); importing litellm the package's way (``load_litellm()``).

``--checkout PATH`` (repeatable) measures other checkouts of the package (e.g. a commit before
a change) with the same interpreter, interleaved run by run so machine load hits them alike.
Children run in an empty directory (``-m`` would otherwise import the package from the current
directory) and without LITELLM_LOCAL_MODEL_COST_MAP, as a user's shell would. Prints one JSON
object on stdout; progress on stderr. ``--smoke`` (what tests/test_benchmarks.py runs) is one
run with no warm-up: it checks the script works; its figures mean nothing.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rlm_sandbox.testing import OpenAICompatibleServer, Reply  # noqa: E402 - after the path setup above

perf = time.perf_counter


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child_env(checkout: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "LITELLM_LOCAL_MODEL_COST_MAP" and not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"PYTHONPATH": str(checkout), **(extra or {})})
    return env


def wall(args: list[str], env: dict[str, str], cwd: Path) -> float:
    started = perf()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True, cwd=cwd)
    return perf() - started


def one_run(checkout: Path, context: Path) -> dict[str, float]:
    arrived: list[float] = []
    lock = threading.Lock()

    def respond(messages: list[dict]) -> Reply:
        with lock:
            arrived.append(perf())
        return Reply("FINAL(ok)", input_tokens=10, output_tokens=2)

    with OpenAICompatibleServer(respond) as server:
        env = child_env(checkout, {"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-bench"})
        started = perf()
        done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "What is it?", "-f", str(context),
                               "-m", "openai/test-model", "--json"], env=env, capture_output=True, text=True,
                              cwd=context.parent)
        ended = perf()
    if done.returncode != 0 or not arrived:
        raise RuntimeError(f"the CLI run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return {"first_request_s": arrived[0] - started, "total_s": ended - started,
            "run_duration_s": float(result["duration_s"])}


def med(samples: list[float]) -> dict[str, Any]:
    return {"p50": round(statistics.median(samples), 3), "min": round(min(samples), 3),
            "max": round(max(samples), 3), "n": len(samples), "unit": "s"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 runs instead of 9")
    mode.add_argument("--smoke", action="store_true", help="1 run, no warm-up: checks the script works")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--checkout", type=Path, action="append", default=None,
                        help="a package checkout to measure (repeatable; default: this one)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.smoke else 3 if args.quick else 9)
    checkouts = [path.resolve() for path in args.checkout or [ROOT]]
    say(f"bench_cli: {runs} runs of {', '.join(map(str, checkouts))}")
    subprocess.run([sys.executable, "-c", "from rlm_sandbox.sandbox.image import ensure_image; ensure_image()"],
                   env=child_env(checkouts[0]), check=True)  # build the image first if missing: not timed
    samples: dict[Path, dict[str, list[float]]] = {checkout: {name: [] for name in (
        "first_request_s", "total_s", "run_duration_s", "python_pass_s", "cli_help_s", "import_litellm_s")}
        for checkout in checkouts}
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context.txt"
        context.write_text("red green blue\n" * 100)
        for checkout in checkouts if not args.smoke else []:
            one_run(checkout, context)  # warm the page cache and Docker: not counted
        for index in range(runs):
            for checkout in checkouts:
                env, got = child_env(checkout), samples[checkout]
                for name, value in one_run(checkout, context).items():
                    got[name].append(value)
                got["python_pass_s"].append(wall(["-c", "pass"], env, Path(tmp)))
                got["cli_help_s"].append(wall(["-m", "rlm_sandbox", "--help"], env, Path(tmp)))
                got["import_litellm_s"].append(wall(
                    ["-c", "from rlm_sandbox.models import load_litellm; load_litellm()"]
                    if (checkout / "rlm_sandbox" / "models" / "runtime.py").exists() else
                    ["-c", "import os; os.environ['LITELLM_LOCAL_MODEL_COST_MAP'] = 'True'; import litellm"],
                    env, Path(tmp)))
                say(f"  run {index + 1}/{runs} {checkout.name}: first request {got['first_request_s'][-1]:.2f} s, "
                    f"run charged {got['run_duration_s'][-1]:.2f} s")
    report = {
        "benchmark": "cli_first_request",
        "command": "python -m rlm_sandbox run -q 'What is it?' -f context.txt -m openai/test-model --json",
        "smoke": args.smoke,
        "python": sys.version.split()[0],
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "figures": {str(checkout): {name: med(values) for name, values in got.items()}
                    for checkout, got in samples.items()},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
