"""The typed events of a run: one pydantic model per kind, all in one flat stream.

Every event carries where it belongs (``run_id``, ``parent_run_id``, ``depth``), its
place (``seq`` within its run) and when it happened (``ts`` wall clock in UTC, ``t``
seconds since the ROOT run started, so child runs share the root's clock). Child runs are
runs of their own in the same stream, linked by ``parent_run_id``; nothing nests by
reference, so a stream can be written line by line and read back from a partial file.

The discriminator is the ``event`` field. ``schema`` is bumped whenever a field changes
meaning or a required field is added; readers refuse streams of a newer schema.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

Role = Literal["root", "sub"]
Outcome = Literal["ok", "error", "refused"]
#: How a run ended, defined once for the whole package (``RLMResult.status``, the ``final``
#: and ``child_run_end`` events, eval results, the CLI's JSON) and exported as
#: ``rlm_sandbox.Status``. It lives here, the lowest layer that states it, because events may
#: not import the loop while the loop may import events. ``stalled``: the model made no
#: progress (the same reply with the same outcome, or replies with no code and no FINAL, too
#: many times in a row; see Settings).
Status = Literal["completed", "max_iterations", "budget_exhausted", "timeout", "stalled", "error"]
#: The statuses of a run that a limit ended (iterations, budget, time, no progress): it still
#: has the best answer it could get, and evaluation scores it as such.
LIMIT_STATUSES: frozenset[str] = frozenset({"max_iterations", "budget_exhausted", "timeout", "stalled"})


class EventBase(BaseModel):
    """Fields every event has. Events are frozen: listeners cannot change what others see."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: int = Field(SCHEMA_VERSION, alias="schema", description="event schema version")
    run_id: str = Field(description="the run this event belongs to")
    parent_run_id: str | None = Field(None, description="the run that started this one (null at the root)")
    depth: int = Field(ge=0, description="0 for the root run, 1 for its children, ...")
    seq: int = Field(ge=0, description="position of the event within its run, from 0")
    ts: datetime = Field(description="wall-clock time, UTC")
    t: float = Field(description="seconds since the root run started")

    # Dict-style reads, so listeners written for the plain-dict trajectory keep working.
    def __getitem__(self, key: str) -> Any:
        if key == "schema":
            return self.schema_version
        if key in type(self).model_fields:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def to_json(self) -> str:
        """One JSON line (without the newline): ``event`` first, ``schema`` under its wire name."""
        data = self.model_dump(mode="json", by_alias=True)
        return json.dumps({"event": data.pop("event"), **data}, ensure_ascii=False, separators=(",", ":"))


# --- the run ------------------------------------------------------------------------

class RunStart(EventBase):
    """A run (root or child) began."""

    event: Literal["run_start"] = "run_start"
    query: str
    model: str = Field(description="this run's root model")
    sub_model: str = Field(description="model for llm_query")
    context_type: str = Field(description="str, bytes, list, dict or none")
    context_length: int | None = Field(None, description="characters, bytes or items")
    tools: list[str] = Field(default_factory=list, description="host tools offered to the code")
    settings: dict[str, Any] = Field(default_factory=dict, description="the run's settings, secrets masked "
                                     "(the root run only: child runs share them)")


class Final(EventBase):
    """A run ended: its answer, where the answer came from, and how the run ended."""

    event: Literal["final"] = "final"
    status: Status = Field(description="completed, max_iterations, budget_exhausted, timeout, stalled or error")
    answer: str
    answer_from: str = Field("none", description="final, answer_now (one last call asked for an answer), "
                             "last_reply (the model's last reply) or none; only final is a FINAL answer")
    error: str | None = None
    iterations: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = Field(0, description="the part of input_tokens read from providers' prompt caches")
    output_tokens: int = 0
    cost_usd: float | None = Field(None, description="null when some call's price is unknown")
    duration_s: float = 0.0


class RunInterrupted(EventBase):
    """A run was cancelled (Ctrl-C, or its caller cancelled it): it has no final event."""

    event: Literal["run_interrupted"] = "run_interrupted"
    iterations: int = 0


class Iteration(EventBase):
    """The root model of a run is asked for its next step, or (``answer_now``) for its best
    answer after the run ended without FINAL."""

    event: Literal["iteration"] = "iteration"
    iteration: int = Field(ge=1)
    model: str
    purpose: Literal["step", "answer_now"] = "step"


# --- the sandbox -----------------------------------------------------------------------

class SandboxStart(EventBase):
    event: Literal["sandbox_start"] = "sandbox_start"
    provider: str
    image: str | None = None
    runtime: str | None = None
    transport: str | None = None
    duration_s: float = 0.0
    error: str | None = None


