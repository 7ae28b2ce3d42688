#!/usr/bin/env python3
"""What prompt caching saves: the same scripted trajectories through our engine and the
original RLM (PyPI ``rlms``), billed by one prefix-caching server, priced by one table.

    python benchmarks/bench_cost.py [--smoke] [--sandbox docker|local] [--only NAME ...] [--no-original]

Each trajectory runs once per engine against a fresh ``OpenAICompatibleServer(prefix_cache_min_tokens=1024)``
(rlm_sandbox.testing), which behaves like a provider's automatic prefix cache: each response's
``cached_tokens`` is the part of the request that repeats an earlier request's prefix. The bill is
what the server saw (``server.usage``), not what either engine reports, so the figures do not
depend on either engine's accounting. Root requests are those to model ``bench-root``, sub-requests
(``llm_query`` and child RLMs) those to ``bench-sub``. The scripted models (benchmarks/cost_script.py)
play the same steps for both engines; the context is the ``salary`` generator's employee records
(the original RLM's own example), so each answer is checked.

The original RLM is installed into ``.venv-rlms`` at the checkout's top (gitignored; made once, reused) and
driven by benchmarks/rlms_driver.py in a subprocess. Its ``local`` REPL runs code in its own
process, with no sandbox. If it cannot be installed or run, the JSON says why and ours is still
reported. Prints ONE JSON object on stdout (progress on stderr). ``--smoke`` runs the short
trajectory through ours only (no install); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import cost_script  # noqa: E402 - after the path setup above
from bench_sandbox import machine, say  # noqa: E402 - after the path setup above

from rlm_sandbox import RLM, Settings  # noqa: E402 - after the path setup above
from rlm_sandbox.eval.generators.salary import Salary  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.testing import OpenAICompatibleServer, ServedUsage  # noqa: E402 - after the path setup above

#: The trajectories (benchmarks/cost_script.py) and the suite of three tasks.
BENCHES = [*cost_script.TRAJECTORIES, "suite"]
#: One price table for every engine and model, USD per million tokens (OpenAI's gpt-4o list
#: prices; cached input at half the input price, as OpenAI bills its automatic cache).
PRICES = {"input": 2.50, "cached_input": 1.25, "output": 10.00}
PRICE_NOTE = "USD per 1M tokens, OpenAI gpt-4o list prices (cached input half price); one table for all"
CACHE_MIN_TOKENS = 1024
RLMS_VERSION = "0.1.3"
#: At the checkout's top, like .venv: under benchmarks/ the lint test (tests/test_lint.py) would walk its packages.
RLMS_VENV = ROOT / ".venv-rlms"
RECORDS = 200            # about 49,000 characters of records
SEED = 7
SUITE_SEEDS = (11, 12, 13)
#: Our models' window: what the original assumes for a model it does not know (a real model's
#: window is known to litellm; left unknown, ours would run as for a small or unknown model).
WINDOW = 128_000
#: Our window and the original's (its table patched, see rlms_driver.py) for the compaction
#: trajectory, where ours also shows output whole (``offload=False``) so that the history grows.
COMPACTION_WINDOW = 16_384
MAX_ITERATIONS = 20
TIMEOUT_S = 600
ROOT_MODEL, SUB_MODEL = "bench-root", "bench-sub"


def task(seed: int) -> tuple[str, str, str]:
    """A salary task: its context, query and expected answer."""
    generator = Salary()
    params = generator.resolve({"records": RECORDS})
    sample = generator.sample(seed, params)
    return generator.render(seed, params), sample.query, str(sample.expected)


def correct(answer: str | None, expected: str) -> bool:
    """The same dollar amount, whatever the punctuation."""
    digits = re.sub(r"\D", "", answer or "")
    return bool(digits) and digits == re.sub(r"\D", "", expected)


def bill(usage: list[ServedUsage]) -> dict[str, Any]:
    """Tokens and cost of what the server answered, split into root and sub requests."""
    def total(model: str | None, field: str) -> int:
        return sum(getattr(u, field) for u in usage if model is None or u.model == model)

    root_in, root_cached = total(ROOT_MODEL, "prompt_tokens"), total(ROOT_MODEL, "cached_tokens")
    all_in, all_cached = total(None, "prompt_tokens"), total(None, "cached_tokens")
    out = total(None, "completion_tokens")
    per_token = {name: price / 1e6 for name, price in PRICES.items()}

    def cost(model: str | None) -> float:
        uncached = total(model, "prompt_tokens") - total(model, "cached_tokens")
        return (uncached * per_token["input"] + total(model, "cached_tokens") * per_token["cached_input"]
                + total(model, "completion_tokens") * per_token["output"])

    with_cache = cost(None)
    without = all_in * per_token["input"] + out * per_token["output"]
    return {
        "root_requests": sum(u.model == ROOT_MODEL for u in usage),
        "sub_requests": sum(u.model == SUB_MODEL for u in usage),
        "root_input_tokens": root_in, "root_cached_tokens": root_cached,
        "sub_input_tokens": total(SUB_MODEL, "prompt_tokens"), "sub_cached_tokens": total(SUB_MODEL, "cached_tokens"),
        "output_tokens": out,
        "cached_share_root": round(root_cached / root_in, 3) if root_in else None,
        "cached_share_all": round(all_cached / all_in, 3) if all_in else None,
        "cost_with_cache_usd": round(with_cache, 6), "cost_without_cache_usd": round(without, 6),
        "root_cost_with_cache_usd": round(cost(ROOT_MODEL), 6),
        "requests": [[u.model, u.prompt_tokens, u.cached_tokens, u.completion_tokens] for u in usage],
    }


def price_options() -> dict[str, Any]:
    """The price table as our settings (cached-input prices only where the settings have them:
    they came with issue 21's part A), so the run's own ``cost_usd`` can be set beside the bill."""
    per_token = {name: price / 1e6 for name, price in PRICES.items()}
    options: dict[str, Any] = {"input_cost_per_token": per_token["input"], "output_cost_per_token": per_token["output"],
               "cached_input_cost_per_token": per_token["cached_input"]}
    options.update({f"sub_{name}": value for name, value in options.items()})
    return {name: value for name, value in options.items() if name in Settings.model_fields}


def run_ours(trajectory: str, seed: int, sandbox: str, server: OpenAICompatibleServer) -> dict[str, Any]:
    """One task through our engine: the answer, whether it is right, and what the run itself
    reported (``reported``: its token totals and cost, to set beside the server's bill)."""
    context, query, expected = task(seed)
    options: dict[str, Any] = {"context_window": WINDOW, "sub_context_window": WINDOW}
    if trajectory == "compaction":
        options = {"context_window": COMPACTION_WINDOW, "offload": False}
    rlm = RLM(model=f"openai/{ROOT_MODEL}", sub_model=f"openai/{SUB_MODEL}", api_base=server.url, api_key="x",
              sandbox=sandbox, max_iterations=MAX_ITERATIONS, max_retries=0, **options, **price_options())
    began = time.perf_counter()
    result = rlm.run(query, context)
    compactions = sum(1 for event in result.trajectory if type(event).__name__ == "Compaction")
    reported = {"input_tokens": result.total_input_tokens, "output_tokens": result.total_output_tokens,
                # None where the engine does not count cached tokens (before part A)
                "cached_input_tokens": getattr(result, "total_cached_input_tokens", None),
                "cost_usd": None if result.cost_usd is None else round(result.cost_usd, 6)}
    return {"answer": result.answer, "correct": correct(result.answer, expected), "status": result.status,
            "iterations": result.iterations, "compactions": compactions,
            "seconds": round(time.perf_counter() - began, 3), "reported": reported}


def rlms_python() -> tuple[Path | None, str | None]:
    """The original RLM's venv interpreter (made once), or why there is none."""
    python = RLMS_VENV / "bin" / "python"
    check = [str(python), "-c", f"import importlib.metadata as m, rlm; assert m.version('rlms') == '{RLMS_VERSION}'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, None
    say(f"bench_cost: installing rlms=={RLMS_VERSION} into {RLMS_VENV} (once)")
    steps = [[sys.executable, "-m", "venv", str(RLMS_VENV)],
             [str(python), "-m", "pip", "install", "-q", f"rlms=={RLMS_VERSION}"], check]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0:
            return None, f"{' '.join(step[:4])} failed: {(done.stderr or done.stdout).strip()[-500:]}"
    return python, None


def run_original(trajectory: str, seed: int, python: Path, server: OpenAICompatibleServer) -> dict[str, Any]:
    """One task through the original RLM, in its venv."""
    context, query, expected = task(seed)
    spec = {"base_url": server.url, "context": context, "query": query, "compaction": trajectory == "compaction",
            "context_window": COMPACTION_WINDOW if trajectory == "compaction" else None,
            "max_depth": 2 if trajectory == "recursion" else 1, "max_iterations": MAX_ITERATIONS}
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run([str(python), str(HERE / "rlms_driver.py")], input=json.dumps(spec), capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=env)
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"the driver exited {done.returncode} with no JSON: {done.stderr.strip()[-800:]}"}
    if "answer" in report:
        report["correct"] = correct(report["answer"], expected)
    return report


def one(engine: str, trajectory: str, sandbox: str, python: Path | None) -> dict[str, Any]:
    """One trajectory through one engine, on a fresh server (a cold cache)."""
    responder = cost_script.Responder(trajectory)
    with OpenAICompatibleServer(responder, prefix_cache_min_tokens=CACHE_MIN_TOKENS) as server:
        try:
            if engine == "ours":
                outcome = run_ours(trajectory, SEED, sandbox, server)
            else:
                assert python is not None
                outcome = {**run_original(trajectory, SEED, python, server), "compactions": responder.summaries}
        except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
            outcome = {"error": f"{type(exc).__name__}: {exc}"[:800]}
        billed = bill(server.usage)
        reported = outcome.get("reported", {}).get("cost_usd")
        if reported is not None:  # which bill the engine's own cost matches (part A prices cached input)
            matches = [label for label, key in (("the bill with cache", "cost_with_cache_usd"),
                                                ("the bill without cache", "cost_without_cache_usd"))
                       if abs(reported - billed[key]) < 1e-6]
            outcome["reported"]["cost_is"] = matches[0] if matches else "neither"
        return {**outcome, **billed}


def suite(engine: str, sandbox: str, python: Path | None) -> dict[str, Any]:
    """The short trajectory on three tasks through ONE server: what each task's first root request
    finds cached (the static part of the prompt, shared by every task, once the first has run)."""
    tasks = []
    with OpenAICompatibleServer(cost_script.Responder("short"), prefix_cache_min_tokens=CACHE_MIN_TOKENS) as server:
        for seed in SUITE_SEEDS:
            start = len(server.usage)
            try:
                outcome = (run_ours("short", seed, sandbox, server) if engine == "ours"
                           else run_original("short", seed, python, server) if python else {})
            except Exception as exc:  # noqa: BLE001 - reported, the other tasks go on
                outcome = {"error": f"{type(exc).__name__}: {exc}"[:800]}
            usage = server.usage[start:]
            first = next((u for u in usage if u.model == ROOT_MODEL), None)
            tasks.append({"seed": seed, "correct": outcome.get("correct"), "error": outcome.get("error"),
                          "first_root_prompt_tokens": first.prompt_tokens if first else None,
                          "first_root_cached_tokens": first.cached_tokens if first else None, **bill(usage)})
    for entry in tasks:
        if entry["error"] is None:
            del entry["error"]
    later = [t["first_root_cached_tokens"] or 0 for t in tasks[1:]]
    return {"tasks": tasks, "later_tasks_reuse_prefix": bool(later) and min(later) >= CACHE_MIN_TOKENS}


def ratios(ours: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """ours / original for the figures that compare."""
    names = ["root_input_tokens", "sub_input_tokens", "cost_with_cache_usd", "cost_without_cache_usd",
             "root_cost_with_cache_usd"]
    return {name: round(ours[name] / original[name], 3) if original.get(name) else None for name in names}


def check(target: str, value: float | None, *, at_least: float | None = None,
          at_most: float | None = None) -> dict[str, Any]:
    """One target: ``met`` is None when its figure was not measured in this run."""
    met = None if value is None else (value >= at_least if at_least is not None else
                                      at_most is not None and value <= at_most)
    bound = {"at_least": at_least} if at_least is not None else {"at_most": at_most}
    return {"target": target, "value": value, **bound, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 21's targets against this run's figures."""
    def share(name: str) -> float | None:
        value = results.get(name, {}).get("ours", {}).get("cached_share_root")
        return None if value is None else float(value)

    checks = [check("long: cached share of root input >= 0.80", share("long"), at_least=0.8),
              check("compaction: cached share of root input >= 0.60", share("compaction"), at_least=0.6)]
    if "suite" in results:
        firsts = [t["first_root_cached_tokens"] or 0 for t in results["suite"]["ours"]["tasks"][1:]]
        checks.append(check("suite: tasks 2..n cache >= 1,024 tokens of their first root request",
                            min(firsts) if firsts else None, at_least=CACHE_MIN_TOKENS))
    for name, result in results.items():
        both = result.get("ours", {}), result.get("original", {})
        if name != "suite" and all(r.get("correct") for r in both):
            checks.append(check(f"{name}: cost per task at most half the original's",
                                result["ratio_ours_to_original"]["cost_with_cache_usd"], at_most=0.5))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the short trajectory through ours only: does it work?")
    parser.add_argument("--sandbox", choices=["docker", "local"], default="docker",
                        help="our engine's sandbox (default docker, what users run; local to compare faster)")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    parser.add_argument("--no-original", action="store_true", help="skip the original RLM (no install)")
    args = parser.parse_args(argv)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    names = ["short"] if args.smoke else (args.only or BENCHES)
    python, skipped = (None, "not run (--smoke or --no-original)") if args.smoke or args.no_original else rlms_python()
    engines = ["ours"] + (["original"] if python else [])
    results: dict[str, Any] = {}
    for name in names:
        results[name] = {}
        for engine in engines:
            say(f"bench_cost: {name} / {engine}")
            results[name][engine] = suite(engine, args.sandbox, python) if name == "suite" else \
                one(engine, name, args.sandbox, python)
        if name != "suite" and "original" in results[name] and "error" not in results[name]["original"]:
            results[name]["ratio_ours_to_original"] = ratios(results[name]["ours"], results[name]["original"])
    ours = [r["ours"] for r in results.values()]
    failed = any("error" in run for run in ours) or any(t.get("error") for run in ours for t in run.get("tasks", []))
    report = {
        "benchmark": "cost", "smoke": args.smoke, "sandbox": args.sandbox,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "prices": {**PRICES, "note": PRICE_NOTE}, "cache_min_tokens": CACHE_MIN_TOKENS,
        "requests_columns": ["model", "prompt_tokens", "cached_tokens", "completion_tokens"],
        "task": {"generator": "salary", "records": RECORDS, "seed": SEED, "suite_seeds": list(SUITE_SEEDS)},
        "original": {"package": f"rlms=={RLMS_VERSION}", "environment": "local (in-process, no sandbox)",
                     **({"skipped": skipped} if skipped else {})},
        "results": results, "targets": targets(results),
        "machine": machine(docker_client(), load_at_start),
        "note": "one run; the machine was shared with other engineers' work",
    }
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
