"""Model clients: the ``ModelClient`` interface and its litellm implementation (retries,
usage, cost). Knows nothing of containers."""

from .base import Completion, ModelClient, Price, RetryCause
from .litellm_client import LLMClient, is_transient

__all__ = ["Completion", "LLMClient", "ModelClient", "Price", "RetryCause", "is_transient"]
