"""The oracle on ``oolong`` and ``oolong-pairs``: batches of records go to the sub-model, which
labels each question by rule; the labels are aggregated in code (the same aggregation runs on
the host for the direct baseline)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..generators.oolong_records import LABELS

ASK = (f"Classify each question below by the kind of its answer, one of: {', '.join(LABELS)}. Reply with one line "
       "per question, as '<number>: <label>', numbered as below.\n\n")
_ITEM = re.compile(r"^(\d+)\. (.*)$", re.MULTILINE)
_ROW = re.compile(r"^Date: (\w{3} \d{2}, \d{4}) \|\| User: (\d+) \|\| Instance: (.*)$", re.MULTILINE)

#: The sub-model's rule: the first matching start (or phrase) gives the label.
_RULES = (("abbreviation", ("stand for", "full form")),
          ("human being", ("Who ",)),
          ("location", ("Where ", "What country")),
          ("numeric value", ("How tall", "How many", "How much", "What year", "When ")),
          ("description and abstract concept", ("What is the meaning", "Why ", "How does", "What is the definition")),
          ("entity", ("What kind of", "What was the name", "What instrument", "What food")))


def classify(question: str) -> str:
    for label, marks in _RULES:
        if any(question.startswith(mark) or (" " in mark.strip() and mark in question) for mark in marks):
            return label
    return "entity"


LABEL_ROWS = '''import re, datetime
lines = [line for line in context.split("\\n") if line.strip()]
batches = [lines[i:i + 150] for i in range(0, len(lines), 150)]
replies = llm_query_batched([ASK + "\\n".join(f"{j + 1}. {line.split('|| Instance: ', 1)[-1]}"
                                              for j, line in enumerate(batch)) for batch in batches])
rows = []
for batch, reply in zip(batches, replies):
    got = {}
    for answer_line in reply.splitlines():
        number, _, label = answer_line.partition(":")
        if number.strip().isdigit():
            got[int(number)] = label.strip()
    for j, line in enumerate(batch):
        found = re.match(r"Date: (\\w{3} \\d{2}, \\d{4}) \\|\\| User: (\\d+) \\|\\| Instance: ", line)
        rows.append((datetime.datetime.strptime(found.group(1), "%b %d, %Y").date(), int(found.group(2)),
                     got.get(j + 1)))
print(f"{len(rows)} records labelled in {len(batches)} batches")
'''

#: Aggregation from (date, user, label) rows to OOLONG's answer forms; runs in the REPL and on the host.
AGGREGATE = '''def aggregate(rows, query):
    import re, datetime, itertools
    from collections import Counter
    def day(text):
        return datetime.datetime.strptime(text, "%b %d, %Y").date()
    pairs = re.search(r"list all pairs of user IDs \\(no duplicate pairs, list lower ID first\\) where (.*?) Each of",
                      query)
    if pairs:
        condition, users = pairs.group(1), sorted({user for _, user, _ in rows})
        has = {user: set() for user in users}
        for _, user, label in rows:
            has[user].add(label)
        one_each = re.match(r"one user has at least one instance with a (.+?) and the other has at least one "
                            r"instance with a (.+?)\\.$", condition)
        both = re.match(r"both users have at least one instance with a (.+?) or (.+?)"
                        r"( dated before (\\w{3} \\d{2}, \\d{4}))?\\.$", condition)
        if one_each:
            a, b = one_each.groups()
            found = [(u, v) for u, v in itertools.combinations(users, 2)
                     if (a in has[u] and b in has[v]) or (b in has[u] and a in has[v])]
        elif both:
            a, b, _, before = both.groups()
            meets = {user for when, user, label in rows if label in (a, b) and (before is None or when < day(before))}
            found = [(u, v) for u, v in itertools.combinations(users, 2) if u in meets and v in meets]
        else:
            return "the scripted oracle does not know this pairs question"
        return "\\n".join(f"({u}, {v})" for u, v in found)
    chosen = rows
    subset = re.search(r"associated with user IDs ([\\d, ]+)\\.", query)
    if subset:
        wanted = {int(user) for user in subset.group(1).split(",")}
        chosen = [row for row in rows if row[1] in wanted]
    span = re.search(r"occur between (\\w{3} \\d{2}, \\d{4}) and (\\w{3} \\d{2}, \\d{4})", query)
    if span:
        first, last = day(span.group(1)), day(span.group(2))
        chosen = [row for row in rows if first <= row[0] <= last]
    counts = Counter(label for _, _, label in chosen)
    count = re.search(r"classified as label '([^']+)'", query)
    if count:
        return f"Answer: {counts[count.group(1)]}"
    extreme = re.search(r"which of the labels is the (most|least) common", query)
    if extreme:
        labels = [label for label in LABELS]
        ranked = sorted(labels, key=lambda label: counts[label], reverse=extreme.group(1) == "most")
        return f"Label: {ranked[0]}"
    relative = re.search(r"is label '([^']+)' more common, less common, or the same frequency as label '([^']+)'",
                         query)
    if relative:
        a, b = relative.groups()
        word = "more common than" if counts[a] > counts[b] else "less common than" if counts[a] < counts[b] \\
            else "same frequency as"
        return f"Answer: {a} is {word} {b}"
    return "the scripted oracle does not know this question"
'''


def _is_ours(query: str) -> bool:
    return "|| Instance: <question>" in query or "list all pairs of user IDs" in query


def root_code(query: str) -> str | None:
    if not _is_ours(query):
        return None
    return (f"ASK = {ASK!r}\nLABELS = {list(LABELS)!r}\n{LABEL_ROWS}{AGGREGATE}\n"
            f"answer = aggregate(rows, {query!r})\nFINAL_VAR('answer')")


def sub_answer(prompt: str) -> str | None:
    if not prompt.startswith(ASK[:40]):
        return None
    return "\n".join(f"{number}: {classify(text.strip())}" for number, text in _ITEM.findall(prompt))


def direct(text: str, query: str) -> str | None:
    if not _is_ours(query):
        return None
    rows = [(datetime.strptime(day, "%b %d, %Y").date(), int(user), classify(question))
            for day, user, question in _ROW.findall(text)]
    namespace: dict[str, Any] = {"LABELS": LABELS}
    exec(AGGREGATE, namespace)  # noqa: S102 - our own code (the same the REPL runs), not a model's
    return str(namespace["aggregate"](rows, query))
