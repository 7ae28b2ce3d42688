"""Framework integrations on our sandbox (DSPy, inspect_ai, ...): one module per framework, each an optional extra; nothing of ours imports them."""
