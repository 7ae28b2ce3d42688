#!/usr/bin/env python3
"""BENCHMARKS.md's tables from a ``bench_cost.py`` result, so a re-run is written up as measured.

    python benchmarks/cost_table.py benchmarks/results/2026-12-07-cost.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def runs(results: dict[str, Any]) -> list[str]:
    """Per trajectory and engine: tokens, cached shares, cost, correct."""
    lines = ["| trajectory | engine | root req. | root input | sub input | cached / root input | cached / all input "
             "| cost with cache | without cache | correct |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        for engine in ("ours", "original"):
            run = result.get(engine)
            if name == "suite" or run is None:
                continue
            if "root_input_tokens" not in run or not run["root_input_tokens"]:
                lines.append(f"| {name} | {engine} | {run.get('error', 'no requests')} |")
                continue
            lines.append(f"| {name} | {engine} | {run['root_requests']} | {run['root_input_tokens']:,} "
                         f"| {run['sub_input_tokens']:,} | {run['cached_share_root']:.0%} "
                         f"| {run['cached_share_all']:.0%} | ${run['cost_with_cache_usd']:.4f} "
                         f"| ${run['cost_without_cache_usd']:.4f} | {'yes' if run.get('correct') else 'no'} |")
    return lines


def ratios(results: dict[str, Any]) -> list[str]:
    """Ours / original, per trajectory."""
    lines = ["| trajectory | root input | sub input | cost with cache | cost without cache "
             "| root requests' cost with cache |", "|---|---|---|---|---|---|"]
    names = ["root_input_tokens", "sub_input_tokens", "cost_with_cache_usd", "cost_without_cache_usd",
             "root_cost_with_cache_usd"]
    for name, result in results.items():
        ratio = result.get("ratio_ours_to_original")
        if ratio:
            cells = " | ".join("-" if ratio.get(n) is None else f"{ratio[n]:.2f}" for n in names)
            lines.append(f"| {name} | {cells} |")
    return lines


def suite(results: dict[str, Any]) -> list[str]:
    """Each suite task's first root request: its tokens and what was cached."""
    lines = []
    for engine, run in results.get("suite", {}).items():
        firsts = ", ".join(f"{t['first_root_cached_tokens']:,} of {t['first_root_prompt_tokens']:,}"
                           for t in run["tasks"] if t["first_root_prompt_tokens"] is not None)
        lines.append(f"- suite, {engine}: first root request cached {firsts}")
    return lines


def targets(report: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | met? |", "|---|---|---|"]
    for check in report["targets"]:
        met = {True: "yes", False: "no", None: "not measured"}[check["met"]]
        lines.append(f"| {check['target']} | {check['value']} | {met} |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: cost_table.py RESULT.json (a bench_cost.py result)", file=sys.stderr)
        return 2
    report = json.loads(Path(argv[0]).read_text())
    results = report["results"]
    print("\n".join([*runs(results), "", *ratios(results), "", *suite(results), "", *targets(report)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
