"""Model clients: the litellm client (retries, usage, cost). Knows nothing of containers."""

from .litellm_client import Completion, LLMClient, Price, is_transient
from .runtime import load_litellm, model_loop, on_model_loop

__all__ = ["Completion", "LLMClient", "Price", "is_transient", "load_litellm", "model_loop", "on_model_loop"]
