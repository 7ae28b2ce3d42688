"""What output offloading saves: the same task run with offloading on and off.

    python examples/offload_benchmark.py [--sandbox local|docker] [--quiet | --verbose]

The context is a 4,000-line service log; the query asks which service logged the most
ERROR lines. The model starts the way models often do: it prints every ERROR line (tens
of thousands of characters) to look at them, then counts in code and verifies.

- offload on (the default): an output over `offload_threshold` (500) characters stays in
  the sandbox as `_result_N`; the model sees its first `preview_chars` (200) and a note.
- offload off: the output goes into the conversation, cut to `max_output_chars` (30,000),
  and is re-sent with every later model call.

Both runs use one root script: a responder that reads the last message it was shown and
picks its next step, so it works in both modes (when the listing was kept as `_result_N`
it counts from that variable; otherwise from the list it built). A table compares input
tokens, history size and the size of the cell output the model was shown.
Exit code 0 when both answers are correct, 1 otherwise.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from typing import Any

from _models import choose_models, numbers_in, parse_args, print_stats, sandbox_failed

SEED = 11
LINES = 4000
QUERY = "Which service logged the most ERROR lines, and how many ERROR lines did it log?"
ERROR_RATE = {"auth": 0.10, "payments": 0.19, "search": 0.12, "inventory": 0.15, "gateway": 0.17,
              "email": 0.08}
MESSAGES = {"ERROR": ["upstream timeout", "connection reset by peer", "invalid token", "disk quota exceeded",
                      "null reference in handler"],
            "WARN": ["slow query", "retrying request", "cache miss storm"],
            "INFO": ["request served", "health check ok", "config reloaded", "user signed in"]}


def make_log(seed: int = SEED) -> tuple[str, str, int]:
    """The log text, and the ground truth: the service with the most ERROR lines, and its count."""
    rng = random.Random(seed)
    lines = []
    for i in range(LINES):
        service = rng.choice(sorted(ERROR_RATE))
        roll = rng.random()
        level = "ERROR" if roll < ERROR_RATE[service] else "WARN" if roll < ERROR_RATE[service] + 0.15 else "INFO"
        lines.append(f"2024-05-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z level={level} "
                     f"service={service} latency_ms={rng.randint(2, 4000)} request_id={rng.getrandbits(48):012x} "
                     f'msg="{rng.choice(MESSAGES[level])}"')
    counts = Counter(re.search(r"service=(\S+)", line).group(1) for line in lines if "level=ERROR" in line)
    (top, n), (_, runner_up) = counts.most_common(2)
    assert n > runner_up, "the generated log must have a single answer"
    return "\n".join(lines), top, n


STEP_1 = """Let me look at the ERROR lines.
```repl
lines = context.splitlines()
errors = [line for line in lines if "level=ERROR" in line]
print(len(lines), "lines,", len(errors), "ERROR lines:")
print("\\n".join(errors))
```"""

STEP_2 = """Each line has a `service=` field. {source} I will count ERROR lines per service in code.
```repl
import re
from collections import Counter
listing = {listing}
counts = Counter(re.search(r"service=(\\S+)", line).group(1)
                 for line in listing.splitlines() if "level=ERROR" in line)
print(counts.most_common())
```"""

STEP_3 = """Let me verify the top count against `context` directly, then answer.
```repl
top, n = counts.most_common(1)[0]
check = sum(1 for line in context.splitlines() if "level=ERROR" in line and f"service={top} " in line)
assert check == n, (check, n)
FINAL(f"{top} logged the most ERROR lines: {n}")
```"""


def root_model(messages: list[dict]) -> str:
    """The offline root model. It decides each step from the conversation so far."""
    step = sum(1 for m in messages if m["role"] == "assistant")
    if step == 0:
        return STEP_1
    if step == 1:
        shown = messages[-1]["content"]
        kept = re.search(r"`(_result_\d+)`", shown)  # the note an offloaded output comes with
        if kept:
            return STEP_2.format(source=f"The full listing was kept in `{kept.group(1)}`; I only saw its start.",
                                 listing=kept.group(1))
        return STEP_2.format(source="The listing I saw was cut in the middle, so I will not count by eye.",
                             listing='"\\n".join(errors)')
    return STEP_3


def shown_outputs(result: Any) -> list[str]:
    """What the model read about its cells: the user messages after the query."""
    return [m["content"] for m in result.history[2:] if m["role"] == "user"]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    log, top, n = make_log()
    models = choose_models(root_responder=root_model)
    print(f"model: {models.description}")
    if not args.quiet:
        print(f"context: a service log of {LINES:,} lines ({len(log):,} characters); sandbox: {args.sandbox}")
        print(f"query: {QUERY}")

    import rlm_sandbox
    from rlm_sandbox.errors import RLMSandboxError

    rows = []
    for offload in (True, False):
        label = f"offload {'on' if offload else 'off'}"
        try:
            result = rlm_sandbox.RLM(models.model, sub_model=models.sub_model, max_iterations=10, verbose=args.verbose,
                                     sandbox=args.sandbox, offload=offload).run(QUERY, log)
        except RLMSandboxError as exc:
            return sandbox_failed(exc, args.sandbox)
        correct = (result.status == "completed" and top in result.answer.lower()
                   and n in numbers_in(result.answer))
        outputs = shown_outputs(result)
        rows.append((label, result, correct, sum(len(m["content"]) for m in result.history),
                     sum(map(len, outputs)) / max(len(outputs), 1)))
        if not args.quiet:
            print(f"\n[{label}] answer: {result.answer}")
            print_stats(result)

    print(f"\nexpected: {top} logged the most ERROR lines: {n}\n")
    print(f"{'mode':<12} {'input tokens':>12} {'history chars':>14} {'avg output shown':>18} "
          f"{'iterations':>11}  correct")
    for label, result, correct, history_chars, average in rows:
        print(f"{label:<12} {result.total_input_tokens:>12,} {history_chars:>14,} {average:>18,.0f} "
              f"{result.iterations:>11}  {'yes' if correct else 'NO'}")
    on, off = rows[0][1].total_input_tokens, rows[1][1].total_input_tokens
    print(f"\noffloading used {off / max(on, 1):.1f}x fewer input tokens ({on:,} vs {off:,})")
    all_correct = all(row[2] for row in rows)
    print(f"correct: {'yes' if all_correct else 'NO'} (both runs)")
    return 0 if all_correct else 1


if __name__ == "__main__":
    sys.exit(main())
