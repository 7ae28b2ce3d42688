"""Framework integrations, one module per framework, each an optional extra (nothing of ours imports them)."""
