"""One result per task and epoch, kept in ``results.jsonl`` as the suite goes.

The file is appended to and flushed after every task, so an interrupted suite keeps what it
finished, and a later run with the same ``--out`` skips it (resume). When a task is run
again (``--force``, ``--retry-on-error``), its newer line wins.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, Field

from .. import LIMIT_STATUSES, Status as RunStatus

__all__ = ["BaselineResult", "LIMIT_STATUSES", "RESULTS", "ResultsFile", "TaskStatus", "TaskResult", "read_results"]

RESULTS = "results.jsonl"
#: A run's own statuses (``rlm_sandbox.Status``, whatever they grow to), and ``crashed`` for a
#: task whose run raised or whose worker died: the suite records it and goes on.
TaskStatus = Union[RunStatus, Literal["crashed"]]


class DirectResult(BaseModel):
    """The model asked directly, the whole context (or as much as fits) in its prompt."""

    answer: str
    truncated: bool
    context_chars: int
    sent_chars: int
    window_tokens: int
    window_known: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    duration_s: float
    error: str | None = None
    cached_input_tokens: int = Field(0, description="part of input_tokens read from the provider's prompt cache")


class BaselineResult(DirectResult):
    """The direct baseline's answer to the same task (``--baseline direct``), scored."""

    model: str
    score: float
    passed: bool


class TaskResult(BaseModel):
    """What one task's run gave: the answer and where it came from, its score, and its costs.

    ``cost_usd`` is None when some model's price is unknown (never 0 for unknown);
    ``limit_hit`` marks a run scored after a limit ended it (iterations, budget, time)."""

    task_id: str
    epoch: int = 1
    source: str = Field(description="the task's generator, or 'file' / 'inline'")
    length: int | None = Field(None, description="the task's length in tokens (generators), else None")
    records: int | None = None
    query: str
    expected: Any = None
    answer: str = ""
    answer_from: str = "none"
    status: TaskStatus
    limit_hit: bool = False
    error: str | None = None
    score: float = 0.0
    passed: bool = False
    pass_threshold: float = 1.0
    scorer: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = Field(0, description="part of input_tokens read from providers' prompt caches")
    cost_usd: float | None = 0.0
    duration_s: float = 0.0
    iterations: int = 0
    sub_calls: int = 0
    context_chars: int | None = None
    model: str
    sub_model: str
    scripted: bool = False
    trajectory: str | None = Field(None, description="the task's trace, relative to the output directory")
    baseline: BaselineResult | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    node: str | None = Field(None, description="the Ray node that ran the task (None: this process)")
    retried: bool = Field(False, description="its first worker died mid-task and it ran again (Ray)")
    permanent: bool = Field(False, description="a provider error no retry can mend (bad key, unknown model) "
                            "ended it: the suite stops the tasks left")

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.epoch

    @property
    def errored(self) -> bool:
        return self.status in ("error", "crashed")


class ResultsFile:
    """Appends results to ``DIR/results.jsonl``, one flushed line each (thread-safe)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESULTS
        self._lock = threading.Lock()

    def append(self, result: TaskResult) -> None:
        line = result.model_dump_json() + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()


def read_results(directory: Path) -> dict[tuple[str, int], TaskResult]:
    """The results in ``DIR/results.jsonl`` by (task, epoch), the newest line winning; a line
    cut short by an interrupted write is skipped."""
    path = directory / RESULTS
    found: dict[tuple[str, int], TaskResult] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            result = TaskResult(**json.loads(line))
        except (ValueError, TypeError):
            continue
        found[result.key] = result
    return found
