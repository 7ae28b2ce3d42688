"""Per-model litellm options (``model_options``, ``sub_model_options``): what may be passed.

Any litellm option may go with a model's calls (``top_p``, ``stop``, ``api_base`` for that
model, ``reasoning_effort``, ``extra_body``, ...), except what the host must control:
the reply's length (it bounds every budget reservation), retries and timeouts (counted and
reported by the engine), prices (a cost limit must see them), the request's shape, and
secrets (options are settings, and settings are shown in ``run_start`` events and by
``rlm-sandbox settings``; a key there would be printed). Each refusal names the setting to
use instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["HOST_CONTROLLED", "check_model_options", "parse_option_value"]

#: Options the engine sets itself, and what to use instead.
HOST_CONTROLLED: dict[str, str] = {
    "max_tokens": "set max_tokens (root) or sub_max_tokens (sub-calls): they bound budget reservations",
    "max_completion_tokens": "set max_tokens (root) or sub_max_tokens (sub-calls): they bound budget reservations",
    "max_output_tokens": "set max_tokens (root) or sub_max_tokens (sub-calls): they bound budget reservations",
    "num_retries": "set max_retries: the engine retries, counts and reports every attempt",
    "max_retries": "set max_retries: the engine retries, counts and reports every attempt",
    "timeout": "set request_timeout_s",
    "request_timeout": "set request_timeout_s",
    "input_cost_per_token": "set input_cost_per_token / sub_input_cost_per_token, so cost limits see the price",
    "output_cost_per_token": "set output_cost_per_token / sub_output_cost_per_token, so cost limits see the price",
    "cache_read_input_token_cost": "set cached_input_cost_per_token / sub_cached_input_cost_per_token (with a "
                                   "custom price), so cost limits see the price",
    "cache_creation_input_token_cost": "set cache_write_cost_per_token / sub_cache_write_cost_per_token (with a "
                                       "custom price), so cost limits see the price",
    "model": "the engine sets it (use model / sub_model)",
    "messages": "the engine sets it",
    "stream": "the engine reads whole replies",
    "n": "the engine reads one reply per call, and reserves budget for one",
    "supports_system_message": "set supports_system_message=false: the engine then folds the system prompt "
                               "into the first user message itself, so traces show what the model saw",
}

#: Option names that hold credentials (``api_key``, ``aws_secret_access_key``, ``azure_ad_token``,
#: ``vertex_credentials``), and header names that do (``Authorization``, ``X-Api-Key``, ``Cookie``).
_SECRET = re.compile(r"(?:^|[_-])(?:api[_-]?key|key|token|secret|password|credentials?|access[_-]key[_-]id)$"
                     r"|^(?:authorization|proxy-authorization|cookie)$", re.IGNORECASE)


def parse_option_value(text: str) -> Any:
    """A ``KEY=VALUE`` option's value: JSON when it parses (``0.2``, ``false``, ``["\\n\\n"]``,
    ``{"a": 1}``), else the text itself (``high``)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _secret_names(options: dict[str, Any], setting: str) -> list[str]:
    """Credential-looking option names, and header names inside ``extra_headers`` / ``headers``."""
    found = [f"{setting}.{key}" for key in options if _SECRET.search(str(key))]
    for key, value in options.items():
        if "header" in str(key).lower() and isinstance(value, dict):
            found += [f"{setting}.{key}.{name}" for name in value if _SECRET.search(str(name))]
    return found


def check_model_options(options: Any, setting: str = "model_options") -> dict[str, Any]:
    """``options`` as a dict of litellm options, or ValueError naming what is wrong and what
    to do. A JSON object in a string (``--set``, ``RLM_SANDBOX_MODEL_OPTIONS``) is read as one."""
    if isinstance(options, str):
        try:
            options = json.loads(options) if options.strip() else {}
        except ValueError:
            raise ValueError(f"{setting} must be a JSON object, e.g. '{{\"top_p\": 0.9}}' "
                             f"(or use --{setting.replace('_options', '-option').replace('_', '-')} KEY=VALUE)") \
                from None
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"{setting} must be a dict of litellm options, not {type(options).__name__}")
    problems = []
    for key in options:
        if not isinstance(key, str) or not key:
            problems.append(f"option names must be non-empty strings, not {key!r}")
        elif key in HOST_CONTROLLED:
            problems.append(f"{key!r} cannot be a model option: {HOST_CONTROLLED[key]}")
    secrets = _secret_names(options, setting)
    if secrets:
        problems.append(f"{', '.join(secrets)} looks like a credential; model options are shown in traces and "
                        "settings listings, so give keys with api_key or the provider's own variable "
                        "(e.g. OPENAI_API_KEY)")
    try:
        json.dumps(options)
    except (TypeError, ValueError):
        problems.append("every value must be JSON (numbers, strings, booleans, lists, objects): options are "
                        "recorded in the trace")
    if problems:
        raise ValueError("; ".join(problems))
    return dict(options)
