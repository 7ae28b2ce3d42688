"""Provider variables (keys, endpoints) from the environment and ``./.env``: loaded for litellm,
and reported by ``doctor``.

Not settings of ours (``config.Settings`` ignores them): litellm reads a provider's key from
its usual variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), on the host only. Kept apart
from ``config`` so that module holds one thing, the settings; this one says which entries
of ``.env`` are a provider's, copies them into the environment, and lists the keys by name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import ENV_FILE, PREFIX
from .redaction import dotenv_entries, is_secret_name

__all__ = ["PROVIDER_KEY", "PROVIDER_OPTION", "load_provider_env", "provider_keys"]

#: Provider endpoints and options; with secret names (redaction.SECRET_NAME), the entries of
#: ``.env`` that are loaded into the environment for litellm.
PROVIDER_OPTION = re.compile(r"_(?:API_BASE|BASE_URL|API_VERSION|REGION_NAME)$", re.IGNORECASE)
#: Provider keys, as ``doctor`` lists them.
PROVIDER_KEY = re.compile(r"_API_(?:KEY|TOKEN)$|^AWS_ACCESS_KEY_ID$|^AZURE_AD_TOKEN$|^HF_TOKEN$", re.IGNORECASE)


def _is_provider_variable(name: str) -> bool:
    return not name.upper().startswith(PREFIX) and (is_secret_name(name) or bool(PROVIDER_OPTION.search(name)))


def load_provider_env(env_file: str | Path = ENV_FILE) -> list[str]:
    """Copy the provider variables of ``env_file`` into ``os.environ`` where not set; return their names.

    So a key in ``.env`` works exactly as if it were exported: litellm reads it from the
    environment of this (host) process. An exported value always wins. Containers never
    see it: their environment is built from scratch by the sandbox.
    """
    loaded = []
    for name, value in dotenv_entries(env_file).items():
        if value and _is_provider_variable(name) and name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded


def provider_keys(env_file: str | Path = ENV_FILE) -> list[tuple[str, str]]:
    """``(name, where)`` of each provider key set, ``where`` being ``environment`` or ``.env``."""
    found = [(name, "environment") for name, value in os.environ.items() if value and PROVIDER_KEY.search(name)]
    seen = {name for name, _ in found}
    found += [(name, ".env") for name, value in dotenv_entries(env_file).items()
              if value and PROVIDER_KEY.search(name) and name not in seen]
    return sorted(found)
