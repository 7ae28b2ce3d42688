"""What the examples share: which model answers, the command-line flags, the summary.

A real model is used when ``RLM_SANDBOX_MODEL`` names one, as for the ``rlm-sandbox``
command (any litellm model string, e.g. ``gpt-4o-mini`` or ``ollama/llama3.1``; keys come
from the provider's usual variables, an endpoint from ``RLM_SANDBOX_API_BASE``), with
``RLM_SANDBOX_SUB_MODEL`` for ``llm_query`` if set. ``LITELLM_MODEL`` and
``LITELLM_SUB_MODEL``, which older versions read, still work. Otherwise each example runs
offline against its own scripted model: a
`ScriptedModel` reached through litellm like any provider, whose replies are real code
that runs in the sandbox.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import rlm_sandbox  # noqa: F401 - only to see whether it is installed
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass
class Models:
    """The litellm model strings for a run, and the scripted models kept alive for it."""

    model: str
    sub_model: str | None
    description: str
    _keep: list[Any] = field(default_factory=list, repr=False)  # ScriptedModels are weakly registered


Responder = Callable[[list[dict]], str]


def choose_models(root_replies: list[str] | None = None, *, root_responder: Responder | None = None,
                  sub_responder: Responder | None = None) -> Models:
    """``RLM_SANDBOX_MODEL`` (or ``LITELLM_MODEL``) if set; else scripted models built from
    the example's script."""
    for variable, sub_variable in (("RLM_SANDBOX_MODEL", "RLM_SANDBOX_SUB_MODEL"),
                                   ("LITELLM_MODEL", "LITELLM_SUB_MODEL")):
        real = os.environ.get(variable, "").strip()
        if real:
            sub = os.environ.get(sub_variable, "").strip() or None
            return Models(real, sub, f"{real} (sub-model: {sub or real}; from {variable})")

    from rlm_sandbox.testing import ScriptedModel

    root = ScriptedModel(replies=root_replies, responder=root_responder)
    keep = [root]
    sub_model = None
    if sub_responder is not None:
        sub = ScriptedModel(responder=sub_responder)
        keep.append(sub)
        sub_model = sub.model
    return Models(root.model, sub_model, "scripted demo model (offline; set RLM_SANDBOX_MODEL to use a real one)",
                  _keep=keep)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sandbox", choices=["local", "docker"], default="docker",
                        help="where model code runs: docker (default, locked down) or local (NOT a "
                             "security boundary; for development)")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("--quiet", action="store_true", help="print only the result lines")
    noise.add_argument("--verbose", action="store_true", help="stream every step of the run to stderr")
    return parser.parse_args()


def sandbox_failed(exc: Exception, sandbox: str) -> int:
    """Say why the sandbox could not run (e.g. no Docker daemon); the exit code is 1."""
    print(f"error: {exc}", file=sys.stderr)
    if sandbox == "docker":
        print("(to try the example without Docker: --sandbox local, which is NOT a security boundary)",
              file=sys.stderr)
    return 1


def numbers_in(text: str) -> list[int]:
    """Integers written in an answer, with or without thousands separators ("$1,234")."""
    return [int(n.replace(",", "").replace("_", "")) for n in re.findall(r"\d[\d,_]*", text)]


def print_stats(result: Any) -> None:
    cost = "unknown (no price for a model)" if result.cost_usd is None else f"${result.cost_usd:.6f}"
    print(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    print(f"iterations: {result.iterations}, code cells: {result.code_executions}, "
          f"sub-calls: {result.sub_calls}")
    print(f"tokens: {result.total_input_tokens:,} in / {result.total_output_tokens:,} out, "
          f"cost: {cost}, duration: {result.duration_s:.2f} s")
