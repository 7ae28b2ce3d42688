"""The server's own configuration: where it listens, who may use it, how many runs at once.

The runs' settings are not here: they are ``Settings`` (``--set``, ``RLM_SANDBOX_*``,
``.env``), read once at start into ``options`` and validated then, so a bad value stops
the server before it listens rather than failing every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The environment variable holding the server's API key (instead of --api-key).
KEY_VARIABLE = "RLM_SANDBOX_SERVER_KEY"


@dataclass
class ServerConfig:
    """``api_key`` None means no key (loopback only); ``pool`` None means one warm sandbox per
    concurrent run, 0 none; ``heartbeat_s`` is the longest silence on a stream; a request body
    over ``max_body_mb`` is refused (413) as it arrives, so no request can fill memory."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    max_concurrent: int = 4
    max_queue: int = 16
    trace_dir: Path | None = None
    heartbeat_s: float = 15.0
    pool: int | None = None
    max_body_mb: float = 64.0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_concurrent < 1:
            raise ValueError(f"--max-concurrent must be at least 1, not {self.max_concurrent}")
        if self.max_queue < 0:
            raise ValueError(f"--max-queue must be 0 or more, not {self.max_queue}")
        if not self.heartbeat_s > 0:
            raise ValueError(f"--heartbeat-s must be more than 0, not {self.heartbeat_s}")
        if not self.max_body_mb > 0:
            raise ValueError(f"--max-body-mb must be more than 0, not {self.max_body_mb}")
        if self.pool is not None and self.pool < 0:
            raise ValueError(f"--pool must be 0 or more, not {self.pool}")
        if self.trace_dir is not None and not Path(self.trace_dir).is_dir():
            parent = Path(self.trace_dir).absolute().parent
            if not parent.is_dir():  # the CLI's one rule: the directory is made, its parent must exist
                raise ValueError(f"--trace-dir {self.trace_dir}: its parent {parent} does not exist; "
                                 f"create it first (mkdir -p {parent})")
            Path(self.trace_dir).mkdir()
