"""The OpenAI-compatible HTTP API: ``/v1/models``, ``/v1/chat/completions``, ``/v1/rlm/traces/{id}``.

A Starlette app, so any ASGI server runs it (``rlm-sandbox serve`` uses uvicorn). A
streamed request gets its first chunk (the assistant role) at once, then one
``reasoning_content`` line per iteration, cell and sub-call batch while the run goes, the
answer as ``content``, a chunk with ``finish_reason`` (and the ``rlm`` object), a usage
chunk when ``stream_options.include_usage`` asks, and ``[DONE]``. A comment line goes out
whenever the stream has been silent for ``heartbeat_s``, so proxies keep the connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..redaction import redact
from . import responses
from .auth import check_host, check_json, check_request
from .config import ServerConfig
from .errors import APIError, bad_request
from .progress import ProgressLines
from .runs import RunPlan, Runner, until_disconnected

#: The viewer's page is self-contained and has no script: nothing may be fetched or run (the
#: same policy as the page's own meta tag).
_HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def create_app(config: ServerConfig) -> Starlette:
    """The app for ``config`` (bad run settings raise ``SettingsError`` here, before serving)."""
    runner = Runner(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, runner.start)
        try:
            yield
        finally:
            for task in list(runner.tasks):  # runs still going: end them cleanly (containers closed)
                task.cancel()
            if runner.tasks:
                await asyncio.wait(list(runner.tasks), timeout=30)
            await asyncio.get_running_loop().run_in_executor(None, runner.close)

    async def guarded(request: Request, handler: Any) -> Response:
        try:
            check_host(config.host, request.headers.get("host"))
            check_request(config.api_key, request.headers.get("authorization"))
            return await handler(request)
        except APIError as exc:
            return exc.response()

    async def models(request: Request) -> Response:
        async def handler(_: Request) -> Response:
            return JSONResponse({"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "rlm-sandbox"}
                for name in runner.models()]})
        return await guarded(request, handler)

    async def chat_completions(request: Request) -> Response:
        async def handler(_: Request) -> Response:
            check_json(request.headers.get("content-type"))
            raw = await _body(request, int(config.max_body_mb * 1024 * 1024))
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise bad_request("the body is not JSON: send a chat completion request object", None) from None
            plan = runner.plan(body)
            if plan.stream:
                return _stream(runner, plan, config.heartbeat_s)
            return await _complete(runner, plan, request)
        return await guarded(request, handler)

    async def trace(request: Request) -> Response:
        async def handler(_: Request) -> Response:
            request_id = request.path_params["request_id"]
            shape = request.query_params.get("format", "jsonl")
            if shape == "html":
                html = await asyncio.get_running_loop().run_in_executor(None, runner.traces.html, request_id)
                return HTMLResponse(html, headers={"Content-Security-Policy": _HTML_POLICY})
            if shape != "jsonl":
                raise bad_request(f"format={shape[:40]!r} is not one of jsonl, html", "format")
            return FileResponse(runner.traces.path(request_id), media_type="application/x-ndjson")
        return await guarded(request, handler)

    routes = [Route("/v1/models", models, methods=["GET"]),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/rlm/traces/{request_id}", trace, methods=["GET"])]
    async def no_route(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return APIError(status, f"no route {request.method} {request.url.path[:200]}: this server answers "
                                "GET /v1/models, POST /v1/chat/completions and GET /v1/rlm/traces/<id>",
                        code="trace_not_found" if request.url.path.startswith("/v1/rlm/traces/") else "no_route"
                        ).response()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route})
    app.state.runner = runner
    return app


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is over this server's limit of {limit / 1048576:g} MiB "
                         "(--max-body-mb); send a smaller context, or ask the operator to raise it",
                    code="body_too_large")


async def _complete(runner: Runner, plan: RunPlan, request: Request) -> Response:
    """Run to the end, or cancel the run when the client goes away first."""
    task = runner.launch(plan)
    gone = asyncio.create_task(until_disconnected(request.receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():  # the client left: nobody reads the answer
        task.cancel()
        return Response(status_code=499)
    result = task.result()  # an APIError raised by the run is answered by guarded()
    if result.status == "error":
        raise APIError(502, f"the run failed: {result.error}", code="run_failed")
    return JSONResponse(responses.completion(plan.request_id, plan.created, plan.model, result,
                                             runner.trace_id(plan)))


def _stream(runner: Runner, plan: RunPlan, heartbeat_s: float) -> EventSourceResponse:
    """The run as server-sent chunks; a 429 is raised here, before the stream begins."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()
    progress = ProgressLines()

    def sink(event: Any) -> None:  # any thread: the line is made here, queued on the loop
        line = progress.line(event)
        if line is not None:
            loop.call_soon_threadsafe(lines.put_nowait, line)

    task = runner.launch(plan, sink)

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        return json.dumps(responses.chunk(plan.request_id, plan.created, plan.model, delta, finish, **extra))

    async def events() -> AsyncIterator[str]:
        try:
            yield chunk({"role": "assistant", "content": ""})
            while not task.done():
                getter = asyncio.ensure_future(lines.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield chunk({"reasoning_content": getter.result()})
                else:
                    getter.cancel()
            while not lines.empty():
                yield chunk({"reasoning_content": lines.get_nowait()})
            try:
                result = task.result()
                if result.status == "error":
                    raise APIError(502, f"the run failed: {result.error}", code="run_failed")
            except APIError as exc:
                yield json.dumps(exc.body())
                yield "[DONE]"
                return
            if result.answer:
                yield chunk({"content": redact(result.answer)})
            yield chunk({}, responses.finish_reason(result), rlm=responses.rlm_info(result, runner.trace_id(plan)))
            if plan.include_usage:
                yield chunk(None, usage=responses.usage(result))
            yield "[DONE]"
        finally:
            if not task.done():  # the client went away (sse-starlette cancelled us): stop the run
                task.cancel()

    return EventSourceResponse(events(), ping=heartbeat_s, sep="\n")
