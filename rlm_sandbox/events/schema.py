"""The JSON Schema of the event stream, generated from the event types and shipped.

``event_schema.json`` in this package is what other tools (viewers, CI jobs, other
languages) validate traces against. It is generated, never edited: after changing a type,
run ``python -m rlm_sandbox.events.schema`` to rewrite it; a test fails if it is stale.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from .types import EVENT_ADAPTER, SCHEMA_VERSION

SCHEMA_FILE = "event_schema.json"


def generate_json_schema() -> dict[str, Any]:
    schema = EVENT_ADAPTER.json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"rlm-sandbox event (schema {SCHEMA_VERSION})",
            "description": "One line of an rlm-sandbox trace (JSONL). See docs/EVENTS.md.", **schema}


def shipped_json_schema() -> dict[str, Any]:
    """The schema file that ships in the package."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def write_json_schema(path: Path | None = None) -> Path:
    path = path or Path(__file__).with_name(SCHEMA_FILE)
    path.write_text(json.dumps(generate_json_schema(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_json_schema())