class ImageBuild(EventBase):
    """The sandbox image for this kernel is being built (once per kernel version): the run's
    sandbox waits for it. ``step`` of ``steps`` counts the Dockerfile's steps while they run."""

    event: Literal["image_build"] = "image_build"
    image: str | None = Field(None, description="the tag being built (null while waiting for another process)")
    message: str = Field(description="what is happening, in one line")
    step: int | None = Field(None, description="the build step running now, from 1")
    steps: int | None = Field(None, description="how many steps the build has")
    done: bool = Field(False, description="the build finished (the image is there)")


class SandboxRestart(EventBase):
    """The kernel died or ignored an interrupt; a fresh one holds the context, variables are gone."""

    event: Literal["sandbox_restart"] = "sandbox_restart"
    reason: str
    iteration: int | None = None
    cell: int | None = None


class SandboxClose(EventBase):
    event: Literal["sandbox_close"] = "sandbox_close"
    duration_s: float = 0.0


class Cell(EventBase):
    """One code block ran. ``shown`` is exactly what the model was told about it."""

    event: Literal["cell"] = "cell"
    iteration: int
    index: int = Field(ge=0, description="block number within the reply, from 0")
    code: str
    shown: str
    stdout: str = Field("", description="the captured stdout (host-capped)")
    stdout_chars: int = Field(0, description="length of the whole stdout before any cap")
    stderr: str = ""
    offloaded: list[str] = Field(default_factory=list, description="variables the output was kept in")
    error: str | None = None
    error_type: str | None = None
    duration_s: float = 0.0
    restarted: bool = False
    timed_out: bool = False
    called_final: bool = False


# --- models ------------------------------------------------------------------------------

class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: str = Field(description="what failed, e.g. RateLimitError: 429 slow down")
    wait_s: float = Field(description="backoff before the next attempt")


class ModelRequest(EventBase):
    """A model call is sent.

    Root requests carry only the messages that are new since this run's previous root
    request: the model saw ``previous[:base] + messages`` (the first request carries the
    system prompt and ``base`` is 0). Sub-calls carry their whole (one-message) prompt.
    """

    event: Literal["model_request"] = "model_request"
    call_id: str
    role: Role
    model: str
    purpose: Literal["step", "answer_now", "sub_call"]
    iteration: int | None = None
    base: int = Field(0, ge=0, description="messages kept from the previous root request")
    messages: list[dict[str, Any]]
    reserved_tokens: int | None = Field(None, description="tokens set aside in the budget for this call")


class ModelReply(EventBase):
    """A model call ended, answered or failed (after its retries)."""

    event: Literal["model_reply"] = "model_reply"
    call_id: str
    role: Role
    model: str
    outcome: Outcome
    text: str | None = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = Field(0, description="part of input_tokens read from the provider's prompt cache")
    cache_write_tokens: int = Field(0, description="part of input_tokens written to the provider's prompt cache "
                                    "(providers that bill writes: Anthropic, Bedrock)")
    cost_usd: float | None = Field(None, description="null when the model has no known price")
    latency_s: float = 0.0
    attempts: int = 1
    retries: list[Retry] = Field(default_factory=list)
    error: str | None = None


class ModelRetry(EventBase):
    """A model call's attempt failed transiently and will be retried after ``wait_s``
    (emitted as it happens; the call's ``model_reply`` lists every retry again)."""

    event: Literal["model_retry"] = "model_retry"
    call_id: str
    role: Role
    model: str
    attempt: int = Field(ge=1, description="the attempt that failed, from 1")
    max_attempts: int = Field(ge=1, description="attempts the call may make in all")
    cause: str = Field(description="what failed, e.g. RateLimitError: 429 slow down")
    wait_s: float = Field(description="backoff before the next attempt")


# --- callbacks from the code ----------------------------------------------------------------

class SubCall(EventBase):
    """A cell called llm_query (one event per prompt, batched or not)."""

    event: Literal["sub_call"] = "sub_call"
    function: str = Field(description="llm_query, llm_query_batched or rlm_query (at the depth limit)")
    call_id: str | None = Field(None, description="the model_request it made; null if refused")
    model: str
    iteration: int | None = None
    cell: int | None = None
    batch_index: int | None = None
    batch_size: int | None = None
    prompt_chars: int = 0
    response_chars: int = 0
    outcome: Outcome
    error: str | None = None
    duration_s: float = 0.0


class ToolCall(EventBase):
    event: Literal["tool_call"] = "tool_call"
    tool: str
    iteration: int | None = None
    cell: int | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome
    error: str | None = None
    duration_s: float = 0.0


