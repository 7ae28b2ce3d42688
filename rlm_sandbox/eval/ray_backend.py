"""Evaluation on a Ray cluster: one worker actor per node, each with a warm sandbox pool on
that node's own Docker daemon. The only module of ours that imports Ray (an import-linter
contract holds it); install it with ``pip install "rlm-sandbox[ray]"``.

Why an actor per node rather than a Ray task per job (BENCHMARKS.md has the figures): a
task would start a cold sandbox every time (about 120 ms and a container start on the
node's daemon), while an actor keeps a :class:`~rlm_sandbox.SandboxPool` warm (a fresh
container per job, taken in about 5 ms) and costs one actor call (about 2 ms) per job.

Per-node concurrency is the node's ``rlm_sandbox_slots`` resource (``ray start
--resources '{"rlm_sandbox_slots": 8}'``); a node without it gets ``min(CPUs, memory /
memory_per_slot)``. The driver hands a job to a node with a free slot; when a worker dies
mid-job (its process or its node), the job runs once more, on another node when there is
one, and its result is marked ``retried``; a job whose workers died ``max_attempts`` times
is recorded as crashed, never dropped. The killed worker's containers are removed by the
owner-label reaper, run on each node when its actor starts (a restarted actor cleans up
after its predecessor) and when the suite ends. Traces and cassettes travel with the job
and its result, so nodes need no shared filesystem.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import NodeDiedError, ObjectLostError, OwnerDiedError, RayActorError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import SandboxPool, SandboxSpec, reap_orphans
from .backend import TaskJob, crashed_result, execute_job
from .ray_limiter import RateLimit, RateLimitedClient, RateSchedule
from .results import TaskResult
from .runner import EvalError

__all__ = ["RayBackend", "RayBackendError", "SLOTS", "node_slots"]

SLOTS = "rlm_sandbox_slots"
#: What a dead worker or node raises at the driver: the job is retried, not failed.
WORKER_DIED = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError, OwnerDiedError)


class RayBackendError(EvalError):
    """The Ray cluster cannot run the suite (unreachable, no usable node, every worker dead)."""


def node_slots(resources: dict[str, float], memory_per_slot: float) -> int:
    """A node's sandbox slots: its ``rlm_sandbox_slots`` resource, else what its CPUs and memory allow."""
    if resources.get(SLOTS):
        return int(resources[SLOTS])
    by_memory = int(resources.get("memory", 0) // memory_per_slot) if resources.get("memory") else 1
    return max(1, min(int(resources.get("CPU", 1)), by_memory))


@ray.remote(num_cpus=0)
class NodeWorker:
    """Runs jobs on its node: one warm pool per sandbox spec, ``slots`` jobs at once."""

    def __init__(self, slots: int, limiter: Any = None) -> None:
        self.slots, self.limiter = slots, limiter
        self.pools: dict[str, SandboxPool] = {}
        self._making = asyncio.Lock()  # concurrent first jobs must share one pool, not each warm one
        self.reaped = len(reap_orphans())  # containers of a worker that died here before

    def info(self) -> dict[str, Any]:
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "reaped": self.reaped}

    async def _pool(self, spec: SandboxSpec) -> SandboxPool:
        key = spec.model_dump_json()
        async with self._making:
            if key not in self.pools:  # warming starts containers: off the actor's event loop
                self.pools[key] = await asyncio.to_thread(SandboxPool, self.slots, spec=spec)
        return self.pools[key]

    async def run(self, job: TaskJob, cassette: bytes | None) -> tuple[TaskResult, bytes, bytes | None, float]:
        """Run ``job`` with its files in a private temp dir; give back the result, trace, recording
        and the seconds this took here (the driver's wait less this is Ray's overhead)."""
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="rlm-sandbox-ray-") as tmp:
            here = Path(tmp)
            local = dataclasses.replace(job, trace_path=here / "trace.jsonl",
                                        record=here / "record.jsonl" if job.record is not None else None,
                                        replay=here / "replay.jsonl" if job.replay is not None else None)
            if local.replay is not None and cassette is not None:
                local.replay.write_bytes(cassette)
            pool = await self._pool(job.spec)
            wrap = None
            if self.limiter is not None:
                limiter = self.limiter
                wrap = lambda inner: RateLimitedClient(inner, lambda tokens: limiter.reserve.remote(tokens))  # noqa: E731 - one line
            result = await execute_job(local, sandbox_factory=pool.sandbox_factory, wrap_client=wrap)
            trace = local.trace_path.read_bytes() if local.trace_path.exists() else b""
            recorded = local.record.read_bytes() if local.record is not None and local.record.exists() else None
        result.node = ray.get_runtime_context().get_node_id()
        return result, trace, recorded, time.perf_counter() - started

    def close(self) -> int:
        """Close the pools and remove what dead workers left on this node; returns containers reaped."""
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        return len(reap_orphans())


class _Slots:
    """Free job slots per live node, handed out by the driver (most free first)."""

    def __init__(self, capacity: dict[str, int]) -> None:
        self.free = dict(capacity)
        self.changed = asyncio.Condition()

    async def take(self, avoid: str | None = None) -> str:
        async with self.changed:
            while True:
                if not self.free:
                    raise RayBackendError("no live Ray node is left to run the remaining tasks")
                nodes = [node for node in self.free if node != avoid] or list(self.free)
                best = max(nodes, key=lambda node: self.free[node])
                if self.free[best] > 0:
                    self.free[best] -= 1
                    return best
                await self.changed.wait()

    async def give(self, node: str) -> None:
        async with self.changed:
            if node in self.free:
                self.free[node] += 1
            self.changed.notify_all()

    async def drop(self, node: str) -> None:
        async with self.changed:
            self.free.pop(node, None)
            self.changed.notify_all()


