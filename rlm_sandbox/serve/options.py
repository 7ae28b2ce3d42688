"""What one request may set for its run (``extra_body={"rlm": {...}}``), checked against the server.

A request chooses its root model (``model: rlm/<model>``), its context, its sub-model and
how the loop runs, and may lower the server's budgets. It can never change where the
server's models are reached or with which key, its sandbox, its prices (a free price would
defeat a cost cap), or raise a budget above the server's cap. Every refusal is a 400 naming
the field, and values are validated exactly as ``--set`` values are (by ``Settings``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from .. import Budget
from ..config import Settings
from ..errors import SettingsError
from .errors import APIError, bad_request

#: The prefix of a served model's name: ``rlm/<litellm model>``, or ``rlm`` alone for the server's.
MODEL_PREFIX = "rlm"
#: Settings a request may give in ``rlm`` besides the budget.
RUN_FIELDS = frozenset({"sub_model", "allowed_sub_models", "temperature", "max_tokens", "sub_max_tokens",
                        "max_output_chars", "offload", "offload_threshold", "preview_chars", "compact_at",
                        "stall_repeats", "stall_idle_replies"})
#: Budget fields a request may lower (never raise past the server's value, where it has one).
BUDGET_FIELDS = frozenset(Budget.model_fields) - {"max_concurrency"}
#: Keys of ``rlm`` that are not settings.
OTHER_KEYS = frozenset({"context", "budget"})

#: The settings a request may give, with ``Settings``' own types and bounds: a request's values
#: are validated as ``--set`` values are, without re-reading the environment per request.
_Requested = create_model("RequestedSettings", __config__=ConfigDict(extra="forbid"),  # type: ignore[call-overload]  # run-time fields
                          **{name: (Settings.model_fields[name].annotation, Settings.model_fields[name])
                             for name in sorted(RUN_FIELDS | BUDGET_FIELDS)})


def root_model(name: Any, default: str) -> str:
    """The litellm model behind ``rlm/<model>`` (``rlm`` alone: the server's model)."""
    if not isinstance(name, str) or not name.strip():
        raise bad_request("'model' is required: rlm/<model> (any litellm model name) or rlm for the "
                          "server's default", "model", "model_not_found")
    if name == MODEL_PREFIX:
        return default
    prefix, sep, model = name.partition("/")
    if prefix != MODEL_PREFIX or not sep or not model.strip():
        raise bad_request(f"model {name!r} is not served here: use rlm/<model> (e.g. rlm/{default}) or rlm",
                          "model", "model_not_found")
    return model


def run_options(rlm: Any, base: Settings) -> tuple[dict[str, Any], Any, bool]:
    """``(settings overrides, context, context given)`` from a request's ``rlm`` object."""
    if rlm is None:
        return {}, None, False
    if not isinstance(rlm, dict):
        raise bad_request("'rlm' must be an object, e.g. {\"max_iterations\": 5, \"budget\": {...}}", "rlm")
    overrides: dict[str, Any] = {}
    for key, value in rlm.items():
        if key in OTHER_KEYS:
            continue
        overrides[key] = value
        _check_key(key, f"rlm.{key}")
    budget = rlm.get("budget")
    if budget is not None:
        if not isinstance(budget, dict):
            raise bad_request("'rlm.budget' must be an object of limits, e.g. {\"max_cost_usd\": 0.1}", "rlm.budget")
        for key, value in budget.items():
            if key not in BUDGET_FIELDS:
                raise bad_request(f"{key!r} is not a budget field a request may set; use one of "
                                  f"{', '.join(sorted(BUDGET_FIELDS))}", f"rlm.budget.{key}", "unknown_field")
            if key in overrides:
                raise bad_request(f"{key} is given both in rlm and in rlm.budget; give it once", f"rlm.budget.{key}")
            overrides[key] = value
    overrides = _validated(overrides, budget or {})
    _check_caps(overrides, base, budget or {})
    return overrides, rlm.get("context"), "context" in rlm


def _validated(overrides: dict[str, Any], budget: dict[str, Any]) -> dict[str, Any]:
    """The values as ``Settings`` would take them, or a 400 naming the first bad one."""
    try:
        checked = _Requested.model_validate(overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "rlm"
        param = f"rlm.budget.{name}" if name in budget else f"rlm.{name}"
        reason = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        shown = repr(error.get("input"))[:60]
        raise bad_request(f"{name}={shown}: {reason[:1].lower() + reason[1:]}", param) from None
    return {name: getattr(checked, name) for name in overrides}


def _check_key(key: str, param: str) -> None:
    if key in RUN_FIELDS or key in BUDGET_FIELDS:
        return
    if key in Settings.model_fields:
        hint = " (the root model is the request's 'model': rlm/<model>)" if key == "model" else ""
        raise bad_request(f"{key} is the server's setting and a request cannot set it{hint}", param, "not_allowed")
    raise bad_request(f"unknown field {key!r}; a request may set context, budget, "
                      f"{', '.join(sorted(RUN_FIELDS | BUDGET_FIELDS))}", param, "unknown_field")


def _check_caps(overrides: dict[str, Any], base: Settings, budget: dict[str, Any]) -> None:
    """Budgets at most the server's; sub-models only among the server's allowed ones."""
    for key in BUDGET_FIELDS & set(overrides):
        cap, value = getattr(base, key), overrides[key]
        param = f"rlm.budget.{key}" if key in budget else f"rlm.{key}"
        if cap is None:
            continue
        if value is None:  # null would lift the cap altogether
            raise bad_request(f"{key}=null would remove this server's cap of {cap}; ask for at most {cap}",
                              param, "above_cap")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue  # a value of the wrong type is refused by Settings, naming it
        if value > cap:
            raise bad_request(f"{key}={value} is above this server's cap of {cap}; ask for at most {cap}",
                              param, "above_cap")
    allowed = overrides.get("allowed_sub_models")
    if isinstance(allowed, list):
        beyond = [name for name in allowed if name not in base.allowed_sub_models]
        if beyond:
            raise bad_request(f"allowed_sub_models may only name models this server allows "
                              f"({', '.join(base.allowed_sub_models) or 'none'}); not {', '.join(map(str, beyond))}",
                              "rlm.allowed_sub_models", "not_allowed")


def settings_error(exc: SettingsError, overrides: dict[str, Any]) -> APIError:
    """A request's bad value as a 400 naming its field (a server setting's as a 500)."""
    name, value, reason = exc.problems[0]
    field = name.split(".")[0]
    if field == "model":
        return bad_request(f"model: {reason}", "model")
    if field in overrides:
        shown = f"={value}" if value is not None else ""
        return bad_request(f"{field}{shown}: {reason}", f"rlm.{field}")
    return APIError(500, f"the server's settings are invalid ({exc}); its operator must fix them")
