"""Adapters that let other frameworks run RLMs, one module per framework, each behind an
optional extra. Nothing of ours imports them; they use the public run entry only."""
