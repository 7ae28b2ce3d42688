"""Simple question answering over structured records.

    python examples/simple_qa.py [--sandbox local|docker] [--quiet | --verbose]

2,000 employee records (name, department, salary) are generated from a fixed seed; the
RLM is asked for the total salary of the Engineering department. The records are never
put in the prompt: they are the variable `context` in the sandbox, and the model gets
the answer by writing code. Offline, the "model" is a three-step script of real code
(peek, compute, verify and finish); set RLM_SANDBOX_MODEL to let a real model write its own.
Exit code 0 when the answer matches the ground truth, 1 otherwise.
"""

from __future__ import annotations

import random
import sys

from _models import choose_models, numbers_in, parse_args, print_stats, sandbox_failed

SEED = 2024
DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Finance", "Support", "Operations", "Legal", "HR"]
FIRST = ["Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances", "Edsger",
         "Radia", "Guido", "Hedy", "Niklaus", "Karen", "John", "Sophie", "Tim", "Shafi", "Leslie"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie",
        "Allen", "Dijkstra", "Perlman", "van Rossum", "Lamarr", "Wirth", "Jones", "McCarthy",
        "Wilson", "Berners-Lee", "Goldwasser", "Lamport"]

QUERY = "What is the total annual salary, in dollars, of all employees in the Engineering department?"

# The context is a list of dicts rather than a CSV or JSON string: it reaches the sandbox
# as real Python objects (it travels as JSON and is decoded there), so the model filters
# with a one-line comprehension instead of first writing a parser, and the system prompt's
# preview of the first item shows the field names.


def make_records(n: int = 2000, seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    return [{"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
             "department": rng.choice(DEPARTMENTS),
             "salary": rng.randrange(45_000, 250_001, 500)}
            for _ in range(n)]


# The offline root model: what a careful model would write, one reply per turn. Every
# number in the answer is computed by this code inside the sandbox, from `context`.
SCRIPT = [
    """Let me look at the records first.
```repl
print(type(context).__name__, len(context))
print(context[0])
from collections import Counter
print(Counter(r["department"] for r in context).most_common())
```""",
    """The records are dicts with a `department` field, and "Engineering" is one of its values. \
I will add up the salaries of those records.
```repl
engineering = [r for r in context if r["department"] == "Engineering"]
total = sum(r["salary"] for r in engineering)
print(len(engineering), "Engineering employees; total salary", total)
```""",
    """Let me verify with an independent pass (tolerant of case and spaces) before answering.
```repl
check = 0
for record in context:
    if str(record.get("department", "")).strip().lower() == "engineering":
        check += int(record["salary"])
assert check == total, (check, total)
FINAL_VAR("total")
```""",
]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    records = make_records()
    expected = sum(r["salary"] for r in records if r["department"] == "Engineering")
    models = choose_models(SCRIPT)
    print(f"model: {models.description}")
    if not args.quiet:
        print(f"context: {len(records):,} employee records (a list of dicts); sandbox: {args.sandbox}")
        print(f"query: {QUERY}")

    import rlm_sandbox
    from rlm_sandbox.errors import RLMSandboxError

    try:
        result = rlm_sandbox.run(QUERY, records, model=models.model, sub_model=models.sub_model,
                                 max_iterations=10, verbose=args.verbose, sandbox=args.sandbox)
    except RLMSandboxError as exc:
        return sandbox_failed(exc, args.sandbox)

    correct = result.status == "completed" and expected in numbers_in(result.answer)
    print(f"answer: {result.answer}")
    print(f"expected: {expected}")
    print(f"correct: {'yes' if correct else 'NO'}")
    print_stats(result)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
