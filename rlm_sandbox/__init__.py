"""rlm-sandbox: Recursive Language Models whose code runs in a locked-down container.

    import rlm_sandbox
    result = rlm_sandbox.run("What is the total?", context=big_text, model="gpt-4o-mini")
    print(result.answer)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Lazy exports: `import rlm_sandbox` stays fast (litellm loads on first model call).
_EXPORTS = {
    "run": "api", "arun": "api", "RLM": "api", "Session": "api",
    "RLMResult": "core.result", "ModelUsage": "core.result",
    "Status": "core.result", "STATUSES": "core.result", "LIMIT_STATUSES": "core.result",
    "Settings": "config", "Budget": "core.budget",
    "Sandbox": "sandbox", "DockerSandbox": "sandbox", "LocalSandbox": "sandbox",
    "SandboxLimits": "sandbox", "SandboxPool": "sandbox", "SandboxSpec": "sandbox", "ExecResult": "sandbox",
    "reap_orphans": "sandbox",
    "RLMSandboxError": "errors", "BudgetExceeded": "errors", "LLMError": "errors", "BudgetNotEnforceable": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlm_sandbox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value
