"""Runs ONE task through the original RLM (PyPI ``rlms``, module ``rlm``) and prints JSON.

    .venv-rlms/bin/python benchmarks/rlms_driver.py < task.json

Run by ``bench_cost.py`` inside the original's own venv (it never imports rlm_sandbox). The task
on stdin: ``base_url``, ``context``, ``query``, ``compaction`` (bool), ``context_window`` (tokens,
or null), ``max_depth``, ``max_iterations``. Root model ``bench-root``, sub-model ``bench-sub``
(``other_backends``), both on the benchmark's server. Its ``local`` REPL runs the code in this
process, with no sandbox: fine for counting tokens, not for untrusted code. Prints
``{"answer", "seconds", "rlms_version"}`` or ``{"error"}``.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any


def main() -> int:
    task: dict[str, Any] = json.load(sys.stdin)
    try:
        from rlm import RLM
        from rlm.utils import token_utils
    except ImportError as exc:
        print(json.dumps({"error": f"rlms is not importable here: {exc}"}))
        return 1
    if task.get("context_window"):
        # 0.1.3 reads a model's window from this table (128,000 for a name it does not know); the
        # benchmark gives the original the same window as ours, so both compact at the same size.
        token_utils.MODEL_CONTEXT_LIMITS["bench-root"] = int(task["context_window"])
    backend = {"base_url": task["base_url"], "api_key": "x"}
    rlm = RLM(backend="openai", backend_kwargs={**backend, "model_name": "bench-root"},
              other_backends=["openai"], other_backend_kwargs=[{**backend, "model_name": "bench-sub"}],
              environment="local", max_depth=int(task["max_depth"]), max_iterations=int(task["max_iterations"]),
              compaction=bool(task["compaction"]))
    began = time.perf_counter()
    try:
        completion = rlm.completion(task["context"], root_prompt=task["query"])
    except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which goes on with ours
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    finally:
        rlm.close()
    print(json.dumps({"answer": str(completion.response), "seconds": round(time.perf_counter() - began, 3),
                      "rlms_version": version("rlms")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
