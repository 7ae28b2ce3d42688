#!/usr/bin/env python3
"""Side by side: what isolation costs, against what users would otherwise use.

    python benchmarks/bench_compare.py [--quick | --smoke]

One process, one run, the same operations for every way of running a cell:

- ``inprocess_exec``: ``exec()`` in this process (no isolation at all);
- ``docker_exec_per_cell``: one ``docker exec python3 -c CODE`` per cell in a long-lived
  hardened container (how most libraries run code in Docker); the context is copied into
  the container once as a file and each cell reads it;
- ``container_per_cell``: a new hardened container per cell (``docker run --rm``), with the
  context copied in each time;
- ``ours_socket``, ``ours_stdio``: DockerSandbox over each transport;
- ``ours_warm_pool``: a SandboxPool (start = take a warm sandbox, close = return it);
- ``ours_gvisor``: DockerSandbox with ``runtime="runsc"`` (skipped where the daemon has none).

Operations: ``trivial_cell`` (``x = 1 + 1``), ``callback`` (a cell calling a host function
that returns at once; only our sandboxes and in-process exec have a channel back to the
host), ``context_10mb_cell`` (``len(context)`` with a 10 MB str context), ``start_close``
(ready to run a cell with the 10 MB context, then gone). Every figure is a median over
interleaved rounds, with its ratio to ``ours_socket`` and to ``inprocess_exec``. Prints ONE
JSON object on stdout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench_sandbox import LABELS, RUN_LABEL, RUN_ID, machine, mode_arguments, mode_of, say  # noqa: E402 - after the path/importorskip above

from rlm_sandbox.sandbox import DockerSandbox, Host, SandboxLimits, SandboxPool  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.sandbox.image import ensure_image  # noqa: E402 - after the path/importorskip above

perf = time.perf_counter
MB = 1_000_000
TRIVIAL = "x = 1 + 1"
CALLBACK = "y = ping(1)"
CONTEXT_CELL = "n = len(context)"
OPERATIONS = ["trivial_cell", "callback", "context_10mb_cell", "start_close"]
BENCHES = ["inprocess_exec", "docker_exec_per_cell", "container_per_cell", "ours_socket", "ours_stdio",
           "ours_warm_pool", "ours_gvisor"]
REFERENCE = "ours_socket"


def _ping(value: Any) -> Any:
    return value


class Way:
    """One way of running cells: ``start()`` makes it ready with the context, ``cell(code)``
    runs one cell (raising if it failed), ``close()`` ends it."""

    callbacks = True

    def start(self, context: str) -> None:
        raise NotImplementedError

    def cell(self, code: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class InProcess(Way):
    def start(self, context: str) -> None:
        self.namespace: dict[str, Any] = {"context": context, "ping": _ping}

    def cell(self, code: str) -> None:
        exec(compile(code, "<cell>", "exec"), self.namespace)  # noqa: S102 - the baseline

    def close(self) -> None:
        self.namespace = {}


def _cell_command(code: str) -> list[str]:
    """What a docker-exec style library runs: the context read from its file, then the code."""
    return ["python3", "-c", f"context = open('/tmp/context.txt').read()\n{code}"]


class _Hardened:
    """The same hardened HostConfig our sandbox gets (no network, read-only root, limits)."""

    def __init__(self, client: Any, image: str, limits: SandboxLimits) -> None:
        self.client, self.image, self.limits = client, image, limits

    def create(self, command: list[str], *, stdin: bool = False) -> str:
        host_config = DockerSandbox(image=self.image, limits=self.limits, client=self.client).host_config(None)
        host_config["LogConfig"] = {"Type": "json-file", "Config": {}}
        return self.client.api.create_container(self.image, command=command, user="65534:65534",
                                                working_dir="/tmp", labels=LABELS, network_disabled=True,
                                                stdin_open=stdin,  # docker-py sets StdinOnce with it
                                                host_config=host_config)["Id"]

    def start_with_stdin(self, container: str, data: bytes) -> None:
        """Start ``container`` and send ``data`` as its stdin, then close it (EOF)."""
        api = self.client.api
        sock = api.attach_socket(container, params={"stdin": 1, "stream": 1})
        api.start(container)
        raw = getattr(sock, "_sock", sock)
        raw.sendall(data)
        raw.shutdown(socket.SHUT_RDWR)  # EOF for the container's stdin (StdinOnce), whoever holds the fd
        raw.close()


class DockerExecPerCell(Way, _Hardened):
    callbacks = False  # a docker exec has no channel back to the host

    def start(self, context: str) -> None:
        # The root is read-only and /tmp a tmpfs (put_archive cannot write there): the
        # container's own command takes the context from stdin into /tmp, then idles.
        self.container = self.create(["python3", "-c", "import sys, os, time\n"
                                      "open('/tmp/context.tmp', 'w').write(sys.stdin.read())\n"
                                      "os.rename('/tmp/context.tmp', '/tmp/context.txt')\ntime.sleep(10**9)"],
                                     stdin=True)
        self.start_with_stdin(self.container, context.encode())
        deadline = perf() + 60
        while True:
            try:
                self.run(["python3", "-c", "import os; os.stat('/tmp/context.txt')"])
                return
            except RuntimeError:
                if perf() > deadline:
                    raise

    def run(self, command: list[str]) -> None:
        api = self.client.api
        exec_id = api.exec_create(self.container, command, user="65534:65534")["Id"]
        api.exec_start(exec_id)
        code = api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            raise RuntimeError(f"docker exec exited {code}")

    def cell(self, code: str) -> None:
        self.run(_cell_command(code))

    def close(self) -> None:
        self.client.api.remove_container(self.container, force=True)


class ContainerPerCell(Way, _Hardened):
    callbacks = False

    def start(self, context: str) -> None:
        self.context = context  # each cell's container gets it afresh

    def cell(self, code: str) -> None:
        api = self.client.api
        script = "import sys\ncontext = sys.stdin.read()\n" + code
        container = self.create(["python3", "-c", script], stdin=True)
        try:
            self.start_with_stdin(container, self.context.encode())
            status = api.wait(container, timeout=60)
        finally:
            api.remove_container(container, force=True)
        if status.get("StatusCode") != 0:
            raise RuntimeError(f"the cell's container exited {status}")

    def close(self) -> None:
        self.context = ""


class Ours(Way):
    def __init__(self, client: Any, image: str, limits: SandboxLimits, **options: Any) -> None:
        self.client, self.image, self.limits, self.options = client, image, limits, options

    def start(self, context: str) -> None:
        self.sandbox = DockerSandbox(context, image=self.image, limits=self.limits, client=self.client,
                                     host=Host({"ping": _ping}), labels=LABELS, **self.options).start()

    def cell(self, code: str) -> None:
        result = self.sandbox.exec(code)
        if not result.ok:
            raise RuntimeError(f"cell failed: {result.error}")

    def close(self) -> None:
        self.sandbox.close()


class OursPool(Ours):
    def __init__(self, client: Any, image: str, limits: SandboxLimits) -> None:
        super().__init__(client, image, limits)
        self.pool = SandboxPool(size=2, image=image, limits=limits, labels=LABELS)

    def start(self, context: str) -> None:
        while self.pool.idle < 1:  # time a warm take, as a pool is used
            time.sleep(0.01)
        self.sandbox = self.pool.take(context, Host({"ping": _ping}))

    def shutdown(self) -> None:
        self.pool.close()


def measure(ways: dict[str, Way], rounds: int, cells: int, context: str) -> dict[str, dict[str, list[float]]]:
    """Interleaved: every round runs each way in turn, so drift on a shared machine hits all."""
    samples: dict[str, dict[str, list[float]]] = {name: {op: [] for op in OPERATIONS} for name in ways}
    for round_number in range(rounds):
        for name, way in ways.items():
            t0 = perf()
            way.start(context)
            try:
                way.cell(CONTEXT_CELL)  # ready: the first cell ran (a pool's take may finish lazily)
                started = perf() - t0
                for _ in range(cells):
                    for op, code in (("trivial_cell", TRIVIAL), ("context_10mb_cell", CONTEXT_CELL),
                                     ("callback", CALLBACK)):
                        if op == "callback" and not way.callbacks:
                            continue
                        t1 = perf()
                        way.cell(code)
                        samples[name][op].append(perf() - t1)
            finally:
                t2 = perf()
                way.close()
                closed = perf() - t2
            samples[name]["start_close"].append(started + closed)
        say(f"round {round_number + 1}/{rounds} done")
    return samples


def table(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians in ms, each with its ratio to ours (socket) and to in-process exec."""
    medians = {name: {op: statistics.median(v) * 1e3 for op, v in ops.items() if v} for name, ops in samples.items()}
    out: dict[str, Any] = {}
    for name, ops in samples.items():
        out[name] = {}
        for op in OPERATIONS:
            if not ops[op]:
                out[name][op] = {"median_ms": None, "why": "no channel back to the host"}
                continue
            value = medians[name][op]
            ours, bare = medians.get(REFERENCE, {}).get(op), medians.get("inprocess_exec", {}).get(op)
            out[name][op] = {"median_ms": round(value, 4), "n": len(ops[op]),
                             "vs_ours": round(value / ours, 2) if ours else None,
                             "vs_inprocess": round(value / bare, 1) if bare else None}
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode_arguments(parser)
    args = parser.parse_args(argv)
    mode = mode_of(args)
    began = perf()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    client = docker_client()
    say("checking the sandbox image (builds it once if missing; not timed)")
    image = ensure_image(client=client)
    limits = SandboxLimits()
    ways: dict[str, Way] = {
        "inprocess_exec": InProcess(),
        "docker_exec_per_cell": DockerExecPerCell(client, image, limits),
        "container_per_cell": ContainerPerCell(client, image, limits),
        "ours_socket": Ours(client, image, limits, transport="socket"),
        "ours_stdio": Ours(client, image, limits, transport="stdio"),
        "ours_warm_pool": OursPool(client, image, limits),
    }
    skipped = {}
    if "runsc" in (client.info().get("Runtimes") or {}):
        ways["ours_gvisor"] = Ours(client, image, limits, runtime="runsc")
    else:
        skipped["ours_gvisor"] = "the Docker daemon has no runsc runtime"
    rounds, cells = {"full": (7, 15), "quick": (3, 8), "smoke": (1, 1)}[mode]
    context = "x" * (10 * MB)
    errors: dict[str, str] = {}
    try:
        samples = measure(ways, rounds, cells, context)
    except Exception as exc:  # noqa: BLE001 - report it in the JSON, as the other scripts do
        errors["measure"] = f"{type(exc).__name__}: {exc}"
        samples = {}
    finally:
        ways["ours_warm_pool"].shutdown()  # type: ignore[attr-defined]  # the pool way has shutdown()
    leaked = client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
    for container in leaked:
        client.api.remove_container(container["Id"], force=True)
    report = {
        "benchmark": "compare",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_compare.py", *map(shlex.quote, argv or sys.argv[1:])]),
        "smoke": mode == "smoke",
        "rounds": rounds, "cells_per_round": cells, "context_bytes": len(context),
        "reference": REFERENCE,
        "results": table(samples) if samples else {},
        "skipped": skipped,
        "machine": machine(client, load_at_start),
        "errors": errors,
        "leaked_containers": len(leaked),
        "duration_s": round(perf() - began, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if errors or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
