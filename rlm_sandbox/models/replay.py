"""Record and replay model traffic: two wrappers around any :class:`ModelClient`.

``RecordingClient(inner, path)`` passes every call to ``inner`` and appends the request and
its answer (or failure) to a cassette (:mod:`.cassette`). ``ReplayClient(path)`` answers
from that cassette alone: no network, no key. Requests are matched by a hash of their
normalised form, so concurrency and order do not matter; identical requests are served in
the order they were recorded. A request the cassette does not hold raises
:class:`~rlm_sandbox.errors.UnrecordedRequest`, naming the call and the closest recorded
request, and is kept in ``misses`` so a caller can fail the run even when the loop caught it.

:func:`taped` puts either around a client, the one way ``RLM(record=DIR)`` / ``RLM(replay=DIR)``,
``rlm-sandbox run --record/--replay`` and ``rlm-sandbox eval`` (one cassette per task) do it.
"""

from __future__ import annotations

import copy
import difflib
import json
import threading
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import errors
from ..errors import LLMError, UnrecordedRequest
from ..redaction import Redactor, current_redactor
from .base import Completion, ModelClient, Price, RetryCause
from .cassette import (
    CassetteError,
    Entry,
    normalise,
    read_cassette,
    request_key,
    shorten,
    stored_request,
    write_header,
)

__all__ = ["CASSETTE_NAME", "RecordingClient", "ReplayClient", "cassette_path", "taped"]

#: The cassette file in a ``record=`` / ``replay=`` directory of one RLM or one CLI run.
CASSETTE_NAME = "cassette.jsonl"


def cassette_path(directory: str | Path, name: str = CASSETTE_NAME) -> Path:
    """The cassette file ``name`` in ``directory``."""
    return Path(directory) / name


def taped(inner: ModelClient, *, record: str | Path | None = None, replay: str | Path | None = None,
          append: bool = True, label: str | None = None) -> ModelClient:
    """``inner`` recording every call into the cassette file ``record``, answering every call from the
    cassette file ``replay`` (``inner`` then only counts tokens and looks up prices), or as it is.

    Written once for the API, ``rlm-sandbox run`` and ``rlm-sandbox eval``, so all three refuse the
    same things the same way: both at once is a ``TypeError``; a cassette that cannot be read, or
    written, is a :class:`~rlm_sandbox.models.cassette.CassetteError` naming the file and what to do.
    ``append=False`` starts the recording afresh; ``label`` names whose run it is in a replay's errors.
    """
    if record is not None and replay is not None:
        raise TypeError("give record= or replay=, not both: a run either records its model traffic or replays it")
    if replay is not None:
        return ReplayClient(replay, inner=inner, label=label)
    if record is None:
        return inner
    try:
        return RecordingClient(inner, record, append=append)
    except OSError as exc:
        raise CassetteError(f"the cassette {record} cannot be written ({exc.strerror or exc}); "
                            "record into a directory you may write to") from None


def _describe(model: str, messages: list[dict[str, Any]], number: int) -> str:
    """Which call this is, for a person: root or sub-call, its number, its last message."""
    kind = "a root-model call" if messages and messages[0].get("role") == "system" else "a sub-call"
    last = str(messages[-1].get("content", "")) if messages else ""
    snippet = " ".join(last.split())[:120]
    return f"{kind} (call #{number} of this client) to model {model!r} with {len(messages)} message(s), the last " \
           f"starting {snippet!r}"


def _signature(request: dict[str, Any]) -> str:
    """The request as comparable text (contents shortened as the cassette stores them)."""
    options = request.get("options")
    lines = [f"model={request['model']} max_tokens={request['max_tokens']}"
             + (f" options={options}" if options else "")]
    lines += [f"[{m.get('role')}] {shorten(str(m.get('content', '')))}" for m in request["messages"]]
    return "\n".join(lines)[:20_000]


def _alike(ratio: float, same_text: bool) -> str:
    """How alike two requests are, never "100%" for two that differ: the share is rounded down."""
    if same_text:
        return "alike as far as the cassette shows"
    return f"{min(int(ratio * 100), 99)}% alike"


def _where_they_differ(recorded: str, sent: str) -> str:
    index = next((i for i, (a, b) in enumerate(zip(recorded, sent, strict=False)) if a != b),
                 min(len(recorded), len(sent)))
    start = max(0, index - 40)
    return (f"they first differ at character {index}: recorded {recorded[start:index + 60]!r}, "
            f"sent {sent[start:index + 60]!r}")


