"""Errors as OpenAI's API sends them, so every OpenAI client shows them as it shows OpenAI's.

The body is ``{"error": {"message", "type", "param", "code"}}``; ``param`` names the request
field that was wrong (``rlm.budget.max_cost_usd``), so a client knows what to change.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ..redaction import redact

#: OpenAI's error ``type`` for each status this server sends.
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error",
          503: "server_error"}


class APIError(Exception):
    """An HTTP error in OpenAI's shape; ``headers`` go with it (``Retry-After`` on a 429)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": redact(str(self)), "type": _TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)
