"""``rlm-sandbox settings``: every setting, its value and where it came from."""

from __future__ import annotations

import json

import typer

from .common import fail, parse_set


def settings(
    options: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help="Show the settings as `run --set` "
                                                                              "would make them (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON."),
) -> None:
    """List every setting: its value and where it came from (default, environment, .env,
    --set). Secrets are masked. Set one with --set NAME=VALUE, RLM_SANDBOX_NAME or .env."""
    from ..config import Settings, setting_variables
    from ..errors import SettingsError
    from ..redaction import is_secret_name, redact

    given = parse_set(options)
    try:
        current = Settings(**given)
    except SettingsError as exc:
        raise fail(str(exc)) from None
    variables = setting_variables()
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(current, name)
        if is_secret_name(name):
            value = None if value is None else "********"
        if name in given:
            source = "--set"
        elif name in variables:
            variable, where = variables[name]
            source = f"{where} ({variable})"
        else:
            source = "default"
        rows.append({"name": name, "value": value, "source": source, "description": field.description or ""})
    if as_json:
        typer.echo(redact(json.dumps(rows, indent=2, ensure_ascii=False)))
        return
    width = max(len(row["name"]) for row in rows)
    shown = [json.dumps(row["value"]) for row in rows]
    value_width = min(max(map(len, shown)), 40)
    for row, value in zip(rows, shown, strict=True):
        typer.echo(redact(f"{row['name']:<{width}}  {value:<{value_width}}  {row['source']}"))
