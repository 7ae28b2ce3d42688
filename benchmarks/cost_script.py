"""The scripted models of ``bench_cost.py``: one responder plays the root model, the child RLMs
and the sub-model of both engines, so each trajectory is the same for ours and the original RLM.

The responder sees only the request's messages (the server passes nothing else), so it reads
everything from them: which engine asked (the original RLM's system prompt names itself), the
department the query asks about, how far the run has got (every block prints ``STEP-DONE k``
first, so the marker survives offloaded previews, our compaction's digest and the original's
summaries) and whether it is a sub-call (its prompt starts with ``SUBTASK``) or a child RLM
(its request does not hold the root query). The code it writes runs in both REPLs: only
``context``, ``llm_query``, ``llm_query_batched`` and ``rlm_query`` are used, and only the last
block differs (ours: ``FINAL_VAR``; the original 0.1.3: ``answer["ready"] = True``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: The phrase every root query holds; a request without it is a child RLM's.
ROOT_QUERY = re.compile(r"total annual salary of all employees in the (\w+) department")
#: The original RLM's system prompt (0.1.3) starts so; ours does not.
ORIGINAL_MARK = "You are a Recursive Language Model (RLM)"
#: Its compaction asks for a summary with this.
ORIGINAL_SUMMARY = "Summarize your progress so far"
STEP = re.compile(r"STEP-DONE (\d+)")
SALARY = re.compile(r"Annual Salary: \$([\d,]+)")
CHILD_QUERY = ("Add up the Annual Salary of every record in `context` whose Department is the one named on its "
               "CHILD-TASK line. Answer with the number only.")
TRAJECTORIES = ("short", "long", "compaction", "batched", "recursion")

Messages = list[dict[str, Any]]


def text_of(messages: Messages) -> str:
    """Every message's text, joined."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)


def sub_answer(prompt: str) -> str:
    """The sub-model: the sum of the salaries in its prompt, as a bare number."""
    return str(sum(int(value.replace(",", "")) for value in SALARY.findall(prompt)))


def block(code: str) -> str:
    return f"```repl\n{code.strip()}\n```"


def finish(original: bool, variable: str) -> str:
    """The last block: each engine's way of answering with a variable's value."""
    if original:
        return block(f'answer["content"] = {variable}\nanswer["ready"] = True')
    return block(f"FINAL_VAR('{variable}')")


def peek(step: int) -> str:
    return block(f'print("STEP-DONE {step}")\nprint(len(context))\nprint(context[:600])')


def grep(step: int, dept: str) -> str:
    return block(f"""
print("STEP-DONE {step}")
import re
records = context.split("\\nEntry ")[1:]
mine = [r for r in records if "Department: {dept}\\n" in r]
parts = []
print(len(records), "records,", len(mine), "in {dept}")
print("\\n".join(m[:160] for m in mine[:3]))
""")


def aggregate(step: int) -> str:
    return block(f"""
print("STEP-DONE {step}")
total = sum(int(str(p).strip().replace(",", "").replace("$", "")) for p in parts)
check = sum(int(re.search(r"Annual Salary: \\$([\\d,]+)", r).group(1).replace(",", "")) for r in mine)
result = f"${{total:,}}"
print(result, "verified" if total == check else "MISMATCH", check)
""")


def sub_calls(step: int, pieces: int) -> str:
    """Split the department's records into ``pieces`` prompts, ask them at once."""
    return block(f"""
print("STEP-DONE {step}")
size = -(-len(mine) // {pieces})
prompts = ["SUBTASK: add up the Annual Salary values below; answer with the number only.\\n\\n"
           + "\\nEntry ".join(mine[i:i + size]) for i in range(0, len(mine), size)]
parts = llm_query_batched(prompts)
print(parts)
""")


def inspect_piece(step: int, index: int, pieces: int, shown: int) -> str:
    """One long-trajectory step: one sub-call on a slice of the records, and the next ``shown``
    characters of the document printed (the original shows them; ours keeps a long print in the
    sandbox and shows its start, unless offloading is off)."""
    return block(f"""
print("STEP-DONE {step}")
size = -(-len(mine) // {pieces})
piece = mine[{index} * size:({index} + 1) * size]
parts.append(llm_query("SUBTASK: add up the Annual Salary values below; answer with the number only.\\n\\n"
                       + "\\nEntry ".join(piece)))
print("piece {index}:", len(piece), "records, sum", parts[-1])
print(context[{index * shown}:{(index + 1) * shown}])
""")