class RecordingClient:
    """Calls ``inner`` and appends every request and outcome to the cassette at ``path``.

    ``append=True`` (the default) continues an existing cassette, numbering repeated
    requests after those already in it; ``append=False`` starts it afresh. Safe to share
    between concurrent calls. Secrets are masked before anything is hashed or written.
    """

    def __init__(self, inner: ModelClient, path: str | Path, *, append: bool = True) -> None:
        self.inner, self.path = inner, Path(path)
        self._lock = threading.Lock()
        self._mask = current_redactor()
        self._counts: dict[str, int] = defaultdict(int)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append and self.path.exists() and self.path.stat().st_size:
            for entry in read_cassette(self.path):
                self._counts[entry.key] = max(self._counts[entry.key], entry.n + 1)
        else:
            write_header(self.path)

    async def acomplete(self, model: str, messages: list[dict], *, max_tokens: int | None = None,
                        price: Price | None = None, **call: Any) -> Completion:
        """``call``: the protocol's other keywords (``options``, ``on_retry``), passed on as given;
        the options are part of the recorded request."""
        request = normalise(model, messages, max_tokens, self._mask, call.get("options"))
        key = request_key(request)
        try:
            completion = await self.inner.acomplete(model, messages, max_tokens=max_tokens, price=price, **call)
        except LLMError as exc:
            self._write(key, request, {"error": _error_record(exc, self._mask)})
            raise
        response = asdict(completion)
        response["text"] = self._mask(completion.text)
        self._write(key, request, {"response": response})
        return completion

    def _write(self, key: str, request: dict[str, Any], outcome: dict[str, Any]) -> None:
        with self._lock:
            n = self._counts[key]
            self._counts[key] = n + 1
            line = json.dumps({"key": key, "n": n, "request": stored_request(request), **outcome},
                              ensure_ascii=False)
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(line + "\n")

    def count_tokens(self, model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        return self.inner.count_tokens(model, messages, text=text)

    def price_of(self, model: str) -> Price | None:
        return self.inner.price_of(model)


def _error_record(exc: LLMError, mask: Redactor) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": mask(str(exc)), "transient": exc.transient,
            "attempts": exc.attempts, "status_code": exc.status_code, "input_tokens": exc.input_tokens,
            "output_tokens": exc.output_tokens, "cost_usd": exc.cost_usd,
            "cached_input_tokens": exc.cached_input_tokens, "cache_write_tokens": exc.cache_write_tokens}


def _error_from(record: dict[str, Any], model: str) -> LLMError:
    cls = getattr(errors, str(record.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, LLMError)) or cls is UnrecordedRequest:
        cls = LLMError
    exc = cls(str(record.get("message", "")), model=model, transient=bool(record.get("transient")),
              attempts=int(record.get("attempts") or 1), status_code=record.get("status_code"))
    exc.input_tokens = int(record.get("input_tokens") or 0)
    exc.output_tokens = int(record.get("output_tokens") or 0)
    exc.cached_input_tokens = int(record.get("cached_input_tokens") or 0)  # absent from older cassettes
    exc.cache_write_tokens = int(record.get("cache_write_tokens") or 0)
    exc.cost_usd = record.get("cost_usd")
    return exc


