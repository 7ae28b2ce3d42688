"""The oracle on ``sniah``: keep the chunks that mention the key, ask the sub-model about them."""

from __future__ import annotations

import re

QUERY = re.compile(r"What is the special magic number for (\S+) mentioned in the provided text\?")
ASK = "Find the special magic number for {key} in the text below. Reply with the number only, or NONE.\n\n"
ASKED = re.compile(r"^Find the special magic number for (\S+) in the text below\.")

ROOT = '''key = KEY
size, overlap = 100_000, 200  # overlapping chunks: a needle never falls between two
chunks = [context[i:i + size + overlap] for i in range(0, len(context), size)]
hits = [chunk for chunk in chunks if key in chunk]
print(f"{len(chunks)} chunks, {len(hits)} mention {key}")
replies = llm_query_batched([ASK + chunk for chunk in hits])
numbers = sorted({reply.strip() for reply in replies if reply.strip().isdigit()})
answer = f"The special magic number for {key} mentioned in the provided text is {', '.join(numbers) or 'not found'}."
FINAL_VAR("answer")'''


def _find(key: str, text: str) -> str | None:
    found = re.search(rf"One of the special magic numbers for {re.escape(key)} is: (\d+)\.", text)
    return found.group(1) if found else None


def root_code(query: str) -> str | None:
    match = QUERY.search(query)
    if not match:
        return None
    key = match.group(1)
    return ROOT.replace("KEY", repr(key)).replace("ASK + chunk", f"{ASK.format(key=key)!r} + chunk")


def sub_answer(prompt: str) -> str | None:
    match = ASKED.match(prompt)
    if not match:
        return None
    return _find(match.group(1), prompt) or "NONE"


def direct(text: str, query: str) -> str | None:
    match = QUERY.search(query)
    if not match:
        return None
    number = _find(match.group(1), text)
    return f"The special magic number for {match.group(1)} is {number}." if number else "I could not find it."