class RayBackend:
    """Jobs on the nodes of a Ray cluster (see the module's docstring).

    ``address``: "auto" (the cluster this machine belongs to, or ``RAY_ADDRESS``), "ray://..."
    or "HOST:PORT"; None starts a private one-node Ray. ``max_attempts`` counts the runs a job
    gets when its workers die (2: one retry). ``rate_limit`` shares a provider limit across the
    cluster. ``max_in_flight`` caps the jobs running at once (default: every slot)."""

    def __init__(self, address: str | None = "auto", *, max_attempts: int = 2, memory_per_slot: float = 2 * 2**30,
                 rate_limit: RateLimit | None = None, max_in_flight: int | None = None,
                 worker_restarts: int = 4, init_options: dict[str, Any] | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1: no retry)")
        self.address, self.max_attempts, self.memory_per_slot = address, max_attempts, memory_per_slot
        self.rate_limit, self.max_in_flight, self.worker_restarts = rate_limit, max_in_flight, worker_restarts
        self.init_options = init_options or {}
        self.workers: dict[str, Any] = {}
        self.busy: dict[str, int] = {}
        self.overheads: list[float] = []  # per job: the driver's wait less the node's own time (seconds)
        self.limiter: Any = None
        self.rate_granted = 0  # requests the cluster-wide limiter paced (read when the backend closes)
        self.capacity: int | None = None
        self._slots: _Slots | None = None
        self._owns_ray = False

    async def start(self) -> None:
        if self._slots is not None:
            return
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, **self.init_options)
            except ConnectionError as exc:
                raise RayBackendError(f"--ray {self.address}: no Ray cluster there ({exc}); start one with `ray start "
                                      "--head --resources '{\"rlm_sandbox_slots\": N}'` or give its address") from None
            self._owns_ray = True
        nodes = {node["NodeID"]: node_slots(node["Resources"], self.memory_per_slot)
                 for node in ray.nodes() if node["Alive"]}
        if not nodes:
            raise RayBackendError("the Ray cluster has no live node")
        if self.rate_limit is not None:
            self.limiter = ray.remote(RateSchedule).options(num_cpus=0).remote(self.rate_limit)
        advertised = {node["NodeID"]: node["Resources"].get(SLOTS) for node in ray.nodes() if node["Alive"]}
        for node, slots in nodes.items():
            # ray.remote made NodeWorker an actor class; mypy does not apply class decorators
            self.workers[node] = NodeWorker.options(  # type: ignore[attr-defined]  # see above
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                max_concurrency=slots + 2,  # + pings
                max_restarts=self.worker_restarts, resources={SLOTS: slots} if advertised[node] else {},
            ).remote(slots, self.limiter)
        ray.get([worker.info.remote() for worker in self.workers.values()], timeout=300)
        self.busy = dict.fromkeys(nodes, 0)
        total = sum(nodes.values())
        self.capacity = min(total, self.max_in_flight) if self.max_in_flight else total
        self._slots = _Slots(nodes)

    async def run(self, job: TaskJob) -> TaskResult:
        if self._slots is None:
            raise RuntimeError("RayBackend.start() was not awaited before run()")
        cassette = await asyncio.to_thread(_read, job.replay)
        failures: list[str] = []
        last: str | None = None
        while len(failures) < self.max_attempts:
            node = await self._slots.take(avoid=last)
            self.busy[node] += 1
            sent = time.perf_counter()
            try:
                result, trace, recorded, worked = await self.workers[node].run.remote(job, cassette)
            except WORKER_DIED as exc:
                failures.append(f"node {node[:12]}: {type(exc).__name__}")
                last = node
                await self._check(node)
                continue
            finally:
                self.busy[node] -= 1
                await self._slots.give(node)
            self.overheads.append(time.perf_counter() - sent - worked)
            await asyncio.to_thread(_write, job, trace, recorded)
            result.retried = bool(failures)
            return result
        return crashed_result(job, f"the Ray worker running it died {len(failures)} times ({'; '.join(failures)})")

    async def _check(self, node: str) -> None:
        """After a worker died: keep the node if its actor came back (a restart), else drop it."""
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.workers[node].info.remote().future()), timeout=120)
        except (asyncio.TimeoutError, *WORKER_DIED):
            assert self._slots is not None
            await self._slots.drop(node)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        closing = [worker.close.remote() for worker in self.workers.values()]
        for ref in closing:
            try:
                ray.get(ref, timeout=120)
            except (*WORKER_DIED, ray.exceptions.GetTimeoutError):
                pass  # a dead node's daemon is out of reach; its own reaper runs on its next start
        if self.limiter is not None:
            self.rate_granted = ray.get(self.limiter.granted_count.remote(), timeout=60)
        for actor in [*self.workers.values(), *([self.limiter] if self.limiter is not None else [])]:
            ray.kill(actor, no_restart=True)
        self.workers.clear()
        self._slots = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None and path.exists() else None


def _write(job: TaskJob, trace: bytes, recorded: bytes | None) -> None:
    job.trace_path.parent.mkdir(parents=True, exist_ok=True)
    job.trace_path.write_bytes(trace)
    if job.record is not None and recorded is not None:
        job.record.parent.mkdir(parents=True, exist_ok=True)
        job.record.write_bytes(recorded)
