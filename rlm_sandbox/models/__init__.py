"""Model clients: the ``ModelClient`` interface and its litellm implementation (retries,
usage, cost), and where litellm lives in the process. Knows nothing of containers."""

from .base import Completion, ModelClient, Price, RetryCause, context_text
from .litellm_client import LLMClient, is_transient, model_window
from .runtime import load_litellm, model_loop, on_model_loop

__all__ = ["Completion", "LLMClient", "context_text", "model_window", "ModelClient", "Price", "RetryCause",
           "is_transient", "load_litellm", "model_loop", "on_model_loop"]
