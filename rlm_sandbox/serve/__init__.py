"""Serving runs to other programs: the OpenAI-compatible HTTP server and the MCP server."""
