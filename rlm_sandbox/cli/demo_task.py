"""The bundled demo: a generated report, a question that needs sub-queries, and a
scripted model that works the way a real one should (so the demo runs offline).

The scripted root writes real code that runs in the sandbox: it peeks at the context,
chunks it, asks the sub-model about every chunk with ``llm_query_batched``, and adds the
answers up in Python. The scripted sub-model really reads its chunk (a regex). Nothing
returns a hard-coded answer: change the generated report and the answer changes.
"""

from __future__ import annotations

import random
import re
from typing import Any

PROJECT = "Atlas"
QUERY = f"What is the total budget, in dollars, approved for Project {PROJECT} across the whole report?"
_TEAMS = ["Atlas", "Borealis", "Cygnus", "Draco", "Eridanus"]
_FILLER = ["The committee reviewed the schedule and noted no blocking issues.",
           "Attendance was recorded and the minutes of the last meeting were approved.",
           "A follow-up on vendor contracts was assigned to the operations lead.",
           "Risks were discussed; mitigation owners will report next quarter.",
           "The team thanked the facilities group for the new meeting rooms."]


def demo_report(seed: int = 7, sections: int = 400) -> tuple[str, int]:
    """A long report (about 160 KB) with budget approvals scattered through it; returns
    (report, the true total for PROJECT)."""
    rng = random.Random(seed)
    parts, total = [], 0
    for number in range(1, sections + 1):
        lines = [f"## Section {number}: meeting of week {rng.randint(1, 52)}"]
        lines += rng.sample(_FILLER, k=3)
        if rng.random() < 0.3:
            team, amount = rng.choice(_TEAMS), rng.randrange(10, 500) * 1000
            total += amount if team == PROJECT else 0
            lines.append(f"Decision: the board approved a budget of ${amount:,} for Project {team}.")
        lines += rng.sample(_FILLER, k=2)
        parts.append("\n".join(lines))
    return "\n\n".join(parts), total


_AMOUNT = re.compile(r"approved a budget of \$([\d,]+) for Project (\w+)")

_PEEK = """Let me look at the report first.
```repl
print(len(context), "characters")
print(context[:600])
```"""

_CHUNK_AND_ASK = """The report is long. I will split it into chunks at section boundaries (so no decision is
cut in half) and ask a sub-model about each chunk.
```repl
chunks, current = [], ""
for section in context.split("\\n\\n## "):
    if current and len(current) + len(section) > 20000:
        chunks.append(current)
        current = ""
    current += "\\n\\n## " + section
chunks.append(current)
question = "List every budget approved for Project {project} in this text, one dollar amount per line, or NONE."
answers = llm_query_batched([question + "\\n\\n" + chunk for chunk in chunks])
print(len(chunks), "chunks;", sum(a != "NONE" for a in answers), "mention approvals")
print(answers[:5])
```"""

_ADD_UP = """Now I add the amounts in code and check them against a direct search.
```repl
import re
amounts = [int(line.replace("$", "").replace(",", "")) for a in answers if a != "NONE" for line in a.splitlines()]
total = sum(amounts)
check = sum(int(m.replace(",", "")) for m in re.findall(r"\\$([\\d,]+) for Project {project}\\b", context))
print(len(amounts), "approvals; total", total, "; direct check", check)
assert total == check
```"""

_ANSWER = """The sub-model answers and the direct search agree.
```repl
FINAL(f"${total:,}")
```"""


def scripted_root(messages: list[dict[str, Any]]) -> str:
    """The demo's root model: the next step, chosen from how far the conversation got."""
    turns = sum(1 for m in messages if m["role"] == "assistant")
    steps = [_PEEK, _CHUNK_AND_ASK, _ADD_UP, _ANSWER]
    return steps[min(turns, len(steps) - 1)].replace("{project}", PROJECT)


def scripted_sub(messages: list[dict[str, Any]]) -> str:
    """The demo's sub-model: reads the chunk in its prompt and lists the approvals asked for."""
    prompt = messages[-1]["content"]
    wanted = re.search(r"Project (\w+) in this text", prompt)
    project = wanted.group(1) if wanted else PROJECT
    found = [f"${amount}" for amount, team in _AMOUNT.findall(prompt) if team == project]
    return "\n".join(found) or "NONE"
