"""Model clients: the litellm client (retries, usage, cost). Knows nothing of containers."""

from .litellm_client import Completion, LLMClient, is_transient

__all__ = ["Completion", "LLMClient", "is_transient"]