def shared_prefix_batch(step: int, pieces: int) -> str:
    """Batched sub-calls whose prompts share a long instruction and differ in the chunk after it."""
    return block(f"""
print("STEP-DONE {step}")
rules = [f"Rule {{i}}: a record starts at its 'Entry N:' line and ends before the next one; read its "
         f"'Annual Salary:' line as whole dollars, ignore commas and the dollar sign, and never count "
         f"a record twice (check {{i}})." for i in range(40)]
INSTRUCTIONS = "SUBTASK: add up the Annual Salary values of the records below.\\n" + "\\n".join(rules)
size = -(-len(mine) // {pieces})
prompts = [INSTRUCTIONS + "\\n\\nAnswer with the number only. Records:\\n" + "\\nEntry ".join(mine[i:i + size])
           for i in range(0, len(mine), size)]
parts = llm_query_batched(prompts)
print(len(INSTRUCTIONS), "characters of shared instructions;", parts)
""")


def children(step: int, dept: str, original: bool) -> str:
    """Two child RLMs, each given half the department's records after a CHILD-TASK line."""
    if original:  # 0.1.3: rlm_query(prompt, model): the prompt becomes the child's context
        call = "rlm_query(CHILD_QUERY + '\\n' + c, model='bench-sub')"
    else:
        call = "rlm_query(CHILD_QUERY, context=c)"
    return block(f"""
print("STEP-DONE {step}")
CHILD_QUERY = {CHILD_QUERY!r}
half = -(-len(mine) // 2)
contexts = ["CHILD-TASK department={dept}\\nEntry " + "\\nEntry ".join(mine[i:i + half])
            for i in range(0, len(mine), half)]
parts = [{call} for c in contexts]
print(parts)
""")


def child_step(step: int, original: bool) -> str:
    """A child RLM: compute its sum in code, then answer."""
    if step == 1:
        return block("""
print("STEP-DONE 1")
import re
dept = re.search(r"CHILD-TASK department=(\\w+)", context).group(1)
pairs = re.findall(r"Department: (\\w+)\\n  Annual Salary: \\$([\\d,]+)", context)
child_sum = str(sum(int(s.replace(",", "")) for d, s in pairs if d == dept))
print(dept, len(pairs), child_sum)
""")
    return finish(original, "child_sum")


def plan(trajectory: str, dept: str, original: bool) -> list[Callable[[int], str]]:
    """The root's blocks, one per iteration, for a trajectory."""
    head: list[Callable[[int], str]] = [peek, lambda s: grep(s, dept)]
    tail: list[Callable[[int], str]] = [aggregate, lambda s: finish(original, "result")]
    if trajectory == "short":
        return head + [lambda s: sub_calls(s, 3)] + tail
    if trajectory in ("long", "compaction"):  # 10 iterations: 6 single sub-calls, then the tail
        shown = 8000 if trajectory == "compaction" else 1500
        middle = [lambda s, i=i: inspect_piece(s, i, 6, shown) for i in range(6)]
        return head + middle + tail
    if trajectory == "batched":
        return head + [lambda s: shared_prefix_batch(s, 8)] + tail
    if trajectory == "recursion":
        return head + [lambda s: children(s, dept, original)] + tail
    raise ValueError(f"unknown trajectory {trajectory!r}; choose one of {', '.join(TRAJECTORIES)}")


class Responder:
    """The server's responder for one trajectory (both engines, root, children and sub-calls);
    ``summaries`` counts the original RLM's compaction requests (ours compacts without asking)."""

    def __init__(self, trajectory: str) -> None:
        if trajectory not in TRAJECTORIES:
            raise ValueError(f"unknown trajectory {trajectory!r}; choose one of {', '.join(TRAJECTORIES)}")
        self.trajectory = trajectory
        self.summaries = 0

    def __call__(self, messages: Messages) -> str:
        text = text_of(messages)
        if any(m.get("role") == "user" and text_of([m]).startswith("SUBTASK") for m in messages):
            return sub_answer(text)  # a sub-call (whatever an engine puts around the prompt)
        original = ORIGINAL_MARK in text
        done = max((int(k) for k in STEP.findall(text)), default=0)
        if original and ORIGINAL_SUMMARY in str(messages[-1].get("content")):
            self.summaries += 1
            return f"Summary: STEP-DONE {done} is the last step completed; its variables are kept in the REPL."
        query = ROOT_QUERY.search(text)
        if query is None:  # a child RLM
            return child_step(min(done + 1, 2), original)
        steps = plan(self.trajectory, query.group(1), original)
        return steps[min(done, len(steps) - 1)](done + 1)
