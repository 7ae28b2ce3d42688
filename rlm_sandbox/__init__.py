"""rlm-sandbox: Recursive Language Models whose code runs in a locked-down container.

    import rlm_sandbox
    result = rlm_sandbox.run("What is the total?", context=big_text, model="gpt-4o-mini")
    print(result.answer)

The names below load on first use, so ``import rlm_sandbox`` stays fast (litellm loads on the
first model call). A type checker reads them from the ``TYPE_CHECKING`` block instead, which
names the same objects: ``rlm_sandbox.RLM`` is the class to it, not ``Any``
(``tests/test_typed_api.py`` holds the block and ``_EXPORTS`` equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import events as events
    from .api import RLM as RLM
    from .api import Session as Session
    from .api import arun as arun
    from .api import run as run
    from .config import Settings as Settings
    from .core.budget import Budget as Budget
    from .core.result import LIMIT_STATUSES as LIMIT_STATUSES
    from .core.result import STATUSES as STATUSES
    from .core.result import ModelUsage as ModelUsage
    from .core.result import RLMResult as RLMResult
    from .core.result import Status as Status
    from .errors import BudgetExceeded as BudgetExceeded
    from .errors import BudgetNotEnforceable as BudgetNotEnforceable
    from .errors import ContextTypeError as ContextTypeError
    from .errors import DockerUnavailable as DockerUnavailable
    from .errors import ImageError as ImageError
    from .errors import LLMError as LLMError
    from .errors import RLMSandboxError as RLMSandboxError
    from .errors import SandboxError as SandboxError
    from .errors import SettingsError as SettingsError
    from .errors import UnrecordedRequest as UnrecordedRequest
    from .events import Event as Event
    from .models import Completion as Completion
    from .models import ModelClient as ModelClient
    from .models import Price as Price
    from .options import RLMOptions as RLMOptions
    from .options import SettingsOptions as SettingsOptions
    from .sandbox import DockerSandbox as DockerSandbox
    from .sandbox import ExecResult as ExecResult
    from .sandbox import Host as Host
    from .sandbox import LocalSandbox as LocalSandbox
    from .sandbox import Sandbox as Sandbox
    from .sandbox import SandboxLimits as SandboxLimits
    from .sandbox import SandboxFactory as SandboxFactory
    from .sandbox import SandboxPool as SandboxPool
    from .sandbox import SandboxSpec as SandboxSpec
    from .sandbox import reap_orphans as reap_orphans
    from .sandbox import register_provider as register_provider

#: name -> the module (relative to this package) it is loaded from on first use; ``events`` is the
#: module itself (every event kind, the JSONL reader and writer).
_EXPORTS = {
    "run": "api", "arun": "api", "RLM": "api", "Session": "api",
    "RLMResult": "core.result", "ModelUsage": "core.result",
    "Status": "core.result", "STATUSES": "core.result", "LIMIT_STATUSES": "core.result",
    "Settings": "config", "Budget": "core.budget", "SettingsOptions": "options", "RLMOptions": "options",
    "ModelClient": "models", "Completion": "models", "Price": "models",
    "events": "", "Event": "events",
    "Sandbox": "sandbox", "DockerSandbox": "sandbox", "LocalSandbox": "sandbox",
    "SandboxLimits": "sandbox", "SandboxPool": "sandbox", "SandboxSpec": "sandbox", "ExecResult": "sandbox",
    "Host": "sandbox", "SandboxFactory": "sandbox",
    "reap_orphans": "sandbox", "register_provider": "sandbox",
    "RLMSandboxError": "errors", "BudgetExceeded": "errors", "LLMError": "errors", "BudgetNotEnforceable": "errors",
    "SettingsError": "errors", "SandboxError": "errors", "DockerUnavailable": "errors", "ImageError": "errors",
    "ContextTypeError": "errors", "UnrecordedRequest": "errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlm_sandbox' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{module_name or name}", __name__)
    value = module if not module_name else getattr(module, name)
    globals()[name] = value
    return value
