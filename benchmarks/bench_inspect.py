#!/usr/bin/env python3
"""inspect_ai's ``sandbox.exec()`` round trip: ``rlm-sandbox`` against what inspect offers.

    python benchmarks/bench_inspect.py [--quick | --smoke]

One process, one run, interleaved rounds of the same operations through inspect's own
``SandboxEnvironment`` interface:

- ``rlm_sandbox``: our environment (``sample_init`` as inspect calls it): a hardened container,
  each operation one kernel cell;
- ``inspect_local``: inspect's ``local`` sandbox (a subprocess on the host: no isolation at all);
- ``docker_exec_cli``: ``docker exec CONTAINER CMD`` from the docker CLI into a long-lived hardened
  container of the same image. Inspect's ``docker`` sandbox runs ``docker compose exec``, which is
  this plus compose's own start-up: a floor for it. (Inspect's docker sandbox itself needs the
  ``docker compose`` v2 plugin; where it is missing, as on Debian 12, whose only compose is v1,
  the report says so and this floor stands in.)

Operations: ``exec_true`` (``exec(["true"])``), ``exec_echo_stdin`` (``cat`` of 1 KB of input),
``write_read_1mb`` (write then read back a 1 MB file; ``docker_exec_cli`` pipes it through
``cat``). Medians over the rounds; prints ONE JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

import anyio  # noqa: E402 - after the path setup above
from bench_sandbox import LABELS, RUN_LABEL, machine, mode_arguments, mode_of, say  # noqa: E402 - after the path setup above

from rlm_sandbox.integrations.inspect_sandbox import RlmSandboxConfig, RlmSandboxEnvironment  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox import DockerSandbox  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.image import ensure_image  # noqa: E402 - after the path setup above

perf = time.perf_counter
OPERATIONS = ["exec_true", "exec_echo_stdin", "write_read_1mb"]
STDIN = "x" * 1000
MB_FILE = b"\xc3" * 1_000_000


def _compose_available() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    return subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


class DockerExecCli:
    """``docker exec`` from the CLI into a hardened container kept running (our kernel's)."""

    def __init__(self) -> None:
        self.sandbox = DockerSandbox(labels=LABELS).start()
        self.prefix = ["docker", "exec", "-i", "-w", "/tmp", self.sandbox.container_id or ""]

    def _run(self, argv: list[str], stdin: bytes | None = None) -> bytes:
        done = subprocess.run(self.prefix + argv, input=stdin, capture_output=True, check=True)
        return done.stdout

    async def operation(self, name: str) -> None:
        if name == "exec_true":
            await anyio.to_thread.run_sync(lambda: self._run(["true"]))
        elif name == "exec_echo_stdin":
            out = await anyio.to_thread.run_sync(lambda: self._run(["cat"], STDIN.encode()))
            assert out == STDIN.encode()
        else:
            await anyio.to_thread.run_sync(lambda: self._run(["sh", "-c", "cat > bench.bin"], MB_FILE))
            out = await anyio.to_thread.run_sync(lambda: self._run(["cat", "bench.bin"]))
            assert out == MB_FILE

    async def close(self) -> None:
        self.sandbox.close()


class Environment:
    """An inspect ``SandboxEnvironment`` driven through inspect's interface."""

    def __init__(self, env: Any, cleanup: Callable[[], Awaitable[None]]) -> None:
        self.env = env
        self._cleanup = cleanup

    async def operation(self, name: str) -> None:
        if name == "exec_true":
            assert (await self.env.exec(["true"])).success
        elif name == "exec_echo_stdin":
            assert (await self.env.exec(["cat"], input=STDIN)).stdout == STDIN
        else:
            await self.env.write_file("bench.bin", MB_FILE)
            assert await self.env.read_file("bench.bin", text=False) == MB_FILE

    async def close(self) -> None:
        await self._cleanup()


async def _ours() -> Environment:
    spec = RlmSandboxConfig(labels=tuple(LABELS.items()))
    envs = await RlmSandboxEnvironment.sample_init("bench", spec, {})
    return Environment(envs["default"], lambda: RlmSandboxEnvironment.sample_cleanup("bench", spec, envs, False))


async def _inspect_local() -> Environment:
    from inspect_ai.util._sandbox.local import LocalSandboxEnvironment

    envs = await LocalSandboxEnvironment.sample_init("bench", None, {})
    return Environment(envs["default"], lambda: LocalSandboxEnvironment.sample_cleanup("bench", None, envs, False))


async def _docker_cli() -> DockerExecCli:
    return await anyio.to_thread.run_sync(DockerExecCli)


async def measure(rounds: int) -> dict[str, Any]:
    ways: dict[str, Any] = {"rlm_sandbox": await _ours(), "inspect_local": await _inspect_local(),
                            "docker_exec_cli": await _docker_cli()}
    samples: dict[str, dict[str, list[float]]] = {w: {op: [] for op in OPERATIONS} for w in ways}
    try:
        for way in ways.values():  # one untimed warm-up round each
            for op in OPERATIONS:
                await way.operation(op)
        for index in range(rounds):
            if index % 10 == 0:
                say(f"round {index + 1}/{rounds}")
            for op in OPERATIONS:
                for name, way in ways.items():  # interleaved: load on the shared machine hits all alike
                    began = perf()
                    await way.operation(op)
                    samples[name][op].append(perf() - began)
    finally:
        for way in ways.values():
            await way.close()
    results: dict[str, Any] = {}
    for name, per_op in samples.items():
        results[name] = {}
        for op, values in per_op.items():
            median = statistics.median(values)
            ours = statistics.median(samples["rlm_sandbox"][op])
            results[name][op] = {"n": len(values), "p50_ms": round(median * 1000, 2),
                                 "p90_ms": round(sorted(values)[int(0.9 * (len(values) - 1))] * 1000, 2),
                                 "vs_rlm_sandbox": round(median / ours, 2)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode_arguments(parser)
    args = parser.parse_args(argv)
    mode = mode_of(args)
    rounds = {"full": 100, "quick": 30, "smoke": 1}[mode]
    began = perf()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    client = docker_client()
    say("checking the sandbox image (builds it once if missing; not timed)")
    image = ensure_image(client=client)
    errors: list[str] = []
    results: dict[str, Any] = {}
    try:
        results = anyio.run(measure, rounds)
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, exit code 1
        errors.append(f"{type(exc).__name__}: {exc}")
    leaked = client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={LABELS[RUN_LABEL]}"})
    for container in leaked:
        client.api.remove_container(container["Id"], force=True)
    compose = _compose_available()
    report = {
        "benchmark": "inspect",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_inspect.py", *map(shlex.quote, argv or sys.argv[1:])]),
        "mode": mode,
        "image": image,
        "machine": machine(client, load_at_start),
        "inspect_docker_sandbox": "not run: the `docker compose` v2 plugin is present, but this script does not "
                                  "drive inspect's docker sandbox yet; docker_exec_cli is its floor" if compose else (
            "not run: inspect's docker sandbox needs the `docker compose` v2 plugin, which this machine "
            "lacks (Debian 12 packages only compose v1); docker_exec_cli is its floor"),
        "results": results,
        "errors": errors,
        "leaked_containers": len(leaked),
        "duration_s": round(perf() - began, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if errors or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
