"""Who may use the server: anyone on this machine by default, a key holder otherwise.

Binding a loopback address needs no key (only local programs reach it); binding any other
address without a key is refused at start, so the server is never open to a network by
mistake. A web page the user opens is a local program too: on a loopback bind a request
must name a loopback host (a page that rebinds its own name to 127.0.0.1 still sends its
name), and a run is started only by a JSON body (which a browser sends cross-site only after
a CORS preflight this server never grants), so no page can start runs or read answers. With a
key, every request must carry ``Authorization: Bearer <key>``; the key is
compared in constant time and never logged, traced or echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from .errors import APIError


class InsecureBind(ValueError):
    """A non-loopback address without an API key."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve a non-loopback address without a key."""
    if api_key is None and not is_loopback(host):
        raise InsecureBind(f"--host {host} is reachable from other machines: give --api-key KEY (or set "
                           "RLM_SANDBOX_SERVER_KEY) so only key holders can run code here, or bind 127.0.0.1")


def check_request(api_key: str | None, authorization: str | None) -> None:
    """Raise a 401 unless the request carries the server's key (no key set: anyone local)."""
    if api_key is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise APIError(401, "this server needs an API key: send 'Authorization: Bearer <key>' "
                            "(api_key= in OpenAI clients)", code="missing_api_key")
    if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        raise APIError(401, "the API key is wrong: use the key the server was started with", code="invalid_api_key")


def check_host(bind_host: str, host_header: str | None) -> None:
    """On a loopback bind, refuse a request whose ``Host`` is not a loopback name (DNS rebinding)."""
    if not is_loopback(bind_host):
        return  # reachable from elsewhere: the key guards it
    try:
        name = urlsplit(f"//{host_header or ''}").hostname or ""
    except ValueError:
        name = ""
    if not is_loopback(name):
        raise APIError(403, "this server answers only requests addressed to a loopback host (127.0.0.1, "
                            "localhost, [::1]); bind another address with an API key to serve others",
                       code="host_not_allowed")


def check_json(content_type: str | None) -> None:
    """A run starts only from a JSON body: a browser cannot send one cross-site without a preflight."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise APIError(415, "send the request body as JSON with 'Content-Type: application/json'",
                       code="unsupported_media_type")
