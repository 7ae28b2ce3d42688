"""Your own batch pipeline on Ray: many RLM runs, each a Ray task on whatever node it lands.

    pip install "rlm-sandbox[ray]"
    python examples/ray_pipeline.py [--address auto|HOST:PORT] [--sandbox local|docker] [--quiet]

A run is self-contained: its settings (a dict of RLM options) and a picklable
``SandboxSpec`` go to the task, which runs ``RLM(...).run`` there; its sandbox starts on that
node's own Docker daemon. Each task asks for one ``rlm_sandbox_slots`` when the nodes
advertise it (``ray start --resources '{"rlm_sandbox_slots": 8}'``), so a small node is not
flooded with containers. Without ``--address`` (or ``RAY_ADDRESS``) a private one-node Ray
starts here. Offline, each task's model is a script of real code, built inside the task (a
scripted model lives in one process); set RLM_SANDBOX_MODEL to use a real model. Exit code 0
when every answer is right.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Any

try:
    import rlm_sandbox  # noqa: F401 - only to see whether it is installed
except ModuleNotFoundError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray

from rlm_sandbox import RLM, Settings, SandboxSpec
from rlm_sandbox.sandbox import Host, Sandbox

QUERY = "How many times does the word 'apple' occur in the text?"
SCRIPT = ["```repl\ncount = context.split().count('apple')\nprint(count)\n```", "FINAL_VAR(\"count\")"]


def documents(n: int, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(["apple", "pear", "plum", "fig"]) for _ in range(rng.randrange(200, 2000))]
        out.append((" ".join(words), words.count("apple")))
    return out


@ray.remote(num_cpus=0)
def answer(query: str, context: str, options: dict[str, Any], spec: SandboxSpec) -> dict[str, Any]:
    """One run, on whichever node Ray chose: settings and the sandbox spec arrive as data."""
    keep = None
    if options.get("model") is None:  # offline: this process's own scripted model
        from rlm_sandbox.testing import ScriptedModel

        keep = ScriptedModel(SCRIPT)
        options = {**options, "model": keep.model}

    def sandbox(_run_spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
        return spec.create(context, host)  # the spec sent with the task, not the run's settings

    try:
        result = RLM(**options, sandbox_factory=sandbox).run(query, context)
    finally:
        if keep is not None:
            keep.close()
    return {"answer": result.answer, "status": result.status, "node": ray.get_runtime_context().get_node_id(),
            "cost_usd": result.cost_usd}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="the cluster (default: a "
                        "private one-node Ray here)")
    parser.add_argument("--sandbox", choices=["local", "docker"], default="docker")
    parser.add_argument("--n", type=int, default=8, help="documents")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    real = os.environ.get("RLM_SANDBOX_MODEL", "").strip() or None
    print(f"model: {real or 'scripted demo model (offline; set RLM_SANDBOX_MODEL to use a real one)'}")
    options = {"model": real, "sub_model": os.environ.get("RLM_SANDBOX_SUB_MODEL") or None,
               "sandbox": args.sandbox, "max_iterations": 6}
    spec = Settings.from_options(**{k: v for k, v in options.items() if v is not None and k != "model"},
                                 model=real or "scripted").sandbox_spec()
    ray.init(address=args.address, log_to_driver=False)
    try:
        slots = {"rlm_sandbox_slots": 1} if ray.cluster_resources().get("rlm_sandbox_slots") else {}
        work = documents(args.n)
        refs = [answer.options(resources=slots).remote(QUERY, text, options, spec) for text, _ in work]
        results = ray.get(refs)
    finally:
        ray.shutdown()
    right = 0
    for (_, expected), result in zip(work, results, strict=True):
        ok = result["status"] == "completed" and result["answer"].strip() == str(expected)
        right += ok
        if not args.quiet:
            print(f"node {result['node'][:8]}: {result['answer']!r} (expected {expected}) {'ok' if ok else 'WRONG'}")
    print(f"nodes used: {len({r['node'] for r in results})}")
    print(f"correct: {'yes' if right == len(work) else 'NO'} ({right}/{len(work)})")
    return 0 if right == len(work) else 1


if __name__ == "__main__":
    sys.exit(main())
