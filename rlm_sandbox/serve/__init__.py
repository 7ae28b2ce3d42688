"""Serving RLMs to other programs: ``rlm-sandbox serve`` (an OpenAI-compatible HTTP API) and
``rlm-sandbox mcp`` (an MCP server: ``mcp_server``, ``mcp_paths``, ``mcp_sessions``).

Each module holds one concept: the server's configuration (``config``), errors in OpenAI's
shape (``errors``), what a request may set (``options``), admission and queueing
(``admission``), progress lines from events (``progress``), one request's run
(``runs``), kept traces (``traces``), keys (``auth``) and the Starlette app (``app``).
Nothing here reaches past the public run entry (``rlm_sandbox.RLM``) into the loop, and
nothing of ours imports this package but the CLI.
"""
