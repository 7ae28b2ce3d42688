"""Adapters that let other frameworks run RLMs on our sandbox (DSPy, inspect_ai, litellm), one module per
framework, each behind an optional extra. Nothing of ours imports them; they use the public run entry
and the sandbox seam only."""
