#!/usr/bin/env python3
"""Engine benchmarks: the whole RLM loop, with scripted models behind litellm's real path.

    python benchmarks/bench_engine.py [--quick | --smoke] [--only NAME ...]

Every figure comes from real runs: ``rlm_sandbox.RLM(model=..., sub_model=...)`` with the
default sandbox factory (a real DockerSandbox per run) and `ScriptedModel`s, reached
through ``litellm.acompletion`` exactly as a real provider is. Model latency is simulated
by ``Reply(text, delay_s=...)``, which sleeps with ``asyncio.sleep`` and blocks nothing.

Prints ONE JSON object on stdout (progress goes to stderr). Durations are wall-clock
``time.perf_counter()`` spans seen by the caller, or the run's own typed events
(``result.trajectory``: ``model_reply.latency_s``, ``cell.duration_s``,
``sandbox_start.duration_s``, ``sandbox_close.duration_s``, the events' ``t``) where a figure
needs a split; summaries are p50/p99 with the sample count. Each result carries a `note`
saying how it is measured; BENCHMARKS.md ("the engine") explains them. ``--smoke`` runs every
benchmark once at the smallest sizes (tests/test_benchmarks.py does): its figures mean nothing.
"""

from __future__ import annotations

import os

# Before anything imports litellm: use the bundled price map, never a download.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import argparse
import asyncio
import collections
import datetime as _dt
import gc
import json
import math
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_sandbox import machine, mode_arguments, mode_of, run_benches, say, summary  # noqa: E402 - after the path setup above

import rlm_sandbox  # noqa: E402 - after the path setup above
from rlm_sandbox.config import Settings  # noqa: E402 - after the path setup above
from rlm_sandbox.api import default_sandbox_factory  # noqa: E402 - after the path setup above
from rlm_sandbox.events.types import Event  # noqa: E402 - after the path setup above
from rlm_sandbox.models import LLMClient  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.image import ensure_image  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.reaper import LABEL_PID  # noqa: E402 - after the path setup above
from rlm_sandbox.testing import Reply, ScriptedModel, scripted_cost  # noqa: E402 - after the path setup above

perf = time.perf_counter
N = TypeVar("N", int, float)
OWNER_FILTER = f"{LABEL_PID}={os.getpid()}"

#: DESIGN.md "Performance targets", for the figures this script measures.
TARGETS = {
    "batched_100_at_1s_run_wall_s": {
        "target": 8.0, "op": "<=",
        "design": "100 sub-calls at 1 s model latency via llm_query_batched, concurrency 16 <= 8 s wall"},
    "host_overhead_per_iteration_ms": {
        "target": 5.0, "op": "<=", "design": "host overhead per iteration, excluding model time <= 5 ms"},
    "concurrent_runs_16_ok": {
        "target": True, "op": "==", "design": "concurrent sandboxes on this machine: 16, no errors, no leaks"},
}
#: Figures compared with a target that was set for a smaller part of the path.
RELATED = {
    "llm_query_full_path_per_call_ms": "DESIGN's <= 1 ms is for the sandbox callback alone "
                                       "(bench_sandbox measures it); this is the whole path",
    "cold_start_whole_run_p50_s": "DESIGN's <= 0.4 s is the sandbox's cold start to ready; "
                                  "this is construct RLM + a whole one-reply run",
}
NOT_MEASURED_HERE = [
    "trivial cell round trip, llm_query callback overhead, sandbox cold start, upload "
    "(benchmarks/bench_sandbox.py)",
    "taking a sandbox from a warm pool <= 10 ms (no warm pool exists)",
]


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def events(result: Any, kind: str) -> list[Event]:
    """The root run's events of one kind (child runs, if any, have their own)."""
    return [e for e in result.trajectory if e.event == kind and e.depth == 0]


def single(result: Any, kind: str) -> Any:
    """The root run's only event of a kind (sandbox_start, sandbox_close, final)."""
    found = events(result, kind)
    assert len(found) == 1, f"expected one {kind} event, found {len(found)}"
    return found[0]


def root_replies(result: Any) -> list[Any]:
    """The root model's replies (sub-calls' replies are model_reply events too, role "sub")."""
    return [e for e in events(result, "model_reply") if e.role == "root"]


def sandbox_wait(result: Any) -> float:
    """How long the first cell waited for the sandbox after the first root reply: the
    sandbox starts while the root model writes that reply, and the cell needs both."""
    return max(0.0, single(result, "sandbox_start").t - root_replies(result)[0].t)


def max_in_flight(spans: list[tuple[float, float]], tolerance: float = 0.0005) -> int:
    """Most spans open at once. Trajectory times are rounded to 0.1 ms, and a fan-out
    thread starts its next call right after ending one, so spans are shortened by
    ``tolerance`` before counting."""
    points = sorted([(s, 1) for s, _ in spans] + [(e - tolerance, -1) for _, e in spans],
                    key=lambda p: (p[0], p[1]))
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def r(value: float, digits: int = 4) -> float:
    return round(value, digits)


# -- benchmarks -------------------------------------------------------------------------

