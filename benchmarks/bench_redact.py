#!/usr/bin/env python3
"""What ``redact()`` costs per call: the price of masking every log record and shown line.

    python benchmarks/bench_redact.py [--calls 2000] [--repeats 7] [--before REF]

Run in a scratch directory holding a ``.env`` with one provider key (made here), with one
key exported. ``--before REF`` also times the ``redaction.py`` of git revision REF (for
example the commit before issue 18's cached Redactor), loaded from ``git show``. Prints one
JSON object: the median microseconds per call of each, over ``--repeats`` rounds of
``--calls`` calls.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import tempfile
import timeit
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
LINE = "INFO a log record that quotes sk-bench-0123456789abcdef once, and more text " * 2


def _module_at(ref: str, scratch: Path) -> ModuleType:
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:rlm_sandbox/redaction.py"],
                            capture_output=True, text=True, check=True).stdout
    path = scratch / "redaction_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("redaction_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_us(module: ModuleType, calls: int, repeats: int) -> float:
    assert "[secret" in module.redact(LINE), "the benchmark's key was not masked"
    rounds = [timeit.timeit(lambda: module.redact(LINE), number=calls) / calls * 1e6 for _ in range(repeats)]
    return round(statistics.median(rounds), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", metavar="REF", help="also time redaction.py at this git revision")
    args = parser.parse_args()
    from rlm_sandbox import redaction

    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        Path(".env").write_text("OPENAI_API_KEY=sk-bench-0123456789abcdef\n")
        os.environ["BENCH_EXPORTED_TOKEN"] = "exported-bench-0123456789"
        report = {"calls": args.calls, "repeats": args.repeats, "environment_variables": len(os.environ),
                  "redact_us": _median_us(redaction, args.calls, args.repeats)}
        if args.before:
            report[f"redact_us_at_{args.before}"] = _median_us(_module_at(args.before, Path(scratch)),
                                                               args.calls, args.repeats)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
