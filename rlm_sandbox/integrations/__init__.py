"""Adapters that make rlm-sandbox usable from other frameworks; one module per framework, each an optional extra."""