class Bench:
    def __init__(self, mode: str, client: Any) -> None:
        self.mode = mode  # "full", "quick" or "smoke"
        self.client = client

    def n(self, full: N, quick: N, smoke: N | int = 1) -> N:
        """A sample count (or size, or model latency) for the mode being run."""
        return {"full": full, "quick": quick, "smoke": smoke}[self.mode]

    def our_containers(self) -> list[dict[str, Any]]:
        return self.client.api.containers(all=True, filters={"label": OWNER_FILTER})

    # ---- 1. 100 sub-calls at 1 s through llm_query_batched ----
    def batched(self) -> dict[str, Any]:
        """Root reply 1 runs llm_query_batched over 100 prompts, then FINALs in the cell."""
        reps = self.n(4, 1)
        prompts, latency = self.n(100, 100, 4), self.n(1.0, 1.0, 0.05)
        code = fence(f"answers = llm_query_batched([f'question {{i}}' for i in range({prompts})])\n"
                     f"assert answers == ['ok'] * {prompts}, answers[:3]\n"
                     "FINAL(str(len(answers)))")
        out: dict[str, Any] = {
            "sub_model_latency_s": latency, "prompts": prompts,
            "RLM_SANDBOX_MAX_PROCESS_CONCURRENCY": os.environ.get("RLM_SANDBOX_MAX_PROCESS_CONCURRENCY",
                                                                  "(unset: 64)"),
            "process_slots": Settings().max_process_concurrency,
        }
        for concurrency in (16, 32):
            ideal = math.ceil(prompts / concurrency) * latency
            runs: list[dict[str, Any]] = []
            for i in range(reps if concurrency == 16 else max(1, reps - 1)):
                root = ScriptedModel([code])
                sub = ScriptedModel(responder=lambda _m: Reply("ok", delay_s=latency))
                # 16 is the default: left unset (unless the environment overrides it), so the
                # default is what is measured.
                default = concurrency == 16 and "RLM_SANDBOX_MAX_CONCURRENCY" not in os.environ
                rlm = rlm_sandbox.RLM(model=root.model, sub_model=sub.model,
                                      max_concurrency=None if default else concurrency)
                assert rlm.settings.max_concurrency == concurrency, rlm.settings.max_concurrency
                t0 = perf()
                result = rlm.run("How many answers?", "a small context")
                wall = perf() - t0
                assert result.status == "completed" and result.answer == str(prompts), (result.status, result.error)
                ready = max(root_replies(result)[0].t, single(result, "sandbox_start").t)  # the cell can run
                cell = single(result, "cell")
                subs = events(result, "sub_call")
                # The sub-model calls themselves: a sub_call's duration_s also holds its wait for a slot.
                calls = [e for e in events(result, "model_reply") if e.role == "sub"]
                spans = [(e.t - e.latency_s, e.t) for e in calls]
                runs.append({
                    "run_wall_s": r(wall, 3),
                    "cell_wall_s": r(cell.t - ready, 3),  # reply in hand and sandbox up -> cell result back
                    "cell_kernel_s": cell.duration_s,
                    "sub_calls": len(subs),
                    "sub_call_s": summary([e.duration_s for e in subs], "s"),
                    "sub_model_call_s": summary([e.latency_s for e in calls], "s"),
                    "first_sub_call_start_to_last_end_s": r(max(e for _, e in spans) - min(s for s, _ in spans), 3),
                    "max_in_flight": max_in_flight(spans),
                    "before_cell_s": r(ready, 3),  # the sandbox start and the root model call, overlapping
                    "sandbox_start_s": single(result, "sandbox_start").duration_s,
                    "after_cell_s": single(result, "sandbox_close").duration_s,  # close
                })
                say(f"batched c={concurrency} {i + 1}: run {wall:.2f} s, cell {runs[-1]['cell_wall_s']:.2f} s "
                    f"(ideal {ideal:.0f} s), max in flight {runs[-1]['max_in_flight']}")
                root.close()
                sub.close()
            out[f"concurrency_{concurrency}"] = {
                "ideal_s": ideal,
                "run_wall": summary([x["run_wall_s"] for x in runs], "s"),
                "cell_wall": summary([x["cell_wall_s"] for x in runs], "s"),
                "cell_over_ideal_s": r(statistics.median(x["cell_wall_s"] for x in runs) - ideal, 3),
                "runs": runs,
            }
        out["note"] = ("cell_wall = event time from the later of the root model's reply and the sandbox "
                       "being up (sandbox_start) to the cell's result; before_cell = that moment (the sandbox "
                       "starts while the root model writes its reply); after_cell = sandbox_close.duration_s; "
                       "run_wall = rlm.run() as the caller sees it (sandbox start, root call, cell, close). "
                       "sub_call_s: the sub_call events' duration_s (from the call in the cell to its answer, "
                       "the wait for a slot included); sub_model_call_s, max_in_flight and "
                       "first_sub_call_start_to_last_end: the sub-model calls themselves (model_reply "
                       "latency_s, role sub)")
        return out

    # ---- 2. host overhead per iteration ----
    def iteration(self) -> dict[str, Any]:
        """N root turns of `print(i)` (the last also calls FINAL), root model instant."""
        n_iter, n_small = self.n(50, 50, 3), self.n(10, 10, 2)
        reps = self.n(9, 2)

        def run_of(n: int) -> dict[str, Any]:
            # each reply differs (print(i)): the same reply twice would be a stalled run (issue 9)
            replies = [fence(f"print({i})") for i in range(n - 1)] + [fence("print(1)\nFINAL('done')")]
            root = ScriptedModel(replies)
            rlm = rlm_sandbox.RLM(model=root.model, max_iterations=n)
            gc.collect()
            c0, t0 = time.process_time(), perf()
            result = rlm.run("Print one, then finish.", "a small context")
            wall, cpu = perf() - t0, time.process_time() - c0
            root.close()
            assert result.status == "completed" and result.iterations == n, (result.status, result.error)
            return {"wall": wall, "cpu": cpu, "result": result}

        run_of(self.n(5, 5, 2))  # warm-up: litellm's lazy imports and first-call caches, not counted
        big, small = [], []
        for i in range(reps):
            big.append(run_of(n_iter))
            small.append(run_of(n_small))
            say(f"iteration {i + 1}/{reps}: {n_iter} iterations in {big[-1]['wall'] * 1e3:.0f} ms")

        def loop_overhead(run: dict[str, Any]) -> float:
            """First iteration to the last cell's result, less model, kernel and sandbox-start
            time, per iteration."""
            res = run["result"]
            cells = events(res, "cell")
            return (cells[-1].t - events(res, "iteration")[0].t - sum(e.latency_s for e in root_replies(res))
                    - sum(e.duration_s for e in cells) - sandbox_wait(res)) / n_iter

        per_run, spans_over, model_ms, cell_ms = [], [], [], []
        split: dict[str, list[float]] = {"to_model_reply": [], "reply_to_cell_result": [],
                                         "cell_result_to_next_iteration": []}
        for run in big:
            res = run["result"]
            replies, cells = root_replies(res), events(res, "cell")
            model_s = sum(e.latency_s for e in replies)
            cells_s = sum(e.duration_s for e in cells)
            wait = sandbox_wait(res)  # the first cell waiting for the sandbox start: not the loop's
            iters = [e.t for e in events(res, "iteration")]
            ends = iters[1:] + [cells[-1].t]
            for k in range(n_iter):  # one iteration: its "iteration" event to the next one
                spans_over.append(ends[k] - iters[k] - replies[k].latency_s - cells[k].duration_s
                                  - (wait if k == 0 else 0.0))
            for k in range(n_iter):  # where inside an iteration (event times, 0.1 ms resolution)
                split["to_model_reply"].append(replies[k].t - iters[k] - replies[k].latency_s)
                split["reply_to_cell_result"].append(cells[k].t - replies[k].t - cells[k].duration_s
                                                     - (wait if k == 0 else 0.0))
                split["cell_result_to_next_iteration"].append(ends[k] - cells[k].t)
            model_ms.extend(e.latency_s for e in replies)
            cell_ms.extend(e.duration_s for e in cells)
            per_run.append({
                "wall_ms": r(run["wall"] * 1e3, 1),
                "model_ms": r(model_s * 1e3, 1),
                "kernel_cells_ms": r(cells_s * 1e3, 2),
                "overhead_per_iteration_ms": r((run["wall"] - model_s - cells_s) / n_iter * 1e3, 3),
                "raw_wall_per_iteration_ms": r(run["wall"] / n_iter * 1e3, 3),
                "loop_overhead_per_iteration_ms": r(loop_overhead(run) * 1e3, 3),
                "sandbox_start_ms": r(single(res, "sandbox_start").duration_s * 1e3, 1),
                "sandbox_wait_ms": r(wait * 1e3, 1),
                "sandbox_close_ms": r(single(res, "sandbox_close").duration_s * 1e3, 1),
                "outside_run_ms": r((run["wall"] - res.duration_s) * 1e3, 2),  # RLM.run portal hand-off
                "process_cpu_per_iteration_ms": r(run["cpu"] / n_iter * 1e3, 3),
            })

        def med(rows: list[dict[str, Any]], key: str) -> float:
            return statistics.median(x[key] for x in rows)

        def fixed_free(rows: list[dict[str, Any]]) -> float:
            return statistics.median(
                x["wall"] - sum(e.latency_s for e in root_replies(x["result"]))
                - sum(e.duration_s for e in events(x["result"], "cell")) for x in rows)

        marginal = (fixed_free(big) - fixed_free(small)) / (n_iter - n_small)

        # Attribution, not a figure of ours: litellm queues a success-logging task on the
        # event loop after each call returns, so its CPU lands between the engine's steps.
        # Interleaved runs with that one litellm function stubbed out show its share.
        diagnostic: dict[str, Any] = {}
        import litellm.utils as litellm_utils

        if hasattr(litellm_utils, "dispatch_success_logging"):
            real = litellm_utils.dispatch_success_logging
            with_logging, without = [], []
            for _ in range(self.n(4, 2)):
                with_logging.append(loop_overhead(run_of(n_iter)))
                litellm_utils.dispatch_success_logging = lambda **_kw: None
                try:
                    without.append(loop_overhead(run_of(n_iter)))
                finally:
                    litellm_utils.dispatch_success_logging = real
            diagnostic = {"loop_overhead_per_iteration_ms": r(statistics.median(with_logging) * 1e3, 3),
                          "same_without_litellm_success_logging_ms": r(statistics.median(without) * 1e3, 3),
                          "runs_each": len(without)}
        out = {
            "iterations": n_iter, "runs": reps,
            "overhead_per_iteration_ms": r(med(per_run, "overhead_per_iteration_ms"), 3),
            "raw_wall_per_iteration_ms": r(med(per_run, "raw_wall_per_iteration_ms"), 3),
            "loop_overhead_per_iteration_ms": r(med(per_run, "loop_overhead_per_iteration_ms"), 3),
            "marginal_overhead_per_iteration_ms": r(marginal * 1e3, 3),
            "per_iteration_overhead": summary(spans_over),
            "per_iteration_overhead_split_mean_ms": {k: r(statistics.fmean(v) * 1e3, 3) for k, v in split.items()},
            "model_call": summary(model_ms),
            "kernel_cell": summary(cell_ms),
            "fixed_ms": {"sandbox_start": r(med(per_run, "sandbox_start_ms"), 1),
                         "sandbox_wait": r(med(per_run, "sandbox_wait_ms"), 1),
                         "sandbox_close": r(med(per_run, "sandbox_close_ms"), 1),
                         "outside_run": r(med(per_run, "outside_run_ms"), 2)},
            "process_cpu_per_iteration_ms": r(med(per_run, "process_cpu_per_iteration_ms"), 3),
            "litellm_success_logging_share": diagnostic,
            "per_run": per_run,
            "note": ("overhead_per_iteration = (rlm.run wall - sum of root model_reply latency_s - sum of "
                     "kernel cell duration_s) / iterations: the fixed sandbox start and close are spread over "
                     "the iterations. loop_overhead_per_iteration leaves them out (event time from the first "
                     "iteration to the last cell, less sandbox_wait: the first cell waiting for the sandbox, "
                     "which starts while the first reply is written). fixed_ms: sandbox_start and "
                     "sandbox_close are those events' duration_s. per_iteration_overhead: each iteration's own "
                     "span minus its model and kernel time (and the first one's sandbox_wait), split into: "
                     "iteration start to the model reply (less the call), reply to the cell's result (less "
                     "kernel time: parse, executor hand-off, protocol, formatting) and on to the next "
                     "iteration. marginal = the same difference between 50- and 10-iteration runs, / 40. "
                     "model_call is litellm's whole path to the instant scripted model. "
                     "litellm_success_logging_share: interleaved 50-iteration runs with and without "
                     "litellm.utils.dispatch_success_logging (a diagnostic stub; litellm runs that logging "
                     "on the event loop after a call has returned, so it shows up as engine time)."),
        }
        say(f"iteration: overhead {out['overhead_per_iteration_ms']:.2f} ms/it ((wall - model - kernel) / n), "
            f"loop {out['loop_overhead_per_iteration_ms']:.2f}, "
            f"marginal {out['marginal_overhead_per_iteration_ms']:.2f}, "
            f"model call p50 {out['model_call']['p50']:.2f} ms")
        return out

    # ---- 3. 16 concurrent runs ----
    def concurrent(self) -> dict[str, Any]:
        """16 rlm.arun() at once in one event loop, each with its own DockerSandbox."""
        runs_at_once = self.n(16, 16, 2)
        rounds = self.n(8, 1)
        root_latency, sub_latency = self.n(0.3, 0.3, 0.02), self.n(0.5, 0.5, 0.02)

        def respond(messages: list[dict]) -> str:
            turn = sum(m["role"] == "assistant" for m in messages)
            return [fence("n = len(context)\nprint(n)"),
                    fence("r = llm_query('Summarise: ' + context[:40])\nprint(r)"),
                    fence("print(n, r)\nFINAL(f'{n} {r}')")][min(turn, 2)]

        def sub_respond(messages: list[dict]) -> str:
            return "summary"

        contexts = [f"document {i}: " + "lorem ipsum " * 500 for i in range(runs_at_once)]
        made: list[Any] = []  # this round's sandboxes and socket directories (checked, then dropped:
        socket_dirs: list[Path] = []  # a sandbox holds its run's broker and trajectory)
        audit = {"sandboxes": 0, "not_closed": 0, "dirs_left": []}

        def check_round() -> None:
            audit["sandboxes"] += len(made)
            audit["not_closed"] += sum(1 for sb in made if not sb.closed or sb.container_id is not None)
            audit["dirs_left"] += [str(d) for d in socket_dirs if d.exists()]
            made.clear()
            socket_dirs.clear()

        def tracked_factory(*args: Any) -> Any:
            """The default factory (a real DockerSandbox); only notes the socket directory
            each one makes, to check afterwards that close() removed it."""
            sandbox = default_sandbox_factory(*args)
            start = sandbox.start

            def noting_start() -> Any:
                started = start()
                if sandbox.socket_dir is not None:  # None over the stdio transport
                    socket_dirs.append(sandbox.socket_dir)
                return started

            sandbox.start = noting_start  # an instance attribute: the engine's sandbox.start finds it
            made.append(sandbox)
            return sandbox
        expected = [f"{len(c)} summary" for c in contexts]

        def round_of(root_responder: Any, sub_responder: Any) -> dict[str, Any]:
            # Fresh models each round: a ScriptedModel keeps every call's messages, which
            # would otherwise show up as host memory growth.
            root, sub = ScriptedModel(responder=root_responder), ScriptedModel(responder=sub_responder)
            rlm = rlm_sandbox.RLM(model=root.model, sub_model=sub.model, sandbox_factory=tracked_factory)

            async def main(rlm: rlm_sandbox.RLM) -> tuple[list[Any], list[float]]:
                done: list[float] = []

                async def timed_run(ctx: str) -> Any:
                    t = perf()
                    try:
                        return await rlm.arun("How long is it, and what is it about?", ctx)
                    finally:
                        done.append(perf() - t)

                results = await asyncio.gather(*(timed_run(c) for c in contexts), return_exceptions=True)
                return results, done

            t0 = perf()
            results, durations = asyncio.run(main(rlm))
            wall = perf() - t0
            statuses = collections.Counter(
                type(x).__name__ if isinstance(x, BaseException) else x.status for x in results)
            wrong = sum(1 for x, want in zip(results, expected, strict=True)
                        if isinstance(x, BaseException) or x.answer != want)
            errors = [f"{type(x).__name__}: {x}" if isinstance(x, BaseException) else x.error
                      for x in results if isinstance(x, BaseException) or x.error]
            starts = [single(x, "sandbox_start").duration_s for x in results if not isinstance(x, BaseException)]
            check_round()
            root.close()
            sub.close()
            del results, rlm, root, sub
            return {"wall_s": r(wall, 3), "statuses": dict(statuses), "wrong_answers": wrong,
                    "errors": errors[:5], "run_s": summary(durations, "s"),
                    "sandbox_start_s": summary(starts, "s") if starts else {}}

        out: dict[str, Any] = {"runs_at_once": runs_at_once, "iterations_per_run": 3, "sub_calls_per_run": 1}
        round_of(respond, sub_respond)  # warm-up round, not counted (first use of the code paths)
        time.sleep(0.5)
        gc.collect()
        base = {"rss_MiB": rss_mib(), "threads": threading.active_count(), "fds": open_fds(),
                "containers": len(self.our_containers())}
        audit.update(sandboxes=0, not_closed=0, dirs_left=[])
        rows = []
        for i in range(rounds):
            row = round_of(respond, sub_respond)
            time.sleep(0.5)  # let executors' threads finish exiting
            gc.collect()
            row.update({"rss_MiB": r(rss_mib(), 1), "threads": threading.active_count(), "fds": open_fds(),
                        "containers_left": len(self.our_containers())})
            rows.append(row)
            say(f"concurrent round {i + 1}/{rounds}: {row['wall_s']:.2f} s, {row['statuses']}, "
                f"containers left {row['containers_left']}, rss {row['rss_MiB']:.0f} MiB, "
                f"threads {row['threads']}")
        counted = dict(audit)

        # One round with model latency, to see the runs overlap (serial it would be 16 x 3 x 0.3 + 16 x 0.5).
        def slow_root(messages: list[dict]) -> Reply:
            return Reply(respond(messages), delay_s=root_latency)

        latency_round = round_of(slow_root, lambda _m: Reply("summary", delay_s=sub_latency))
        say(f"concurrent with latency (root {root_latency} s, sub {sub_latency} s): {latency_round['wall_s']:.2f} s, "
            f"{latency_round['statuses']}")
        walls = [x["wall_s"] for x in rows]
        all_ok = all(x["statuses"] == {"completed": runs_at_once} and not x["wrong_answers"] for x in rows)
        out.update({
            "wall": summary(walls, "s"),
            "all_completed": all_ok and latency_round["statuses"] == {"completed": runs_at_once},
            "containers_left": rows[-1]["containers_left"],
            "baseline_after_warmup": {k: (r(v, 1) if isinstance(v, float) else v) for k, v in base.items()},
            "rss_growth_MiB": r(rows[-1]["rss_MiB"] - base["rss_MiB"], 1),
            "rss_growth_per_round_MiB": r((rows[-1]["rss_MiB"] - base["rss_MiB"]) / rounds, 2),
            "rss_growth_per_round_after_the_first_MiB": (
                r((rows[-1]["rss_MiB"] - rows[0]["rss_MiB"]) / (rounds - 1), 2) if rounds > 1 else None),
            "rss_growth_over_the_second_half_MiB": (
                r(rows[-1]["rss_MiB"] - rows[rounds // 2 - 1]["rss_MiB"], 1) if rounds > 1 else None),
            "rss_MiB_after_each_round": [x["rss_MiB"] for x in rows],
            "threads_growth": rows[-1]["threads"] - base["threads"],
            "fds_growth": rows[-1]["fds"] - base["fds"],
            "sandboxes": counted["sandboxes"],
            "sandboxes_not_closed": counted["not_closed"],
            "socket_dirs_left": counted["dirs_left"],
            "rounds": rows,
            "with_latency_root_0.3s_sub_0.5s": latency_round,  # (0.02 s each in a smoke run)
            "note": ("one RLM, 16 arun() gathered in asyncio.run(); each run: 3 root turns (len(context); "
                     "llm_query; FINAL), models instant unless said. After each round: gc, then RSS, "
                     "threads, fds and containers labelled with this pid. Baseline is after a warm-up round. "
                     "sandbox_start_s: the runs' sandbox_start.duration_s. "
                     "The default sandbox factory is wrapped only to note each sandbox and its socket "
                     "directory: sandboxes_not_closed and socket_dirs_left count those of the counted "
                     "rounds (not the latency round) still open or present at the end."),
        })
        return out

    # ---- 4. llm_query through the whole engine, instant sub-model ----
    def llm_query(self) -> dict[str, Any]:
        calls, reps, warm = self.n(200, 200, 5), self.n(5, 2), self.n(20, 20, 2)
        loop_cell = fence(f"for _ in range({calls}):\n    llm_query('hi')")
        batch_cell = fence(f"xs = llm_query_batched(['hi'] * {calls})\nassert len(xs) == {calls}")
        base_cell = fence("for _ in range(0):\n    llm_query('hi')")
        script = [fence(f"for _ in range({warm}):\n    llm_query('hi')")]  # warm-up turn
        for _ in range(reps):
            script += [base_cell, loop_cell, batch_cell]
        script.append("FINAL(done)")
        root = ScriptedModel(script)
        sub = ScriptedModel(responder=lambda _m: "ok")
        rlm = rlm_sandbox.RLM(model=root.model, sub_model=sub.model, max_iterations=len(script))
        result = rlm.run("Call the sub-model.", "a small context")
        assert result.status == "completed", (result.status, result.error)
        cells = events(result, "cell")[1:]
        replies = root_replies(result)[1:1 + 3 * reps]  # the last reply is the FINAL
        subs = events(result, "sub_call")[warm:]
        assert len(subs) == 2 * calls * reps, len(subs)
        base = [c.duration_s for c in cells[0::3]]
        loop = [c.duration_s for c in cells[1::3]]
        batch = [c.duration_s for c in cells[2::3]]
        host_loop = [c.t - m.t for c, m in zip(cells[1::3], replies[1::3], strict=True)]
        host_base = [c.t - m.t for c, m in zip(cells[0::3], replies[0::3], strict=True)]
        per_call = (statistics.median(loop) - statistics.median(base)) / calls
        per_call_batch = (statistics.median(batch) - statistics.median(base)) / calls
        # Per rep: the sequential cell's calls, then the batched cell's (events in completion order).
        seq_spans = [e.duration_s for i in range(reps) for e in subs[2 * calls * i: 2 * calls * i + calls]]
        batch_spans = [e.duration_s for i in range(reps) for e in subs[2 * calls * i + calls: 2 * calls * (i + 1)]]

        # The same litellm path alone, on an event loop of its own: what a sub-call costs
        # before the sandbox and the broker add anything.
        client = LLMClient()
        priced = ScriptedModel(responder=lambda _m: "ok")
        scripted_cost(priced.model, 1e-7, 4e-7)  # in litellm's price map, as a real model would be

        async def direct() -> tuple[list[float], float, list[float]]:
            one, known = [], []
            for _ in range(calls):
                for model, bucket in ((sub.model, one), (priced.model, known)):
                    t = perf()
                    await client.acomplete(model, [{"role": "user", "content": "hi"}])
                    bucket.append(perf() - t)
            gate = asyncio.Semaphore(16)

            async def limited() -> None:
                async with gate:
                    await client.acomplete(sub.model, [{"role": "user", "content": "hi"}])

            t = perf()
            await asyncio.gather(*(limited() for _ in range(calls)))
            return one, perf() - t, known

        asyncio.run(direct())  # warm-up
        direct_seq, direct_batch, direct_priced = asyncio.run(direct())
        for model in (root, sub, priced):
            model.close()
        out = {
            "calls_per_cell": calls, "cells": reps,
            "per_call_ms_sequential": r(per_call * 1e3, 3),
            "per_call_ms_batched": r(per_call_batch * 1e3, 3),
            "calls_per_s_batched": r(calls / (statistics.median(batch) - statistics.median(base)), 0),
            "cell_kernel_s": {"0_calls": summary(base), f"{calls}_sequential": summary(loop),
                              f"{calls}_batched": summary(batch)},
            "cell_host_wall_ms": {"0_calls": summary(host_base), f"{calls}_sequential": summary(host_loop)},
            "broker_sub_call_span": {"sequential": summary(seq_spans), "batched": summary(batch_spans)},
            "outside_broker_per_call_ms": r(per_call * 1e3 - statistics.median(seq_spans) * 1e3, 3),
            "litellm_alone": {"per_call": summary(direct_seq),
                              "per_call_ms_16_at_once": r(direct_batch / calls * 1e3, 3),
                              "per_call_model_in_price_map": summary(direct_priced)},
            "note": ("per_call = (median kernel duration of a cell making N calls - of the same cell making "
                     "0) / N: kernel -> host callback thread -> broker -> litellm.acompletion on the run's "
                     "event loop -> scripted provider -> back. broker_sub_call_span: the broker's own "
                     "sub_call duration_s (ledger, semaphores, loop hand-off and litellm; batched calls "
                     "include the wait for one of the run's slots and queueing behind each other on the "
                     "loop). outside_broker_per_call = per_call "
                     "- sequential span p50: kernel, protocol and callback thread. litellm_alone: "
                     "LLMClient.acomplete to the same scripted model with no sandbox or broker; "
                     "per_call_model_in_price_map: to a scripted model registered in litellm's price map "
                     "(a real model such as gpt-4o-mini is; an unknown name costs litellm a scan of its "
                     "fallback rules on every call)."),
        }
        say(f"llm_query: {out['per_call_ms_sequential']:.2f} ms per call sequential, "
            f"{out['per_call_ms_batched']:.2f} ms batched; litellm alone "
            f"{out['litellm_alone']['per_call']['p50']:.2f} ms")
        return out

    # ---- 5. cold start of a whole run ----
    def cold_start(self) -> dict[str, Any]:
        n = self.n(10, 4)

        def sample() -> dict[str, float]:
            root = ScriptedModel(["FINAL(done)"])
            t0 = perf()
            rlm = rlm_sandbox.RLM(model=root.model)
            t1 = perf()
            result = rlm.run("Say done.", "a small context")
            t2 = perf()
            root.close()
            assert result.status == "completed" and result.answer == "done", (result.status, result.error)
            return {"total": t2 - t0, "construct": t1 - t0, "run": t2 - t1,
                    "sandbox_start": single(result, "sandbox_start").duration_s,
                    "model_call": root_replies(result)[0].latency_s,
                    "close": single(result, "sandbox_close").duration_s}

        sample()  # warm-up
        samples = []
        for i in range(n):
            samples.append(sample())
            say(f"cold start {i + 1}/{n}: {samples[-1]['total'] * 1e3:.0f} ms")
        out: dict[str, Any] = {k: summary([s[k] for s in samples], "s" if k == "total" else "ms")
                               for k in samples[0]}
        out["fresh_process"] = fresh_process(self.n(3, 1))
        out["note"] = ("total = RLM(...) constructed + rlm.run() of a one-reply 'FINAL(done)' script in a "
                       "warm process; sandbox_start = the sandbox_start event's duration_s (DockerSandbox.start, "
                       "overlapping the model call); model_call = the root model_reply's latency_s; close = "
                       "the sandbox_close event's duration_s. fresh_process: "
                       "a new interpreter importing rlm_sandbox and litellm, then doing the same; "
                       "interpreter_start_and_exit = process wall - total (mostly exit after litellm).")
        say(f"cold start: p50 {out['total']['p50'] * 1e3:.0f} ms; fresh process p50 "
            f"{out['fresh_process'].get('total', {}).get('p50', float('nan')):.2f} s")
        return out

    # ---- where the host time goes (not timed) ----
    def profile(self) -> dict[str, Any]:
        """py-spy (GIL-holding samples, all threads) while the iteration workload loops."""
        seconds, per_run = self.n(8, 3), self.n(50, 50, 3)
        spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
        if spy is None:
            return {"skipped": "py-spy not on PATH (nor beside this Python)"}
        stop = threading.Event()
        iterations = [0]

        def workload() -> None:
            while not stop.is_set():
                root = ScriptedModel([fence(f"print({i})") for i in range(per_run - 1)]
                                     + [fence("print(1)\nFINAL('done')")])
                rlm_sandbox.RLM(model=root.model, max_iterations=per_run).run("q", "ctx")
                iterations[0] += per_run
                root.close()

        worker = threading.Thread(target=workload, name="bench-workload")
        worker.start()
        time.sleep(self.n(1.0, 1.0, 0.2))
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "profile.txt"
            started_at = iterations[0]
            proc = subprocess.run([spy, "record", "--pid", str(os.getpid()), "--duration", str(seconds),
                                   "--rate", "500", "--gil", "--format", "raw", "--threads",
                                   "--output", str(raw)], capture_output=True, text=True)
            done = iterations[0] - started_at
            stop.set()
            worker.join()
            if proc.returncode != 0 or not raw.exists():
                return {"skipped": f"py-spy failed: {proc.stderr.strip()[-300:]}"}
            out = collapse(raw.read_text())
        out.update({"seconds": seconds, "rate_hz": 500, "iterations_during_profile": done,
                    "note": "py-spy record --gil: samples are taken only while a thread holds the GIL, so "
                            "percentages are shares of Python CPU time in this process. by_layer: a sample "
                            "counts for the first of these with a frame anywhere in its stack: the scripted "
                            "model, litellm, docker-py, the sandbox's host side, the rest of rlm_sandbox; "
                            "by_package: the innermost frame of a known package"})
        say(f"profile: {out['samples']} samples; by layer {out['by_layer_pct']}")
        return out


def collapse(text: str, top: int = 20) -> dict[str, Any]:
    """Self and inclusive shares per frame, per thread and per package, from py-spy raw output."""
    total = 0
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    package: collections.Counter[str] = collections.Counter()
    groups = (("rlm_sandbox", "rlm_sandbox/"), ("litellm", "litellm/"), ("tenacity", "tenacity/"),
              ("pydantic", "pydantic"), ("docker/requests/urllib3", ("docker/", "requests/", "urllib3/")),
              ("asyncio", "asyncio/"), ("concurrent.futures/threading", ("concurrent/", "threading.py")),
              ("json", "json/"), ("openai/httpx", ("openai/", "httpx/")))
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread_name = re.sub(r"\s*\(\d+\)|[-_]\d+$|_\d+", "", frames[0].removeprefix("thread ")).strip(" :")
        frames = [re.sub(r" \(([^)]*?)(site-packages/|lib/python3\.\d+/)", r" (", f) for f in frames[1:]]
        total += n
        threads[thread_name] += n
        if frames:
            own[frames[-1]] += n
            for name, marks in groups:
                marks = (marks,) if isinstance(marks, str) else marks
                if any(any(m in f for m in marks) for f in reversed(frames[-1:])):
                    package[name] += n
                    break
            else:
                innermost = next((g for f in reversed(frames) for g, marks in groups
                                  if any(m in f for m in ((marks,) if isinstance(marks, str) else marks))), "other")
                package[innermost] += n
        for frame in set(frames):
            inclusive[frame] += n

    layers = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if "rlm_sandbox/testing.py" in stack:
            layers["scripted model (the test double)"] += int(count)
        elif "litellm/" in stack:
            layers["inside litellm (incl. what it calls)"] += int(count)
        elif any(m in stack for m in ("docker/", "requests/", "urllib3/")):
            layers["inside docker-py (sandbox start/close)"] += int(count)
        elif "sandbox/kernel_sandbox.py" in stack or "sandbox/connection.py" in stack:
            layers["sandbox exec (host side, io thread)"] += int(count)
        elif "rlm_sandbox/" in stack:
            layers["rlm_sandbox engine, other"] += int(count)
        else:
            layers["event loop, executors, other"] += int(count)

    def pct(counter: collections.Counter[str], k: int) -> list[list[Any]]:
        return [[round(100 * v / (total or 1), 1), name] for name, v in counter.most_common(k)]

    return {"samples": total, "by_thread_pct": dict((n, p) for p, n in pct(threads, 12)),
            "by_layer_pct": dict((n, p) for p, n in pct(layers, 12)),
            "by_package_pct": dict((n, p) for p, n in pct(package, 12)),
            "top_self_pct": pct(own, top), "top_inclusive_pct": pct(inclusive, top + 10)}


FRESH_SCRIPT = r"""
import os, sys, time, json
t0 = time.perf_counter()
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, sys.argv[1])
import rlm_sandbox
t1 = time.perf_counter()
import litellm  # what the first model call would import (ScriptedModel needs it before)
from rlm_sandbox.testing import ScriptedModel
t2 = time.perf_counter()
root = ScriptedModel(["FINAL(done)"])
rlm = rlm_sandbox.RLM(model=root.model)
result = rlm.run("Say done.", "a small context")
t3 = time.perf_counter()
assert result.answer == "done", result
print(json.dumps({"import_rlm_sandbox": t1 - t0, "import_litellm": t2 - t1, "first_run": t3 - t2,
                  "total": t3 - t0,
                  "first_model_call": [e for e in result.trajectory if e.event == "model_reply"][0].latency_s}))
"""


def fresh_process(n: int) -> dict[str, Any]:
    rows = []
    for _ in range(n):
        t0 = perf()
        proc = subprocess.run([sys.executable, "-c", FRESH_SCRIPT, str(ROOT)], capture_output=True, text=True,
                              timeout=120)
        wall = perf() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the fresh process failed: {proc.stderr.strip()[-500:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["process_wall"] = wall
        row["interpreter_start_and_exit"] = wall - row["total"]
        rows.append(row)
    return {k: summary([x[k] for x in rows], "s") for k in rows[0]}


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(key: str, value: Any, note: str = "") -> None:
        t = TARGETS[key]
        if t["op"] == "<=":
            met = value <= t["target"]
        elif t["op"] == ">=":
            met = value >= t["target"]
        else:
            met = value == t["target"]
        out.append({"figure": key, "measured": value, "target": f"{t['op']} {t['target']}", "met": met,
                    **({"note": note} if note else {})})

    if "batched" in results:
        b = results["batched"]["concurrency_16"]
        add("batched_100_at_1s_run_wall_s", b["run_wall"]["p50"],
            f"cell wall p50 {b['cell_wall']['p50']} s; ideal {b['ideal_s']} s")
    if "iteration" in results:
        it = results["iteration"]
        add("host_overhead_per_iteration_ms", it["overhead_per_iteration_ms"],
            f"without the fixed start/close: {it['loop_overhead_per_iteration_ms']} ms; "
            f"marginal: {it['marginal_overhead_per_iteration_ms']} ms")
    if "concurrent" in results:
        c = results["concurrent"]
        ok = bool(c["all_completed"] and c["containers_left"] == 0 and c["threads_growth"] <= 0
                  and c["fds_growth"] <= 0 and not c["sandboxes_not_closed"] and not c["socket_dirs_left"])
        add("concurrent_runs_16_ok", ok, f"wall p50 {c['wall']['p50']} s; rss growth {c['rss_growth_MiB']} MiB "
            f"over {len(c['rounds'])} rounds")
    if "llm_query" in results:
        q = results["llm_query"]
        out.append({"figure": "llm_query_full_path_per_call_ms", "measured": q["per_call_ms_sequential"],
                    "related_target": "<= 1.0 (sandbox part)", "note": RELATED["llm_query_full_path_per_call_ms"]})
    if "cold_start" in results:
        out.append({"figure": "cold_start_whole_run_p50_s", "measured": results["cold_start"]["total"]["p50"],
                    "related_target": "<= 0.4 (sandbox)", "note": RELATED["cold_start_whole_run_p50_s"]})
    return out


BENCHES = ["batched", "iteration", "concurrent", "llm_query", "cold_start", "profile"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=BENCHES, metavar="NAME",
                        help=f"run only these: {', '.join(BENCHES)}")
    args = parser.parse_args(argv)
    began = perf()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    client = docker_client()
    say("checking the sandbox image (builds it once if missing; not timed)")
    image = ensure_image(client=client)
    bench = Bench(mode_of(args), client)
    say("warm-up run (litellm's import and first call, the image's page cache; not timed)")
    with ScriptedModel(["FINAL(done)"]) as warm:
        rlm_sandbox.RLM(model=warm.model).run("Say done.", "warm-up")
    results, errors = run_benches(bench, args.only or BENCHES)
    leaked = bench.our_containers()
    for c in leaked:
        client.api.remove_container(c["Id"], force=True)
    mach = machine(client, load_at_start)
    import litellm

    report = {
        "benchmark": "engine",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_engine.py", *map(shlex.quote, argv or sys.argv[1:])]),
        "quick": args.quick,
        "smoke": args.smoke,
        "image": image,
        "litellm_version": getattr(litellm, "__version__", None) or _dist_version("litellm"),
        "machine": mach,
        "targets": {k: v["design"] for k, v in TARGETS.items()},
        "targets_not_measured_here": NOT_MEASURED_HERE,
        "checks": checks(results),
        "results": results,
        "errors": errors,
        "leaked_containers": len(leaked),
        "duration_s": round(perf() - began, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if errors or leaked else 0


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