class ChildRunStart(EventBase):
    """A cell started a child RLM (rlm_query); its own events follow under ``child_run_id``."""

    event: Literal["child_run_start"] = "child_run_start"
    child_run_id: str
    query: str
    iteration: int | None = None
    cell: int | None = None
    batch_index: int | None = None


class ChildRunEnd(EventBase):
    event: Literal["child_run_end"] = "child_run_end"
    child_run_id: str
    status: Status
    answer: str = ""
    error: str | None = None
    duration_s: float = 0.0


class DepthFallback(EventBase):
    """rlm_query at the depth limit became a plain llm_query."""

    event: Literal["depth_fallback"] = "depth_fallback"
    max_depth: int


# --- the loop's decisions -------------------------------------------------------------------

class Nudge(EventBase):
    """A reply had no code and no FINAL; the model was reminded how to proceed."""

    event: Literal["nudge"] = "nudge"
    count: int


class SchemaRejected(EventBase):
    """A FINAL answer did not match the answer schema; the problem went back to the model."""

    event: Literal["schema_rejected"] = "schema_rejected"
    problem: str


class Compaction(EventBase):
    """Older iterations were folded into a digest so the root request fits the model's window."""

    event: Literal["compaction"] = "compaction"
    iteration: int = Field(description="the iteration whose request was compacted")
    reason: Literal["threshold", "overflow"] = Field(description="threshold (compact_at was reached) or "
                                                     "overflow (the provider refused a request as too long)")
    window: int = Field(description="the context window used, in tokens")
    window_source: Literal["setting", "litellm", "provider"]
    limit: int = Field(description="tokens a request may take before folding")
    tokens_before: int
    tokens_after: int
    folded: list[int] = Field(default_factory=list, description="iterations folded this time")
    kept: list[int] = Field(default_factory=list, description="iterations still sent whole")
    clipped: bool = Field(False, description="the latest reply and its output were clipped to fit")


class ReplyCut(EventBase):
    """A reply was cut off at the token limit, or left a code block open: the open block did not run."""

    event: Literal["reply_cut"] = "reply_cut"
    iteration: int
    finish_reason: str | None = None
    max_tokens: int | None = Field(None, description="the reply's token limit on that call")
    unclosed_block: bool = Field(False, description="a ```repl block was opened and never closed")
    blocks_run: int = Field(0, description="complete blocks of the reply that ran")


class FinalRejected(EventBase):
    """A FINAL was not accepted; ``problem`` is what the model was told. (A FINAL that does not
    match the answer schema is a ``schema_rejected`` event.)"""

    event: Literal["final_rejected"] = "final_rejected"
    iteration: int
    reason: Literal["code_failed", "no_such_variable", "cut_off", "too_long"]
    problem: str


class Stalled(EventBase):
    """The model made no progress: the run ends with status ``stalled`` (after one answer-now call)."""

    event: Literal["stalled"] = "stalled"
    rule: Literal["repeated_reply", "idle_replies"]
    count: int = Field(description="replies in a row that tripped the rule")
    setting: str = Field(description="the setting and its value, e.g. stall_repeats=2")


class BudgetExhausted(EventBase):
    """A host-enforced limit tripped; ``budget`` is every limit and what was used."""

    event: Literal["budget_exhausted"] = "budget_exhausted"
    limit: str
    allowed: float
    used: float
    budget: dict[str, Any] = Field(default_factory=dict)


EVENT_TYPES: tuple[type[EventBase], ...] = (
    RunStart, Final, RunInterrupted, Iteration, SandboxStart, ImageBuild, SandboxRestart, SandboxClose, Cell,
    ModelRequest, ModelRetry, ModelReply, SubCall, ToolCall, ChildRunStart, ChildRunEnd, DepthFallback, Nudge,
    SchemaRejected, BudgetExhausted, Compaction, ReplyCut, FinalRejected, Stalled,
)

Event = Annotated[Union[
    RunStart, Final, RunInterrupted, Iteration, SandboxStart, ImageBuild, SandboxRestart, SandboxClose, Cell,
    ModelRequest, ModelRetry, ModelReply, SubCall, ToolCall, ChildRunStart, ChildRunEnd, DepthFallback, Nudge,
    SchemaRejected, BudgetExhausted, Compaction, ReplyCut, FinalRejected, Stalled,
], Field(discriminator="event")]

#: Validates one event from a dict or JSON (``EVENT_ADAPTER.validate_json(line)``).
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

#: Kind name -> class, e.g. ``KINDS["cell"] is Cell``.
KINDS: dict[str, type[EventBase]] = {cls.model_fields["event"].default: cls for cls in EVENT_TYPES}