class ReplayClient:
    """Answers every call from the cassette at ``path``; never calls a model.

    ``inner`` (optional) still counts tokens and looks up prices, which need no network;
    without it, counts are estimated at four characters a token and prices are unknown.
    ``label`` names whose run this is in error messages (an eval task's id).
    """

    def __init__(self, path: str | Path, *, inner: ModelClient | None = None, label: str | None = None) -> None:
        self.path, self.inner, self.label = Path(path), inner, label
        self._entries: dict[str, list[Entry]] = defaultdict(list)
        for entry in read_cassette(self.path):
            self._entries[entry.key].append(entry)
        for recorded in self._entries.values():
            recorded.sort(key=lambda entry: entry.n)
        self._served: dict[str, int] = defaultdict(int)
        self._calls = 0
        self._lock = threading.Lock()
        self._mask = current_redactor()
        self.misses: list[UnrecordedRequest] = []
        self._whole: ReplayClient | None = None  # the client this one is a run's view of

    def for_run(self) -> ReplayClient:
        """A view of this client for one run: the same cassette, and the same count of what was
        served (identical requests are still served in the order recorded), but its own ``misses``,
        so a run is failed by its own misses only, not by those of another run replaying through the
        same client at the same time (a server copies one ``RLM`` per request). A miss is kept in
        this client's ``misses`` too."""
        view = copy.copy(self)
        view.misses, view._whole = [], self._whole or self
        return view

    async def acomplete(self, model: str, messages: list[dict], *, max_tokens: int | None = None,
                        price: Price | None = None, options: dict[str, Any] | None = None,
                        on_retry: Any = None) -> Completion:
        """Nothing is retried in a replay, so ``on_retry`` is never called."""
        started = time.perf_counter()
        request = normalise(model, messages, max_tokens, self._mask, options)
        key = request_key(request)
        with self._lock:
            self._calls += 1
            number = self._calls
            recorded = self._entries.get(key, [])
            index = self._served[key]
            self._served[key] = index + 1
        if index >= len(recorded):
            raise self._miss(model, messages, request, number, len(recorded))
        entry = recorded[index]
        if entry.error is not None:
            raise _error_from(entry.error, model)
        response = dict(entry.response or {})
        causes = tuple(RetryCause(**cause) for cause in response.get("retry_causes") or ())
        return Completion(text=str(response.get("text", "")), model=str(response.get("model", model)),
                          input_tokens=int(response.get("input_tokens", 0)),
                          output_tokens=int(response.get("output_tokens", 0)),
                          cost_usd=response.get("cost_usd"), duration_s=time.perf_counter() - started,
                          retries=int(response.get("retries", 0)), retry_causes=causes,
                          finish_reason=response.get("finish_reason"),
                          # absent from cassettes recorded before cached tokens were counted: none
                          cached_input_tokens=int(response.get("cached_input_tokens") or 0),
                          cache_write_tokens=int(response.get("cache_write_tokens") or 0))

    def _miss(self, model: str, messages: list[dict], request: dict[str, Any], number: int,
              times: int) -> UnrecordedRequest:
        whose = f" (task {self.label})" if self.label else ""
        call = _describe(model, messages, number)
        if times:
            text = (f"replay{whose}: {call} was recorded {times} time(s) in {self.path} and has been asked for "
                    f"again. Re-record the cassette (--record) so it holds every call.")
        else:
            text = (f"replay{whose}: {call} is not in the cassette {self.path}. {self._closest(request)} "
                    "Re-record (--record), or check that the run's settings, model and inputs are those recorded.")
        miss = UnrecordedRequest(text, model=model, label=self.label)
        with self._lock:  # shared by every view of the client
            self.misses.append(miss)
            if self._whole is not None:
                self._whole.misses.append(miss)
        return miss

    def _closest(self, request: dict[str, Any]) -> str:
        sent = _signature(request)
        candidates = [entries[0] for entries in self._entries.values()]
        if not candidates:
            return "The cassette holds no requests at all."
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(sent)
        scored = []
        for entry in candidates:
            matcher.set_seq1(_signature(entry.request))
            scored.append((matcher.quick_ratio(), entry))
        scored.sort(key=lambda pair: pair[0], reverse=True)
        best, best_ratio = None, -1.0
        for _, entry in scored[:5]:
            matcher.set_seq1(_signature(entry.request))
            ratio = matcher.ratio()
            if ratio > best_ratio:
                best, best_ratio = entry, ratio
        assert best is not None
        recorded = _signature(best.request)
        last = best.request["messages"][-1].get("content", "") if best.request["messages"] else ""
        closest = (f"The closest recorded request ({_alike(best_ratio, recorded == sent)}) is to model "
                   f"{best.request['model']!r} with {len(best.request['messages'])} message(s), the last starting "
                   f"{' '.join(last.split())[:120]!r}; ")
        if recorded == sent:
            return closest + ("they agree in everything the cassette keeps of a request, so they differ in text "
                              "it does not keep (the middle of a long message) or in a message's other keys.")
        return closest + f"{_where_they_differ(recorded, sent)}."

    def count_tokens(self, model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        if self.inner is not None:
            return self.inner.count_tokens(model, messages, text=text)
        chars = len(text) if text is not None else sum(len(str(m.get("content") or "")) for m in messages or [])
        return chars // 4 + 1

    def price_of(self, model: str) -> Price | None:
        return self.inner.price_of(model) if self.inner is not None else None
